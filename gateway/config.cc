// config.cc -- see config.h. yaml-cpp throws on syntax errors; that is caught here and turned
// into a located error like every other (config loading is not on the request path).
#include "gateway/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <sstream>

#include "base/source.h"
#include "gateway/identity.h"
#include "runtime/request.h"

namespace writ::gateway {
namespace {

class Checker {
 public:
  explicit Checker(std::string name) : name_(std::move(name)) {}

  void Error(const YAML::Node& at, const std::string& key, const std::string& msg,
             const std::string& help) {
    YAML::Mark m = at.Mark();
    ErrorAt(m.line, m.column, key, msg, help);
  }
  void ErrorAt(int line, int col, const std::string& key, const std::string& msg,
               const std::string& help) {
    out_ << name_;
    if (line >= 0) out_ << ":" << line + 1 << ":" << col + 1;
    out_ << ": " << (key.empty() ? "" : key + ": ") << msg << "\n";
    if (!help.empty()) out_ << "help: " << help << "\n";
    ++count_;
  }
  int count() const { return count_; }
  std::string text() const { return out_.str(); }

  // Every key of `map` must be in `allowed`.
  void Keys(const YAML::Node& map, const std::string& prefix,
            const std::vector<std::string>& allowed) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string hint = DidYouMean(k, allowed);
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      Error(it->first, prefix + k, "unknown key",
            hint.empty() ? "expected one of: " + list : "did you mean `" + hint + "`?");
    }
  }

  bool String(const YAML::Node& n, const std::string& key, std::string* out,
              const std::string& help) {
    if (!n.IsScalar()) {
      Error(n, key, "expected a string", help);
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  bool Int(const YAML::Node& n, const std::string& key, long long lo, long long hi,
           long long* out) {
    std::string help = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (!n.IsScalar()) {
      Error(n, key, "expected an integer", help);
      return false;
    }
    const std::string& s = n.Scalar();
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &pos);
    } catch (...) {
      pos = 0;
    }
    if (s.empty() || pos != s.size()) {
      Error(n, key, "expected an integer, found `" + s + "`", help);
      return false;
    }
    if (v < lo || v > hi) {
      Error(n, key, "out of range", help);
      return false;
    }
    *out = v;
    return true;
  }

  bool StringList(const YAML::Node& n, const std::string& key, std::vector<std::string>* out,
                  const std::string& help) {
    if (n.IsScalar()) {
      out->push_back(n.Scalar());
      return true;
    }
    if (!n.IsSequence()) {
      Error(n, key, "expected a list of strings", help);
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n.size(); ++i) {
      std::string s;
      if (String(n[i], key + "[" + std::to_string(i) + "]", &s, help)) {
        out->push_back(s);
      } else {
        ok = false;
      }
    }
    return ok;
  }

 private:
  std::string name_;
  std::ostringstream out_;
  int count_ = 0;
};

// YAML -> JSON for principal attributes: plain scalars that read as booleans or integers
// become those; quoted scalars stay strings.
nlohmann::json ToJson(const YAML::Node& n, Checker* c, const std::string& key, int depth) {
  if (depth > 32) {
    c->Error(n, key, "nested too deeply", "attributes may nest at most 32 levels");
    return nullptr;
  }
  if (n.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.Scalar();
      o[k] = ToJson(it->second, c, key + "." + k, depth + 1);
    }
    return o;
  }
  if (n.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = 0; i < n.size(); ++i)
      a.push_back(ToJson(n[i], c, key + "[" + std::to_string(i) + "]", depth + 1));
    return a;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "?") {
    if (s == "true") return true;
    if (s == "false") return false;
    if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
      size_t pos = 0;
      try {
        long long v = std::stoll(s, &pos);
        if (pos == s.size()) return v;
      } catch (...) {
      }
    }
  }
  return s;
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (base_dir.empty() || p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

bool ValidUpstreamName(const std::string& s) {
  if (s.empty() || s.size() > 64 || s.find("__") != std::string::npos) return false;
  for (char ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  }
  return s.front() != '_' && s.back() != '_';
}

void ParsePrincipal(const YAML::Node& n, Checker* c, PrincipalConfig* p) {
  const std::string k = "stdio_principal";
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping",
             "e.g. `stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }`");
    return;
  }
  c->Keys(n, k + ".", {"uid", "attrs", "parents"});
  auto CheckUid = [&](const YAML::Node& at, const std::string& key, const std::string& text,
                      std::string* out) {
    std::string canonical;
    size_t type_len = 0;
    if (!runtime::ParseEntityUid(text, &canonical, &type_len)) {
      c->Error(at, key, "`" + text + "` is not an entity uid",
               "write Type::\"id\", quoted in YAML: 'User::\"alice\"'");
      return;
    }
    *out = canonical;
  };
  if (n["uid"]) {
    std::string s;
    if (c->String(n["uid"], k + ".uid", &s, "e.g. uid: 'User::\"alice\"'"))
      CheckUid(n["uid"], k + ".uid", s, &p->uid);
  }
  if (n["attrs"]) {
    if (!n["attrs"].IsMap()) {
      c->Error(n["attrs"], k + ".attrs", "expected a mapping", "e.g. attrs: { department: eng }");
    } else {
      p->attrs = ToJson(n["attrs"], c, k + ".attrs", 0);
    }
  }
  if (n["parents"]) {
    const YAML::Node ps = n["parents"];  // a copy: yaml-cpp returns proxies
    if (!ps.IsSequence()) {
      c->Error(ps, k + ".parents", "expected a list of entity uids",
               "e.g. parents: ['Role::\"analyst\"']");
    } else {
      for (size_t i = 0; i < ps.size(); ++i) {
        std::string key = k + ".parents[" + std::to_string(i) + "]", s, canon;
        if (c->String(ps[i], key, &s, "an entity uid such as 'Role::\"analyst\"'")) {
          CheckUid(ps[i], key, s, &canon);
          if (!canon.empty()) p->parents.push_back(canon);
        }
      }
    }
  }
}

