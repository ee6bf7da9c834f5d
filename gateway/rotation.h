// rotation.h -- upstream credential rotation by reload (docs/credentials.md, "Rotation").
// Entry point: SecretRotator, built by `writ serve` from the config as written (before its
// `${secret:NAME}` references were resolved); Rotate() runs on SIGHUP next to the policy reload.
//
// A rotation reads the secrets file again (and the environment, with `secrets: {env: true}`)
// and resolves every upstream's references again. Only when that succeeds does anything
// change: the scrubbers (Guards::scrub, hence the log scrubber that reads it, and the audit
// log's) are replaced by ones covering every value seen so far, old and new (old values can
// still be in flight), and the caller is told which upstreams' environments changed so it can
// restart them (UpstreamSupervisor::RestartWithEnv) without closing client sessions. A failed
// rotation (unreadable file, bad YAML, a reference no longer defined) keeps everything as it
// was and logs why. Every attempt is logged with secret names only, never values, and audited
// as a `reload` record with trigger "secrets".
//
// Thread safety: Rotate calls are serialized internally; any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gateway/audit.h"
#include "gateway/config.h"
#include "gateway/secrets.h"

namespace writ::gateway {

struct RotationResult {
  bool ok = false;
  std::string error;                          // why it failed (logged too)
  std::vector<std::string> changed_secrets;   // names whose value changed, appeared or went
  std::vector<size_t> changed_upstreams;      // indices into config.upstreams
  std::vector<UpstreamConfig> upstreams;      // every upstream, resolved with the new values
};

class SecretRotator {
 public:
  // `raw`: the config as loaded (references unresolved). `resolved` and `secrets`: what
  // ResolveSecrets produced at start. `scrub` (may be null: no secrets configured) and `audit`
  // (may be null) are updated on each successful rotation.
  SecretRotator(Config raw, std::vector<UpstreamConfig> resolved,
                std::vector<std::pair<std::string, std::string>> secrets,
                std::shared_ptr<ScrubberHolder> scrub, std::shared_ptr<AuditLog> audit);

  // Whether rotation can do anything (a secrets file or references are configured).
  bool enabled() const;

  RotationResult Rotate(const std::string& trigger);

 private:
  const Config raw_;
  std::shared_ptr<ScrubberHolder> scrub_;
  std::shared_ptr<AuditLog> audit_;
  std::mutex mu_;  // serializes Rotate; guards the members below
  std::vector<UpstreamConfig> current_;
  std::vector<std::pair<std::string, std::string>> secrets_;  // current (NAME, value)
  std::vector<std::pair<std::string, std::string>> scrubbed_;  // every value seen so far
};

}  // namespace writ::gateway
