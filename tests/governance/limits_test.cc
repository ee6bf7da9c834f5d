// Rate limiter (gateway/ratelimit.h) and circuit breaker (gateway/breaker.h), driven by an
// injected millisecond clock.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gateway/breaker.h"
#include "gateway/ratelimit.h"

using namespace writ::gateway;

TEST_CASE("token bucket: burst, refill, retry-after") {
  RateLimiter rl;
  int64_t t = 1000;
  // 3 per 3000 ms: a burst of 3, then one token per 1000 ms.
  for (int i = 0; i < 3; ++i) {
    RateLimitResult r = rl.Take("User::\"alice\"", 3, 3000, t);
    CHECK(r.allowed);
    CHECK(r.remaining == 2 - i);
  }
  RateLimitResult r = rl.Take("User::\"alice\"", 3, 3000, t);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after_ms == 1000);
  r = rl.Take("User::\"alice\"", 3, 3000, t + 400);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after_ms == 600);
  CHECK(rl.Take("User::\"alice\"", 3, 3000, t + 1000).allowed);
  CHECK_FALSE(rl.Take("User::\"alice\"", 3, 3000, t + 1000).allowed);
  // Long idle: full again, never more than `limit`.
  for (int i = 0; i < 3; ++i) CHECK(rl.Take("User::\"alice\"", 3, 3000, t + 1000000).allowed);
  CHECK_FALSE(rl.Take("User::\"alice\"", 3, 3000, t + 1000000).allowed);
}

TEST_CASE("token bucket: keys and (limit, per) are separate buckets") {
  RateLimiter rl;
  CHECK(rl.Take("a", 1, 60000, 0).allowed);
  CHECK_FALSE(rl.Take("a", 1, 60000, 0).allowed);
  CHECK(rl.Take("b", 1, 60000, 0).allowed);
  CHECK(rl.Take("a", 1, 1000, 0).allowed);  // another rule with the same key
  CHECK(rl.size() == 3);
}

TEST_CASE("token bucket: a clock going back and malformed limits") {
  RateLimiter rl;
  CHECK(rl.Take("k", 1, 1000, 5000).allowed);
  CHECK_FALSE(rl.Take("k", 1, 1000, 1000).allowed);  // no refill from the past
  CHECK(rl.Take("k", 1, 1000, 6000).allowed);
  RateLimitResult r = rl.Take("k", 0, 1000, 0);
  CHECK_FALSE(r.allowed);
  CHECK(r.retry_after_ms > 0);
  CHECK_FALSE(rl.Take("k", 5, 0, 0).allowed);
  CHECK_FALSE(rl.Take("k", -1, 1000, 0).allowed);
  // Huge values do not overflow.
  CHECK(rl.Take("big", INT64_MAX / 2, INT64_MAX / 2, 0).allowed);
  CHECK(rl.Take("big", INT64_MAX / 2, INT64_MAX / 2, INT64_MAX / 4).allowed);
}

TEST_CASE("token bucket: bounded memory, full buckets evicted, fail closed when full") {
  RateLimiterOptions o;
  o.max_keys = 16;  // one per shard
  RateLimiter rl(o);
  int64_t t = 0;
  int denied_full = 0;
  std::string blocked_key;
  for (int i = 0; i < 200; ++i) {
    RateLimitResult r = rl.Take("k" + std::to_string(i), 10, 10000, t);
    if (!r.allowed) {
      CHECK(r.table_full);
      CHECK(r.retry_after_ms == 1000);  // one token back in 1000 ms: that bucket is then full
      ++denied_full;
      if (blocked_key.empty()) blocked_key = "k" + std::to_string(i);
    }
  }
  CHECK(rl.size() <= 16);
  CHECK(denied_full > 0);
  // Once the buckets have refilled they are evicted and new keys get in.
  RateLimitResult r = rl.Take(blocked_key, 10, 10000, t + 1000);
  CHECK(r.allowed);
  CHECK(rl.size() <= 16);
  // Long keys are hashed, not stored whole.
  std::string long_key(10000, 'x');
  CHECK(rl.Take(long_key, 1, 1000, t + 5000).allowed);
  CHECK_FALSE(rl.Take(long_key, 1, 1000, t + 5000).allowed);
}

