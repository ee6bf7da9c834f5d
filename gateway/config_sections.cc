// config_sections.cc -- the configuration sections about how the gateway runs: limits, http,
// audit, record, dlp, reload, log, shutdown. Entry points: the Parse* functions declared in
// config_internal.h, called by ParseConfig.
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "gateway/config_internal.h"

namespace writ::gateway::config_internal {

void ParseLimits(const YAML::Node& n, Checker* c, LimitsConfig* l) {
  if (!n.IsMap()) {
    c->Error(n, "limits", "expected a mapping", "e.g. limits: { max_message_bytes: 4194304 }");
    return;
  }
  c->Keys(n, "limits.",
          {"max_message_bytes", "max_depth", "max_in_flight", "upstream_timeout_ms",
           "call_timeout_ms"});
  long long v = 0;
  if (n["max_message_bytes"] &&
      c->Int(n["max_message_bytes"], "limits.max_message_bytes", 1024, 1LL << 30, &v))
    l->max_message_bytes = static_cast<size_t>(v);
  if (n["max_depth"] && c->Int(n["max_depth"], "limits.max_depth", 4, 1000, &v))
    l->max_depth = static_cast<int>(v);
  if (n["max_in_flight"] && c->Int(n["max_in_flight"], "limits.max_in_flight", 1, 100000, &v))
    l->max_in_flight = static_cast<int>(v);
  if (n["upstream_timeout_ms"] &&
      c->Int(n["upstream_timeout_ms"], "limits.upstream_timeout_ms", 100, 3600000, &v))
    l->upstream_timeout_ms = static_cast<int>(v);
  if (n["call_timeout_ms"] &&
      c->Int(n["call_timeout_ms"], "limits.call_timeout_ms", 0, 24 * 3600000, &v))
    l->call_timeout_ms = static_cast<int>(v);
}

void ParseHttp(const YAML::Node& n, Checker* c, HttpConfig* h) {
  if (!n.IsMap()) {
    c->Error(n, "http", "expected a mapping", "e.g. http: { listen: 127.0.0.1:8080, path: /mcp }");
    return;
  }
  c->Keys(n, "http.",
          {"listen", "path", "allowed_hosts", "allowed_origins", "allow_anonymous",
           "max_sessions", "max_connections", "session_idle_timeout", "resume_buffer_events",
           "resume_buffer_bytes"});
  std::string s;
  if (n["listen"] && c->String(n["listen"], "http.listen", &s, "HOST:PORT, e.g. 127.0.0.1:8080") &&
      !ParseListen(s, &h->host, &h->port))
    c->Error(n["listen"], "http.listen", "`" + s + "` is not HOST:PORT",
             "e.g. listen: 127.0.0.1:8080 (port 0: any free port; IPv6: [::1]:8080)");
  if (n["path"] && c->String(n["path"], "http.path", &s, "e.g. path: /mcp")) {
    if (s.empty() || s[0] != '/' || s.find_first_of("?# ") != std::string::npos)
      c->Error(n["path"], "http.path", "`" + s + "` is not an absolute path",
               "e.g. path: /mcp");
    else
      h->path = s;
  }
  if (n["allowed_hosts"])
    c->StringList(n["allowed_hosts"], "http.allowed_hosts", &h->allowed_hosts,
                  "Host header values, e.g. [mcp.example.com, 'localhost:8080']; '*' allows any");
  if (n["allowed_origins"])
    c->StringList(n["allowed_origins"], "http.allowed_origins", &h->allowed_origins,
                  "exact origins, e.g. ['https://app.example.com']");
  size_t i = 0;
  if (n["allow_anonymous"] &&
      Choice(n["allow_anonymous"], c, "http.allow_anonymous", {"false", "true"}, &i))
    h->allow_anonymous = i == 1;
  long long v = 0;
  if (n["max_sessions"] && c->Int(n["max_sessions"], "http.max_sessions", 1, 100000, &v))
    h->max_sessions = static_cast<int>(v);
  if (n["max_connections"] &&
      c->Int(n["max_connections"], "http.max_connections", 1, 100000, &v))
    h->max_connections = static_cast<int>(v);
  if (n["session_idle_timeout"] &&
      Duration(n["session_idle_timeout"], c, "http.session_idle_timeout", &v))
    h->session_idle_timeout_ms = static_cast<int>(v);
  if (n["resume_buffer_events"] &&
      c->Int(n["resume_buffer_events"], "http.resume_buffer_events", 0, 100000, &v))
    h->resume_buffer_events = static_cast<int>(v);
  if (n["resume_buffer_bytes"] &&
      c->Int(n["resume_buffer_bytes"], "http.resume_buffer_bytes", 1024, 64LL << 20, &v))
    h->resume_buffer_bytes = static_cast<size_t>(v);
}

void ParseAudit(const YAML::Node& n, const std::string& base_dir, Checker* c, AuditConfig* a) {
  a->enabled = true;
  if (!n.IsMap()) {
    c->Error(n, "audit", "expected a mapping",
             "e.g. audit: { path: /var/lib/writ/audit.jsonl }");
    return;
  }
  c->Keys(n, "audit.",
          {"path", "key_file", "fsync", "fsync_interval", "record_args", "on_failure",
           "on_corrupt_tail"});
  AuditOptions& o = a->options;
  RequiredPath(n, "path", "audit.path", base_dir, "where the audit log is written",
               "/var/lib/writ/audit.jsonl", c, &o.path);
  if (n["key_file"] &&
      c->String(n["key_file"], "audit.key_file", &a->key_file,
                "a file of at least 16 random bytes: head -c 32 /dev/urandom > audit.key"))
    a->key_file = Resolve(base_dir, a->key_file);
  size_t i = 0;
  if (n["fsync"] && Choice(n["fsync"], c, "audit.fsync", {"always", "interval", "never"}, &i))
    o.fsync = i == 0 ? AuditFsync::kAlways : i == 1 ? AuditFsync::kInterval : AuditFsync::kNever;
  long long ms = 0;
  if (n["fsync_interval"] && Duration(n["fsync_interval"], c, "audit.fsync_interval", &ms))
    o.fsync_interval = std::chrono::milliseconds(ms);
  if (n["record_args"] &&
      Choice(n["record_args"], c, "audit.record_args", {"false", "true"}, &i))
    o.record_args = i == 1;
  if (n["on_failure"] && Choice(n["on_failure"], c, "audit.on_failure", {"deny", "allow"}, &i))
    o.on_failure = i == 0 ? AuditFailurePolicy::kDeny : AuditFailurePolicy::kAllow;
  if (n["on_corrupt_tail"] &&
      Choice(n["on_corrupt_tail"], c, "audit.on_corrupt_tail", {"refuse", "new_segment"}, &i))
    o.on_corrupt_tail = i == 0 ? AuditCorruptTail::kRefuse : AuditCorruptTail::kNewSegment;
}

void ParseRecord(const YAML::Node& n, const std::string& base_dir, Checker* c, RecordConfig* r) {
  r->enabled = true;
  if (!n.IsMap()) {
    c->Error(n, "record", "expected a mapping", "e.g. record: { path: traces/session.jsonl }");
    return;
  }
  c->Keys(n, "record.", {"path", "messages"});
  RequiredPath(n, "path", "record.path", base_dir, "where the trace is written",
               "traces/session.jsonl", c, &r->path);
  size_t i = 0;
  if (n["messages"] && Choice(n["messages"], c, "record.messages", {"false", "true"}, &i))
    r->messages = i == 1;
}

// `dlp:` (docs/dlp.md). Custom patterns are compiled here so a bad regex is reported with
// its line; DlpScanner::Create compiles them again at start.
void ParseDlp(const YAML::Node& n, Checker* c, DlpConfig* d) {
  if (!n.IsMap()) {
    c->Error(n, "dlp", "expected a mapping", "e.g. dlp: { detectors: [email, credit_card] }");
    return;
  }
  c->Keys(n, "dlp.", {"detectors", "custom", "max_scan_bytes", "scan_results"});
  const auto& builtins = BuiltinDlpClasses();
  std::string names;
  for (const auto& b : builtins) names += (names.empty() ? "" : ", ") + b;
  if (n["detectors"]) {
    const YAML::Node ds = n["detectors"];  // a copy: yaml-cpp returns proxies
    if (!ds.IsSequence()) {
      c->Error(ds, "dlp.detectors", "expected a list of detector names", "any of: " + names);
    } else {
      d->detectors.clear();
      for (size_t i = 0; i < ds.size(); ++i) {
        std::string key = "dlp.detectors[" + std::to_string(i) + "]", s;
        if (!c->String(ds[i], key, &s, "any of: " + names)) continue;
        if (std::find(builtins.begin(), builtins.end(), s) == builtins.end()) {
          std::string hint = DidYouMean(s, builtins);
          c->Error(ds[i], key, "unknown detector `" + s + "`",
                   hint.empty() ? "any of: " + names : "did you mean `" + hint + "`?");
        } else if (std::find(d->detectors.begin(), d->detectors.end(), s) ==
                   d->detectors.end()) {
          d->detectors.push_back(s);
        }
      }
    }
  }
  if (n["custom"]) {
    const YAML::Node cs = n["custom"];
    if (!cs.IsSequence()) {
      c->Error(cs, "dlp.custom", "expected a list",
               "e.g.\n  custom:\n    - { name: employee_id, pattern: 'EMP-[0-9]{6}' }");
    } else {
      for (size_t i = 0; i < cs.size(); ++i) {
        const YAML::Node e = cs[i];
        std::string k = "dlp.custom[" + std::to_string(i) + "]";
        if (!e.IsMap()) {
          c->Error(e, k, "expected a mapping", "e.g. - { name: employee_id, pattern: 'EMP-[0-9]{6}' }");
          continue;
        }
        c->Keys(e, k + ".", {"name", "pattern"});
        DlpCustomPattern p;
        bool ok = true;
        if (!e["name"]) {
          c->Error(e, k + ".name", "missing", "the class name policies see, e.g. name: employee_id");
          ok = false;
        } else if (c->String(e["name"], k + ".name", &p.name, "e.g. name: employee_id")) {
          bool valid = !p.name.empty() && std::islower(static_cast<unsigned char>(p.name[0]));
          for (char ch : p.name)
            valid = valid && (std::islower(static_cast<unsigned char>(ch)) ||
                              std::isdigit(static_cast<unsigned char>(ch)) || ch == '_');
          if (!valid) {
            c->Error(e["name"], k + ".name", "`" + p.name + "` is not a valid class name",
                     "use lowercase letters, digits and _, starting with a letter");
            ok = false;
          } else if (IsReservedDlpName(p.name)) {
            c->Error(e["name"], k + ".name", "`" + p.name + "` is reserved",
                     "built-in classes and all, args, result, truncated cannot be redefined");
            ok = false;
          } else {
            for (const auto& prev : d->custom) {
              if (prev.name == p.name) {
                c->Error(e["name"], k + ".name", "duplicate class `" + p.name + "`",
                         "each custom pattern needs its own name");
                ok = false;
              }
            }
          }
        } else {
          ok = false;
        }
        if (!e["pattern"]) {
          c->Error(e, k + ".pattern", "missing", "an RE2 regex, e.g. pattern: 'EMP-[0-9]{6}'");
          ok = false;
        } else if (c->String(e["pattern"], k + ".pattern", &p.pattern, "an RE2 regex")) {
          RE2::Options o;
          o.set_log_errors(false);
          RE2 re(p.pattern, o);
          YAML::Mark m = e["pattern"].Mark();
          p.line = m.line;
          p.col = m.column;
          if (!re.ok()) {
            c->Error(e["pattern"], k + ".pattern", "invalid regex: " + re.error(),
                     "RE2 syntax (no backreferences or lookaround); quote it in single quotes");
            ok = false;
          } else if (RE2::FullMatch("", re)) {
            c->Error(e["pattern"], k + ".pattern", "the pattern matches the empty string",
                     "a detector must match at least one character, e.g. 'EMP-[0-9]{6}'");
            ok = false;
          }
        } else {
          ok = false;
        }
        if (ok) d->custom.push_back(std::move(p));
      }
    }
  }
  long long v = 0;
  if (n["max_scan_bytes"] &&
      c->Int(n["max_scan_bytes"], "dlp.max_scan_bytes", 1024, 1LL << 30, &v))
    d->max_scan_bytes = static_cast<size_t>(v);
  size_t i = 0;
  if (n["scan_results"] &&
      Choice(n["scan_results"], c, "dlp.scan_results", {"false", "true"}, &i))
    d->scan_results = i == 1;
}

void ParseReload(const YAML::Node& n, Checker* c, ReloadConfig* r) {
  if (!n.IsMap()) {
    c->Error(n, "reload", "expected a mapping", "e.g. reload: { watch: true, debounce: 500ms }");
    return;
  }
  c->Keys(n, "reload.", {"watch", "poll_interval", "debounce"});
  size_t i = 0;
  if (n["watch"] && Choice(n["watch"], c, "reload.watch", {"false", "true"}, &i)) r->watch = i == 1;
  long long v = 0;
  if (n["poll_interval"] && Duration(n["poll_interval"], c, "reload.poll_interval", &v))
    r->poll_interval_ms = static_cast<int>(v);
  if (n["debounce"] && Duration(n["debounce"], c, "reload.debounce", &v))
    r->debounce_ms = static_cast<int>(v);
}

void ParseLog(const YAML::Node& n, Checker* c, LogConfig* l) {
  if (!n.IsMap()) {
    c->Error(n, "log", "expected a mapping", "e.g. log: { format: json, level: info }");
    return;
  }
  c->Keys(n, "log.", {"format", "level"});
  size_t i = 0;
  const std::vector<std::string> formats = {"text", "json"};
  const std::vector<std::string> levels = {"debug", "info", "warn", "error"};
  if (n["format"] && Choice(n["format"], c, "log.format", formats, &i)) l->format = formats[i];
  if (n["level"] && Choice(n["level"], c, "log.level", levels, &i)) l->level = levels[i];
}

void ParseShutdown(const YAML::Node& n, Checker* c, ShutdownConfig* s) {
  if (!n.IsMap()) {
    c->Error(n, "shutdown", "expected a mapping", "e.g. shutdown: { drain_timeout: 10s }");
    return;
  }
  c->Keys(n, "shutdown.", {"drain_timeout"});
  long long v = 0;
  if (n["drain_timeout"] && Duration(n["drain_timeout"], c, "shutdown.drain_timeout", &v))
    s->drain_timeout_ms = static_cast<int>(v);
}

}  // namespace writ::gateway::config_internal
