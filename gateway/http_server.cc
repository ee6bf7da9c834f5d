// http_server.cc -- see http_server.h. HTTP parsing and serialization are Boost.Beast's; this
// file only decides what to answer.
#include "gateway/http_server.h"

#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <thread>

#include "gateway/http_upstream.h"
#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/sse.h"
#include "gateway/supervisor.h"
#include "gateway/upstream.h"

namespace writ::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr char kSessionHeader[] = "MCP-Session-Id";
constexpr char kVersionHeader[] = "MCP-Protocol-Version";
const char* const kVersions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};

std::string_view SV(beast::string_view v) { return {v.data(), v.size()}; }

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// The host part of "host[:port]" / "[v6][:port]", lowercased.
std::string HostName(std::string_view hp) {
  if (!hp.empty() && hp.front() == '[') {
    size_t close = hp.find(']');
    return Lower(close == std::string_view::npos ? hp : hp.substr(0, close + 1));
  }
  return Lower(hp.substr(0, hp.find(':')));
}

bool Loopback(const std::string& host) {
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string NewSessionId() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

struct Stream;

// The kept messages of one resumable POST stream (docs/gateway.md, "Resuming a POST stream"):
// a request POSTed by a client that accepts text/event-stream while resumption is on. Its
// events have ids "p<k>-<n>": k numbers the session's POST streams in the order they start
// (1, 2, ...: when the first message or the priming event goes out; a request answered with
// plain JSON gets none), n the stream's messages (1, 2, ...; 0 is the priming event). Messages
// are kept from the first one on (the reply too) until the session's POST buffer evicts them
// (http.resume_buffer_*, oldest first), also after the reply was written (a write is not a
// delivery), so a client whose POST connection broke resumes with a GET and
// `Last-Event-ID: p<k>-<n>`. Guarded by Session::mu.
struct PostLog {
  struct Kept {
    uint64_t n;
    std::string line;
    bool reply;  // the request's reply (always the last message of a stream)
  };
  uint64_t k = 0;
  std::deque<Kept> kept;
  uint64_t next_n = 1;
  bool primed = false;   // the priming event was sent (or a resume named this stream)
  bool replied = false;  // the reply came (kept unless evicted, or sent as plain JSON)
  bool cancelled = false;  // the client cancelled the request: no reply will be kept
  uint64_t primes = 0;     // priming events of resumes that had nothing to replay
  uint64_t attaches = 0;   // resumes that took the stream over (for tests)
  std::shared_ptr<Stream> live;  // the connection writing this stream now; null: none

  // Whether the client may hold an id of this stream: from then on the reply is kept too and
  // a broken connection does not forget the stream.
  bool started() const { return primed || next_n > 1; }
  // Nothing more will be added to the stream.
  bool finished() const { return replied || cancelled; }
};

// Where the proxy's messages for one client request go: its reply and, when the client
// accepts text/event-stream (`sse`), the upstream's related notifications and requests, sent
// as SSE events before the reply. The session's GET stream is a Stream without a reply, and
// so is a GET resuming a POST stream (it gets the reply through Finish like the POST did).
struct Stream {
  static constexpr size_t kMaxEvents = 1024;  // queued, not yet written (a slow client)
  struct Event {
    std::string id;    // SSE `id:` (with resumption); empty: none
    std::string data;  // one JSON-RPC message; empty: a priming event (id only)
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  std::string reply;
  std::string reply_id;  // the reply's SSE id (a resumable POST stream); empty: none
  bool done = false;    // `reply` is set
  bool closed = false;  // replaced by a newer stream, or ended for a slow client
  bool cancelled = false;  // ended because the client cancelled the request (with `closed`)
  bool sse = false;
  // Set on the stream registered as a resumable POST's waiter (Session::waiters): its
  // messages go through the log (immutable after Submit; the log is guarded by Session::mu).
  std::shared_ptr<PostLog> log;

  // Queues a related message. False when the queue is full (the message is not queued).
  bool Push(const std::string& line, const std::string& id = "") {
    std::lock_guard<std::mutex> lock(mu);
    if (events.size() >= kMaxEvents) return false;
    events.push_back({id, line});
    cv.notify_all();
    return true;
  }
  void Finish(const std::string& line, const std::string& id = "") {
    std::lock_guard<std::mutex> lock(mu);
    reply = line;
    reply_id = id;
    done = true;
    cv.notify_all();
  }
  // Ends the stream after what is queued (the writer sees `closed`).
  void Close() {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    cv.notify_all();
  }
  void Wake() {
    std::lock_guard<std::mutex> lock(mu);
    cv.notify_all();
  }
};

// The upstream whose message the Proxy is handling on this thread (-1: none). Set around
// Proxy::OnUpstreamLine, which delivers the resulting client messages on the same thread;
// Session::ToClient uses it to find the POST a notification or server request relates to.
thread_local int tls_upstream = -1;

struct UpstreamScope {
  explicit UpstreamScope(size_t up) { tls_upstream = static_cast<int>(up); }
  ~UpstreamScope() { tls_upstream = -1; }
};

// One MCP session: a Proxy, its upstreams and the requests waiting for replies.
struct Session {
  std::string id;              // secret: never logged
  std::string label;           // "#N", for logs
  std::string principal_key;  // who may use this session
  std::unique_ptr<Proxy> proxy;
  std::vector<std::unique_ptr<UpstreamSupervisor>> children;  // restarted on crashes; null: url
  std::vector<std::unique_ptr<HttpUpstream>> remotes;         // `url:` upstreams; null: stdio
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Stream>> waiters;  // client id (dumped) -> its stream
  std::map<std::string, std::string> progress;  // client progress token (dumped) -> client id
  std::shared_ptr<Stream> get_stream;            // the open GET stream, if any
  std::atomic<bool> closed{false};
  std::atomic<int64_t> last_used{0};
  std::atomic<int64_t> dropped{0};  // notifications with no stream to go to

  // GET stream resumption (docs/gateway.md, "Resuming the GET stream"). Once the client has
  // opened a GET stream, every message meant for it gets the next sequence number (its SSE id
  // is "g<seq>", unique in the session) and is kept here, whether or not a GET stream is open
  // at the moment, so a GET with Last-Event-ID can replay what the client missed. Bounded by
  // http.resume_buffer_events / _bytes (the oldest go first). Guarded by mu.
  struct Logged {
    uint64_t seq;
    std::string line;
  };
  size_t resume_events = 0;  // 0: resumption off (set at creation)
  size_t resume_bytes = 0;
  bool resumable = false;  // a GET stream was opened
  std::deque<Logged> replay;
  size_t replay_size = 0;  // bytes of the lines in `replay`
  uint64_t next_seq = 1;
  int64_t evicted = 0;

  static std::string EventId(uint64_t seq) { return "g" + std::to_string(seq); }

  // POST stream resumption (docs/gateway.md, "Resuming a POST stream"): the session's
  // resumable POST streams by number, and one buffer for their kept messages with the same
  // bounds as the GET stream's (a second buffer, not shared with it). Guarded by mu.
  std::map<uint64_t, std::shared_ptr<PostLog>> posts;
  std::deque<uint64_t> post_order;  // the stream of each kept POST message, oldest first
  size_t post_events = 0;           // == post_order.size()
  size_t post_bytes = 0;            // bytes of the kept POST messages
  uint64_t next_post = 1;
  // The POST streams forgotten once finished and fully evicted: stream number -> the last n
  // it gave (its reply's, or its last message's when cancelled), so a resume from that id
  // gets 204 rather than 410. At most resume_events entries (the oldest streams go first).
  std::map<uint64_t, uint64_t> ended;

  static std::string PostEventId(uint64_t k, uint64_t n) {
    return "p" + std::to_string(k) + "-" + std::to_string(n);
  }

  // REQUIRES: mu held. The client may get an id of POST stream `log` from now on: the stream
  // gets its number (streams that never start, e.g. answered as plain JSON, use none, so a
  // number below next_post without a log is one whose messages were all evicted).
  void StartPost(const std::shared_ptr<PostLog>& log) {
    if (log->k != 0) return;
    log->k = next_post++;
    posts[log->k] = log;
  }

  // REQUIRES: mu held. Keeps `line` as the next message of POST stream `log`; its event id.
  // The oldest kept POST messages of the session go first when the buffer is over its bounds;
  // a replied stream with nothing left is forgotten.
  std::string LogForPost(const std::shared_ptr<PostLog>& log, const std::string& line,
                         bool reply) {
    StartPost(log);
    uint64_t n = log->next_n++;
    if (reply) log->replied = true;
    log->kept.push_back({n, line, reply});
    post_order.push_back(log->k);
    ++post_events;
    post_bytes += line.size();
    while (!post_order.empty() && (post_events > resume_events || post_bytes > resume_bytes)) {
      auto it = posts.find(post_order.front());
      post_order.pop_front();
      --post_events;
      if (it == posts.end() || it->second->kept.empty()) continue;  // not reached: kept in sync
      PostLog& e = *it->second;
      post_bytes -= e.kept.front().line.size();
      e.kept.pop_front();
      if (e.kept.empty() && e.finished()) Forget(it);
    }
    return PostEventId(log->k, n);
  }

  // REQUIRES: mu held; `it` a finished stream with nothing kept. Forgets it, remembering in
  // `ended` the last id it gave.
  void Forget(std::map<uint64_t, std::shared_ptr<PostLog>>::iterator it) {
    ended[it->first] = it->second->next_n - 1;
    while (ended.size() > std::max<size_t>(resume_events, 1)) ended.erase(ended.begin());
    posts.erase(it);
  }

  // The client cancelled request `rid` (notifications/cancelled, after the proxy handled it):
  // what the session holds for it goes -- its stream ends without a reply (the connection
  // writing it, if any, ends), a resumable stream keeps what it has (no reply will be added;
  // it is forgotten once evicted), its progress token goes. A request whose reply is still to
  // come from the upstream (forwarded) keeps its id taken by a stream nobody writes, which
  // swallows that reply; then the id is free. A held call's id is free at once.
  void Cancelled(const Json& rid) {
    std::string key = rid.dump();
    bool upstream = proxy->AwaitingUpstream(key);
    std::lock_guard<std::mutex> lock(mu);
    auto it = waiters.find(key);
    if (it == waiters.end() || it->second->cancelled) return;
    std::shared_ptr<Stream> st = it->second;
    if (upstream) {
      auto sink = std::make_shared<Stream>();
      sink->cancelled = true;
      it->second = sink;
    } else {
      waiters.erase(it);
    }
    for (auto p = progress.begin(); p != progress.end();)
      p = p->second == key ? progress.erase(p) : std::next(p);
    std::shared_ptr<Stream> writer = st;
    if (st->log != nullptr) {
      std::shared_ptr<PostLog> log = st->log;
      log->cancelled = true;
      writer = log->live;
      log->live = nullptr;
      auto p = posts.find(log->k);
      if (log->k != 0 && log->kept.empty() && p != posts.end()) Forget(p);
    }
    if (writer != nullptr) {
      std::lock_guard<std::mutex> slock(writer->mu);
      writer->cancelled = true;
      writer->closed = true;
      writer->cv.notify_all();
    }
  }

  // REQUIRES: mu held. Ends `st` after what it has queued (its queue is full: a slow client);
  // the messages it did not get are kept, so the client resumes with Last-Event-ID.
  void EndSlowStream(const std::shared_ptr<Stream>& st, const char* which) {
    st->Close();
    LogWarn(std::string("http: the ") + which +
                " stream's queue is full (slow client); ending it so the client resumes with "
                "Last-Event-ID",
            {{"session", label}});
  }

  // REQUIRES: mu held. Logs `line` for the GET stream; its event id.
  std::string LogForGet(const std::string& line) {
    uint64_t seq = next_seq++;
    replay.push_back({seq, line});
    replay_size += line.size();
    while (!replay.empty() && (replay.size() > resume_events || replay_size > resume_bytes)) {
      replay_size -= replay.front().line.size();
      replay.pop_front();
      ++evicted;
    }
    return EventId(seq);
  }

  // Messages from the proxy to the client (docs/gateway.md, "Server-to-client messages over
  // HTTP"). A reply goes to its request's stream. A progress notification goes to the stream
  // of the request that carried its token; another notification or a server-to-client
  // request goes to the SSE stream of a request in flight to the upstream it came from, else
  // to the GET stream. A request with nowhere to go is answered with an error on the
  // client's behalf (the upstream must not wait forever); such a notification is dropped.
  void ToClient(const std::string& line) {
    Json m = Json::parse(line, nullptr, false);
    if (m.is_discarded() || !m.is_object()) return;
    if (IsResponse(m)) {
      std::shared_ptr<Stream> st;
      std::string id;
      {
        std::lock_guard<std::mutex> lock(mu);
        std::string key = m.value("id", Json()).dump();
        auto it = waiters.find(key);
        if (it == waiters.end()) return;
        st = it->second;
        waiters.erase(it);
        for (auto p = progress.begin(); p != progress.end();)
          p = p->second == key ? progress.erase(p) : std::next(p);
        if (st->log != nullptr) {
          std::shared_ptr<PostLog> log = st->log;
          if (log->started()) {
            // Kept, and sent to the connection writing the stream now (if any).
            id = LogForPost(log, line, true);
            st = log->live;
          } else {
            // Nothing went out on the stream yet: the reply is plain JSON, no id to resume.
            log->replied = true;
            log->live = nullptr;
          }
        }
        // Under mu (lock order mu -> Stream::mu; Finish only notifies): a resume taking the
        // stream over (ResumePost) sees either the reply kept or the old stream finished.
        if (st != nullptr) st->Finish(line, id);
      }
      return;
    }
    std::vector<std::string> related;
    if (tls_upstream >= 0) related = proxy->ClientRequestsTo(static_cast<size_t>(tls_upstream));
    std::shared_ptr<Stream> target;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto sse_waiter = [this](const std::string& key) -> std::shared_ptr<Stream> {
        auto it = waiters.find(key);
        return it != waiters.end() && it->second->sse ? it->second : nullptr;
      };
      const Json& params = m.contains("params") ? m["params"] : Json();
      if (m.value("method", "") == "notifications/progress" && params.is_object() &&
          params.contains("progressToken")) {
        auto p = progress.find(params["progressToken"].dump());
        if (p != progress.end()) target = sse_waiter(p->second);
      }
      for (auto k = related.rbegin(); target == nullptr && k != related.rend(); ++k)
        target = sse_waiter(*k);
      if (target != nullptr && target->log != nullptr) {
        // A resumable POST stream: kept (a request too: the client gets it when it resumes),
        // and sent to the connection writing the stream now, if any.
        std::shared_ptr<PostLog> log = target->log;
        std::string id = LogForPost(log, line, false);
        if (log->live != nullptr && !log->live->Push(line, id)) {
          EndSlowStream(log->live, "POST");
          log->live = nullptr;
        }
        return;
      }
      if (target == nullptr) {
        // For the GET stream. A request is logged only when a stream is open to take it
        // (otherwise it is answered below, so a replay must not show it again).
        target = get_stream;
        bool log = resumable && resume_events > 0 && (target != nullptr || !IsRequest(m));
        std::string id = log ? LogForGet(line) : "";
        if (target != nullptr && target->Push(line, id)) return;
        if (log && target == nullptr) return;  // kept for a resuming GET
        if (log) {
          // The stream's queue is full (a slow client): the message stays in the replay
          // buffer and the stream ends once what is queued is written, so the client
          // reconnects with Last-Event-ID and gets it -- a gap is never silent.
          EndSlowStream(target, "GET");
          get_stream = nullptr;
          return;
        }
        target = nullptr;
      }
    }
    if (target != nullptr && target->Push(line)) return;
    if (IsRequest(m)) {
      proxy->OnClientLine(ToLine(ErrorReply(
          m["id"], kInternalError,
          "the client has no open SSE stream to receive this request (writ: HTTP transport)")));
    } else {
      ++dropped;
    }
  }

  void Close() {
    if (closed.exchange(true)) return;
    for (auto& c : children)
      if (c != nullptr) c->Shutdown(std::chrono::milliseconds(2000));
    for (auto& r : remotes)
      if (r != nullptr) r->Shutdown();
    std::vector<std::shared_ptr<Stream>> all;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [k, w] : waiters) all.push_back(w);
      for (auto& [k, p] : posts)
        if (p->live != nullptr) all.push_back(p->live);
      if (get_stream != nullptr) all.push_back(get_stream);
    }
    for (auto& w : all) w->Wake();
  }
  ~Session() {
    Close();
    for (auto& [k, p] : posts) p->live = nullptr;  // a log and its stream point at each other
    children.clear();  // reader threads joined before the proxy goes
    remotes.clear();
    proxy.reset();
  }
};