TEST_CASE("token bucket: concurrent takes never exceed the limit") {
  RateLimiter rl;
  std::atomic<int> allowed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 1000; ++k)
        if (rl.Take("shared", 100, 60000, 0).allowed) ++allowed;
    });
  for (auto& t : ts) t.join();
  CHECK(allowed.load() == 100);
}

TEST_CASE("breaker: closed -> open after N consecutive failures") {
  BreakerOptions o;
  o.failure_threshold = 3;
  o.cool_down_ms = 10000;
  o.half_open_probes = 1;
  CircuitBreaker b(o);
  CHECK(b.State(0) == BreakerState::kClosed);
  b.OnFailure(0);
  b.OnFailure(1);
  b.OnSuccess(2);  // resets the count: failures must be consecutive
  b.OnFailure(3);
  b.OnFailure(4);
  CHECK(b.State(4) == BreakerState::kClosed);
  b.OnFailure(5);
  CHECK(b.State(5) == BreakerState::kOpen);
  CHECK(std::string(BreakerStateName(b.State(5))) == "open");
  CircuitBreaker::Admission a = b.Allow(6);
  CHECK_FALSE(a.allowed);
  CHECK(a.retry_after_ms == 9999);
  // Stale results while open are ignored.
  b.OnSuccess(7);
  CHECK(b.State(7) == BreakerState::kOpen);
  CHECK(b.Snapshot(7).opened_total == 1);
  CHECK(b.Snapshot(7).rejected_total == 1);
}

TEST_CASE("breaker: half-open lets K probes through; success closes, failure reopens") {
  BreakerOptions o;
  o.failure_threshold = 1;
  o.cool_down_ms = 1000;
  o.half_open_probes = 2;
  CircuitBreaker b(o);
  b.OnFailure(0);
  CHECK(b.State(999) == BreakerState::kOpen);
  CHECK(b.State(1000) == BreakerState::kHalfOpen);
  CHECK(std::string(BreakerStateName(BreakerState::kHalfOpen)) == "half_open");
  CircuitBreaker::Admission p1 = b.Allow(1000), p2 = b.Allow(1000), p3 = b.Allow(1000);
  CHECK(p1.allowed);
  CHECK(p1.probe);
  CHECK(p2.allowed);
  CHECK_FALSE(p3.allowed);
  CHECK(p3.retry_after_ms > 0);
  b.OnAbandon(p2);  // a cancelled probe frees its slot
  CHECK(b.Allow(1001).allowed);
  b.OnFailure(1002);  // a probe failed: open again for a full cool-down
  CHECK(b.State(1002) == BreakerState::kOpen);
  CHECK_FALSE(b.Allow(2001).allowed);
  CHECK(b.Allow(2002).allowed);  // half-open again
  b.OnSuccess(2003);
  CHECK(b.State(2003) == BreakerState::kClosed);
  CHECK(b.Allow(2004).allowed);
  CHECK(b.Snapshot(2004).opened_total == 2);
}

TEST_CASE("breaker: disabled admits everything; registry uses per-upstream options") {
  BreakerOptions off;
  off.enabled = false;
  off.failure_threshold = 1;
  CircuitBreaker b(off);
  for (int i = 0; i < 10; ++i) b.OnFailure(i);
  CHECK(b.Allow(10).allowed);
  BreakerOptions def;
  def.failure_threshold = 2;
  BreakerOptions strict;
  strict.failure_threshold = 1;
  BreakerRegistry reg(def, {{"db", strict}});
  reg.For("db").OnFailure(0);
  reg.For("fs").OnFailure(0);
  CHECK(reg.For("db").State(0) == BreakerState::kOpen);
  CHECK(reg.For("fs").State(0) == BreakerState::kClosed);
  CHECK(&reg.For("db") == &reg.For("db"));
  auto all = reg.SnapshotAll(0);
  CHECK(all.size() == 2);
  CHECK(all["db"].state == BreakerState::kOpen);
  CHECK(all["fs"].consecutive_failures == 1);
}
