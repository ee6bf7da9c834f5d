// http_upstream.cc -- see http_upstream.h. HTTP is Boost.Beast's, TLS is OpenSSL through
// boost/beast/ssl; SSE bodies are parsed by gateway/sse.h. Every network operation runs on a
// per-exchange io_context with beast::tcp_stream expiries, so a dead server cannot hang a
// thread past its timeout, and Shutdown stops the io_contexts to end long streams.
#include "gateway/http_upstream.h"

#include <openssl/ssl.h>
#include <poll.h>

#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <cctype>
#include <deque>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "gateway/jsonrpc.h"
#include "gateway/metrics.h"
#include "gateway/sse.h"

namespace writ::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

namespace {

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace


HttpUpstreamSpec HttpUpstreamSpecFor(const UpstreamConfig& u, const LimitsConfig& limits) {
  HttpUpstreamSpec s;
  s.name = u.name;
  s.url = u.url;
  s.headers = u.headers;
  s.tls_verify = u.tls_verify;
  s.ca_file = u.tls_ca_file;
  s.max_message_bytes = limits.max_message_bytes;
  s.max_in_flight = limits.max_in_flight;
  s.connect_timeout = std::chrono::milliseconds(limits.upstream_timeout_ms);
  s.pool_size = u.keep_alive_pool_size;
  s.idle_timeout = std::chrono::milliseconds(u.keep_alive_idle_timeout_ms);
  return s;
}

namespace {

// One HTTP(S) connection driven synchronously on its own io_context: each operation is
// started asynchronously and the io_context is run until it completes. Expiries bound every
// operation; Stop() (from another thread, through the owner) makes Run return aborted.
class Conn {
 public:
  Conn(const HttpUrl& url, ssl::context* tls_ctx) : url_(url), tls_ctx_(tls_ctx) {}

  net::io_context& ioc() { return ioc_; }
  beast::tcp_stream& lowest() {
    return tls_ != nullptr ? beast::get_lowest_layer(*tls_) : *tcp_;
  }

