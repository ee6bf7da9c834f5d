// config.cc -- see config.h. yaml-cpp throws on syntax errors; that is caught here and turned
// into a located error like every other (config loading is not on the request path).
#include "gateway/config.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <sstream>

#include "base/source.h"
#include "gateway/admin_server.h"
#include "gateway/identity.h"
#include "gateway/secrets.h"
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

// The `url:` form of an upstream: url, headers, tls (docs/gateway.md).
void ParseHttpUpstream(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u) {
  for (const char* stdio_key : {"command", "args", "env"}) {
    if (n[stdio_key])
      c->Error(n[stdio_key], k + "." + stdio_key, "not allowed with `url`",
               "an upstream is either a child process (`command`, `args`, `env`) or a "
               "Streamable HTTP server (`url`, `headers`, `tls`)");
  }
  const std::string url_help = "the server's MCP endpoint, e.g. `url: https://mcp.example.com/mcp`";
  if (c->String(n["url"], k + ".url", &u->url, url_help)) {
    std::string lower = u->url;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool scheme = lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0;
    size_t host_at = lower.find("://") + 3;
    if (!scheme || host_at >= lower.size() || lower[host_at] == '/' ||
        u->url.find_first_of(" \t\r\n") != std::string::npos)
      c->Error(n["url"], k + ".url", "`" + u->url + "` is not an http:// or https:// URL",
               url_help);
  }
  if (n["headers"]) {
    const YAML::Node h = n["headers"];  // a copy: yaml-cpp returns proxies
    if (!h.IsMap()) {
      c->Error(h, k + ".headers", "expected a mapping",
               "e.g. headers: { Authorization: \"Bearer ...\" }");
    } else {
      for (auto it = h.begin(); it != h.end(); ++it) {
        std::string name = it->first.IsScalar() ? it->first.Scalar() : "", value;
        bool token = !name.empty();
        for (char ch : name)
          if (!std::isalnum(static_cast<unsigned char>(ch)) &&
              std::string_view("!#$%&'*+-.^_`|~").find(ch) == std::string_view::npos)
            token = false;
        if (!token) {
          c->Error(it->first, k + ".headers", "`" + name + "` is not an HTTP header name",
                   "header names are letters, digits and -");
          continue;
        }
        std::string lname = name;
        for (char& ch : lname) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lname == "host" || lname == "content-length" || lname == "content-type" ||
            lname == "accept" || lname == "mcp-session-id" || lname == "mcp-protocol-version" ||
            lname == "transfer-encoding" || lname == "connection") {
          c->Error(it->first, k + ".headers." + name, "set by the gateway",
                   "the transport sets this header itself; remove it");
          continue;
        }
        if (c->String(it->second, k + ".headers." + name, &value, "header values are strings")) {
          if (value.find_first_of("\r\n") != std::string::npos) {
            c->Error(it->second, k + ".headers." + name, "a header value cannot span lines", "");
            continue;
          }
          u->headers.emplace_back(name, value);
        }
      }
    }
  }
  if (n["tls"]) {
    const YAML::Node t = n["tls"];  // a copy: yaml-cpp returns proxies
    if (!t.IsMap()) {
      c->Error(t, k + ".tls", "expected a mapping", "e.g. tls: { verify: true, ca_file: ca.pem }");
      return;
    }
    c->Keys(t, k + ".tls.", {"verify", "ca_file"});
    if (t["verify"]) {
      std::string v;
      if (c->String(t["verify"], k + ".tls.verify", &v, "true or false") && v != "true" &&
          v != "false")
        c->Error(t["verify"], k + ".tls.verify", "expected true or false",
                 "`verify: false` turns off certificate checks (testing only)");
      u->tls_verify = v != "false";
    }
    if (t["ca_file"])
      c->String(t["ca_file"], k + ".tls.ca_file", &u->tls_ca_file,
                "a PEM file of CA certificates to trust instead of the system ones");
  }
}