void ParseRestart(const YAML::Node& n, const std::string& k, Checker* c, RestartConfig* r);

void ParseUpstream(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u) {
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping", "e.g. `- { name: fs, command: npx, args: [...] }`");
    return;
  }
  c->Keys(n, k + ".", {"name", "command", "args", "env", "restart"});
  if (!n["name"]) {
    c->Error(n, k + ".name", "missing", "every upstream needs a name; its tools appear as NAME__tool");
  } else if (c->String(n["name"], k + ".name", &u->name, "e.g. name: fs") &&
             !ValidUpstreamName(u->name)) {
    c->Error(n["name"], k + ".name", "`" + u->name + "` is not a valid upstream name",
             "use letters, digits, '-' and '_' (not leading, trailing or doubled): tools are "
             "namespaced as NAME__tool");
  }
  if (!n["command"]) {
    c->Error(n, k + ".command", "missing", "the program to run, e.g. `command: npx`");
  } else {
    c->String(n["command"], k + ".command", &u->command, "the program to run, e.g. `command: npx`");
  }
  if (n["args"]) {
    const YAML::Node a = n["args"];  // a copy: yaml-cpp returns proxies
    if (!a.IsSequence()) {
      c->Error(a, k + ".args", "expected a list of strings", "e.g. args: [-y, some-package]");
    } else {
      c->StringList(a, k + ".args", &u->args, "each argument is a string");
    }
  }
  if (n["env"]) {
    const YAML::Node e = n["env"];  // a copy: yaml-cpp returns proxies
    if (!e.IsMap()) {
      c->Error(e, k + ".env", "expected a mapping", "e.g. env: { LOG_LEVEL: debug }");
    } else {
      for (auto it = e.begin(); it != e.end(); ++it) {
        std::string name = it->first.Scalar(), value;
        if (name.empty() || name.find('=') != std::string::npos) {
          c->Error(it->first, k + ".env", "`" + name + "` is not a variable name", "");
          continue;
        }
        if (c->String(it->second, k + ".env." + name, &value, "environment values are strings"))
          u->env.emplace_back(name, value);
      }
    }
  }
  if (n["restart"]) ParseRestart(n["restart"], k + ".restart", c, &u->restart);
}

bool Duration(const YAML::Node& n, Checker* c, const std::string& key, long long* ms);

