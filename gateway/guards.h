// guards.h -- the protections of the tools/call pipeline that every session of one gateway
// process shares (ARCHITECTURE.md, "The request pipeline"; docs/governance.md): the kill
// switch, tool pinning against writ.lock and the poisoning scanner, intent classification,
// DLP of arguments and results, rate limits, human approval, circuit breakers, scrubbing of
// upstream secrets, notifications. Entry point: BuildGuards (from the config, in `writ
// serve`); the Proxy reads it through ProxyOptions::guards. A null Guards (unit tests, the
// quickstart without governance config) means: the annotation-only intent, no DLP, no limits,
// approvals held without a store.
//
// Thread safety: a Guards is built once and then only read (the scrubber inside `scrub` is
// swapped atomically on credential rotation); every member is itself safe to use from any
// thread (see each header).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/breaker.h"
#include "gateway/config.h"
#include "gateway/dlp.h"
#include "gateway/intent.h"
#include "gateway/ratelimit.h"
#include "gateway/secrets.h"
#include "gateway/tool_integrity.h"

namespace writ::gateway {

class Governance;

struct Guards {
  std::shared_ptr<const IntentClassifier> intent;  // never null after BuildGuards
  std::shared_ptr<const DlpScanner> dlp;           // null: no `dlp:` section
  // Null: no upstream secrets. Swapped on credential rotation (gateway/rotation.h).
  std::shared_ptr<ScrubberHolder> scrub;
  std::shared_ptr<RateLimiter> rate;               // never null after BuildGuards
  std::shared_ptr<BreakerRegistry> breakers;       // never null after BuildGuards
  std::shared_ptr<const Lockfile> lock;            // null: no `lock:` section
  LockAction on_drift = LockAction::kHide;  // changed tools (rug pull)
  LockAction on_new = LockAction::kHide;    // tools the lockfile does not know
  // Approvals, kill switch and notifier (gateway/governance.h); owned by `writ serve`, which
  // outlives every session. Null: none of them.
  Governance* governance = nullptr;
  int64_t approval_wait_ms = 30000;      // how long a held call waits before answering
  int64_t approval_default_ttl_ms = 15 * 60 * 1000;
  std::function<int64_t()> now_ms;       // wall clock in ms (tests inject one)
};

// Resolves every `${secret:NAME}` of the upstreams (gateway/secrets.h) in place, fills
// *secrets with the (NAME, value) pairs to scrub, and adds the values to the audit's secrets.
// Call before the audit log is opened and the upstreams start. False with *errors (each
// located, with a help: line).
bool ResolveSecrets(Config* config, std::vector<std::pair<std::string, std::string>>* secrets,
                    std::string* errors);

// Builds the guards for `config` (after ResolveSecrets and StartGovernance; `governance` may be
// null). False with *error (lowercase, with a help: line) when a part cannot be built (e.g. an
// unreadable lockfile).
bool BuildGuards(const Config& config,
                 const std::vector<std::pair<std::string, std::string>>& secrets,
                 Governance* governance, Guards* out, std::string* error);

}  // namespace writ::gateway