void ParseBreaker(const YAML::Node& n, const std::string& k, Checker* c, BreakerOptions* b);

void ParseRestart(const YAML::Node& n, const std::string& k, Checker* c, RestartConfig* r);

void ParseUpstream(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u,
                   const BreakerOptions& breaker_defaults) {
  u->breaker = breaker_defaults;
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping", "e.g. `- { name: fs, command: npx, args: [...] }`");
    return;
  }
  c->Keys(n, k + ".", {"name", "command", "args", "env", "breaker", "url", "headers", "tls",
                       "restart"});
  if (n["breaker"]) ParseBreaker(n["breaker"], k + ".breaker", c, &u->breaker);
  if (!n["name"]) {
    c->Error(n, k + ".name", "missing", "every upstream needs a name; its tools appear as NAME__tool");
  } else if (c->String(n["name"], k + ".name", &u->name, "e.g. name: fs") &&
             !ValidUpstreamName(u->name)) {
    c->Error(n["name"], k + ".name", "`" + u->name + "` is not a valid upstream name",
             "use letters, digits, '-' and '_' (not leading, trailing or doubled): tools are "
             "namespaced as NAME__tool");
  }
  if (n["url"]) {
    ParseHttpUpstream(n, k, c, u);
    return;
  }
  if (n["headers"] || n["tls"])
    c->Error(n[n["headers"] ? "headers" : "tls"], k + (n["headers"] ? ".headers" : ".tls"),
             "only for an upstream with `url:`",
             "`headers` and `tls` configure a Streamable HTTP upstream; a `command:` upstream "
             "takes `env`");
  if (!n["command"]) {
    c->Error(n, k + ".command", "missing",
             "the program to run, e.g. `command: npx`, or `url: https://host/mcp` for a "
             "Streamable HTTP server");
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

void ParseRecord(const YAML::Node& n, const std::string& base_dir, Checker* c, RecordConfig* r) {
  r->enabled = true;
  if (!n.IsMap()) {
    c->Error(n, "record", "expected a mapping", "e.g. record: { path: traces/session.jsonl }");
    return;
  }
  c->Keys(n, "record.", {"path", "messages"});
  if (!n["path"]) {
    c->Error(n, "record.path", "missing",
             "where the trace is written, e.g. `path: traces/session.jsonl`");
  } else if (c->String(n["path"], "record.path", &r->path, "a file path") && r->path.empty()) {
    c->Error(n["path"], "record.path", "empty", "a file path, e.g. traces/session.jsonl");
  } else {
    r->path = Resolve(base_dir, r->path);
  }
  size_t i = 0;
  if (n["messages"] && Choice(n["messages"], c, "record.messages", {"false", "true"}, &i))
    r->messages = i == 1;
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
      c->Int(n["resume_buffer_bytes"], "http.resume_buffer_bytes", 1024, 1LL << 30, &v))
    h->resume_buffer_bytes = static_cast<size_t>(v);
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

// `secrets:` (docs/credentials.md) and every ${secret:NAME} in upstreams[i].env / .headers.
// Called even without `secrets:`, so a reference with no source is reported with its line.
void ParseSecrets(const YAML::Node& root, const std::string& name, const std::string& base_dir,
                  Checker* c, SecretsConfig* s) {
  s->config_name = name;
  const YAML::Node n = root["secrets"];
  if (n) {
    if (!n.IsMap()) {
      c->Error(n, "secrets", "expected a mapping", "e.g. secrets: { file: secrets.yaml }");
    } else {
      c->Keys(n, "secrets.", {"file", "env"});
      if (n["file"] && c->String(n["file"], "secrets.file", &s->file,
                                 "a YAML file of NAME: value, mode 0600")) {
        if (s->file.empty())
          c->Error(n["file"], "secrets.file", "empty", "e.g. file: secrets.yaml");
        s->file = Resolve(base_dir, s->file);
      }
      size_t i = 0;
      if (n["env"] && Choice(n["env"], c, "secrets.env", {"false", "true"}, &i)) s->env = i == 1;
    }
  }
  const YAML::Node us = root["upstreams"];
  if (!us || !us.IsSequence()) return;
  for (size_t i = 0; i < us.size(); ++i) {
    if (!us[i].IsMap()) continue;
    for (const char* field : {"env", "headers"}) {
      const YAML::Node m = us[i][field];
      if (!m || !m.IsMap()) continue;
      for (auto it = m.begin(); it != m.end(); ++it) {
        if (!it->second.IsScalar()) continue;
        std::string key = "upstreams[" + std::to_string(i) + "]." + field + "." +
                          (it->first.IsScalar() ? it->first.Scalar() : "?");
        std::vector<std::string> refs;
        std::string error;
        if (!FindSecretRefs(it->second.Scalar(), &refs, &error)) {
          c->Error(it->second, key, error,
                   "write ${secret:NAME} with NAME of letters, digits and _");
          continue;
        }
        YAML::Mark m2 = it->second.Mark();
        for (const auto& r : refs) {
          s->refs.push_back({i, key, r, m2.line, m2.column});
          if (!n)
            c->Error(it->second, key, "`${secret:" + r + "}` but no `secrets:` source is configured",
                     "add `secrets: {file: secrets.yaml}` (a NAME: value file, mode 0600)");
        }
      }
    }
  }
}

// `breaker:` (top level: defaults) or `upstreams[i].breaker:` (overrides). docs/limits.md.
void ParseBreaker(const YAML::Node& n, const std::string& k, Checker* c, BreakerOptions* b) {
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping",
             "e.g. breaker: { failure_threshold: 5, cool_down: 30s, half_open_probes: 1 }");
    return;
  }
  c->Keys(n, k + ".", {"failure_threshold", "cool_down", "half_open_probes", "enabled"});
  long long v = 0;
  if (n["failure_threshold"] &&
      c->Int(n["failure_threshold"], k + ".failure_threshold", 1, 1000, &v))
    b->failure_threshold = static_cast<int>(v);
  if (n["cool_down"] && Duration(n["cool_down"], c, k + ".cool_down", &v)) b->cool_down_ms = v;
  if (n["half_open_probes"] &&
      c->Int(n["half_open_probes"], k + ".half_open_probes", 1, 1000, &v))
    b->half_open_probes = static_cast<int>(v);
  size_t i = 0;
  if (n["enabled"] && Choice(n["enabled"], c, k + ".enabled", {"false", "true"}, &i))
    b->enabled = i == 1;
}

