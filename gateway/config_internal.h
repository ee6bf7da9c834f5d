// config_internal.h -- what the files that parse the gateway configuration share: the error
// collector (Checker), YAML value helpers, and one parser per top-level section. Internal: only
// gateway/config*.cc include it; the public entry points are ParseConfig / LoadConfig
// (config.h).
//
// Where each part lives:
//   config.cc             ParseConfig, LoadConfig: the top-level keys and cross-section checks
//   config_yaml.cc        YAML helpers: ToJson, Resolve, Duration, LongDuration, Choice,
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

namespace writ::gateway::config_internal {

// Collects located errors ("file:line:col: key: message" plus a "help:" line) and validates
// scalar values. Not thread-safe: one per ParseConfig call.
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
// become those; quoted scalars stay strings. Errors past 32 levels of nesting.
nlohmann::json ToJson(const YAML::Node& n, Checker* c, const std::string& key, int depth);

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
