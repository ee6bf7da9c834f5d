// config.h -- the gateway's YAML configuration (docs/gateway.md), parsed and validated once at
// start. Entry points: LoadConfig (a file) and ParseConfig (text, for tests).
//
// Every error names its key path and line:col, e.g.
//   config.yaml:12:5: upstreams[1].command: expected a string
//   help: the program to run, e.g. `command: npx`
// Unknown keys are errors with a did-you-mean. All errors are reported, not only the first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gateway/audit.h"
#include "gateway/dlp.h"
#include "gateway/breaker.h"
#include "gateway/intent.h"
#include "gateway/notify.h"

namespace writ::gateway {

// `upstreams[i].restart:` (docs/gateway.md, "Restarts"): how a crashed stdio upstream is
// restarted. Delays double from initial_backoff up to max_backoff; a process that ran at
// least reset_after starts over at initial_backoff; more than max_restarts restarts within
// window and it stays down. max_restarts 0: never restart.
struct RestartConfig {
  int initial_backoff_ms = 500;
  int max_backoff_ms = 30000;
  int reset_after_ms = 60000;
  int max_restarts = 5;
  int window_ms = 300000;
};

struct UpstreamConfig {
  std::string name;     // [A-Za-z0-9_-]+ without "__"; unique. Tools appear as NAME__tool.
  std::string command;  // looked up on PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the inherited environment
  BreakerOptions breaker;  // the top-level `breaker:` defaults overridden by this upstream's
  // A Streamable HTTP upstream instead (exclusive with `command`): docs/gateway.md,
  // "Streamable HTTP upstreams". `headers` are sent with every request (plain pairs, so
  // secret references can be resolved in place); `tls_*` apply to https:// URLs.
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  bool tls_verify = true;
  std::string tls_ca_file;  // resolved against the config file's directory; empty: system CAs
  RestartConfig restart;
  // `keep_alive: { pool_size, idle_timeout }` of a `url:` upstream (HttpUpstreamSpec's
  // pool_size and idle_timeout; these defaults are the same).
  int keep_alive_pool_size = 4;            // idle connections kept; 0: one per message
  int keep_alive_idle_timeout_ms = 15000;  // an idle connection is closed after this
};

struct PrincipalConfig {
  std::string uid = "User::\"stdio\"";  // canonical Type::"id"
  nlohmann::json attrs = nlohmann::json::object();
  std::vector<std::string> parents;  // canonical uids, already transitively closed
};

struct LimitsConfig {
  size_t max_message_bytes = 4 * 1024 * 1024;
  int max_depth = 64;
  int max_in_flight = 64;
  int upstream_timeout_ms = 30000;  // initialize and list fan-outs
  int call_timeout_ms = 300000;     // one tools/call (or other forwarded request); 0: none
};

// `audit:` (docs/gateway.md, docs/audit.md). Present means the gateway writes the audit trail.
struct AuditConfig {
  bool enabled = false;  // the `audit:` key is present
  // path, fsync, fsync_interval, on_failure, on_corrupt_tail, record_args; `secrets` holds
  // every upstream `env` value (credentials never reach the audit). `key` is empty here: the
  // key file is read when the log is opened (`writ serve`), see key_file.
  AuditOptions options;
  std::string key_file;  // resolved against the config file's directory; empty: unkeyed
};

// `http:` (docs/gateway.md, "HTTP"): the Streamable HTTP downstream of `writ serve`.
struct HttpConfig {
  std::string host = "127.0.0.1";  // from `listen` (HOST:PORT; [v6]:PORT)
  int port = 8080;                 // 0: any free port (printed at start)
  std::string path = "/mcp";
  std::vector<std::string> allowed_hosts;    // Host header values; empty: loopback names
  std::vector<std::string> allowed_origins;  // exact Origin values; empty: loopback origins
  bool allow_anonymous = false;  // without `identity:`, serve everyone as stdio_principal
  int max_sessions = 64;
  int max_connections = 128;
  int session_idle_timeout_ms = 30 * 60 * 1000;
  // GET stream resumption (Last-Event-ID): the per-session replay buffer keeps at most this
  // many events and bytes; resume_buffer_events 0 turns resumption off (no event ids).
  int resume_buffer_events = 256;
  size_t resume_buffer_bytes = 1 << 20;
};

// One `${secret:NAME}` in an upstream's env (or headers), for messages (docs/credentials.md).
struct SecretRef {
  size_t upstream = 0;  // index into Config::upstreams
  std::string key;      // e.g. upstreams[0].env.GITHUB_TOKEN
  std::string name;     // NAME
  int line = -1;        // 0-based, -1 unknown
  int col = -1;
};

// `secrets:` (docs/credentials.md); resolved by gateway/secrets.h at start and on reload.
struct SecretsConfig {
  std::string file;  // YAML map NAME: value; resolved against the config's directory; optional
  bool env = false;  // a NAME missing from the file may come from the gateway's env var NAME
  std::string config_name;      // the config file, for messages
  std::vector<SecretRef> refs;  // every reference in upstreams, in config order
};

// `lock:` (docs/integrity.md): the tool lockfile written by `writ lock` and what the gateway
// does with a tool that is not in it (new) or differs from it (changed, a rug pull).
enum class LockAction { kHide, kDeny, kAllow };  // hide from lists and deny calls | deny | log
struct LockConfig {
  bool enabled = false;  // the `lock:` key is present
  std::string file;      // resolved against the config file's directory; default writ.lock
  LockAction on_drift = LockAction::kHide;
  LockAction on_new = LockAction::kHide;
};

// `approvals:` (docs/approvals.md): human approval of `require_approval` calls.
struct ApprovalsConfig {
  bool enabled = false;  // the `approvals:` key is present
  std::string db;        // the state file (SQLite); resolved against the config's directory
  int64_t wait_ms = 30 * 1000;  // how long a held call waits before -32002 with the approval id
  int64_t default_timeout_ms = 15 * 60 * 1000;  // ttl when an obligation carries no timeout_ms
  std::string notify_channel;  // a notify.channels name told about new approvals; "" = none
  std::string notify_target;   // its `target` field (e.g. "#approvals")
};

// `admin:` (docs/approvals.md, "Admin API"): the admin HTTP listener.
struct AdminConfig {
  bool enabled = false;  // the `admin:` key is present
  std::string host = "127.0.0.1";
  int port = 9090;
  std::string token_sha256;  // 32 raw bytes from `token_sha256`; empty when token_file is used
  std::string token_file;    // a file holding the token itself; resolved; read at start
  bool allow_remote = false;  // a non-loopback listen address needs this
};

// `killswitch:` (docs/approvals.md, "Kill switch"). The kill switch is available whenever a
// state file is configured: `killswitch.db`, else `approvals.db`.
struct KillSwitchConfig {
  std::string db;  // resolved; empty: use approvals.db
};

// `record:` (docs/replay.md): trace recording. Present means the gateway writes a trace.
struct RecordConfig {
  bool enabled = false;  // the `record:` key is present
  std::string path;      // resolved against the config file's directory
  bool messages = true;  // false: only decision records
};

// `reload:` (docs/gateway.md, "Policy hot reload"). SIGHUP always reloads; with `watch` the
// policy files (or the bundle) and the schema are polled for changes (mtime and size).
struct ReloadConfig {
  bool watch = true;
  int poll_interval_ms = 1000;
  int debounce_ms = 500;  // a change is reloaded once the files stayed unchanged this long
};

// `log:` (docs/gateway.md, "Logs"): every gateway log line goes to stderr in this format.
struct LogConfig {
  std::string format = "text";  // text | json
  std::string level = "info";   // debug | info | warn | error
};

// `shutdown:` (docs/gateway.md, "Shutdown"): on SIGTERM/SIGINT (and stdin EOF for --stdio)
// in-flight calls get up to drain_timeout to finish before the upstreams are stopped.
struct ShutdownConfig {
  int drain_timeout_ms = 10000;
};

struct Config {
  std::vector<std::string> policies;  // resolved against the config file's directory
  std::string bundle;                 // exclusive with policies
  std::string schema;                 // optional
  PrincipalConfig stdio_principal;
  std::vector<UpstreamConfig> upstreams;
  LimitsConfig limits;
  AuditConfig audit;
  HttpConfig http;
  DlpConfig dlp;          // `dlp:` (docs/dlp.md)
  SecretsConfig secrets;  // `secrets:` and the ${secret:NAME} references (docs/credentials.md)
  // `identity:` converted to JSON for Authenticator::Create (docs/identity.md); null: absent.
  nlohmann::json identity;
  IntentConfig intent;     // `intent:` (docs/intent.md)
  LockConfig lock;         // `lock:` (docs/integrity.md)
  BreakerOptions breaker;  // `breaker:` defaults (docs/limits.md); each upstream has its own copy
  ApprovalsConfig approvals;
  AdminConfig admin;
  KillSwitchConfig killswitch;
  bool notify_enabled = false;  // the `notify:` key is present
  NotifyOptions notify;         // `notify:`: webhook channels (gateway/notify.h)

  // The state file of the kill switch: killswitch.db, else approvals.db ("" = none).
  std::string KillSwitchDb() const { return !killswitch.db.empty() ? killswitch.db : approvals.db; }
  RecordConfig record;  // the trace scrubs the same secrets as audit.options.secrets
  ReloadConfig reload;
  LogConfig log;
  ShutdownConfig shutdown;
};

// `name` is used in messages; relative paths are resolved against `base_dir` (may be empty).
// Returns false with every error rendered into *errors (one "file:line:col: key: message" line
// and one "help:" line each).
bool ParseConfig(const std::string& text, const std::string& name, const std::string& base_dir,
                 Config* out, std::string* errors);
bool LoadConfig(const std::string& path, Config* out, std::string* errors);

// The closest of `candidates` to `word` (edit distance <= 2 and less than half its length),
// or empty.
std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace writ::gateway