// `intent:` (docs/intent.md). Runs after `upstreams:` so server names can be checked.
void ParseIntent(const YAML::Node& n, Checker* c, const std::vector<UpstreamConfig>& ups,
                 IntentConfig* out) {
  if (!n.IsMap()) {
    c->Error(n, "intent", "expected a mapping",
             "e.g. intent: { trusted_servers: [fs], overrides: { db__run_query: read } }");
    return;
  }
  c->Keys(n, "intent.", {"overrides", "trusted_servers", "bulk_threshold"});
  std::vector<std::string> names;
  for (const auto& u : ups) names.push_back(u.name);
  auto known = [&](const YAML::Node& at, const std::string& key, const std::string& server) {
    if (std::find(names.begin(), names.end(), server) != names.end()) return;
    std::string hint = DidYouMean(server, names);
    c->Error(at, key, "`" + server + "` is not a configured upstream",
             hint.empty() ? "name one of the servers under `upstreams:`"
                          : "did you mean `" + hint + "`?");
  };
  if (n["trusted_servers"]) {
    const YAML::Node t = n["trusted_servers"];  // a copy: yaml-cpp returns proxies
    std::vector<std::string> list;
    if (!t.IsSequence()) {
      c->Error(t, "intent.trusted_servers", "expected a list of upstream names",
               "e.g. trusted_servers: [fs, github]");
    } else if (c->StringList(t, "intent.trusted_servers", &list, "an upstream name")) {
      for (size_t i = 0; i < list.size(); ++i)
        known(t[i], "intent.trusted_servers[" + std::to_string(i) + "]", list[i]);
      out->trusted_servers = list;
    }
  }
  if (n["overrides"]) {
    const YAML::Node o = n["overrides"];
    if (!o.IsMap()) {
      c->Error(o, "intent.overrides", "expected a mapping of SERVER__tool: intent",
               "e.g. overrides: { db__run_query: read, github__*: write }");
    } else {
      for (auto it = o.begin(); it != o.end(); ++it) {
        std::string tool = it->first.Scalar();
        std::string key = "intent.overrides." + tool;
        size_t sep = tool.find("__");
        if (sep == std::string::npos || sep == 0 || sep + 2 >= tool.size()) {
          c->Error(it->first, key, "`" + tool + "` is not SERVER__tool or SERVER__*",
                   "name a namespaced tool as agents see it, e.g. db__run_query");
          continue;
        }
        known(it->first, key, tool.substr(0, sep));
        size_t i = 0;
        if (Choice(it->second, c, key, {"read", "write", "exfiltrative", "destructive"}, &i))
          out->overrides[tool] = static_cast<Intent>(i);
      }
    }
  }
  long long v = 0;
  if (n["bulk_threshold"] &&
      c->Int(n["bulk_threshold"], "intent.bulk_threshold", 1, 1000000000000LL, &v))
    out->bulk_threshold = v;
}