std::string PrincipalKey(const Principal& p) {
  return p.uid + '\n' + p.client + '\n' + p.method;
}

Response Plain(const Request& req, http::status st, const std::string& body = "",
               const std::string& type = "application/json") {
  Response res{st, req.version()};
  res.set(http::field::server, "writ");
  if (!body.empty()) {
    res.set(http::field::content_type, type);
    res.body() = body;
  }
  res.keep_alive(req.keep_alive());
  return res;
}

// An HTTP error with a JSON-RPC error body (what the SDK servers send).
Response Fail(const Request& req, http::status st, const std::string& message,
              int code = -32000, const Json& id = nullptr) {
  return Plain(req, st, ToLine(ErrorReply(id, code, message)));
}

}  // namespace

bool HostAllowed(const HttpConfig& c, std::string_view host) {
  if (host.empty()) return false;
  std::string name = HostName(host);
  if (c.allowed_hosts.empty()) return Loopback(name);
  for (const auto& a : c.allowed_hosts) {
    if (a == "*" || Lower(a) == Lower(host) || Lower(a) == name) return true;
  }
  return false;
}

bool OriginAllowed(const HttpConfig& c, std::string_view origin) {
  if (!c.allowed_origins.empty()) {
    for (const auto& a : c.allowed_origins)
      if (a == "*" || Lower(a) == Lower(origin)) return true;
    return false;
  }
  std::string o = Lower(origin);
  size_t p = o.find("://");
  if (p == std::string::npos) return false;
  std::string scheme = o.substr(0, p);
  if (scheme != "http" && scheme != "https") return false;
  std::string rest = o.substr(p + 3);
  if (rest.find('/') != std::string::npos) return false;
  return Loopback(HostName(rest));
}

