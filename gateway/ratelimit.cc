// ratelimit.cc -- see ratelimit.h.
#include "gateway/ratelimit.h"

#include <algorithm>
#include <functional>

#include "gateway/audit_format.h"

namespace writ::gateway {

namespace {
constexpr size_t kShards = 16;
constexpr size_t kMaxKeyBytes = 256;
}  // namespace

RateLimiter::RateLimiter(RateLimiterOptions opts)
    : per_shard_(std::max<size_t>(1, opts.max_keys / kShards)) {
  for (size_t i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>());
}

void RateLimiter::Refill(Bucket* b, int64_t now_ms) {
  int64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
  __int128 cap = static_cast<__int128>(b->limit) * b->per_ms;
  // Past per_ms the bucket is full whatever the elapsed time: clamp so nothing overflows.
  elapsed = std::min(elapsed, b->per_ms);
  b->units = std::min(cap, b->units + static_cast<__int128>(elapsed) * b->limit);
  if (now_ms > b->last_ms) b->last_ms = now_ms;
}

int64_t RateLimiter::Sweep(Shard* s, int64_t now_ms) {
  int64_t next = INT64_MAX;
  for (auto it = s->buckets.begin(); it != s->buckets.end();) {
    Bucket& b = it->second;
    Refill(&b, now_ms);
    __int128 cap = static_cast<__int128>(b.limit) * b.per_ms;
    if (b.units >= cap) {
      it = s->buckets.erase(it);
      continue;
    }
    // ms until full: ceil((cap - units) / limit).
    __int128 need = (cap - b.units + b.limit - 1) / b.limit;
    int64_t at = now_ms + static_cast<int64_t>(std::min<__int128>(need, INT64_MAX / 2));
    next = std::min(next, at);
    ++it;
  }
  return next;
}

RateLimitResult RateLimiter::Take(std::string_view key, int64_t limit, int64_t per_ms,
                                  int64_t now_ms) {
  RateLimitResult r;
  if (limit <= 0 || per_ms <= 0) {
    r.retry_after_ms = 1000;
    return r;
  }
  std::string k;
  k.reserve(std::min(key.size(), kMaxKeyBytes) + 48);
  k += std::to_string(limit) + "/" + std::to_string(per_ms) + "|";
  if (key.size() > kMaxKeyBytes) {
    k += "sha256:" + Sha256Hex(key);
  } else {
    k.append(key);
  }
  Shard& s = *shards_[std::hash<std::string>{}(k) % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.buckets.find(k);
  if (it == s.buckets.end()) {
    if (s.buckets.size() >= per_shard_) {
      if (now_ms >= s.no_sweep_before_ms) s.no_sweep_before_ms = Sweep(&s, now_ms);
      if (s.buckets.size() >= per_shard_) {
        r.table_full = true;
        r.retry_after_ms = std::max<int64_t>(1, s.no_sweep_before_ms - now_ms);
        return r;
      }
    }
    Bucket b;
    b.limit = limit;
    b.per_ms = per_ms;
    b.units = static_cast<__int128>(limit) * per_ms;
    b.last_ms = now_ms;
    it = s.buckets.emplace(std::move(k), b).first;
    // Keep no_sweep_before_ms a lower bound on when some bucket is full again: this one is,
    // after the token taken below, in ceil(per_ms / limit) ms.
    int64_t full_at = now_ms + (per_ms + limit - 1) / limit;
    if (s.no_sweep_before_ms > full_at) s.no_sweep_before_ms = full_at;
  }
  Bucket& b = it->second;
  Refill(&b, now_ms);
  if (b.units >= per_ms) {
    b.units -= per_ms;
    r.allowed = true;
    r.remaining = static_cast<int64_t>(b.units / per_ms);
    return r;
  }
  // ms until one token: ceil((per_ms - units) / limit).
  __int128 need = (static_cast<__int128>(per_ms) - b.units + limit - 1) / limit;
  r.retry_after_ms = std::max<int64_t>(1, static_cast<int64_t>(need));
  r.remaining = 0;
  return r;
}

size_t RateLimiter::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s->mu);
    n += s->buckets.size();
  }
  return n;
}

}  // namespace writ::gateway
