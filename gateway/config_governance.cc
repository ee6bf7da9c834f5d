// config_governance.cc -- the configuration sections of human oversight (docs/approvals.md):
// approvals, admin (the admin API listener and its token), killswitch, notify (webhook
// channels). Entry points: the Parse* functions declared in config_internal.h, called by
// ParseConfig, which also checks that approvals.notify.channel names a notify channel.
#include <cctype>

#include "gateway/admin_server.h"
#include "gateway/config_internal.h"
#include "gateway/http_url.h"

namespace writ::gateway::config_internal {
namespace {

bool IsLoopbackHost(const std::string& h) {
  return h == "127.0.0.1" || h == "::1" || h == "localhost" || h.rfind("127.", 0) == 0;
}

}  // namespace

void ParseApprovals(const YAML::Node& n, const std::string& base_dir, Checker* c,
                    ApprovalsConfig* a) {
  a->enabled = true;
  if (!n.IsMap()) {
    c->Error(n, "approvals", "expected a mapping",
             "e.g. approvals: { db: /var/lib/writ/state.db, wait: 30s, default_timeout: 15m }");
    return;
  }
  c->Keys(n, "approvals.", {"db", "wait", "default_timeout", "notify"});
  RequiredPath(n, "db", "approvals.db", base_dir, "where pending approvals are kept (SQLite)",
               "/var/lib/writ/state.db", c, &a->db);
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

}  // namespace writ::gateway::config_internal
