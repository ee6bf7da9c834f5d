// breaker.h -- a circuit breaker per upstream (docs/limits.md). Entry points:
// CircuitBreaker::Allow before forwarding a call, OnSuccess / OnFailure / OnAbandon when it
// ends; BreakerRegistry holds one breaker per upstream name.
//
//   closed --N consecutive failures--> open --cool_down--> half_open
//   half_open: up to K calls (probes) go through, the rest are rejected;
//              a success closes, a failure opens again for another cool_down.
//
//   Admission a = breaker->Allow(now_ms);
//   if (!a.allowed) reply "upstream X unavailable (circuit open); retry after a.retry_after_ms";
//   ... forward ...; on reply: breaker->OnSuccess(now_ms) or OnFailure(now_ms) (an error
//   from the transport, a crash or a timeout -- not a JSON-RPC error the tool returned on
//   purpose; the caller decides what counts); on a client cancel: OnAbandon(a).
//
// Results of calls admitted before the breaker opened are ignored while it is open. In
// half-open, a result that arrives from a call admitted earlier (while closed) counts like a
// probe's: it is fresh evidence about the upstream.
//
// Thread safety: all methods may be called from any thread (one mutex per breaker). The clock
// is the caller's (tests inject one).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace writ::gateway {

struct BreakerOptions {
  int failure_threshold = 5;     // consecutive failures (or timeouts) that open the breaker
  int64_t cool_down_ms = 30000;  // how long it stays open before probing
  int half_open_probes = 1;      // calls let through at once while half-open
  bool enabled = true;           // false: Allow always admits (breaker: { enabled: false })
};

enum class BreakerState { kClosed, kOpen, kHalfOpen };
// "closed", "open", "half_open" (metric label values).
const char* BreakerStateName(BreakerState s);

class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerOptions opts = {});

  struct Admission {
    bool allowed = false;
    bool probe = false;          // admitted as a half-open probe
    int64_t retry_after_ms = 0;  // when rejected: until the next probe may go (>= 1)
  };
  Admission Allow(int64_t now_ms);
  void OnSuccess(int64_t now_ms);
  void OnFailure(int64_t now_ms);
  // The call ended with no verdict on the upstream (cancelled by the client): frees its
  // probe slot if it was a probe.
  void OnAbandon(const Admission& a);

  // The state at `now_ms` (open turns half-open once the cool-down has passed).
  BreakerState State(int64_t now_ms);

  struct Stats {
    BreakerState state = BreakerState::kClosed;
    int consecutive_failures = 0;
    int64_t opened_total = 0;    // times it opened
    int64_t rejected_total = 0;  // calls refused
  };
  Stats Snapshot(int64_t now_ms);

 private:
  void Open(int64_t now_ms);     // REQUIRES: mu_ held
  void Advance(int64_t now_ms);  // open -> half_open after the cool-down; REQUIRES: mu_ held

  const BreakerOptions opts_;
  std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;
  int failures_ = 0;
  int64_t open_until_ms_ = 0;
  int probes_in_flight_ = 0;
  int64_t opened_total_ = 0, rejected_total_ = 0;
};

// One breaker per upstream name, created on first use with that upstream's options (or the
// defaults). Thread safety: any thread; breakers live as long as the registry.
class BreakerRegistry {
 public:
  explicit BreakerRegistry(BreakerOptions defaults = {},
                           std::map<std::string, BreakerOptions> per_upstream = {});
  CircuitBreaker& For(const std::string& upstream);
  // name -> snapshot, for metrics.
  std::map<std::string, CircuitBreaker::Stats> SnapshotAll(int64_t now_ms);

 private:
  BreakerOptions defaults_;
  std::map<std::string, BreakerOptions> per_upstream_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<CircuitBreaker>> breakers_;
};

}  // namespace writ::gateway
