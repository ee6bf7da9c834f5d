// rotation.cc -- see rotation.h.
#include "gateway/rotation.h"

#include <algorithm>
#include <map>

#include "gateway/log.h"

namespace writ::gateway {

SecretRotator::SecretRotator(Config raw, std::vector<UpstreamConfig> resolved,
                             std::vector<std::pair<std::string, std::string>> secrets,
                             std::shared_ptr<ScrubberHolder> scrub,
                             std::shared_ptr<AuditLog> audit)
    : raw_(std::move(raw)),
      scrub_(std::move(scrub)),
      audit_(std::move(audit)),
      current_(std::move(resolved)),
      secrets_(std::move(secrets)),
      scrubbed_(secrets_) {}

bool SecretRotator::enabled() const {
  return !raw_.secrets.file.empty() || !raw_.secrets.refs.empty();
}

RotationResult SecretRotator::Rotate(const std::string& trigger) {
  std::lock_guard<std::mutex> lock(mu_);
  RotationResult res;
  auto audit = [&](const std::string& result, const std::string& error) {
    if (audit_ == nullptr) return;
    AuditReload r;
    r.trigger = "secrets";
    r.result = result;
    r.error = error.substr(0, 4096);
    audit_->AppendReload(r);
  };
  // A fresh store: the current values stay untouched unless everything below succeeds.
  std::string error;
  std::unique_ptr<SecretStore> store = SecretStore::Open(raw_.secrets, &error);
  ResolvedUpstreams resolved;
  if (store == nullptr) {
    res.error = "secrets: " + error;
  } else if (!ResolveUpstreamSecrets(raw_, *store, &resolved, &error)) {
    res.error = error;
  }
  if (!res.error.empty()) {
    while (!res.error.empty() && res.error.back() == '\n') res.error.pop_back();
    LogError("credential rotation failed; the current credentials stay",
             {{"trigger", trigger}, {"error", res.error}});
    audit("failed", res.error);
    return res;
  }
  std::map<std::string, std::string> before(secrets_.begin(), secrets_.end());
  std::map<std::string, std::string> after(resolved.secrets.begin(), resolved.secrets.end());
  for (const auto& [name, value] : after) {
    auto it = before.find(name);
    if (it == before.end() || it->second != value) res.changed_secrets.push_back(name);
  }
  for (const auto& [name, value] : before)
    if (after.count(name) == 0) res.changed_secrets.push_back(name);
  for (size_t i = 0; i < resolved.upstreams.size() && i < current_.size(); ++i)
    if (resolved.upstreams[i].env != current_[i].env ||
        resolved.upstreams[i].headers != current_[i].headers)
      res.changed_upstreams.push_back(i);
  // Scrub old and new values: output produced with an old credential may still be in flight.
  std::vector<std::string> added;
  for (const auto& p : resolved.secrets)
    if (std::find(scrubbed_.begin(), scrubbed_.end(), p) == scrubbed_.end()) {
      scrubbed_.push_back(p);
      added.push_back(p.second);
    }
  if (!added.empty()) {
    if (scrub_ != nullptr) scrub_->Set(std::make_shared<const SecretScrubber>(scrubbed_));
    if (audit_ != nullptr) audit_->AddSecrets(added);
  }
  secrets_ = std::move(resolved.secrets);
  current_ = resolved.upstreams;
  res.upstreams = std::move(resolved.upstreams);
  res.ok = true;
  nlohmann::json names = res.changed_secrets;
  nlohmann::json ups = nlohmann::json::array();
  for (size_t i : res.changed_upstreams) ups.push_back(res.upstreams[i].name);
  LogInfo(res.changed_secrets.empty() ? "credential rotation: no secret changed"
                                      : "credential rotation: secrets changed",
          {{"trigger", trigger}, {"secrets", names}, {"upstreams", ups}});
  audit("ok", "");
  return res;
}

}  // namespace writ::gateway