struct HttpServer::Impl {
  HttpServerOptions o;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::atomic<bool> stopping{false};
  std::atomic<bool> draining{false};  // Drain(): new sessions and requests get 503
  int port = 0;

  std::mutex conn_mu;
  std::condition_variable conn_cv;
  std::map<int, int> conns;  // connection number -> fd
  int next_conn = 0;

  std::mutex sess_mu;
  std::map<std::string, std::shared_ptr<Session>> sessions;
  int creating = 0;
  std::atomic<int64_t> session_count{0};  // sessions being initialized (counted against max_sessions)

  // Credential rotation: NewSession starts upstreams under a shared lock of rot_mu and
  // registers the session in `live` before releasing it; RotateUpstreams takes it exclusively,
  // so every session either starts with the new env or is in `live` to be restarted.
  std::shared_mutex rot_mu;
  std::vector<UpstreamConfig> upstreams;  // guarded by rot_mu; starts as o.config.upstreams
  std::mutex live_mu;
  std::vector<std::weak_ptr<Session>> live;  // guarded by live_mu

  explicit Impl(HttpServerOptions opts) : o(std::move(opts)), upstreams(o.config.upstreams) {}

  void Log(const std::string& s) { LogInfo("http: " + s); }

  // Authenticates the request; on failure fills *res.
  bool Authenticate(const Request& req, Principal* p, Response* res) {
    if (o.auth == nullptr) {
      p->uid = o.config.stdio_principal.uid;
      p->method = "anonymous";
      return true;
    }
    AuthResult r = o.auth->Authenticate(std::string(req[http::field::authorization]));
    if (r.ok()) {
      *p = r.principal();
      return true;
    }
    const AuthError& e = r.error();
    Json body = {{"error", e.error.empty() ? "unauthorized" : e.error},
                 {"error_description", e.description}};
    *res = Plain(req, static_cast<http::status>(e.http_status), body.dump());
    res->set(http::field::www_authenticate, e.www_authenticate);
    return false;
  }

  std::shared_ptr<Session> NewSession(const Principal& p) {
    auto s = std::make_shared<Session>();
    s->id = NewSessionId();
    s->label = "#" + std::to_string(++session_count);
    s->principal_key = PrincipalKey(p);
    s->last_used = NowMs();
    s->resume_events = static_cast<size_t>(std::max(0, o.config.http.resume_buffer_events));
    s->resume_bytes = o.config.http.resume_buffer_bytes;
    ProxyOptions popts;
    if (o.auth == nullptr) {
      popts.principal = o.config.stdio_principal;
    } else {
      popts.principal.uid = p.uid;
      popts.principal.attrs = p.attrs;
      popts.principal.parents = p.parents;
    }
    popts.identity = p.ToContextJson();
    popts.limits = o.config.limits;
    popts.version = o.version;
    popts.audit = o.audit;
    popts.guards = o.guards;
    popts.trace = o.trace;
    popts.bundles = o.bundles;
    Session* raw = s.get();
    s->proxy = std::make_unique<Proxy>(popts, o.bundle,
                                       [raw](const std::string& line) { raw->ToClient(line); });
    // Upstreams: a supervised child process (`command:`) or a Streamable HTTP server (`url:`).
    Proxy* px = s->proxy.get();
    std::shared_lock<std::shared_mutex> rot(rot_mu);
    s->children = StartUpstreams(px, upstreams, o.config.limits, s->label, &s->remotes,
                                 [px](size_t i, std::string_view line) {
                                   UpstreamScope scope(i);
                                   px->OnUpstreamLine(i, line);
                                 });
    std::lock_guard<std::mutex> lock(live_mu);
    // Ended sessions go here, not only at a rotation: a weak_ptr keeps its make_shared block.
    std::erase_if(live, [](const std::weak_ptr<Session>& w) { return w.expired(); });
    live.push_back(s);
    return s;
  }

