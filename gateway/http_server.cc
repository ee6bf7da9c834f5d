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
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
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

struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string reply;
};

// One MCP session: a Proxy, its upstream processes and the POSTs waiting for replies.
struct Session {
  std::string id;              // secret: never logged
  std::string label;           // "#N", for logs
  std::string principal_key;  // who may use this session
  std::unique_ptr<Proxy> proxy;
  std::vector<std::unique_ptr<UpstreamSupervisor>> children;  // restarted on crashes
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Waiter>> waiters;  // client id (dumped) -> waiter
  std::atomic<bool> closed{false};
  std::atomic<int64_t> last_used{0};

  // Messages from the proxy to the client. Replies go to the waiting POST; a server-to-client
  // request cannot be delivered without an SSE stream, so it is answered with an error at once;
  // notifications are dropped (docs/gateway.md, "HTTP").
  void ToClient(const std::string& line) {
    Json m = Json::parse(line, nullptr, false);
    if (m.is_discarded() || !m.is_object()) return;
    if (IsResponse(m)) {
      std::shared_ptr<Waiter> w;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = waiters.find(m.value("id", Json()).dump());
        if (it == waiters.end()) return;
        w = it->second;
        waiters.erase(it);
      }
      std::lock_guard<std::mutex> lock(w->mu);
      w->done = true;
      w->reply = line;
      w->cv.notify_all();
    } else if (IsRequest(m)) {
      proxy->OnClientLine(ToLine(ErrorReply(
          m["id"], kMethodNotFound,
          "server-to-client requests are not supported by this transport yet")));
    }
  }

  void Close() {
    if (closed.exchange(true)) return;
    for (auto& c : children) c->Shutdown(std::chrono::milliseconds(2000));
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [k, w] : waiters) {
      std::lock_guard<std::mutex> wl(w->mu);
      w->cv.notify_all();
    }
  }
  ~Session() {
    Close();
    children.clear();  // reader threads joined before the proxy goes
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

  explicit Impl(HttpServerOptions opts) : o(std::move(opts)) {}

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
    ProxyOptions popts;
    if (o.auth == nullptr) {
      popts.principal = o.config.stdio_principal;
    } else {
      popts.principal.uid = p.uid;
      popts.principal.attrs = p.attrs;
      popts.principal.parents = p.parents;
    }
    popts.limits = o.config.limits;
    popts.version = o.version;
    popts.audit = o.audit;
    popts.bundles = o.bundles;
    Session* raw = s.get();
    s->proxy = std::make_unique<Proxy>(popts, o.bundle,
                                       [raw](const std::string& line) { raw->ToClient(line); });
    s->children = StartUpstreams(s->proxy.get(), o.config.upstreams,
                                 o.config.limits.max_message_bytes, s->label);
    return s;
  }

  // Forwards a request and waits for its reply ("" when the session closed or we stop).
  std::string Call(Session& s, const Json& msg, const std::string& line) {
    auto w = std::make_shared<Waiter>();
    std::string key = msg["id"].dump();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (!s.waiters.emplace(key, w).second) return "duplicate";
    }
    s.proxy->OnClientLine(line);
    std::unique_lock<std::mutex> lock(w->mu);
    while (!w->done && !stopping && !s.closed)
      w->cv.wait_for(lock, std::chrono::milliseconds(100));
    if (!w->done) {
      std::lock_guard<std::mutex> sl(s.mu);
      s.waiters.erase(key);
      return "";
    }
    return w->reply;
  }

  Response Post(const Request& req, const Principal& p) {
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
      return Plain(req, http::status::accepted);
    }
    std::string reply = Call(*s, msg, req.body());
    if (reply == "duplicate")
      return Fail(req, http::status::bad_request,
                  "Bad Request: a request with this id is already in flight", kInvalidRequest,
                  msg["id"]);
    if (reply.empty())
      return Fail(req, http::status::not_found, "Session terminated", -32001, msg["id"]);
    s->last_used = NowMs();
    return Plain(req, http::status::ok, reply);
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

  Response Handle(const Request& req) {
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
        return Post(req, p);
      case http::verb::delete_:
        return Delete(req, p);
      default: {
        res = Fail(req, http::status::method_not_allowed,
                   "Method Not Allowed: this gateway does not offer a GET stream yet");
        res.set(http::field::allow, "POST, DELETE");
        return res;
      }
    }
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
      Response res = Handle(req);
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

  void Ticker() {
    int64_t last_reap = NowMs();
    auto last_sync = std::chrono::steady_clock::now();
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
      // audit.fsync: interval syncs on a timer too, so a quiet period leaves nothing unsynced.
      if (o.audit != nullptr && o.audit->options().fsync == AuditFsync::kInterval &&
          std::chrono::steady_clock::now() - last_sync >= o.audit->options().fsync_interval) {
        o.audit->Sync();
        last_sync = std::chrono::steady_clock::now();
      }
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

void HttpServer::Stop() {
  Impl& m = *impl_;
  m.stopping = true;
  ::shutdown(m.acceptor.native_handle(), SHUT_RDWR);
  std::lock_guard<std::mutex> lock(m.conn_mu);
  for (auto& [n, fd] : m.conns) ::shutdown(fd, SHUT_RDWR);
}

}  // namespace writ::gateway