  // Resolves, connects and (https) handshakes within `timeout`, offering TLS session
  // `resume` when given (not owned).
  beast::error_code Connect(std::chrono::milliseconds timeout, SSL_SESSION* resume = nullptr) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type results;
    ec = Run([&](auto h) {
      resolver.async_resolve(url_.host, url_.port, [h, &results](beast::error_code e, auto r) {
        results = r;
        h(e);
      });
    }, timeout, [&] { resolver.cancel(); });
    if (ec) return ec;
    if (url_.tls) {
      tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, *tls_ctx_);
      // SNI (not for IP literals), and the host name the certificate must carry.
      beast::error_code parse_ec;
      net::ip::make_address(url_.host, parse_ec);
      if (parse_ec && !SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str()))
        return beast::error_code(static_cast<int>(::ERR_get_error()),
                                 net::error::get_ssl_category());
      tls_->set_verify_callback(ssl::host_name_verification(url_.host));
      if (resume != nullptr) SSL_set_session(tls_->native_handle(), resume);
    } else {
      tcp_ = std::make_unique<beast::tcp_stream>(ioc_);
    }
    lowest().expires_after(timeout);
    ec = Run([&](auto h) {
      lowest().async_connect(results, [h](beast::error_code e, auto) { h(e); });
    });
    if (ec || !url_.tls) return ec;
    lowest().expires_after(timeout);
    return Run([&](auto h) { tls_->async_handshake(ssl::stream_base::client, h); });
  }

  template <class Message>
  beast::error_code Write(Message& m, std::chrono::milliseconds timeout) {
    lowest().expires_after(timeout);
    return Run([&](auto h) {
      if (tls_ != nullptr)
        http::async_write(*tls_, m, [h](beast::error_code e, size_t) { h(e); });
      else
        http::async_write(*tcp_, m, [h](beast::error_code e, size_t) { h(e); });
    });
  }

  // Reads the response headers into `p`; `timeout` zero: no expiry.
  beast::error_code ReadHeader(http::response_parser<http::buffer_body>& p,
                               std::chrono::milliseconds timeout) {
    if (timeout.count() > 0) lowest().expires_after(timeout);
    else lowest().expires_never();
    return Run([&](auto h) {
      if (tls_ != nullptr)
        http::async_read_header(*tls_, buf_, p, [h](beast::error_code e, size_t) { h(e); });
      else
        http::async_read_header(*tcp_, buf_, p, [h](beast::error_code e, size_t) { h(e); });
    });
  }

  // Reads body bytes into `out` (at most `cap`); *n gets the count. need_buffer is not an
  // error. Sets *done at the end of the body.
  beast::error_code ReadSome(http::response_parser<http::buffer_body>& p, char* out, size_t cap,
                             size_t* n, bool* done) {
    lowest().expires_never();
    p.get().body().data = out;
    p.get().body().size = cap;
    beast::error_code ec = Run([&](auto h) {
      if (tls_ != nullptr)
        http::async_read_some(*tls_, buf_, p, [h](beast::error_code e, size_t) { h(e); });
      else
        http::async_read_some(*tcp_, buf_, p, [h](beast::error_code e, size_t) { h(e); });
    });
    if (ec == http::error::need_buffer) ec = {};
    *n = cap - p.get().body().size;
    *done = p.is_done();
    return ec;
  }

  void Close() {
    beast::error_code ec;
    if (tcp_ != nullptr || tls_ != nullptr) lowest().socket().close(ec);
  }

  SSL* ssl() { return tls_ != nullptr ? tls_->native_handle() : nullptr; }

  // Whether an idle kept-alive connection can carry another request: open, nothing buffered
  // and nothing to read (a readable idle socket means the server closed it or sent junk).
  bool Reusable() {
    if (stopped_ || (tcp_ == nullptr && tls_ == nullptr) || buf_.size() != 0) return false;
    if (tls_ != nullptr && SSL_pending(tls_->native_handle()) > 0) return false;
    if (!lowest().socket().is_open()) return false;
    pollfd pfd{lowest().socket().native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&pfd, 1, 0) == 0;
  }

 private:
  // Starts `start(handler)` and runs the io_context until the handler ran, the optional
  // `timeout` passed (then `cancel` runs) or the io_context was stopped.
  template <class Start>
  beast::error_code Run(Start&& start, std::chrono::milliseconds timeout = {},
                        std::function<void()> cancel = nullptr) {
    // run_one leaves the io_context stopped once it runs out of work: make it runnable again
    // unless Shutdown stopped it (Shutdown repeats its stop until the exchange is gone).
    if (!stopped_) ioc_.restart();
    bool finished = false;
    beast::error_code result;
    start([&finished, &result](beast::error_code e) {
      finished = true;
      result = e;
    });
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!finished) {
      size_t ran = 0;
      if (!stopped_) ran = timeout.count() > 0 ? ioc_.run_one_until(deadline) : ioc_.run_one();
      if (finished) break;
      bool timed_out = ran == 0 && timeout.count() > 0 && !stopped_ && !ioc_.stopped();
      if (stopped_ || ioc_.stopped() || timed_out) {
        if (cancel) cancel();
        Close();
        // Let the cancelled handler run so nothing refers to our locals afterwards.
        ioc_.restart();
        while (!finished && ioc_.run_one_for(std::chrono::milliseconds(100)) > 0) {
        }
        return timed_out ? beast::error_code(net::error::timed_out)
                         : beast::error_code(net::error::operation_aborted);
      }
    }
    return result;
  }

 public:
  std::atomic<bool> stopped_{false};

 private:
  HttpUrl url_;
  ssl::context* tls_ctx_;
  net::io_context ioc_{1};
  std::unique_ptr<beast::tcp_stream> tcp_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buf_;
};

}  // namespace

