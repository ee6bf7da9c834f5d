// breaker.cc -- see breaker.h.
#include "gateway/breaker.h"

#include <algorithm>

namespace writ::gateway {

const char* BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "open";
}

CircuitBreaker::CircuitBreaker(BreakerOptions opts) : opts_(opts) {}

void CircuitBreaker::Open(int64_t now_ms) {
  state_ = BreakerState::kOpen;
  open_until_ms_ = now_ms + std::max<int64_t>(1, opts_.cool_down_ms);
  probes_in_flight_ = 0;
  ++opened_total_;
}

void CircuitBreaker::Advance(int64_t now_ms) {
  if (state_ == BreakerState::kOpen && now_ms >= open_until_ms_) {
    state_ = BreakerState::kHalfOpen;
    probes_in_flight_ = 0;
  }
}

CircuitBreaker::Admission CircuitBreaker::Allow(int64_t now_ms) {
  Admission a;
  if (!opts_.enabled) {
    a.allowed = true;
    return a;
  }
  std::lock_guard<std::mutex> lock(mu_);
  Advance(now_ms);
  switch (state_) {
    case BreakerState::kClosed:
      a.allowed = true;
      return a;
    case BreakerState::kOpen:
      a.retry_after_ms = std::max<int64_t>(1, open_until_ms_ - now_ms);
      ++rejected_total_;
      return a;
    case BreakerState::kHalfOpen:
      if (probes_in_flight_ < std::max(1, opts_.half_open_probes)) {
        ++probes_in_flight_;
        a.allowed = true;
        a.probe = true;
        return a;
      }
      // The probes have not answered yet; try again shortly.
      a.retry_after_ms = std::max<int64_t>(1, std::min<int64_t>(1000, opts_.cool_down_ms));
      ++rejected_total_;
      return a;
  }
  return a;
}

void CircuitBreaker::OnSuccess(int64_t now_ms) {
  if (!opts_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  Advance(now_ms);
  if (state_ == BreakerState::kOpen) return;  // a call admitted before it opened
  state_ = BreakerState::kClosed;
  failures_ = 0;
  probes_in_flight_ = 0;
}

void CircuitBreaker::OnFailure(int64_t now_ms) {
  if (!opts_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  Advance(now_ms);
  switch (state_) {
    case BreakerState::kOpen:
      return;  // a call admitted before it opened
    case BreakerState::kHalfOpen:
      failures_ = std::max(failures_, opts_.failure_threshold);
      Open(now_ms);
      return;
    case BreakerState::kClosed:
      if (++failures_ >= std::max(1, opts_.failure_threshold)) Open(now_ms);
      return;
  }
}

void CircuitBreaker::OnAbandon(const Admission& a) {
  if (!opts_.enabled || !a.probe) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == BreakerState::kHalfOpen && probes_in_flight_ > 0) --probes_in_flight_;
}

BreakerState CircuitBreaker::State(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Advance(now_ms);
  return state_;
}

CircuitBreaker::Stats CircuitBreaker::Snapshot(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Advance(now_ms);
  return {state_, failures_, opened_total_, rejected_total_};
}

BreakerRegistry::BreakerRegistry(BreakerOptions defaults,
                                 std::map<std::string, BreakerOptions> per_upstream)
    : defaults_(defaults), per_upstream_(std::move(per_upstream)) {}

CircuitBreaker& BreakerRegistry::For(const std::string& upstream) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = breakers_.find(upstream);
  if (it == breakers_.end()) {
    auto o = per_upstream_.find(upstream);
    it = breakers_
             .emplace(upstream, std::make_unique<CircuitBreaker>(
                                    o == per_upstream_.end() ? defaults_ : o->second))
             .first;
  }
  return *it->second;
}

std::map<std::string, CircuitBreaker::Stats> BreakerRegistry::SnapshotAll(int64_t now_ms) {
  std::map<std::string, CircuitBreaker*> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, b] : breakers_) all[name] = b.get();
  }
  std::map<std::string, CircuitBreaker::Stats> out;
  for (auto& [name, b] : all) out[name] = b->Snapshot(now_ms);
  return out;
}

}  // namespace writ::gateway
