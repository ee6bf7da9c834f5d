// config_internal.h -- what the files that parse the gateway configuration share: the error
// collector (Checker), YAML value helpers, and one parser per top-level section. Internal: only
// gateway/config*.cc include it; the public entry points are ParseConfig / LoadConfig
// (config.h).
//
// Where each part lives:
//   config.cc             ParseConfig, LoadConfig: the top-level keys and cross-section checks
//   yaml_check.cc         the Checker (YamlChecker) and ToJson (YamlToJson), shared with
//                         `writ test` files
//   config_yaml.cc        YAML helpers: Resolve, Duration, LongDuration, Choice,
//                         ParseListen; and DidYouMean (config.h)
//   config_upstreams.cc   stdio_principal, upstreams (stdio and url:), breaker, secrets,
//                         intent, lock
//   config_sections.cc    limits, http, audit, record, dlp, reload, log, shutdown
//   config_governance.cc  approvals, admin, killswitch, notify
//
// A section parser gets the YAML value of its key and the key path for messages, fills *out
// and reports every problem to the Checker (several errors per run, never only the first).
// yaml-cpp throws only when parsing text, which ParseConfig catches; nothing here throws.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/config.h"
#include "gateway/yaml_check.h"

namespace writ::gateway::config_internal {

// The error collector and value checks (yaml_check.h).
using Checker = YamlChecker;

// YAML -> JSON for principal attributes and other user values (yaml_check.h).
inline nlohmann::json ToJson(const YAML::Node& n, Checker* c, const std::string& key,
                             int depth) {
  return YamlToJson(n, c, key, depth);
}

// `p` relative to `base_dir` (the config file's directory); absolute or empty `p` unchanged.
std::string Resolve(const std::string& base_dir, const std::string& p);

// A duration: an integer of milliseconds, or a number with `ms` or `s` (e.g. 500ms, 1s), from
// 1 ms to 1 h.
bool Duration(const YAML::Node& n, Checker* c, const std::string& key, long long* ms);

// A duration with a unit: ms, s, m or h (e.g. 30s, 15m, 24h); a plain integer is ms. Between
// 1 ms and `max_ms`.
bool LongDuration(const YAML::Node& n, Checker* c, const std::string& key, long long max_ms,
                  long long* ms);

// The required file path `n[field]` (`key` is its key path): missing, not a string or empty
// is an error; the path is resolved against `base_dir`. Help lines: "<purpose>, e.g.
// `<field>: <example>`" and "a file path, e.g. <example>".
void RequiredPath(const YAML::Node& n, const std::string& field, const std::string& key,
                  const std::string& base_dir, const std::string& purpose,
                  const std::string& example, Checker* c, std::string* out);

// One of `choices`; *index is set to its position.
bool Choice(const YAML::Node& n, Checker* c, const std::string& key,
            const std::vector<std::string>& choices, size_t* index);

// "HOST:PORT" or "[V6]:PORT" (a bare ":PORT" means 127.0.0.1). False if malformed; no error
// is reported (the caller names the key).
bool ParseListen(const std::string& s, std::string* host, int* port);

// config_upstreams.cc
void ParsePrincipal(const YAML::Node& n, Checker* c, PrincipalConfig* p);
// REQUIRES: `breaker_defaults` is the parsed top-level `breaker:` (or the defaults).
void ParseUpstream(const YAML::Node& n, const std::string& k, Checker* c, UpstreamConfig* u,
                   const BreakerOptions& breaker_defaults);
void ParseBreaker(const YAML::Node& n, const std::string& k, Checker* c, BreakerOptions* b);
// Takes the whole document: it also finds every ${secret:NAME} under upstreams.
void ParseSecrets(const YAML::Node& root, const std::string& name, const std::string& base_dir,
                  Checker* c, SecretsConfig* s);
// REQUIRES: `ups` are the parsed upstreams (their names are checked).
void ParseIntent(const YAML::Node& n, Checker* c, const std::vector<UpstreamConfig>& ups,
                 IntentConfig* out);
void ParseLock(const YAML::Node& n, const std::string& base_dir, Checker* c, LockConfig* l);

// config_sections.cc
void ParseLimits(const YAML::Node& n, Checker* c, LimitsConfig* l);
void ParseHttp(const YAML::Node& n, Checker* c, HttpConfig* h);
void ParseAudit(const YAML::Node& n, const std::string& base_dir, Checker* c, AuditConfig* a);
void ParseRecord(const YAML::Node& n, const std::string& base_dir, Checker* c, RecordConfig* r);
void ParseDlp(const YAML::Node& n, Checker* c, DlpConfig* d);
void ParseReload(const YAML::Node& n, Checker* c, ReloadConfig* r);
void ParseLog(const YAML::Node& n, Checker* c, LogConfig* l);
void ParseShutdown(const YAML::Node& n, Checker* c, ShutdownConfig* s);

// config_governance.cc
void ParseApprovals(const YAML::Node& n, const std::string& base_dir, Checker* c,
                    ApprovalsConfig* a);
void ParseAdmin(const YAML::Node& n, const std::string& base_dir, Checker* c, AdminConfig* a);
void ParseKillSwitch(const YAML::Node& n, const std::string& base_dir, Checker* c,
                     KillSwitchConfig* k);
void ParseNotify(const YAML::Node& n, const std::string& base_dir, Checker* c, NotifyOptions* o);

}  // namespace writ::gateway::config_internal