struct HttpUpstream::Impl : std::enable_shared_from_this<HttpUpstream::Impl> {
  HttpUpstreamSpec spec;
  HttpUrl url;
  std::unique_ptr<ssl::context> tls_ctx;
  LineFn on_line;
  ExitFn on_exit;

  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::string session_id;
  std::string protocol_version;
  std::set<Conn*> conns;  // running exchanges (stopped by Shutdown)
  int active = 0;         // exchange threads running
  bool shutting_down = false;
  bool exited = false;
  bool get_started = false;
  std::mutex write_mu;  // one message is written at a time
  // Order: HttpUpstream::Send numbers messages; an exchange writes only on its turn
  // (write_turn == its number), so the server sees them in the order they were sent. A
  // message after `initialize` waits (on its turn, at most connect_timeout) until the
  // initialize answer's headers came, since it needs the MCP-Session-Id they carry.
  uint64_t send_seq = 0;     // guarded by mu
  uint64_t write_turn = 0;   // guarded by mu
  bool init_in_flight = false;  // guarded by mu

  // Keep-alive: idle connections, newest last, each with the time it may stay idle until.
  struct Idle {
    std::unique_ptr<Conn> conn;
    std::chrono::steady_clock::time_point until;
  };
  std::deque<Idle> pool;               // guarded by mu; at most spec.pool_size
  SSL_SESSION* tls_session = nullptr;  // guarded by mu; offered by new TLS connections
  HttpUpstreamStats stats;             // guarded by mu
  // The same events in the process's metrics (writ_upstream_http_*_total{upstream}), looked
  // up once; incremented next to `stats`.
  Counter& metric_connections;
  Counter& metric_reused;
  Counter& metric_resends;
  Counter& metric_tls_resumed;

  explicit Impl(HttpUpstreamSpec s)
      : spec(std::move(s)),
        metric_connections(Metrics::Global().http_connections().With({spec.name})),
        metric_reused(Metrics::Global().http_reused().With({spec.name})),
        metric_resends(Metrics::Global().http_resends().With({spec.name})),
        metric_tls_resumed(Metrics::Global().http_tls_resumptions().With({spec.name})) {}
  ~Impl() {
    if (tls_session != nullptr) SSL_SESSION_free(tls_session);
  }