void ParseRestart(const YAML::Node& n, const std::string& k, Checker* c, RestartConfig* r) {
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping",
             "e.g. restart: { initial_backoff: 500ms, max_backoff: 30s, max_restarts: 5 }");
    return;
  }
  c->Keys(n, k + ".",
          {"initial_backoff", "max_backoff", "reset_after", "max_restarts", "window"});
  long long v = 0;
  if (n["initial_backoff"] && Duration(n["initial_backoff"], c, k + ".initial_backoff", &v))
    r->initial_backoff_ms = static_cast<int>(v);
  if (n["max_backoff"] && Duration(n["max_backoff"], c, k + ".max_backoff", &v))
    r->max_backoff_ms = static_cast<int>(v);
  if (n["reset_after"] && Duration(n["reset_after"], c, k + ".reset_after", &v))
    r->reset_after_ms = static_cast<int>(v);
  if (n["window"] && Duration(n["window"], c, k + ".window", &v))
    r->window_ms = static_cast<int>(v);
  if (n["max_restarts"] && c->Int(n["max_restarts"], k + ".max_restarts", 0, 1000, &v))
    r->max_restarts = static_cast<int>(v);
  if (r->max_backoff_ms < r->initial_backoff_ms)
    c->Error(n["max_backoff"] ? n["max_backoff"] : n, k + ".max_backoff",
             "smaller than initial_backoff",
             "max_backoff caps the doubling delay; make it at least initial_backoff");
}

void ParseLimits(const YAML::Node& n, Checker* c, LimitsConfig* l) {
  if (!n.IsMap()) {
    c->Error(n, "limits", "expected a mapping", "e.g. limits: { max_message_bytes: 4194304 }");
    return;
  }
  c->Keys(n, "limits.",
          {"max_message_bytes", "max_depth", "max_in_flight", "upstream_timeout_ms"});
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
}

// A duration: an integer of milliseconds, or a number with `ms` or `s` (e.g. 500ms, 1s).
bool Duration(const YAML::Node& n, Checker* c, const std::string& key, long long* ms) {
  const std::string help = "a duration such as 500ms or 1s (a plain integer is milliseconds)";
  if (!n.IsScalar()) {
    c->Error(n, key, "expected a duration", help);
    return false;
  }
  std::string s = n.Scalar();
  long long mult = 1;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    s.resize(s.size() - 2);
  } else if (s.size() > 1 && s.back() == 's') {
    s.pop_back();
    mult = 1000;
  }
  size_t pos = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (s.empty() || pos != s.size() || v < 1 || v * mult > 3600000) {
    c->Error(n, key, "`" + n.Scalar() + "` is not a duration from 1ms to 1h", help);
    return false;
  }
  *ms = v * mult;
  return true;
}

// One of `choices`; *index is set to its position.
bool Choice(const YAML::Node& n, Checker* c, const std::string& key,
            const std::vector<std::string>& choices, size_t* index) {
  std::string list;
  for (const auto& x : choices) list += (list.empty() ? "" : " | ") + x;
  if (!n.IsScalar()) {
    c->Error(n, key, "expected one of " + list, "");
    return false;
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    if (n.Scalar() == choices[i]) {
      *index = i;
      return true;
    }
  }
  std::string hint = DidYouMean(n.Scalar(), choices);
  c->Error(n, key, "`" + n.Scalar() + "` is not one of " + list,
           hint.empty() ? "write one of: " + list : "did you mean `" + hint + "`?");
  return false;
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
  if (!n["path"]) {
    c->Error(n, "audit.path", "missing",
             "where the audit log is written, e.g. `path: /var/lib/writ/audit.jsonl`");
  } else if (c->String(n["path"], "audit.path", &o.path, "a file path") && o.path.empty()) {
    c->Error(n["path"], "audit.path", "empty", "a file path, e.g. /var/lib/writ/audit.jsonl");
  } else {
    o.path = Resolve(base_dir, o.path);
  }
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

// "HOST:PORT" or "[V6]:PORT" (a bare ":PORT" means 127.0.0.1).
bool ParseListen(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) return false;
  std::string h = s.substr(0, colon), p = s.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "127.0.0.1";
  if (h.find_first_of(" /") != std::string::npos) return false;
  for (char ch : p)
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
  if (p.size() > 5) return false;
  int v = std::stoi(p);
  if (v > 65535) return false;
  *host = h;
  *port = v;
  return true;
}

void ParseHttp(const YAML::Node& n, Checker* c, HttpConfig* h) {
  if (!n.IsMap()) {
    c->Error(n, "http", "expected a mapping", "e.g. http: { listen: 127.0.0.1:8080, path: /mcp }");
    return;
  }
  c->Keys(n, "http.",
          {"listen", "path", "allowed_hosts", "allowed_origins", "allow_anonymous",
           "max_sessions", "max_connections", "session_idle_timeout"});
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

}  // namespace

