// admin_server.cc -- see admin_server.h. HTTP parsing and serialization are Boost.Beast's;
// connections are C++20 coroutines on one io_context.
#include "gateway/admin_server.h"

#include <openssl/evp.h>

#include <atomic>
#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/identity.h"

namespace writ::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

constexpr size_t kMaxByLength = 200;
constexpr size_t kMaxNoteLength = 4000;
constexpr size_t kMaxReasonLength = 4000;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    parts.push_back(PercentDecode(path.substr(i, j - i)));
    i = j;
  }
  return parts;
}

AdminResponse MethodNotAllowed(const std::string& allow) {
  AdminResponse r =
      AdminResponse::Error(405, "method_not_allowed", "this route accepts " + allow + " only");
  r.headers["Allow"] = allow;
  return r;
}

// Parses a JSON object body. Nullopt with *err filled.
std::optional<Json> BodyObject(const AdminRequest& req, AdminResponse* err) {
  Json j = req.body.empty() ? Json::object() : Json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = AdminResponse::Error(400, "bad_request", "the body must be a JSON object",
                                "e.g. {\"by\": \"alice\", \"note\": \"ok\"}");
    return std::nullopt;
  }
  return j;
}

// Optional string member `key` (at most `max` bytes). False with *err.
bool StringField(const Json& j, const char* key, size_t max, std::string* out, AdminResponse* err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *err = AdminResponse::Error(400, "bad_request", std::string("`") + key + "` must be a string");
    return false;
  }
  *out = it->get<std::string>();
  if (out->size() > max) {
    *err = AdminResponse::Error(
        400, "bad_request",
        std::string("`") + key + "` is longer than " + std::to_string(max) + " bytes");
    return false;
  }
  return true;
}

}  // namespace

AdminResponse AdminResponse::Json(int status, const nlohmann::json& body) {
  AdminResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

AdminResponse AdminResponse::Error(int status, const std::string& code, const std::string& message,
                                   const std::string& help) {
  nlohmann::json j = {{"error", code}, {"message", message}};
  if (!help.empty()) j["help"] = help;
  return Json(status, j);
}

std::string AdminTokenHash(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  return std::string(reinterpret_cast<char*>(md), len);
}

bool ParseTokenSha256(const std::string& text, std::string* raw, std::string* error) {
  std::string_view hex = text;
  if (hex.rfind("sha256:", 0) == 0) hex.remove_prefix(7);
  if (hex.size() != 64) {
    *error = "expected 64 hex digits (the SHA-256 of the token), optionally prefixed sha256:";
    return false;
  }
  std::string out;
  for (size_t i = 0; i < 64; i += 2) {
    int hi = HexDigit(hex[i]), lo = HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      *error = "expected 64 hex digits (the SHA-256 of the token), optionally prefixed sha256:";
      return false;
    }
    out += static_cast<char>(hi * 16 + lo);
  }
  *raw = out;
  return true;
}

struct AdminServer::Impl {
  struct Route {
    std::string method, path;
    std::shared_ptr<AdminHandler> handler;
    Auth auth;
  };