  // An idle connection that still looks usable (null: none); stale ones are dropped.
  std::unique_ptr<Conn> TakeIdle() {
    std::vector<std::unique_ptr<Conn>> stale;  // closed outside the lock
    std::unique_ptr<Conn> c;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto now = std::chrono::steady_clock::now();
      while (c == nullptr && !pool.empty()) {
        Idle idle = std::move(pool.back());
        pool.pop_back();
        if (idle.until > now && idle.conn->Reusable()) c = std::move(idle.conn);
        else stale.push_back(std::move(idle.conn));
      }
      if (c != nullptr) {
        ++stats.reused;
        metric_reused.Inc();
      }
    }
    return c;
  }

  // After a complete exchange: keeps `c` for the next one when the response allows it
  // (HTTP/1.1 keep-alive; `Keep-Alive: timeout=N` shortens the idle time to N-1 s).
  template <class Parser>
  void Release(std::unique_ptr<Conn> c, const Parser& p) {
    if (!p.is_done() || !p.get().keep_alive() || spec.pool_size <= 0) return;
    auto keep = spec.idle_timeout;
    std::string ka = Lower(std::string(p.get()["Keep-Alive"]));
    size_t t = ka.find("timeout=");
    if (t != std::string::npos) {
      long long secs = 0;
      size_t i = t + 8;
      for (; i < ka.size() && i < t + 14 && std::isdigit(static_cast<unsigned char>(ka[i])); ++i)
        secs = secs * 10 + (ka[i] - '0');
      if (i > t + 8) keep = std::min(keep, std::chrono::milliseconds(secs * 1000 - 1000));
    }
    if (keep.count() <= 0) return;
    std::unique_ptr<Conn> evicted;
    std::lock_guard<std::mutex> lock(mu);
    if (shutting_down) return;
    if (static_cast<int>(pool.size()) >= spec.pool_size) {
      evicted = std::move(pool.front().conn);
      pool.pop_front();
    }
    pool.push_back({std::move(c), std::chrono::steady_clock::now() + keep});
  }

  // A new connection (counted; TLS offers the kept session and keeps the new one).
  std::unique_ptr<Conn> Fresh(std::chrono::milliseconds timeout, beast::error_code* ec) {
    auto c = std::make_unique<Conn>(url, tls_ctx.get());
    SSL_SESSION* resume = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.connections;
      metric_connections.Inc();
      if (tls_session != nullptr) {
        resume = tls_session;
        SSL_SESSION_up_ref(resume);
      }
    }
    *ec = c->Connect(timeout, resume);
    if (resume != nullptr) SSL_SESSION_free(resume);
    if (!*ec && c->ssl() != nullptr && SSL_session_reused(c->ssl())) {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.tls_resumed;
      metric_tls_resumed.Inc();
    }
    return c;
  }

  // Keeps the TLS session of `c` for the next connection (after a response was read, so a
  // TLS 1.3 ticket has arrived). A copy: closing `c` without close_notify must not mark it
  // non-resumable.
  void KeepTlsSession(Conn& c) {
    if (c.ssl() == nullptr) return;
    SSL_SESSION* got = SSL_get0_session(c.ssl());
    if (got == nullptr || !SSL_SESSION_is_resumable(got)) return;
    SSL_SESSION* copy = SSL_SESSION_dup(got);
    if (copy == nullptr) return;
    std::lock_guard<std::mutex> lock(mu);
    if (tls_session != nullptr) SSL_SESSION_free(tls_session);
    tls_session = copy;
  }

  void Log(const std::string& s) { std::cerr << "writ: upstream " + spec.name + ": " + s + "\n"; }

  bool Register(Conn* c) {
    std::lock_guard<std::mutex> lock(mu);
    if (shutting_down) return false;
    conns.insert(c);
    return true;
  }
  void Unregister(Conn* c) {
    std::lock_guard<std::mutex> lock(mu);
    conns.erase(c);
  }

  void Exit(const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (exited || shutting_down) return;
      exited = true;
    }
    if (on_exit) on_exit(why);
  }

  // Adds the transport headers (and the configured ones) to `req`.
  template <class Body>
  void Prepare(http::request<Body>& req, const std::string& accept) {
    req.set(http::field::host, url.host_header);
    req.set(http::field::user_agent, "writ");
    req.set(http::field::accept, accept);
    std::lock_guard<std::mutex> lock(mu);
    if (!session_id.empty()) req.set("MCP-Session-Id", session_id);
    if (!protocol_version.empty()) req.set("MCP-Protocol-Version", protocol_version);
    for (const auto& [k, v] : spec.headers) req.set(k, v);
  }

  void Deliver(std::string_view message, bool init_exchange) {
    if (init_exchange) {
      Json m = Json::parse(message, nullptr, false);
      if (m.is_object() && m.contains("result") && m["result"].is_object() &&
          m["result"].contains("protocolVersion") && m["result"]["protocolVersion"].is_string()) {
        std::lock_guard<std::mutex> lock(mu);
        protocol_version = m["result"]["protocolVersion"];
      }
    }
    if (on_line) on_line(message);
  }

  // Reads a response body: JSON (one message or a batch) or SSE; every message is delivered.
  // Returns false when the body could not be read completely. *saw_reply: a response with
  // `id` was among the messages. `held` (optional) receives that response instead of it
  // being delivered, so the caller can put the connection back in the pool first.
  bool ReadBody(Conn& c, http::response_parser<http::buffer_body>& p, const Json& id,
                bool init_exchange, bool* saw_reply, std::string* last_event_id = nullptr,
                int64_t* retry_ms = nullptr, std::string* held = nullptr) {
    std::string ctype = Lower(std::string(p.get()[http::field::content_type]));
    bool sse = ctype.rfind("text/event-stream", 0) == 0;
    auto deliver = [&](std::string_view msg) {
      if (!id.is_null()) {
        Json m = Json::parse(msg, nullptr, false);
        if (m.is_object() && !m.contains("method") && m.contains("id") && m["id"] == id) {
          *saw_reply = true;
          if (held != nullptr && held->empty()) {
            *held = std::string(msg);
            return;
          }
        }
      }
      Deliver(msg, init_exchange);
    };
    SseParser parser(
        [&](const SseMessage& m) {
          if (m.event == "message" && !m.data.empty()) deliver(m.data);
        },
        spec.max_message_bytes + 1024);
    std::string json;
    char chunk[16384];
    bool done = p.is_done();
    while (!done) {
      size_t n = 0;
      beast::error_code ec = c.ReadSome(p, chunk, sizeof chunk, &n, &done);
      if (sse) {
        if (!parser.Feed(std::string_view(chunk, n))) {
          Log("an SSE event exceeds limits.max_message_bytes; stream dropped");
          return false;
        }
      } else {
        json.append(chunk, n);
        if (json.size() > spec.max_message_bytes) {
          Log("a response exceeds limits.max_message_bytes; dropped");
          return false;
        }
      }
      if (ec) {
        if (sse && last_event_id != nullptr) *last_event_id = parser.last_event_id();
        return false;
      }
    }
    if (sse) {
      parser.Feed("\n\n");  // a last event without its blank line
      if (last_event_id != nullptr) *last_event_id = parser.last_event_id();
      if (retry_ms != nullptr) *retry_ms = parser.retry_ms();
      return true;
    }
    if (json.find_first_not_of(" \t\r\n") == std::string::npos) return true;
    Json body = Json::parse(json, nullptr, false);
    if (body.is_discarded()) {
      Log("the answer is not JSON (HTTP " + std::to_string(p.get().result_int()) + ")");
      return false;
    }
    if (body.is_array()) {
      for (const auto& m : body) deliver(m.dump());
    } else {
      deliver(json);
    }
    return true;
  }

  // Answers request `id` with a gateway error (the POST failed), through on_line.
  void FailRequest(const Json& id, const std::string& why) {
    if (id.is_null()) {
      Log(why);
      return;
    }
    Json err = ErrorReply(id, kUpstreamUnavailable, "upstream '" + spec.name + "': " + why,
                          Json{{"upstream", spec.name}});
    if (on_line) on_line(ToLine(err));
  }

  // Methods whose request may be sent again when a kept-alive connection broke after the
  // request was written but before any byte of the answer: they only read. Anything else
  // (tools/call above all) is never sent twice.
  static bool Idempotent(const std::string& method) {
    static const char* const kSafe[] = {"ping",           "tools/list",     "prompts/list",
                                        "prompts/get",    "resources/list", "resources/read",
                                        "resources/templates/list",         "completion/complete"};
    return std::find(std::begin(kSafe), std::end(kSafe), method) != std::end(kSafe);
  }

  // Connects (or takes a kept-alive connection) and writes `req`, holding write_mu so
  // messages reach the server in order. A kept-alive connection whose write fails is
  // replaced (the server had closed it; a request that was not completely written cannot
  // have been processed); a fresh one's failure is final. `fresh_only`: no kept-alive one.
  template <class Req>
  std::unique_ptr<Conn> Send(Req& req, bool fresh_only, bool* reused, beast::error_code* ec,
                             std::string* what) {
    std::lock_guard<std::mutex> order(write_mu);
    Prepare(req, "application/json, text/event-stream");
    for (;;) {
      std::unique_ptr<Conn> c = fresh_only ? nullptr : TakeIdle();
      *reused = c != nullptr;
      if (c == nullptr) {
        c = Fresh(spec.connect_timeout, ec);
        if (*ec) {
          *what = "cannot connect to ";
          return nullptr;
        }
      }
      if (!Register(c.get())) {
        *ec = net::error::operation_aborted;
        *what = "shutting down: ";
        return nullptr;
      }
      *ec = c->Write(req, spec.connect_timeout);
      if (!*ec) return c;
      Unregister(c.get());
      if (!*reused || c->stopped_) {
        *what = "cannot send to ";
        return nullptr;
      }
      std::lock_guard<std::mutex> lock(mu);
      ++stats.retried;
      metric_resends.Inc();
    }
  }

  // One POST exchange for `line` (runs on its own thread).
  // Ends an exchange's turn (and an initialize's hold on later messages) exactly once.
  struct Turn {
    Impl* m;
    bool init;
    bool wrote = false, answered = false;
    void Wrote() {
      if (wrote) return;
      wrote = true;
      std::lock_guard<std::mutex> lock(m->mu);
      ++m->write_turn;
      m->cv.notify_all();
    }
    void Answered() {
      if (!init || answered) return;
      answered = true;
      std::lock_guard<std::mutex> lock(m->mu);
      m->init_in_flight = false;
      m->cv.notify_all();
    }
    ~Turn() {
      Wrote();
      Answered();
    }
  };

  void Exchange(const std::string& line, uint64_t seq, bool init_msg) {
    Json msg = Json::parse(line, nullptr, false);
    Json id = msg.is_object() && msg.contains("method") && msg.contains("id") ? msg["id"]
                                                                               : Json();
    std::string method = msg.is_object() ? msg.value("method", std::string()) : std::string();
    bool init = method == "initialize";
    Turn turn{this, init_msg};
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return write_turn == seq || shutting_down; });
      if (!init_msg)
        cv.wait_for(lock, spec.connect_timeout, [&] { return !init_in_flight || shutting_down; });
    }
    http::request<http::string_body> req{http::verb::post, url.target, 11};
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = line;
    req.prepare_payload();
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      beast::error_code ec;
      std::string what;
      std::unique_ptr<Conn> c = Send(req, attempt > 0, &reused, &ec, &what);
      turn.Wrote();
      if (c == nullptr) {
        if (ec == net::error::operation_aborted && what.rfind("shutting", 0) == 0) return;
        return FailRequest(id, what + spec.url + ": " + ec.message());
      }
      http::response_parser<http::buffer_body> p;
      p.header_limit(64 * 1024);
      // Bounded per message by ReadBody. (Not boost::none: Boost 1.74 compares a
      // Content-Length against an empty optional as "greater" and fails every response.)
      p.body_limit(std::numeric_limits<std::uint64_t>::max());
      ec = c->ReadHeader(p, id.is_null() ? spec.connect_timeout : std::chrono::milliseconds(0));
      if (ec) {
        Unregister(c.get());
        // A kept-alive connection the server closed as the request went out: nothing of the
        // answer came. Sent again on a fresh connection only when that is harmless.
        bool closed_early = ec == http::error::end_of_stream || ec == net::error::eof ||
                            ec == net::error::connection_reset ||
                            ec == net::error::connection_aborted || ec == net::error::broken_pipe;
        if (attempt == 0 && reused && closed_early && !c->stopped_ && Idempotent(method)) {
          std::lock_guard<std::mutex> lock(mu);
          ++stats.retried;
          metric_resends.Inc();
          continue;
        }
        return FailRequest(id, "no answer from " + spec.url + ": " + ec.message());
      }
      unsigned status = p.get().result_int();
      std::string sid(p.get()["MCP-Session-Id"]);
      bool had_session;
      {
        std::lock_guard<std::mutex> lock(mu);
        had_session = !session_id.empty();
        if (init && status / 100 == 2 && !sid.empty()) session_id = sid;
      }
      // The protocol version comes in the body; a JSON answer is short, so the later
      // messages wait for it too (an SSE answer may stream first: they go after the headers).
      bool json_answer = Lower(std::string(p.get()[http::field::content_type]))
                             .rfind("application/json", 0) == 0;
      if (!json_answer) turn.Answered();
      if (status == 404 && had_session && !init) {
        Unregister(c.get());
        FailRequest(id, "the server ended the session (HTTP 404)");
        Exit("ended its session (HTTP 404)");
        return;
      }
      bool saw_reply = false;
      std::string reply;  // delivered once the connection is back in the pool
      bool body_ok = ReadBody(*c, p, id, init, &saw_reply, nullptr, nullptr, &reply);
      Unregister(c.get());
      if (body_ok) {
        KeepTlsSession(*c);
        if (!c->stopped_) Release(std::move(c), p);
      }
      if (!reply.empty()) Deliver(reply, init);
      turn.Answered();
      if (status / 100 != 2) {
        if (!saw_reply)
          FailRequest(id, "HTTP " + std::to_string(status) + " from " + spec.url);
        return;
      }
      if (!id.is_null() && !saw_reply)
        FailRequest(id, body_ok ? "the server's answer did not contain the response"
                                : "the response stream ended before the response");
      if (method == "notifications/initialized") StartGetStream();
      return;
    }
  }

  // The GET stream: reopened (with Last-Event-ID) after it drops, with backoff; a 405 or
  // another 4xx means the server offers none.
  void StartGetStream() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (get_started || shutting_down) return;
      get_started = true;
      ++active;
    }
    auto self = shared_from_this();
    std::thread([self] {
      self->GetLoop();
      std::lock_guard<std::mutex> lock(self->mu);
      --self->active;
      self->cv.notify_all();
    }).detach();
  }

  void GetLoop() {
    std::string last_id;
    int64_t retry = 1000;
    int failures = 0;
    for (;;) {
      beast::error_code ec;
      std::unique_ptr<Conn> owned = Fresh(spec.connect_timeout, &ec);
      Conn& c = *owned;
      if (!Register(&c)) return;
      bool connected = false;
      if (!ec) {
        http::request<http::empty_body> req{http::verb::get, url.target, 11};
        Prepare(req, "text/event-stream");
        if (!last_id.empty()) req.set("Last-Event-ID", last_id);
        ec = c.Write(req, spec.connect_timeout);
      }
      http::response_parser<http::buffer_body> p;
      p.header_limit(64 * 1024);
      p.body_limit(std::numeric_limits<std::uint64_t>::max());
      if (!ec) ec = c.ReadHeader(p, spec.connect_timeout);
      if (!ec) {
        unsigned status = p.get().result_int();
        std::string ctype = Lower(std::string(p.get()[http::field::content_type]));
        if (status / 100 == 4) {
          Unregister(&c);
          if (status == 404) Exit("ended its session (HTTP 404 on the GET stream)");
          return;  // 405: no GET stream offered
        }
        if (status == 200 && ctype.rfind("text/event-stream", 0) == 0) {
          connected = true;
          failures = 0;
          bool unused = false;
          int64_t r = -1;
          ReadBody(c, p, Json(), false, &unused, &last_id, &r);
          if (r >= 0) retry = std::min<int64_t>(r, 60000);
        }
      }
      Unregister(&c);
      if (!connected) ++failures;
      int64_t wait = connected ? retry : std::min<int64_t>(retry << std::min(failures, 5), 30000);
      std::unique_lock<std::mutex> lock(mu);
      if (cv.wait_for(lock, std::chrono::milliseconds(wait), [this] { return shutting_down; }))
        return;
    }
  }

  void Delete() {
    std::string sid;
    {
      std::lock_guard<std::mutex> lock(mu);
      sid = session_id;
    }
    if (sid.empty()) return;
    http::request<http::empty_body> req{http::verb::delete_, url.target, 11};
    Prepare(req, "application/json, text/event-stream");
    req.keep_alive(false);
    // A kept-alive connection first; DELETE is idempotent, so a broken one is retried fresh.
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<Conn> c = attempt == 0 ? TakeIdle() : nullptr;
      beast::error_code ec;
      if (c == nullptr) {
        attempt = 1;
        c = Fresh(std::min(spec.connect_timeout, std::chrono::milliseconds(2000)), &ec);
        if (ec) return;
      }
      if (c->Write(req, std::chrono::milliseconds(2000))) continue;
      http::response_parser<http::buffer_body> p;
      if (!c->ReadHeader(p, std::chrono::milliseconds(2000))) return;
    }
  }
};

