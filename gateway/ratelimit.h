// ratelimit.h -- token buckets for the `rate_limit(key:, limit:, per:)` obligation
// (docs/semantics.md, docs/limits.md). Entry point: RateLimiter::Take.
//
//   RateLimiter limiter;                               // one per gateway, shared by sessions
//   for (const auto& o : decision["obligations"])      // after policy allowed the call
//     if (o["kind"] == "rate_limit") {
//       RateLimitResult r = limiter.Take(o["key"], o["limit"], o["per_ms"], NowMs());
//       if (!r.allowed) deny with "rate limit exceeded; retry after r.retry_after_ms ms";
//     }
//
// A bucket holds `limit` tokens and refills continuously at limit/per_ms tokens per ms; a
// call takes one. Buckets are keyed by (key, limit, per_ms), so two rules with the same key
// and different limits count separately. Arithmetic is exact (integers, no drift).
//
// Memory is bounded: a bucket that has refilled to full is indistinguishable from a missing
// one and may be evicted at any time; when `max_keys` buckets exist, full ones are evicted
// first. If every bucket is still partly drained, the new key is denied (fail closed: an
// attacker who mints keys cannot lift everyone's limits) with retry_after_ms the time until
// the first bucket becomes full and evictable. Keys longer than 256 bytes are replaced by
// their SHA-256, so a key costs at most ~300 bytes.
//
// Thread safety: all methods may be called from any thread. Keys are spread over 16 shards,
// each with its own mutex. The clock is the caller's (tests inject one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace writ::gateway {

struct RateLimitResult {
  bool allowed = false;
  int64_t retry_after_ms = 0;  // when denied: wait at least this long (>= 1); 0 when allowed
  int64_t remaining = 0;       // whole tokens left after this call
  bool table_full = false;     // denied because max_keys partly drained buckets exist
};

struct RateLimiterOptions {
  size_t max_keys = 100000;  // across all shards; at least 16
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterOptions opts = {});

  // Takes one token from the bucket (key, limit, per_ms) at time `now_ms` (any monotonic
  // millisecond clock; a clock that goes back counts as no time passing).
  // REQUIRES nothing: limit <= 0 or per_ms <= 0 (a malformed obligation) is denied with
  // retry_after_ms = 1000.
  RateLimitResult Take(std::string_view key, int64_t limit, int64_t per_ms, int64_t now_ms);

  // Number of buckets held (for metrics and tests).
  size_t size() const;

 private:
  struct Bucket {
    // Tokens scaled by per_ms: one token = per_ms units; refill = limit units per ms.
    __int128 units = 0;
    int64_t last_ms = 0;
    int64_t limit = 0, per_ms = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
    int64_t no_sweep_before_ms = INT64_MIN;  // nothing is evictable before this time
  };
  static void Refill(Bucket* b, int64_t now_ms);
  // Evicts full buckets; returns the earliest time another one becomes full.
  static int64_t Sweep(Shard* s, int64_t now_ms);

  size_t per_shard_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace writ::gateway
