// guards.cc -- building the shared protections of the tools/call pipeline from the config.
#include "gateway/guards.h"

#include <iostream>

#include "gateway/approvals.h"
#include "gateway/governance.h"

namespace writ::gateway {

bool ResolveSecrets(Config* config, std::vector<std::pair<std::string, std::string>>* secrets,
                    std::string* errors) {
  secrets->clear();
  bool any_ref = !config->secrets.refs.empty();
  if (!any_ref && config->secrets.file.empty()) return true;
  std::string error;
  std::unique_ptr<SecretStore> store = SecretStore::Open(config->secrets, &error);
  if (store == nullptr) {
    *errors = "error: secrets: " + error + "\n";
    return false;
  }
  ResolvedUpstreams resolved;
  if (!ResolveUpstreamSecrets(*config, *store, &resolved, errors)) return false;
  config->upstreams = std::move(resolved.upstreams);
  *secrets = std::move(resolved.secrets);
  // The audit never records them either (it already scrubs every literal env value).
  for (const auto& [name, value] : *secrets) config->audit.options.secrets.push_back(value);
  return true;
}

bool BuildGuards(const Config& config,
                 const std::vector<std::pair<std::string, std::string>>& secrets,
                 Governance* governance, Guards* out, std::string* error) {
  *out = Guards{};
  out->intent = std::make_shared<const IntentClassifier>(config.intent);
  // DLP always runs with the defaults unless `dlp:` narrows it: findings reach policy as
  // context.dlp.args and `redact(...)` obligations need a scanner.
  std::string e;
  std::unique_ptr<const DlpScanner> dlp = DlpScanner::Create(config.dlp, &e);
  if (dlp == nullptr) {
    *error = "error: dlp: " + e + "\nhelp: fix the `dlp:` section (docs/dlp.md)\n";
    return false;
  }
  out->dlp = std::move(dlp);
  if (!secrets.empty() || !config.secrets.file.empty()) {
    auto scrub = std::make_shared<const SecretScrubber>(secrets);
    for (const auto& name : scrub->skipped())
      std::cerr << "writ: secrets: `" << name << "` is shorter than "
                << SecretScrubber::kMinSecretBytes
                << " bytes and is not scrubbed from upstream output (docs/credentials.md)\n";
    out->scrub = std::make_shared<ScrubberHolder>(std::move(scrub));
  }
  out->rate = std::make_shared<RateLimiter>();
  std::map<std::string, BreakerOptions> per_upstream;
  for (const auto& u : config.upstreams) per_upstream[u.name] = u.breaker;
  out->breakers = std::make_shared<BreakerRegistry>(config.breaker, std::move(per_upstream));
  if (config.lock.enabled) {
    auto lock = std::make_shared<Lockfile>();
    if (!LoadLock(config.lock.file, lock.get(), &e)) {
      *error = "error: lock: " + e + "\n";
      if (e.find("help:") == std::string::npos)
        *error += "help: write it with `writ lock --config <this config>` (docs/integrity.md)\n";
      return false;
    }
    out->lock = std::move(lock);
    out->on_drift = config.lock.on_drift;
    out->on_new = config.lock.on_new;
  }
  out->governance = governance;
  out->approval_wait_ms = config.approvals.wait_ms;
  out->approval_default_ttl_ms = config.approvals.default_timeout_ms;
  out->now_ms = [] { return NowMs(); };
  return true;
}

}  // namespace writ::gateway
