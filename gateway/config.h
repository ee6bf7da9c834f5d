// config.h -- the gateway's YAML configuration (docs/gateway.md), parsed and validated once at
// start. Entry points: LoadConfig (a file) and ParseConfig (text, for tests).
//
// Every error names its key path and line:col, e.g.
//   config.yaml:12:5: upstreams[1].command: expected a string
//   help: the program to run, e.g. `command: npx`
// Unknown keys are errors with a did-you-mean. All errors are reported, not only the first.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gateway/audit.h"

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
  RestartConfig restart;
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
  int upstream_timeout_ms = 30000;  // initialize and list fan-outs; tool calls are unbounded
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
  // `identity:` converted to JSON for Authenticator::Create (docs/identity.md); null: absent.
  nlohmann::json identity;
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