// `lock:` (docs/integrity.md).
void ParseLock(const YAML::Node& n, const std::string& base_dir, Checker* c, LockConfig* l) {
  l->enabled = true;
  l->file = Resolve(base_dir, "writ.lock");
  if (n.IsNull()) return;
  if (!n.IsMap()) {
    c->Error(n, "lock", "expected a mapping", "e.g. lock: { file: writ.lock, on_drift: hide }");
    return;
  }
  c->Keys(n, "lock.", {"file", "on_drift", "on_new"});
  std::string f;
  if (n["file"] && c->String(n["file"], "lock.file", &f, "the lockfile `writ lock` writes")) {
    if (f.empty()) {
      c->Error(n["file"], "lock.file", "empty", "e.g. file: writ.lock");
    } else {
      l->file = Resolve(base_dir, f);
    }
  }
  const std::vector<std::string> kActions{"hide", "deny", "allow"};
  size_t i = 0;
  if (n["on_drift"] && Choice(n["on_drift"], c, "lock.on_drift", kActions, &i))
    l->on_drift = static_cast<LockAction>(i);
  if (n["on_new"] && Choice(n["on_new"], c, "lock.on_new", kActions, &i))
    l->on_new = static_cast<LockAction>(i);
}

// A duration with a unit: ms, s, m or h (e.g. 30s, 15m, 24h); a plain integer is ms. Between
// 1 ms and `max_ms`.
bool LongDuration(const YAML::Node& n, Checker* c, const std::string& key, long long max_ms,
                  long long* ms) {
  const std::string help = "a duration such as 500ms, 30s, 15m or 24h (a plain integer is ms)";
  if (!n.IsScalar()) {
    c->Error(n, key, "expected a duration", help);
    return false;
  }
  std::string s = n.Scalar();
  long long mult = 1;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    s.resize(s.size() - 2);
  } else if (!s.empty() && (s.back() == 's' || s.back() == 'm' || s.back() == 'h')) {
    mult = s.back() == 's' ? 1000 : s.back() == 'm' ? 60000 : 3600000;
    s.pop_back();
  }
  size_t pos = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (s.empty() || pos != s.size() || v < 1 || v > max_ms / mult) {
    c->Error(n, key,
             "`" + n.Scalar() + "` is not a duration from 1ms to " +
                 std::to_string(max_ms / 3600000) + "h",
             help);
    return false;
  }
  *ms = v * mult;
  return true;
}