  AdminServerOptions o;
  std::mutex routes_mu;
  std::vector<Route> routes;
  std::atomic<int> connections{0};
  std::atomic<bool> stopped{false};
  int port = 0;
  std::thread thread;
  // Declared last: destroyed first, while the members its pending coroutines touch live.
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};

  explicit Impl(AdminServerOptions opts) : o(std::move(opts)) {
    if (!o.now_ms) o.now_ms = [] { return NowMs(); };
  }

  bool Authorized(const std::string& header) const {
    std::string_view h = header;
    if (h.size() < 7) return false;
    std::string scheme(h.substr(0, 7));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "bearer ") return false;
    std::string_view token = h.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    if (token.empty() || o.token_sha256.size() != 32) return false;
    return ConstantTimeEqual(AdminTokenHash(token), o.token_sha256);
  }

  void Emit(const std::string& kind, const std::string& actor, const Json& detail) {
    if (!o.on_event) return;
    try {
      o.on_event(AdminEvent{kind, actor, detail});
    } catch (...) {
      // The change is stored; a failing observer must not turn it into an error.
    }
  }

  AdminResponse Approvals(const AdminRequest& req, const std::vector<std::string>& parts) {
    if (o.approvals == nullptr)
      return AdminResponse::Error(503, "not_configured", "approvals are not configured",
                                  "add `approvals: { db: approvals.db }` to the gateway config");
    ApprovalStore& store = *o.approvals;
    if (parts.size() == 2) {  // /v1/approvals
      if (req.method != "GET") return MethodNotAllowed("GET");
      std::optional<ApprovalState> state;
      if (auto it = req.query.find("state"); it != req.query.end() && !it->second.empty()) {
        state = ParseApprovalState(it->second);
        if (!state)
          return AdminResponse::Error(
              400, "bad_request", "unknown state `" + it->second + "`",
              "state is one of pending, approved, denied, expired, consumed");
      }
      size_t limit = 1000;
      if (auto it = req.query.find("limit"); it != req.query.end()) {
        size_t pos = 0;
        long long v = 0;
        try {
          v = std::stoll(it->second, &pos);
        } catch (...) {
          pos = 0;
        }
        if (pos == 0 || pos != it->second.size() || v < 1 || v > 10000)
          return AdminResponse::Error(400, "bad_request",
                                      "limit must be an integer from 1 to 10000");
        limit = static_cast<size_t>(v);
      }
      Json list = Json::array();
      for (const Approval& a : store.List(state, limit)) list.push_back(a.ToJson());
      return AdminResponse::Json(200, {{"approvals", list}});
    }
    const std::string& id = parts[2];
    if (parts.size() == 3) {  // /v1/approvals/{id}
      if (req.method != "GET") return MethodNotAllowed("GET");
      std::optional<Approval> a = store.Get(id);
      if (!a)
        return AdminResponse::Error(404, "not_found", "no approval " + id,
                                    "list them with GET /v1/approvals?state=pending");
      return AdminResponse::Json(200, a->ToJson());
    }
    if (parts.size() == 4 && (parts[3] == "approve" || parts[3] == "deny")) {
      if (req.method != "POST") return MethodNotAllowed("POST");
      AdminResponse err;
      std::optional<Json> body = BodyObject(req, &err);
      if (!body) return err;
      std::string by, note;
      if (!StringField(*body, "by", kMaxByLength, &by, &err) ||
          !StringField(*body, "note", kMaxNoteLength, &note, &err))
        return err;
      if (by.empty())
        return AdminResponse::Error(400, "bad_request", "`by` is required: who decides",
                                    "e.g. {\"by\": \"alice@example.com\", \"note\": \"ok\"}");
      bool approve = parts[3] == "approve";
      Approval a;
      ApprovalError e = approve ? store.Approve(id, by, note, o.now_ms(), &a)
                                : store.Deny(id, by, note, o.now_ms(), &a);
      switch (e) {
        case ApprovalError::kNone:
          Emit(approve ? "approval.approved" : "approval.denied", by, a.ToJson());
          return AdminResponse::Json(200, a.ToJson());
        case ApprovalError::kNotFound:
          return AdminResponse::Error(404, "not_found", "no approval " + id);
        case ApprovalError::kNotPending:
          return AdminResponse::Error(
              409, "not_pending",
              "approval " + id + " is " + std::string(ApprovalStateName(a.state)) + ", not pending",
              "only a pending approval can be approved or denied");
        case ApprovalError::kExpired:
          return AdminResponse::Error(409, "expired", "approval " + id + " has expired",
                                      "the agent must retry the call to request a new approval");
        case ApprovalError::kStorage:
          break;
      }
      return AdminResponse::Error(500, "storage", "the approvals database failed",
                                  "see the gateway's log");
    }
    return AdminResponse::Error(404, "not_found", "no such route: " + req.path);
  }

  AdminResponse Kill(const AdminRequest& req, const std::vector<std::string>& parts) {
    if (o.killswitch == nullptr)
      return AdminResponse::Error(503, "not_configured", "the kill switch is not configured",
                                  "add `approvals: { db: ... }` or `killswitch: { db: ... }` to "
                                  "the gateway config");
    KillSwitch& ks = *o.killswitch;
    if (parts.size() == 2) {
      if (req.method != "GET") return MethodNotAllowed("GET");
      Json list = Json::array();
      for (const KillEntry& e : ks.List()) list.push_back(e.ToJson());
      return AdminResponse::Json(200, {{"engaged", list}});
    }
    if (parts.size() != 3 || (parts[2] != "engage" && parts[2] != "release"))
      return AdminResponse::Error(404, "not_found", "no such route: " + req.path);
    if (req.method != "POST") return MethodNotAllowed("POST");
    AdminResponse err;
    std::optional<Json> body = BodyObject(req, &err);
    if (!body) return err;
    std::string scope_text, reason, by;
    if (!StringField(*body, "scope", 1000, &scope_text, &err) ||
        !StringField(*body, "reason", kMaxReasonLength, &reason, &err) ||
        !StringField(*body, "by", kMaxByLength, &by, &err))
      return err;
    if (by.empty()) by = "admin";
    const std::string kScopeHelp =
        "scope is \"all\", \"server:NAME\" or \"principal:User::\\\"alice\\\"\"";
    if (scope_text.empty())
      return AdminResponse::Error(400, "bad_request", "`scope` is required", kScopeHelp);
    KillScope scope;
    std::string error;
    if (!ParseKillScope(scope_text, &scope, &error))
      return AdminResponse::Error(400, "bad_request", error, kScopeHelp);
    if (parts[2] == "engage") {
      if (reason.empty())
        return AdminResponse::Error(
            400, "bad_request", "`reason` is required",
            "say why, e.g. {\"scope\": \"all\", \"reason\": \"incident 42\"}");
      if (!ks.Engage(scope, reason, by, o.now_ms(), &error))
        return AdminResponse::Error(500, "storage",
                                    "the kill switch could not be stored: " + error);
      std::optional<KillEntry> e;
      for (const KillEntry& k : ks.List())
        if (k.scope == scope.ToString()) e = k;
      Json detail = e ? e->ToJson() : Json{{"scope", scope.ToString()}};
      Emit("killswitch.engaged", by, detail);
      return AdminResponse::Json(200, detail);
    }
    bool was = false;
    if (!ks.Release(scope, &was, &error))
      return AdminResponse::Error(500, "storage", "the kill switch could not be stored: " + error);
    Json detail = {{"scope", scope.ToString()}, {"released", was}};
    if (was) Emit("killswitch.released", by, detail);
    return AdminResponse::Json(200, detail);
  }

  AdminResponse Handle(const AdminRequest& req, const std::string& authorization) {
    std::vector<std::string> parts = Split(req.path);
    std::shared_ptr<AdminHandler> custom;
    bool path_known = false, needs_auth = true;
    std::string allow;
    {
      std::lock_guard<std::mutex> lock(routes_mu);
      for (const Route& r : routes) {
        if (r.path != req.path) continue;
        path_known = true;
        allow += (allow.empty() ? "" : ", ") + r.method;
        if (r.method == req.method) {
          custom = r.handler;
          needs_auth = r.auth == Auth::kRequired;
        }
      }
    }
    if (needs_auth && !Authorized(authorization)) {
      AdminResponse r = AdminResponse::Error(401, "unauthorized", "missing or wrong admin token",
                                             "send `Authorization: Bearer <token>` with the token "
                                             "whose SHA-256 is admin.token_sha256");
      r.headers["WWW-Authenticate"] = "Bearer realm=\"writ-admin\"";
      return r;
    }
    try {
      if (custom) return (*custom)(req);
      if (path_known) return MethodNotAllowed(allow);
      if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "approvals")
        return Approvals(req, parts);
      if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "killswitch")
        return Kill(req, parts);
    } catch (const std::exception& e) {
      return AdminResponse::Error(500, "internal", std::string("handler failed: ") + e.what());
    } catch (...) {
      return AdminResponse::Error(500, "internal", "handler failed");
    }
    return AdminResponse::Error(404, "not_found", "no such route: " + req.path,
                                "routes: /v1/approvals, /v1/approvals/{id}[/approve|/deny], "
                                "/v1/killswitch[/engage|/release]");
  }

  static AdminRequest ToAdminRequest(const http::request<http::string_body>& in) {
    AdminRequest r;
    r.method = std::string(in.method_string());
    std::string target(in.target());
    size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string_view qs = std::string_view(target).substr(q + 1);
      while (!qs.empty()) {
        size_t amp = qs.find('&');
        std::string_view kv = qs.substr(0, amp);
        size_t eq = kv.find('=');
        r.query[PercentDecode(kv.substr(0, eq))] =
            eq == std::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        qs.remove_prefix(amp + 1);
      }
    }
    r.body = in.body();
    return r;
  }

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
  net::awaitable<void> Session(tcp::socket sock) {
    struct Count {
      std::atomic<int>* n;
      ~Count() { --*n; }
    } count{&connections};
    beast::tcp_stream stream(std::move(sock));
    beast::flat_buffer buf;
    beast::error_code ec;
    for (;;) {
      stream.expires_after(std::chrono::seconds(30));
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(o.max_body_bytes);
      co_await http::async_read(stream, buf, parser, net::redirect_error(net::use_awaitable, ec));
      http::response<http::string_body> res;
      bool close = false;
      if (ec == http::error::body_limit) {
        AdminResponse a = AdminResponse::Error(
            413, "too_large",
            "the body is larger than " + std::to_string(o.max_body_bytes) + " bytes");
        res.result(413);
        res.body() = a.body;
        res.set(http::field::content_type, a.content_type);
        close = true;
      } else if (ec) {
        break;
      } else {
        http::request<http::string_body> in = parser.release();
        AdminResponse a = Handle(ToAdminRequest(in), std::string(in[http::field::authorization]));
        res.version(in.version());
        res.result(static_cast<unsigned>(a.status));
        res.set(http::field::content_type, a.content_type);
        for (const auto& [k, v] : a.headers) res.set(k, v);
        res.body() = std::move(a.body);
        close = !in.keep_alive();
      }
      res.set(http::field::server, "writ-admin");
      res.set(http::field::cache_control, "no-store");
      res.keep_alive(!close);
      res.prepare_payload();
      stream.expires_after(std::chrono::seconds(30));
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      if (ec || close) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  net::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket sock =
          co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
      if (stopped) co_return;
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        net::steady_timer t(ioc, std::chrono::milliseconds(20));  // e.g. EMFILE
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        continue;
      }
      if (connections.load() >= o.max_connections) {
        sock.close(ec);
        continue;
      }
      ++connections;
      net::co_spawn(ioc, Session(std::move(sock)), net::detached);
    }
  }