  // Registers the stream that receives request `msg`'s reply (and, with `sse`, related
  // messages) and hands the request to the proxy. False: a request with this id is in flight.
  bool Submit(Session& s, const Json& msg, const std::string& line,
              const std::shared_ptr<Stream>& st) {
    std::string key = msg["id"].dump();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (!s.waiters.emplace(key, st).second) return false;
      if (st->log != nullptr) st->log->live = st;  // until the reply is written or it ends
      const Json& params = msg.contains("params") ? msg["params"] : Json();
      if (params.is_object() && params.contains("_meta") && params["_meta"].is_object() &&
          params["_meta"].contains("progressToken"))
        s.progress[params["_meta"]["progressToken"].dump()] = key;
    }
    s.proxy->OnClientLine(line);
    return true;
  }

  // Forgets stream `st` of request `id` whose reply will not be delivered (session closed,
  // client gone). A no-op once the id names another stream (cancelled, then reused).
  void Abandon(Session& s, const Json& id, const Stream* st) {
    std::string key = id.dump();
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.waiters.find(key);
    if (it == s.waiters.end() || it->second.get() != st) return;
    s.waiters.erase(it);
    for (auto p = s.progress.begin(); p != s.progress.end();)
      p = p->second == key ? s.progress.erase(p) : std::next(p);
  }

  // The connection writing resumable POST stream `log` ended before the reply was written (the
  // client left, a resume took the stream over, a slow client, the session or the server
  // ending). The request stays in flight and the stream's messages stay kept for a GET with
  // Last-Event-ID -- unless nothing with an id went out (the client cannot resume): then the
  // stream is forgotten as Abandon does. Nothing is sent upstream either way (no cancellation:
  // a disconnection is not a cancellation).
  void Detach(Session& s, const std::shared_ptr<PostLog>& log, const Stream* st, const Json& id) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (log->live.get() == st) log->live = nullptr;
      if (log->started() || log->finished()) return;
    }
    Abandon(s, id, st);
  }

  // Forwards a request and waits for its reply ("" when the session closed or we stop).
  std::string Call(Session& s, const Json& msg, const std::string& line) {
    auto st = std::make_shared<Stream>();
    if (!Submit(s, msg, line, st)) return "duplicate";
    std::unique_lock<std::mutex> lock(st->mu);
    while (!st->done && !stopping && !s.closed)
      st->cv.wait_for(lock, std::chrono::milliseconds(100));
    if (!st->done) {
      lock.unlock();
      Abandon(s, msg["id"], st.get());
      return "";
    }
    return st->reply;
  }

  // What Handle produced: a complete response, or a stream the connection then writes.
  struct Outcome {
    Response res;
    std::shared_ptr<Session> session;
    std::shared_ptr<Stream> stream;  // set: POST (with `id`) or GET stream
    Json id;                         // the POSTed request's id
    bool get = false;
    std::string replay;  // GET with Last-Event-ID: the Writ-Replay header's value
    // A resumable POST stream (the POST's own, or a GET resuming it): its log.
    std::shared_ptr<PostLog> post;
    bool resume = false;  // a GET resuming a POST stream (headers at once; ends with the reply)
    bool prime = false;   // POST: a 2025-11-25 client, primed once the stream goes SSE
  };

  // A POST stream is primed (and so becomes resumable) when its reply has not come this long
  // after the request, even if nothing related was sent: a long call without progress can be
  // resumed too, while quick calls keep their plain JSON answer.
  static constexpr auto kPrimeAfter = std::chrono::milliseconds(1000);

  // The priming event (an id with empty data, MCP 2025-11-25) is for clients that speak
  // 2025-11-25 or later; older SDKs would try to parse the empty data.
  static bool Primes(const Request& req) { return SV(req[kVersionHeader]) >= "2025-11-25"; }

  static bool AcceptsSse(const Request& req) {
    std::string accept = Lower(SV(req[http::field::accept]));
    return accept.find("text/event-stream") != std::string::npos;
  }

  Response Post(const Request& req, const Principal& p, Outcome* out) {
    std::string accept = Lower(SV(req[http::field::accept]));
    if (!accept.empty() && accept.find("application/json") == std::string::npos &&
        accept.find("*/*") == std::string::npos && accept.find("application/*") == std::string::npos)
      return Fail(req, http::status::not_acceptable,
                  "Not Acceptable: the client must accept application/json");
    std::string ctype = Lower(SV(req[http::field::content_type]));
    if (ctype.rfind("application/json", 0) != 0)
      return Fail(req, http::status::unsupported_media_type,
                  "Unsupported Media Type: Content-Type must be application/json");
    const auto& lim = o.config.limits;
    ParsedMessage pm = ParseMessage(req.body(), lim.max_message_bytes, lim.max_depth);
    if (pm.error_code != 0)
      return Fail(req, http::status::bad_request, pm.error, pm.error_code, pm.id);
    const Json& msg = pm.msg;
    std::string sid(req[kSessionHeader]);
    bool init = IsRequest(msg) && msg["method"] == "initialize";
    if (draining && IsRequest(msg))
      return Fail(req, http::status::service_unavailable,
                  "Service Unavailable: the gateway is shutting down; no new requests",
                  kShuttingDown, msg["id"]);

    if (init) {
      if (!sid.empty())
        return Fail(req, http::status::bad_request,
                    "Bad Request: initialize must not carry an MCP-Session-Id", kInvalidRequest,
                    msg["id"]);
      {
        std::lock_guard<std::mutex> lock(sess_mu);
        if (static_cast<int>(sessions.size()) + creating >= o.config.http.max_sessions)
          return Fail(req, http::status::service_unavailable,
                      "Service Unavailable: too many sessions (http.max_sessions)");
        ++creating;
      }
      std::shared_ptr<Session> s = NewSession(p);
      std::string reply = s->id.empty() ? "" : Call(*s, msg, req.body());
      Json r = Json::parse(reply, nullptr, false);
      bool ok = !reply.empty() && !r.is_discarded() && r.contains("result");
      {
        std::lock_guard<std::mutex> lock(sess_mu);
        --creating;
        if (ok && !stopping) sessions[s->id] = s;
      }
      if (!ok || stopping) {
        s->Close();  // never existed for the client; its upstreams stop here (not under a lock)
        if (reply.empty() || r.is_discarded())
          return Fail(req, http::status::service_unavailable,
                      "Service Unavailable: initialize was not answered", kInternalError,
                      msg["id"]);
        if (!ok) return Plain(req, http::status::ok, reply);
      }
      Log("session " + s->label + " opened for " + p.uid);
      Response res = Plain(req, http::status::ok, reply);
      if (ok && !stopping) res.set(kSessionHeader, s->id);
      return res;
    }

    std::shared_ptr<Session> s;
    Response err;
    if (!FindSession(req, p, &s, &err)) return err;
    s->last_used = NowMs();
    if (!IsRequest(msg)) {
      s->proxy->OnClientLine(req.body());
      // After the proxy (a held call is dropped, a forwarded one cancelled upstream).
      if (msg.value("method", "") == "notifications/cancelled" && msg.contains("params") &&
          msg["params"].is_object() && msg["params"].contains("requestId"))
        s->Cancelled(msg["params"]["requestId"]);
      return Plain(req, http::status::accepted);
    }
    auto st = std::make_shared<Stream>();
    st->sse = AcceptsSse(req);
    if (st->sse && s->resume_events > 0) st->log = std::make_shared<PostLog>();
    if (!Submit(*s, msg, req.body(), st))
      return Fail(req, http::status::bad_request,
                  "Bad Request: a request with this id is already in flight", kInvalidRequest,
                  msg["id"]);
    out->session = s;
    out->stream = st;
    out->id = msg["id"];
    out->post = st->log;
    out->prime = st->log != nullptr && Primes(req);
    return Response{};
  }

  // GET: the session's stream for server-initiated messages. A newer GET replaces it.
  Response Get(const Request& req, const Principal& p, Outcome* out) {
    if (!AcceptsSse(req))
      return Fail(req, http::status::not_acceptable,
                  "Not Acceptable: the GET stream needs Accept: text/event-stream");
    std::shared_ptr<Session> s;
    Response err;
    if (!FindSession(req, p, &s, &err)) return err;
    s->last_used = NowMs();
    auto st = std::make_shared<Stream>();
    st->sse = true;
    std::shared_ptr<Stream> old;
    std::string last(SV(req["Last-Event-ID"]));
    bool prime = Primes(req);
    if (s->resume_events > 0 && !last.empty() && last[0] == 'p') {
      Response res;
      if (ResumePost(req, s, last, prime, out, &res)) return res;
      // Not of the p<k>-<n> form: as the GET path does with an unknown id.
    }
    int64_t lost = 0;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      old = std::move(s->get_stream);
      s->get_stream = st;
      if (s->resume_events > 0) {
        s->resumable = true;
        size_t before = st->events.size();
        if (!last.empty()) out->replay = Resume(*s, last, st.get(), &lost);
        // Nothing replayed: the priming event names the latest id, so a client that loses
        // this stream before any message can still resume from here.
        if (prime && st->events.size() == before)
          st->events.push_back({Session::EventId(s->next_seq - 1), ""});
      }
    }
    if (out->replay == "unknown")
      LogWarn("http: Last-Event-ID names no event of this session's GET stream; a fresh stream "
              "starts (nothing replayed)",
              {{"session", s->label}});
    else if (out->replay == "partial")
      LogWarn("http: Last-Event-ID is older than the replay buffer; replaying what is left",
              {{"session", s->label}, {"lost", lost},
               {"help", "raise http.resume_buffer_events / resume_buffer_bytes"}});
    if (old != nullptr) {
      std::lock_guard<std::mutex> lock(old->mu);
      old->closed = true;
      old->cv.notify_all();
    }
    out->session = s;
    out->stream = st;
    out->get = true;
    return Response{};
  }

  // REQUIRES: s.mu held. Queues on `st` the logged GET messages after event id `last`, in
  // order. Returns "replayed" (nothing was missed beyond them), "partial" (the buffer no
  // longer holds some: *lost of them; the rest are replayed) or "unknown" (not an id this
  // session's GET stream gave: nothing replayed).
  static std::string Resume(Session& s, const std::string& last, Stream* st, int64_t* lost) {
    uint64_t n = 0;
    bool ok = last.size() >= 2 && last.size() <= 20 && last[0] == 'g';
    for (size_t i = 1; ok && i < last.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(last[i]))) ok = false;
      else n = n * 10 + static_cast<uint64_t>(last[i] - '0');
    }
    if (!ok || n >= s.next_seq || Session::EventId(n) != last) return "unknown";
    uint64_t first = s.replay.empty() ? s.next_seq : s.replay.front().seq;
    *lost = first > n + 1 ? static_cast<int64_t>(first - n - 1) : 0;
    for (const auto& e : s.replay) {
      if (e.seq <= n) continue;
      if (st->events.size() >= Stream::kMaxEvents) {
        // More than one stream's queue: this stream ends after these, and the client's next
        // resume (from the last id it got) gets the rest.
        st->closed = true;
        break;
      }
      st->events.push_back({Session::EventId(e.seq), e.line});
    }
    return *lost > 0 ? "partial" : "replayed";
  }

  // GET with `Last-Event-ID: p<k>-<n>` or `p<k>-<n>.<m>` (docs/gateway.md, "Resuming a POST
  // stream"). False: not of that form (the caller goes on as for an unknown GET id). True:
  // *res is the answer (204: the stream is complete, nothing after the id; 410 "gone": nothing
  // after the id is kept any more; 410 "unknown": not an id this session's POST streams gave),
  // or out->stream is set: the stream replays the kept messages after the id, in order, then
  // takes the stream over (an older connection writing it ends), delivers the rest live and
  // ends with the reply (a cancelled request's stream ends after the replay). The session's
  // GET stream is left alone.
  bool ResumePost(const Request& req, const std::shared_ptr<Session>& s, const std::string& last,
                  bool prime, Outcome* out, Response* res) {
    uint64_t k = 0, n = 0, m = 0;
    size_t dash = last.find('-');
    size_t dot = last.find('.');
    auto number = [](std::string_view d, uint64_t* v) {
      if (d.empty() || d.size() > 19 || (d.size() > 1 && d[0] == '0')) return false;
      *v = 0;
      for (char c : d) {
        if (c < '0' || c > '9') return false;
        *v = *v * 10 + static_cast<uint64_t>(c - '0');
      }
      return true;
    };
    std::string_view id(last);
    if (dash == std::string::npos || (dot != std::string::npos && dot < dash) ||
        !number(id.substr(1, dash - 1), &k) ||
        !number(id.substr(dash + 1, dot == std::string::npos ? dot : dot - dash - 1), &n) ||
        k == 0 || (dot != std::string::npos && (!number(id.substr(dot + 1), &m) || m == 0)))
      return false;
    auto st = std::make_shared<Stream>();
    st->sse = true;
    int64_t lost = 0;
    std::string outcome;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      auto it = s->posts.find(k);
      std::shared_ptr<PostLog> log = it == s->posts.end() ? nullptr : it->second;
      auto ended = s->ended.find(k);
      if (k >= s->next_post || (log != nullptr && (n >= log->next_n || m > log->primes)) ||
          (log == nullptr && ended != s->ended.end() && n > ended->second)) {
        outcome = "unknown";
      } else if (log != nullptr) {
        uint64_t first = log->kept.empty() ? log->next_n : log->kept.front().n;
        lost = first > n + 1 ? static_cast<int64_t>(first - n - 1) : 0;
        bool more = !log->finished();  // something is still to come
        for (const auto& e : log->kept) more = more || e.n > n;
        if (!more) {
          outcome = lost > 0 ? "gone" : "complete";
        } else {
          outcome = lost > 0 ? "partial" : "replayed";
          for (const auto& e : log->kept) {
            if (e.n <= n) continue;
            if (e.reply) {
              st->reply = e.line;
              st->reply_id = Session::PostEventId(k, e.n);
              st->done = true;
            } else if (st->events.size() >= Stream::kMaxEvents) {
              // A replay longer than one stream's queue: this stream ends after these (before
              // the reply, which is always last) and the client's next resume (from the last
              // id it got) gets the rest.
              st->closed = true;
              break;
            } else {
              st->events.push_back({Session::PostEventId(k, e.n), e.line});
            }
          }
          // A cancelled request's stream gets no reply: it ends after the replay.
          if (log->cancelled && !st->done) st->closed = true;
          // Nothing replayed: the priming event gets an id of its own, p<k>-<n>.<m> (m counts
          // such primings of the stream), which resumes like p<k>-<n>: a client that loses
          // this stream too before any message can resume again from the same place.
          if (prime && st->events.empty() && !st->done)
            st->events.push_back(
                {Session::PostEventId(k, n) + "." + std::to_string(++log->primes), ""});
          log->primed = true;
          if (!log->cancelled) {
            // Under mu (lock order mu -> Stream::mu): the reply goes either to the old stream
            // before this (then it is kept and replayed here) or to this one, never to both.
            if (log->live != nullptr) log->live->Close();
            log->live = st->closed ? nullptr : st;
            ++log->attaches;
          }
          out->post = log;
        }
      } else if (ended != s->ended.end() && n == ended->second) {
        outcome = "complete";  // forgotten since, but the client had it all (e.g. the reply)
      } else {
        outcome = "gone";  // finished and evicted since
      }
    }
    out->replay = outcome;
    if (outcome == "complete") {
      *res = Plain(req, http::status::no_content);
      res->set("Writ-Replay", outcome);
    } else if (outcome == "unknown") {
      // Never a fresh GET stream: the client would take it for the POST stream it resumes.
      // 410, not 404 (a 404 tells an MCP client its session is gone).
      LogWarn("http: Last-Event-ID names no event of this session's POST streams",
              {{"session", s->label}, {"help", "resume with an id this session's POST gave"}});
      *res = Fail(req, http::status::gone,
                  "Gone: Last-Event-ID names no event of this session's POST streams; there is "
                  "nothing to resume");
      res->set("Writ-Replay", outcome);
    } else if (outcome == "gone") {
      LogWarn("http: Last-Event-ID names a POST stream whose later messages are no longer kept; "
              "nothing to replay",
              {{"session", s->label}, {"stream", "p" + std::to_string(k)},
               {"help", "raise http.resume_buffer_events / resume_buffer_bytes"}});
      *res = Fail(req, http::status::gone,
                  "Gone: the messages of this POST stream after Last-Event-ID are no longer kept "
                  "(http.resume_buffer_events / resume_buffer_bytes); its reply may be lost");
      res->set("Writ-Replay", outcome);
    } else {
      if (outcome == "partial")
        LogWarn("http: Last-Event-ID is older than what is kept of its POST stream; replaying "
                "what is left",
                {{"session", s->label}, {"stream", "p" + std::to_string(k)}, {"lost", lost},
                 {"help", "raise http.resume_buffer_events / resume_buffer_bytes"}});
      out->session = s;
      out->stream = st;
      out->resume = true;
    }
    return true;
  }

  // The session named by the request's MCP-Session-Id, if `p` may use it.
  bool FindSession(const Request& req, const Principal& p, std::shared_ptr<Session>* out,
                   Response* err) {
    std::string sid(req[kSessionHeader]);
    if (sid.empty()) {
      *err = Fail(req, http::status::bad_request, "Bad Request: MCP-Session-Id header is required");
      return false;
    }
    std::lock_guard<std::mutex> lock(sess_mu);
    auto it = sessions.find(sid);
    // A session of another principal is reported like an unknown one (no oracle).
    if (it == sessions.end() || it->second->principal_key != PrincipalKey(p)) {
      *err = Fail(req, http::status::not_found, "Session not found", -32001);
      return false;
    }
    *out = it->second;
    return true;
  }

  Response Delete(const Request& req, const Principal& p) {
    std::shared_ptr<Session> s;
    Response err;
    if (!FindSession(req, p, &s, &err)) return err;
    {
      std::lock_guard<std::mutex> lock(sess_mu);
      sessions.erase(s->id);
    }
    s->Close();
    Log("session " + s->label + " deleted");
    return Plain(req, http::status::no_content);
  }

  Response Handle(const Request& req, Outcome* out) {
    if (!HostAllowed(o.config.http, SV(req[http::field::host])))
      return Fail(req, http::status::forbidden, "Forbidden: Host not allowed (http.allowed_hosts)");
    auto origin = req.find(http::field::origin);
    if (origin != req.end() && !OriginAllowed(o.config.http, SV(origin->value())))
      return Fail(req, http::status::forbidden,
                  "Forbidden: Origin not allowed (http.allowed_origins)");
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    if (o.auth != nullptr && path == o.auth->MetadataPath()) {
      if (req.method() != http::verb::get) return Plain(req, http::status::method_not_allowed);
      return Plain(req, http::status::ok, o.auth->ProtectedResourceMetadata().dump());
    }
    if (path != o.config.http.path) return Fail(req, http::status::not_found, "Not Found");
    Response res;
    Principal p;
    if (!Authenticate(req, &p, &res)) return res;
    auto ver = req.find(kVersionHeader);
    if (ver != req.end() &&
        std::find(std::begin(kVersions), std::end(kVersions), std::string(ver->value())) ==
            std::end(kVersions))
      return Fail(req, http::status::bad_request,
                  "Bad Request: unsupported MCP-Protocol-Version " + std::string(ver->value()));
    switch (req.method()) {
      case http::verb::post:
        return Post(req, p, out);
      case http::verb::get:
        return Get(req, p, out);
      case http::verb::delete_:
        return Delete(req, p);
      default: {
        res = Fail(req, http::status::method_not_allowed, "Method Not Allowed");
        res.set(http::field::allow, "GET, POST, DELETE");
        return res;
      }
    }
  }

  // Whether the client closed its side (or reset) while we wait to write.
  static bool PeerGone(tcp::socket& sock) {
    pollfd pfd{sock.native_handle(), POLLRDHUP, 0};
    return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  // Writes a POST's answer, a GET stream or a GET resuming a POST stream. A POST whose reply
  // comes before any related message is answered with plain application/json; otherwise the
  // response is text/event-stream (chunked): the related messages as they come, then the
  // reply, then the end of the body (the connection stays open for keep-alive). A resumable
  // POST stream (`out.post`) carries event ids; for a 2025-11-25 client it starts with a
  // priming event, sent when the stream goes SSE or once the reply is kPrimeAfter late. The
  // GET stream lasts until the client leaves, a newer GET replaces it, the session ends or
  // the server stops; a resumed POST stream until its reply. Once an SSE response has begun,
  // a comment is sent every 15 s to keep intermediaries from timing it out. False: close the
  // connection.
  bool WriteStream(tcp::socket& sock, const Request& req, const Outcome& out) {
    Session& s = *out.session;
    Stream& st = *out.stream;
    beast::error_code ec;
    bool headers_sent = false;
    bool chunked = req.version() >= 11;
    auto send_headers = [&]() {
      http::response<http::empty_body> res{http::status::ok, req.version()};
      res.set(http::field::server, "writ");
      res.set(http::field::content_type, "text/event-stream");
      res.set(http::field::cache_control, "no-cache");
      res.keep_alive(chunked && req.keep_alive() && !out.get);
      if (!out.replay.empty()) res.set("Writ-Replay", out.replay);
      if (chunked) res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(sock, sr, ec);
      headers_sent = true;
      return !ec;
    };
    auto send = [&](const std::string& bytes) {
      if (chunked) net::write(sock, http::make_chunk(net::buffer(bytes)), ec);
      else net::write(sock, net::buffer(bytes), ec);
      return !ec;
    };
    // A POST's SSE response begins: the headers, then (2025-11-25) the priming event.
    bool post = !out.get && !out.resume;
    auto begin_post = [&]() {
      if (!send_headers()) return false;
      if (!out.prime) return true;
      uint64_t k;
      {
        std::lock_guard<std::mutex> lock(s.mu);
        s.StartPost(out.post);
        out.post->primed = true;
        k = out.post->k;
      }
      return send(SseEvent("", "message", Session::PostEventId(k, 0)));
    };
    if ((out.get || out.resume) && !send_headers()) return false;
    auto start = std::chrono::steady_clock::now();
    auto last_write = start;
    for (;;) {
      std::deque<Stream::Event> events;
      std::string reply, reply_id;
      bool done = false, replaced = false;
      {
        std::unique_lock<std::mutex> lock(st.mu);
        st.cv.wait_for(lock, std::chrono::milliseconds(200), [&] {
          return !st.events.empty() || st.done || st.closed || stopping || s.closed;
        });
        events.swap(st.events);
        done = st.done;
        reply = st.reply;
        reply_id = st.reply_id;
        replaced = st.closed;
      }
      if (post && done && events.empty() && reply_id.empty() && !headers_sent) {
        Response res = Plain(req, http::status::ok, reply);
        if (stopping) res.keep_alive(false);
        res.prepare_payload();
        http::write(sock, res, ec);
        s.last_used = NowMs();
        return !ec && res.keep_alive();
      }
      if (post && out.prime && !headers_sent && events.empty() && !done &&
          std::chrono::steady_clock::now() - start >= kPrimeAfter) {
        // The reply is late: prime the stream so the client can resume it -- unless the
        // reply came meanwhile as plain JSON (the next round writes it).
        bool primed;
        {
          std::lock_guard<std::mutex> lock(s.mu);
          if (!out.post->replied) {
            s.StartPost(out.post);
            out.post->primed = true;
          }
          primed = out.post->primed;
        }
        if (primed) {
          if (!begin_post()) break;
          last_write = std::chrono::steady_clock::now();
        }
      }
      if (!events.empty() || (done && !replaced)) {
        if (!headers_sent && !(post ? begin_post() : send_headers())) break;
        for (const auto& e : events)
          if (!send(SseEvent(e.data, "message", e.id))) break;
        if (ec) break;
        last_write = std::chrono::steady_clock::now();
      }
      // A stream another connection took over (a resume) leaves the reply to that one.
      if (done && !replaced) {
        if (!send(SseEvent(reply, "message", reply_id))) break;
        if (chunked) net::write(sock, http::make_chunk_last(), ec);
        s.last_used = NowMs();
        if (out.post != nullptr) {
          std::lock_guard<std::mutex> lock(s.mu);
          if (out.post->live == out.stream) out.post->live = nullptr;
        }
        return !ec && chunked && req.keep_alive();
      }
      if (replaced || stopping || s.closed) break;
      if (PeerGone(sock)) break;
      if (!post) s.last_used = NowMs();  // an open GET stream keeps its session alive
      if (headers_sent &&
          std::chrono::steady_clock::now() - last_write > std::chrono::seconds(15)) {
        if (!send(SseComment("keep-alive"))) break;
        last_write = std::chrono::steady_clock::now();
      }
    }
    // The stream ends without a reply (session gone, server stopping, client gone, replaced).
    if (out.get) {
      std::lock_guard<std::mutex> lock(s.mu);
      if (s.get_stream == out.stream) s.get_stream = nullptr;
    } else if (out.post != nullptr) {
      Detach(s, out.post, out.stream.get(), out.id);
    } else {
      Abandon(s, out.id, out.stream.get());
    }
    bool cancelled;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      cancelled = st.cancelled;
    }
    // The client cancelled the request: an event stream without the reply, then its end.
    if (post && !headers_sent && !ec && cancelled) send_headers();
    if (post && !headers_sent && !ec) {
      Response res = Fail(req, http::status::not_found, "Session terminated", -32001, out.id);
      res.keep_alive(false);
      res.prepare_payload();
      http::write(sock, res, ec);
      return false;
    }
    if (headers_sent && chunked && !ec) net::write(sock, http::make_chunk_last(), ec);
    return false;
  }

  void Connection(tcp::socket sock, int n) {
    beast::flat_buffer buf;
    beast::error_code ec;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(o.config.limits.max_message_bytes);
      http::read(sock, buf, parser, ec);
      if (ec == http::error::body_limit) {
        Request dummy;
        dummy.version(11);
        Response res = Fail(dummy, http::status::payload_too_large,
                            "Payload Too Large (limits.max_message_bytes)");
        res.keep_alive(false);
        res.prepare_payload();
        http::write(sock, res, ec);
        // Drain what the client is still sending (up to 1 s / 16 MiB) so closing with unread
        // data does not reset the connection before the client has read the 413.
        sock.shutdown(tcp::socket::shutdown_send, ec);
        char sink[16384];
        size_t drained = 0;
        for (int i = 0; i < 20 && drained < (16u << 20) && !stopping; ++i) {
          pollfd pfd{sock.native_handle(), POLLIN, 0};
          if (::poll(&pfd, 1, 50) <= 0) continue;
          ssize_t n = ::recv(sock.native_handle(), sink, sizeof sink, 0);
          if (n <= 0) break;
          drained += static_cast<size_t>(n);
          i = 0;
        }
        break;
      }
      if (ec) break;
      Request req = parser.release();
      Outcome out;
      Response res = Handle(req, &out);
      if (out.stream != nullptr) {
        if (!WriteStream(sock, req, out) || stopping || !req.keep_alive()) break;
        continue;
      }
      if (stopping) res.keep_alive(false);
      res.prepare_payload();
      http::write(sock, res, ec);
      if (ec || !res.keep_alive()) break;
    }
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    std::lock_guard<std::mutex> lock(conn_mu);
    conns.erase(n);
    conn_cv.notify_all();
  }

  // HttpServer::DispatchForTesting: one request through Handle without a socket.
  std::string Dispatch(std::string_view raw, std::chrono::milliseconds wait) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(o.config.limits.max_message_bytes);
    parser.eager(true);
    beast::error_code ec;
    while (!parser.is_done()) {
      if (raw.empty()) {  // the end of the message: complete or not
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return "";
        break;
      }
      size_t used = parser.put(net::buffer(raw.data(), raw.size()), ec);
      raw.remove_prefix(used);
      if (ec == http::error::need_more) {
        if (used == 0) return "";  // Beast wants more than is there
        ec = {};
      }
      if (ec == http::error::body_limit) return "HTTP/1.1 413 Payload Too Large\r\n\r\n";
      if (ec) return "";
    }
    Request req = parser.release();
    Outcome out;
    Response res = Handle(req, &out);
    if (out.stream != nullptr) {
      // What WriteStream would send, as one body; then the stream ends as if the client left.
      // A POST (or a GET resuming a POST stream) waits up to `wait` for its reply; a
      // resumable POST still unanswered by then has been primed (WriteStream's kPrimeAfter).
      Session& s = *out.session;
      Stream& st = *out.stream;
      bool post = !out.get && !out.resume;
      std::string body;
      bool done = false, plain = false;
      if (!out.get) {
        std::unique_lock<std::mutex> lock(st.mu);
        st.cv.wait_for(lock, wait, [&] { return st.done || st.closed || s.closed.load(); });
      }
      uint64_t k = 0;
      if (post && out.prime) {
        std::lock_guard<std::mutex> lock(s.mu);
        if (!out.post->replied) {
          s.StartPost(out.post);
          out.post->primed = true;
        }
        k = out.post->k;
      }
      {
        std::unique_lock<std::mutex> lock(st.mu);
        done = st.done && !st.closed;
        plain = post && done && st.events.empty() && st.reply_id.empty();
        if (post && out.prime && !plain)
          body += SseEvent("", "message", Session::PostEventId(k, 0));
        for (const auto& e : st.events) body += SseEvent(e.data, "message", e.id);
        st.events.clear();
        if (done) body += plain ? st.reply : SseEvent(st.reply, "message", st.reply_id);
      }
      if (out.get) {
        std::lock_guard<std::mutex> lock(s.mu);
        if (s.get_stream == out.stream) s.get_stream = nullptr;
      } else if (out.post != nullptr) {
        if (done) {
          std::lock_guard<std::mutex> lock(s.mu);
          if (out.post->live == out.stream) out.post->live = nullptr;
        } else {
          Detach(s, out.post, out.stream.get(), out.id);
        }
      } else if (!done) {
        Abandon(s, out.id, out.stream.get());
      }
      res = Plain(req, http::status::ok, body, plain ? "application/json" : "text/event-stream");
      if (!out.replay.empty()) res.set("Writ-Replay", out.replay);
    }
    res.prepare_payload();
    std::ostringstream os;
    os << res;
    return os.str();
  }

  void Ticker() {
    int64_t last_reap = NowMs();
    while (!stopping) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::vector<std::shared_ptr<Session>> all, expired;
      {
        std::lock_guard<std::mutex> lock(sess_mu);
        for (auto& [id, s] : sessions) all.push_back(s);
        if (NowMs() - last_reap >= 1000) {
          last_reap = NowMs();
          for (auto it = sessions.begin(); it != sessions.end();) {
            if (NowMs() - it->second->last_used > o.config.http.session_idle_timeout_ms) {
              expired.push_back(it->second);
              it = sessions.erase(it);
            } else {
              ++it;
            }
          }
        }
      }
      for (auto& s : all) s->proxy->Tick();
      // audit.fsync: interval is synced by the audit log's own thread (gateway/audit.h).
      for (auto& s : expired) {
        Log("session " + s->label + " expired (idle)");
        s->Close();
      }
    }
  }
};

