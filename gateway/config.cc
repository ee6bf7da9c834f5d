// config.cc -- see config.h. Entry points: ParseConfig and LoadConfig; this file reads the
// top-level keys and runs the checks that span sections. The section parsers and YAML helpers
// are in config_yaml.cc, config_upstreams.cc, config_sections.cc and config_governance.cc
// (config_internal.h says which is where). yaml-cpp throws on syntax errors; that is caught
// here and turned into a located error like every other (config loading is not on the request
// path).
#include "gateway/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "base/source.h"
#include "gateway/config_internal.h"
#include "gateway/identity.h"

namespace writ::gateway {

using config_internal::Checker;
using config_internal::ParseAdmin;
using config_internal::ParseApprovals;
using config_internal::ParseAudit;
using config_internal::ParseBreaker;
using config_internal::ParseDlp;
using config_internal::ParseHttp;
using config_internal::ParseIntent;
using config_internal::ParseKillSwitch;
using config_internal::ParseLimits;
using config_internal::ParseLock;
using config_internal::ParseLog;
using config_internal::ParseNotify;
using config_internal::ParsePrincipal;
using config_internal::ParseRecord;
using config_internal::ParseReload;
using config_internal::ParseSecrets;
using config_internal::ParseShutdown;
using config_internal::ParseUpstream;
using config_internal::Resolve;
using config_internal::ToJson;

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