void ParseApprovals(const YAML::Node& n, const std::string& base_dir, Checker* c,
                    ApprovalsConfig* a) {
  a->enabled = true;
  if (!n.IsMap()) {
    c->Error(n, "approvals", "expected a mapping",
             "e.g. approvals: { db: /var/lib/writ/state.db, wait: 30s, default_timeout: 15m }");
    return;
  }
  c->Keys(n, "approvals.", {"db", "wait", "default_timeout", "notify"});
  if (!n["db"]) {
    c->Error(n, "approvals.db", "missing",
             "where pending approvals are kept (SQLite), e.g. `db: /var/lib/writ/state.db`");
  } else if (c->String(n["db"], "approvals.db", &a->db, "a file path") && a->db.empty()) {
    c->Error(n["db"], "approvals.db", "empty", "a file path, e.g. /var/lib/writ/state.db");
  } else {
    a->db = Resolve(base_dir, a->db);
  }
  long long ms = 0;
  if (n["wait"] && LongDuration(n["wait"], c, "approvals.wait", 3600000, &ms)) a->wait_ms = ms;
  if (n["default_timeout"] &&
      LongDuration(n["default_timeout"], c, "approvals.default_timeout", 7 * 24 * 3600000LL, &ms))
    a->default_timeout_ms = ms;
  if (n["notify"]) {
    const YAML::Node nn = n["notify"];  // a copy: yaml-cpp returns proxies
    const std::string help = "e.g. notify: { channel: slack, target: \"#approvals\" }";
    if (!nn.IsMap()) {
      c->Error(nn, "approvals.notify", "expected a mapping", help);
    } else {
      c->Keys(nn, "approvals.notify.", {"channel", "target"});
      if (!nn["channel"])
        c->Error(nn, "approvals.notify.channel", "missing", "a channel under notify.channels");
      else
        c->String(nn["channel"], "approvals.notify.channel", &a->notify_channel, help);
      if (nn["target"]) c->String(nn["target"], "approvals.notify.target", &a->notify_target, help);
    }
  }
}

bool IsLoopbackHost(const std::string& h) {
  return h == "127.0.0.1" || h == "::1" || h == "localhost" || h.rfind("127.", 0) == 0;
}

void ParseAdmin(const YAML::Node& n, const std::string& base_dir, Checker* c, AdminConfig* a) {
  a->enabled = true;
  const std::string token_help =
      "generate a token (`openssl rand -hex 32 > admin.token`, mode 0600) and set "
      "`token_file: admin.token`, or store only its hash: `token_sha256: <sha256sum of it>`";
  if (!n.IsMap()) {
    c->Error(n, "admin", "expected a mapping",
             "e.g. admin: { listen: 127.0.0.1:9090, token_file: admin.token }");
    return;
  }
  c->Keys(n, "admin.", {"listen", "token_sha256", "token_file", "allow_remote"});
  std::string s;
  if (n["listen"] &&
      c->String(n["listen"], "admin.listen", &s, "HOST:PORT, e.g. 127.0.0.1:9090") &&
      !ParseListen(s, &a->host, &a->port))
    c->Error(n["listen"], "admin.listen", "`" + s + "` is not HOST:PORT",
             "e.g. listen: 127.0.0.1:9090 (port 0: any free port; IPv6: [::1]:9090)");
  size_t i = 0;
  if (n["allow_remote"] &&
      Choice(n["allow_remote"], c, "admin.allow_remote", {"false", "true"}, &i))
    a->allow_remote = i == 1;
  if (n["listen"] && !a->allow_remote && !IsLoopbackHost(a->host))
    c->Error(n["listen"], "admin.listen",
             "`" + a->host + "` is not a loopback address (the admin API is plain HTTP)",
             "listen on 127.0.0.1 and reach it through SSH or a TLS proxy, or set "
             "`allow_remote: true` to accept the risk");
  if (n["token_sha256"] && n["token_file"]) {
    c->Error(n["token_file"], "admin.token_file", "`token_sha256` and `token_file` are exclusive",
             token_help);
  } else if (n["token_sha256"]) {
    std::string error;
    if (c->String(n["token_sha256"], "admin.token_sha256", &s, token_help) &&
        !ParseTokenSha256(s, &a->token_sha256, &error))
      c->Error(n["token_sha256"], "admin.token_sha256", error, token_help);
  } else if (n["token_file"]) {
    if (c->String(n["token_file"], "admin.token_file", &a->token_file, token_help)) {
      if (a->token_file.empty())
        c->Error(n["token_file"], "admin.token_file", "empty", token_help);
      a->token_file = Resolve(base_dir, a->token_file);
    }
  } else {
    c->Error(n, "admin.token_sha256", "missing: the admin API needs a token", token_help);
  }
}

