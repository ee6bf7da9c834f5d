// config_upstreams.cc -- the configuration sections about who calls and what is called:
// stdio_principal, upstreams (stdio `command:` and Streamable HTTP `url:` forms, with restart
// and breaker), breaker defaults, secrets and ${secret:NAME} references, intent, lock. Entry
// points: the Parse* functions declared in config_internal.h, called by ParseConfig.
#include <algorithm>
#include <cctype>
#include <string_view>

#include "gateway/config_internal.h"
#include "gateway/secrets.h"
#include "runtime/request.h"

namespace writ::gateway::config_internal {
namespace {

bool ValidUpstreamName(const std::string& s) {
  if (s.empty() || s.size() > 64 || s.find("__") != std::string::npos) return false;
  for (char ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  }
  return s.front() != '_' && s.back() != '_';
}

// `keep_alive:` of a `url:` upstream: the connection pool (docs/gateway.md, "Streamable
// HTTP upstreams").
void ParseKeepAlive(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u) {
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping", "e.g. keep_alive: { pool_size: 4, idle_timeout: 15s }");
    return;
  }
  c->Keys(n, k + ".", {"pool_size", "idle_timeout"});
  long long v = 0;
  if (n["pool_size"] && c->Int(n["pool_size"], k + ".pool_size", 0, 256, &v))
    u->keep_alive_pool_size = static_cast<int>(v);
  if (n["idle_timeout"] && LongDuration(n["idle_timeout"], c, k + ".idle_timeout", 3600000, &v))
    u->keep_alive_idle_timeout_ms = static_cast<int>(v);
}

// The `url:` form of an upstream: url, headers, tls, keep_alive (docs/gateway.md).
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
  if (n["keep_alive"]) ParseKeepAlive(n["keep_alive"], k + ".keep_alive", c, u);
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

}  // namespace

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

void ParseUpstream(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u,
                   const BreakerOptions& breaker_defaults) {
  u->breaker = breaker_defaults;
  if (!n.IsMap()) {
    c->Error(n, k, "expected a mapping", "e.g. `- { name: fs, command: npx, args: [...] }`");
    return;
  }
  c->Keys(n, k + ".", {"name", "command", "args", "env", "breaker", "url", "headers", "tls",
                       "restart", "keep_alive"});
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
  for (const char* http_key : {"headers", "tls", "keep_alive"}) {
    if (n[http_key])
      c->Error(n[http_key], k + "." + http_key, "only for an upstream with `url:`",
               "`headers`, `tls` and `keep_alive` configure a Streamable HTTP upstream; a "
               "`command:` upstream takes `env`");
  }
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

}  // namespace writ::gateway::config_internal