std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t sub = prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    size_t d = prev[c.size()];
    if (d < best_d && d * 2 < std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

bool ParseConfig(const std::string& text, const std::string& name, const std::string& base_dir,
                 Config* out, std::string* errors) {
  Checker c(name);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    c.ErrorAt(e.mark.line, e.mark.column, "", "invalid YAML: " + e.msg,
              "check indentation and quoting; entity uids need quotes: 'User::\"alice\"'");
    *errors = c.text();
    return false;
  }
  if (!root.IsMap()) {
    c.ErrorAt(-1, 0, "", "the configuration must be a YAML mapping",
              "see docs/gateway.md for an example");
    *errors = c.text();
    return false;
  }
  *out = Config{};
  c.Keys(root, "", {"policies", "bundle", "schema", "stdio_principal", "upstreams", "limits", "audit",
                    "http", "identity", "reload", "log", "shutdown"});
  const std::string kPolicyHelp = "a policy file or directory, or a list of them";
  if (root["policies"]) {
    std::vector<std::string> ps;
    c.StringList(root["policies"], "policies", &ps, kPolicyHelp);
    for (auto& p : ps) out->policies.push_back(Resolve(base_dir, p));
  }
  if (root["bundle"] &&
      c.String(root["bundle"], "bundle", &out->bundle, "a bundle file from `writ build -o`"))
    out->bundle = Resolve(base_dir, out->bundle);
  if (root["policies"] && root["bundle"]) {
    c.Error(root["bundle"], "bundle", "`policies` and `bundle` are exclusive",
            "give policy sources (compiled at start) or a prebuilt bundle, not both");
  } else if (!root["policies"] && !root["bundle"]) {
    c.ErrorAt(-1, 0, "policies", "missing",
              "add `policies: ./policies` (compiled at start) or `bundle: ./p.wbundle`");
  }
  if (root["schema"] && c.String(root["schema"], "schema", &out->schema, "a schema YAML file"))
    out->schema = Resolve(base_dir, out->schema);
  if (root["stdio_principal"]) ParsePrincipal(root["stdio_principal"], &c, &out->stdio_principal);
  if (root["limits"]) ParseLimits(root["limits"], &c, &out->limits);
  if (root["audit"]) ParseAudit(root["audit"], base_dir, &c, &out->audit);
  if (root["http"]) ParseHttp(root["http"], &c, &out->http);
  if (root["reload"]) ParseReload(root["reload"], &c, &out->reload);
  if (root["log"]) ParseLog(root["log"], &c, &out->log);
  if (root["shutdown"]) ParseShutdown(root["shutdown"], &c, &out->shutdown);
  if (root["identity"]) {
    // Validated here (errors located at the section); Authenticator::Create re-parses at start.
    nlohmann::json id = ToJson(root["identity"], &c, "identity", 0);
    IdentityConfig ic;
    std::string error;
    if (!id.is_object()) {
      c.Error(root["identity"], "identity", "expected a mapping", "see docs/identity.md");
    } else if (!ParseIdentityConfig(id, base_dir, &ic, &error)) {
      c.Error(root["identity"], "", error, "see docs/identity.md");
    } else {
      out->identity = std::move(id);
    }
  }
  if (!root["upstreams"]) {
    c.ErrorAt(-1, 0, "upstreams", "missing", "list the MCP servers to proxy under `upstreams:`");
  } else if (!root["upstreams"].IsSequence()) {
    c.Error(root["upstreams"], "upstreams", "expected a list",
            "e.g.\n  upstreams:\n    - name: fs\n      command: npx");
  } else {
    const YAML::Node us = root["upstreams"];  // a copy: yaml-cpp returns proxies
    std::set<std::string> seen;
    for (size_t i = 0; i < us.size(); ++i) {
      std::string k = "upstreams[" + std::to_string(i) + "]";
      UpstreamConfig u;
      ParseUpstream(us[i], k, &c, &u);
      if (!u.name.empty() && !seen.insert(u.name).second)
        c.Error(us[i]["name"], k + ".name", "duplicate upstream name `" + u.name + "`",
                "upstream names are namespaces and must be unique");
      out->upstreams.push_back(std::move(u));
    }
  }
  // Credentials never reach the audit: every upstream env value is a secret to scrub.
  for (const auto& u : out->upstreams)
    for (const auto& [k, v] : u.env)
      if (!v.empty()) out->audit.options.secrets.push_back(v);
  *errors = c.text();
  return c.count() == 0;
}

bool LoadConfig(const std::string& path, Config* out, std::string* errors) {
  std::string text, error;
  if (!ReadFile(path, &text, &error)) {
    *errors = "error: " + error + "\n";
    return false;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseConfig(text, path, dir, out, errors);
}

}  // namespace writ::gateway