void ParseKillSwitch(const YAML::Node& n, const std::string& base_dir, Checker* c,
                     KillSwitchConfig* k) {
  if (!n.IsMap()) {
    c->Error(n, "killswitch", "expected a mapping",
             "e.g. killswitch: { db: /var/lib/writ/state.db }");
    return;
  }
  c->Keys(n, "killswitch.", {"db"});
  if (n["db"] && c->String(n["db"], "killswitch.db", &k->db, "a file path")) {
    if (k->db.empty()) c->Error(n["db"], "killswitch.db", "empty", "a file path");
    k->db = Resolve(base_dir, k->db);
  }
}

void ParseNotify(const YAML::Node& n, const std::string& base_dir, Checker* c, NotifyOptions* o) {
  const std::string help =
      "e.g.\n  notify:\n    channels:\n      slack:\n        url: https://hooks.slack.com/...";
  if (!n.IsMap()) {
    c->Error(n, "notify", "expected a mapping", help);
    return;
  }
  c->Keys(n, "notify.", {"channels", "timeout", "retries", "max_queue"});
  long long v = 0;
  if (n["timeout"] && LongDuration(n["timeout"], c, "notify.timeout", 60000, &v))
    o->timeout_ms = static_cast<int>(v);
  if (n["retries"] && c->Int(n["retries"], "notify.retries", 0, 10, &v))
    o->retries = static_cast<int>(v);
  if (n["max_queue"] && c->Int(n["max_queue"], "notify.max_queue", 1, 1000000, &v))
    o->max_queue = static_cast<size_t>(v);
  if (!n["channels"]) {
    c->Error(n, "notify.channels", "missing", help);
    return;
  }
  const YAML::Node chs = n["channels"];  // a copy: yaml-cpp returns proxies
  if (!chs.IsMap()) {
    c->Error(chs, "notify.channels", "expected a mapping of channel names", help);
    return;
  }
  for (auto it = chs.begin(); it != chs.end(); ++it) {
    NotifyChannel ch;
    ch.name = it->first.Scalar();
    std::string k = "notify.channels." + ch.name;
    const YAML::Node cn = it->second;
    if (!cn.IsMap()) {
      c->Error(cn, k, "expected a mapping", "e.g. " + ch.name + ": { url: https://... }");
      continue;
    }
    c->Keys(cn, k + ".", {"url", "headers", "ca_file"});
    if (!cn["url"]) {
      c->Error(cn, k + ".url", "missing", "the webhook URL (http:// or https://)");
    } else if (c->String(cn["url"], k + ".url", &ch.url, "the webhook URL")) {
      HttpUrl u;
      std::string error;
      if (!ParseHttpUrl(ch.url, &u, &error))
        c->Error(cn["url"], k + ".url", error, "e.g. url: https://hooks.slack.com/services/...");
    }
    if (cn["headers"]) {
      const YAML::Node hs = cn["headers"];
      if (!hs.IsMap()) {
        c->Error(hs, k + ".headers", "expected a mapping", "e.g. headers: { X-Token: abc }");
      } else {
        for (auto h = hs.begin(); h != hs.end(); ++h) {
          std::string name = h->first.Scalar(), value;
          bool ok = !name.empty();
          for (char ch2 : name)
            ok = ok && (std::isalnum(static_cast<unsigned char>(ch2)) || ch2 == '-' || ch2 == '_');
          if (!ok) {
            c->Error(h->first, k + ".headers", "`" + name + "` is not a header name",
                     "letters, digits, '-' and '_'");
            continue;
          }
          if (c->String(h->second, k + ".headers." + name, &value, "header values are strings")) {
            if (value.find_first_of("\r\n") != std::string::npos)
              c->Error(h->second, k + ".headers." + name, "contains a line break", "");
            else
              ch.headers.emplace_back(name, value);
          }
        }
      }
    }
    if (cn["ca_file"] &&
        c->String(cn["ca_file"], k + ".ca_file", &ch.ca_file, "a PEM file of CA certificates"))
      ch.ca_file = Resolve(base_dir, ch.ca_file);
    o->channels.push_back(std::move(ch));
  }
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
                    "http", "identity", "dlp", "secrets", "intent", "lock", "breaker",
                    "approvals", "admin", "killswitch", "notify", "record", "reload", "log",
                    "shutdown"});
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
  if (root["dlp"]) ParseDlp(root["dlp"], &c, &out->dlp);
  ParseSecrets(root, name, base_dir, &c, &out->secrets);
  if (root["record"]) ParseRecord(root["record"], base_dir, &c, &out->record);
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
  if (root["breaker"]) ParseBreaker(root["breaker"], "breaker", &c, &out->breaker);
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
      ParseUpstream(us[i], k, &c, &u, out->breaker);
      u.tls_ca_file = Resolve(base_dir, u.tls_ca_file);
      if (!u.name.empty() && !seen.insert(u.name).second)
        c.Error(us[i]["name"], k + ".name", "duplicate upstream name `" + u.name + "`",
                "upstream names are namespaces and must be unique");
      out->upstreams.push_back(std::move(u));
    }
  }
  if (root["intent"]) ParseIntent(root["intent"], &c, out->upstreams, &out->intent);
  if (root["lock"]) ParseLock(root["lock"], base_dir, &c, &out->lock);
  if (root["approvals"]) ParseApprovals(root["approvals"], base_dir, &c, &out->approvals);
  if (root["admin"]) ParseAdmin(root["admin"], base_dir, &c, &out->admin);
  if (root["killswitch"]) ParseKillSwitch(root["killswitch"], base_dir, &c, &out->killswitch);
  if (root["notify"]) {
    out->notify_enabled = true;
    ParseNotify(root["notify"], base_dir, &c, &out->notify);
  }
  if (!out->approvals.notify_channel.empty()) {
    bool found = false;
    for (const auto& ch : out->notify.channels)
      found = found || ch.name == out->approvals.notify_channel;
    if (!found)
      c.Error(root["approvals"]["notify"]["channel"], "approvals.notify.channel",
              "no channel `" + out->approvals.notify_channel + "` under notify.channels",
              "define it: notify: { channels: { " + out->approvals.notify_channel +
                  ": { url: https://... } } }");
  }
  // Credentials never reach the audit: every upstream env value is a secret to scrub.
  for (const auto& u : out->upstreams)
    for (const auto& [k, v] : u.env)
      if (!v.empty()) out->audit.options.secrets.push_back(v);
  for (const auto& u : out->upstreams)  // and every HTTP upstream header value
    for (const auto& [k, v] : u.headers)
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