HttpUpstream::HttpUpstream(HttpUpstreamSpec spec)
    : impl_(std::make_shared<Impl>(std::move(spec))) {}

HttpUpstream::~HttpUpstream() { Shutdown(); }

bool HttpUpstream::Start(LineFn on_line, ExitFn on_exit, std::string* error) {
  Impl& m = *impl_;
  if (!ParseHttpUrl(m.spec.url, &m.url, error)) return false;
  if (m.url.tls) {
    m.tls_ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    beast::error_code ec;
    m.tls_ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                               ssl::context::no_tlsv1_1,
                           ec);
    if (!m.spec.ca_file.empty()) {
      m.tls_ctx->load_verify_file(m.spec.ca_file, ec);
      if (ec) {
        *error = "tls.ca_file " + m.spec.ca_file + ": " + ec.message();
        return false;
      }
    } else {
      m.tls_ctx->set_default_verify_paths(ec);
      if (ec) {
        *error = "cannot load the system CA certificates: " + ec.message();
        return false;
      }
    }
    m.tls_ctx->set_verify_mode(m.spec.tls_verify ? ssl::verify_peer : ssl::verify_none, ec);
  }
  m.on_line = std::move(on_line);
  m.on_exit = std::move(on_exit);
  return true;
}

bool HttpUpstream::Send(std::string_view line) {
  std::shared_ptr<Impl> self = impl_;
  {
    std::lock_guard<std::mutex> lock(self->mu);
    if (self->shutting_down || self->exited || self->active >= self->spec.max_in_flight + 1)
      return false;
    ++self->active;
  }
  // Only `initialize` holds later messages back (see Impl::init_in_flight).
  bool init = false;
  if (line.find("\"initialize\"") != std::string_view::npos) {
    Json m = Json::parse(line, nullptr, false);
    init = m.is_object() && m.contains("id") && m.value("method", "") == "initialize";
  }
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(self->mu);
    seq = self->send_seq++;
    if (init) self->init_in_flight = true;
  }
  std::thread([self, msg = std::string(line), seq, init] {
    self->Exchange(msg, seq, init);
    std::lock_guard<std::mutex> lock(self->mu);
    --self->active;
    self->cv.notify_all();
  }).detach();
  return true;
}

void HttpUpstream::Shutdown() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.shutting_down) return;
  }
  if (m.on_line) m.Delete();
  std::unique_lock<std::mutex> lock(m.mu);
  m.shutting_down = true;
  m.cv.notify_all();
  // Stop every running exchange; repeat until all threads are gone (an exchange between
  // two operations restarts its io_context once, so one stop may not be enough).
  // Their callbacks refer to the Proxy, so this waits for every thread.
  for (int i = 0; m.active > 0; ++i) {
    for (Conn* c : m.conns) {
      c->stopped_ = true;
      c->ioc().stop();
    }
    m.cv.wait_for(lock, std::chrono::milliseconds(25));
    if (i == 200) m.Log("waiting for exchanges to stop");
  }
  std::deque<Impl::Idle> idle;
  idle.swap(m.pool);
  lock.unlock();
  idle.clear();  // closes the kept-alive connections
  m.on_line = nullptr;
  m.on_exit = nullptr;
}

HttpUpstreamStats HttpUpstream::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

std::string HttpUpstream::session_id() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->session_id;
}

}  // namespace writ::gateway
