// admin_server.h -- the gateway's admin HTTP API (docs/approvals.md, "Admin API"):
// approvals (list/show/approve/deny), the kill switch (status/engage/release), and routes
// other components mount (GET /metrics, GET /healthz) through AddRoute. Entry point:
// AdminServer (Listen, Start, Stop).
//
// Every request needs `Authorization: Bearer <admin token>`: the SHA-256 of the presented
// token is compared in constant time with the configured hash (401 otherwise), except routes
// added with Auth::kNone. Errors are JSON: {"error": "<code>", "message": "...", "help": "..."}
// with 400 (bad body/scope/state), 401, 404 (unknown route or approval), 405 (+ Allow),
// 409 (approval not pending / expired), 413 (body over max_body_bytes), 500 (storage),
// 503 (approvals or kill switch not configured). Plain HTTP/1.1: bind it to loopback (the
// default) or put TLS in front.
//
// Every approval decision and kill-switch change is reported once, after it is stored,
// through options.on_event (the gateway writes it to the audit trail).
//
// Threading: one background thread (Start) runs an Asio io_context; connections are
// coroutines with a 30 s read deadline, at most max_connections at a time (more are
// closed). Handlers run on that thread one at a time, so they must be quick (a metrics
// snapshot, a SQLite update). AddRoute may be called from any thread, before or after
// Start. Stop (any thread, idempotent) closes the listener and every connection and joins
// the thread. Nothing throws out of a handler: an exception becomes a 500.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "gateway/approvals.h"
#include "gateway/killswitch.h"

namespace writ::gateway {

struct AdminRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::map<std::string, std::string> query;  // decoded
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::map<std::string, std::string> headers;

  static AdminResponse Json(int status, const nlohmann::json& body);
  // {"error": code, "message": message[, "help": help]}
  static AdminResponse Error(int status, const std::string& code, const std::string& message,
                             const std::string& help = "");
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// An approval decision or kill-switch change, for the audit trail.
struct AdminEvent {
  // "approval.approved", "approval.denied", "killswitch.engaged", "killswitch.released"
  std::string kind;
  std::string actor;      // `by` from the request
  nlohmann::json detail;  // Approval::ToJson() or KillEntry::ToJson()
};

struct AdminServerOptions {
  std::string host = "127.0.0.1";
  int port = 9090;                 // 0: any free port (see port())
  std::string token_sha256;        // 32 raw bytes: SHA-256 of the admin token. Required.
  std::shared_ptr<ApprovalStore> approvals;  // null: approval routes answer 503
  std::shared_ptr<KillSwitch> killswitch;    // null: kill switch routes answer 503
  std::function<void(const AdminEvent&)> on_event;  // may be empty
  std::function<int64_t()> now_ms;                  // default: NowMs()
  int max_connections = 32;
  size_t max_body_bytes = 64 * 1024;
};

class AdminServer {
 public:
  enum class Auth { kRequired, kNone };

  explicit AdminServer(AdminServerOptions options);
  ~AdminServer();  // Stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Mounts `handler` at exactly `path` for `method` (e.g. "GET", "/metrics"). A later call
  // for the same method and path replaces the handler. Paths under /v1/ are reserved.
  void AddRoute(const std::string& method, const std::string& path, AdminHandler handler,
                Auth auth = Auth::kRequired);

  // Binds the listener. False with *error (e.g. the address is in use, no token).
  bool Listen(std::string* error);
  int port() const;
  // Serves on a background thread. REQUIRES: Listen() succeeded.
  void Start();
  void Stop();

  // Answers one request as the server would (auth, routing, handlers); for tests and for
  // embedding in another listener. `authorization` is the raw header value.
  AdminResponse Handle(const AdminRequest& request, const std::string& authorization);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// SHA-256 (32 raw bytes) of the admin token from `token_sha256` in config: 64 hex digits,
// optionally prefixed "sha256:". False with *error.
bool ParseTokenSha256(const std::string& text, std::string* raw, std::string* error);
// SHA-256 (32 raw bytes) of `token`.
std::string AdminTokenHash(std::string_view token);

}  // namespace writ::gateway