#endif  // BOOST_ASIO_HAS_CO_AWAIT
};

AdminServer::AdminServer(AdminServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::AddRoute(const std::string& method, const std::string& path, AdminHandler handler,
                           Auth auth) {
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  auto h = std::make_shared<AdminHandler>(std::move(handler));
  for (auto& r : impl_->routes) {
    if (r.method == method && r.path == path) {
      r.handler = h;
      r.auth = auth;
      return;
    }
  }
  impl_->routes.push_back({method, path, h, auth});
}

bool AdminServer::Listen(std::string* error) {
  Impl& m = *impl_;
#if !defined(BOOST_ASIO_HAS_CO_AWAIT)
  // Only the clang fuzz build lacks C++20 coroutines in Boost.Asio (clang 14 + libstdc++).
  *error = "admin: the admin API is not available in this build (no C++20 coroutine support)";
  return false;
#endif
  if (m.o.token_sha256.size() != 32) {
    *error = "admin: no admin token configured (admin.token_sha256 or admin.token_file)";
    return false;
  }
  beast::error_code ec;
  auto addr = net::ip::make_address(m.o.host, ec);
  if (ec) {
    *error = "admin.listen: `" + m.o.host + "` is not an IP address";
    return false;
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(m.o.port));
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "admin: cannot listen on " + m.o.host + ":" + std::to_string(m.o.port) + ": " +
             ec.message();
    return false;
  }
  m.port = m.acceptor.local_endpoint().port();
  return true;
}

int AdminServer::port() const { return impl_->port; }

void AdminServer::Start() {
  Impl& m = *impl_;
#if defined(BOOST_ASIO_HAS_CO_AWAIT)
  net::co_spawn(m.ioc, m.Accept(), net::detached);
#endif
  m.thread = std::thread([&m] { m.ioc.run(); });
}

void AdminServer::Stop() {
  Impl& m = *impl_;
  if (m.stopped.exchange(true)) return;
  net::post(m.ioc, [&m] {
    beast::error_code ec;
    m.acceptor.close(ec);
  });
  m.ioc.stop();
  if (m.thread.joinable()) m.thread.join();
}

AdminResponse AdminServer::Handle(const AdminRequest& request, const std::string& authorization) {
  return impl_->Handle(request, authorization);
}

}  // namespace writ::gateway