HttpServer::HttpServer(HttpServerOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
HttpServer::~HttpServer() = default;

bool HttpServer::Listen(std::string* error) {
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->o.config.http.host, ec);
  if (ec) {
    *error = "http.listen: `" + impl_->o.config.http.host + "` is not an IP address";
    return false;
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(impl_->o.config.http.port));
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "cannot listen on " + impl_->o.config.http.host + ":" +
             std::to_string(impl_->o.config.http.port) + ": " + ec.message();
    return false;
  }
  impl_->port = a.local_endpoint().port();
  return true;
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::Run() {
  Impl& m = *impl_;
  std::thread ticker([&m] { m.Ticker(); });
  while (!m.stopping) {
    tcp::socket sock(m.ioc);
    beast::error_code ec;
    m.acceptor.accept(sock, ec);
    if (m.stopping) break;
    if (ec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // e.g. EMFILE
      continue;
    }
    std::unique_lock<std::mutex> lock(m.conn_mu);
    if (static_cast<int>(m.conns.size()) >= m.o.config.http.max_connections) {
      lock.unlock();
      static const char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      net::write(sock, net::buffer(kBusy, sizeof kBusy - 1), ec);
      sock.close(ec);
      continue;
    }
    int n = m.next_conn++;
    m.conns[n] = sock.native_handle();
    lock.unlock();
    std::thread([&m, s = std::move(sock), n]() mutable { m.Connection(std::move(s), n); })
        .detach();
  }
  // Shutdown: wake every connection blocked in a read, wait for them, stop the sessions.
  {
    std::unique_lock<std::mutex> lock(m.conn_mu);
    for (auto& [n, fd] : m.conns) ::shutdown(fd, SHUT_RDWR);
    m.conn_cv.wait_for(lock, std::chrono::seconds(10), [&m] { return m.conns.empty(); });
  }
  ticker.join();
  std::map<std::string, std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(m.sess_mu);
    all.swap(m.sessions);
  }
  for (auto& [id, s] : all) s->Close();
  all.clear();
}

bool HttpServer::Drain(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  m.draining = true;
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int n = 0;
    {
      std::lock_guard<std::mutex> lock(m.sess_mu);
      for (auto& [id, s] : m.sessions) n += s->proxy->InFlight();
    }
    if (n == 0) return true;
    if (std::chrono::steady_clock::now() >= until || m.stopping) {
      LogWarn(m.stopping ? "stopped while draining; abandoning in-flight calls"
                         : "drain timeout; abandoning in-flight calls",
              {{"in_flight", n}});
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string HttpServer::DispatchForTesting(std::string_view raw,
                                           std::chrono::milliseconds wait) {
  return impl_->Dispatch(raw, wait);
}

void HttpServer::CloseSessionsForTesting() {
  Impl& m = *impl_;
  std::map<std::string, std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(m.sess_mu);
    all.swap(m.sessions);
  }
  for (auto& [id, s] : all) s->Close();
}

HttpServer::PostState HttpServer::PostStateForTesting(const std::string& session_id) {
  Impl& m = *impl_;
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(m.sess_mu);
    auto it = m.sessions.find(session_id);
    if (it == m.sessions.end()) return {};
    s = it->second;
  }
  PostState r;
  std::lock_guard<std::mutex> lock(s->mu);
  r.streams = s->posts.size();
  for (const auto& [k, log] : s->posts) {
    r.kept += log->kept.size();
    r.live += log->live != nullptr;
    r.replied += log->replied;
    r.attaches += log->attaches;
  }
  r.waiters = s->waiters.size();
  r.progress = s->progress.size();
  return r;
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  m.stopping = true;
  ::shutdown(m.acceptor.native_handle(), SHUT_RDWR);
  std::lock_guard<std::mutex> lock(m.conn_mu);
  for (auto& [n, fd] : m.conns) ::shutdown(fd, SHUT_RDWR);
}

void HttpServer::RotateUpstreams(const std::vector<UpstreamConfig>& upstreams,
                                 const std::vector<size_t>& changed) {
  Impl& m = *impl_;
  std::unique_lock<std::shared_mutex> rot(m.rot_mu);
  m.upstreams = upstreams;
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard<std::mutex> lock(m.live_mu);
    std::erase_if(m.live, [](const std::weak_ptr<Session>& w) { return w.expired(); });
    for (auto& w : m.live)
      if (auto s = w.lock()) open.push_back(std::move(s));
  }
  for (size_t i : changed) {
    if (i >= upstreams.size()) continue;
    if (!upstreams[i].url.empty()) {
      LogWarn("credential rotation: a url: upstream's new headers apply to new sessions only",
              {{"upstream", upstreams[i].name}});
      continue;
    }
    int restarted = 0;
    for (auto& s : open)
      if (i < s->children.size() && s->children[i] != nullptr &&
          s->children[i]->RestartWithEnv(upstreams[i].env))
        ++restarted;
    LogInfo("credential rotation: restarting upstream in open sessions",
            {{"upstream", upstreams[i].name}, {"sessions", restarted}});
  }
}

}  // namespace writ::gateway
