// metrics.h -- the gateway's Prometheus metrics: a small registry of counters, gauges and
// fixed-bucket histograms, rendered in the Prometheus text exposition format 0.0.4.
// Entry points: Metrics::Global() (the gateway's instruments, names in docs/gateway.md,
// "Metrics") and Metrics::Render() (the text an admin listener serves on GET /metrics with
// Content-Type kMetricsContentType). Registry is the generic part, usable on its own (tests).
//
//   Metrics& m = Metrics::Global();
//   m.Decision("allow").Inc();
//   m.decision_seconds().Observe(0.00012);
//   std::string text = m.Render();
//
// Thread safety: everything may be used from any thread. Increments and observations are
// relaxed atomics (no lock); looking a labelled series up (Family::With) takes the family's
// mutex, so the request path looks series up once and keeps the reference (series live as
// long as their registry). Render() takes the family mutexes briefly; values read while
// others increment are each consistent, not a snapshot across series.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Add(int64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  void Set(int64_t n) { v_.store(n, std::memory_order_relaxed); }
  int64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Fixed buckets; an observation v lands in the first bucket whose upper bound >= v (the
// Prometheus `le` semantics), or in +Inf.
class Histogram {
 public:
  // REQUIRES: bounds strictly increasing, finite.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts, bounds().size() + 1 of them (the last is +Inf).
  std::vector<uint64_t> BucketCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds, 50 us .. 10 s.
std::vector<double> LatencyBuckets();

class Registry;

// A metric name with its label names; one series per distinct label values.
template <class T>
class Family {
 public:
  // The series for `values` (one per label name), created on first use. The reference stays
  // valid as long as the registry. REQUIRES: values.size() == label count.
  T& With(const std::vector<std::string>& values);

 private:
  friend class Registry;
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> series_;
};

class Registry {
 public:
  // REQUIRES: `name` and `labels` are valid Prometheus names ([a-zA-Z_:][a-zA-Z0-9_:]*, labels
  // without ':' and not starting with "__"), `name` not registered yet; histogram labels do
  // not include "le". Families are rendered in the order they were added.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels, std::vector<double> bounds);

  // The text exposition format 0.0.4: per family `# HELP`, `# TYPE`, then its series sorted by
  // label values; histograms as NAME_bucket{...,le="B"} (cumulative, ending with le="+Inf"),
  // NAME_sum and NAME_count. A family with no labels always has its one series.
  std::string Render() const;

 private:
  struct Entry {
    char type;  // 'c', 'g', 'h'
    Family<Counter>* counter = nullptr;
    Family<Gauge>* gauge = nullptr;
    Family<Histogram>* histogram = nullptr;
  };
  mutable std::mutex mu_;
  std::vector<Entry> order_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
};

// Escapes a label value for the text format: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view v);
// A sample value as the text format writes it: shortest round-trip decimal, +Inf, -Inf, NaN.
std::string FormatMetricValue(double v);

// The gateway's instruments (docs/gateway.md, "Metrics" lists names, types and labels).
class Metrics {
 public:
  // The process-wide instance every component records into.
  static Metrics& Global();
  Metrics();

  std::string Render() const { return registry_.Render(); }

  // writ_decisions_total{effect}: effect is allow, deny, require_approval or error (the
  // request could not be decided; the gateway denied it).
  Counter& Decision(std::string_view effect);
  // writ_decision_duration_seconds: time to prepare and evaluate one call's decision.
  Histogram& decision_seconds() { return *decision_seconds_; }
  // writ_upstream_request_duration_seconds{upstream}: forward to reply of client requests.
  Family<Histogram>& upstream_seconds() { return *upstream_seconds_; }
  // writ_upstream_errors_total{upstream}: forwarded requests answered with a JSON-RPC error
  // (the upstream's, or the gateway's because it exited or could not be written to).
  Family<Counter>& upstream_errors() { return *upstream_errors_; }
  // writ_upstream_restarts_total{upstream}: processes restarted after a crash.
  Family<Counter>& upstream_restarts() { return *upstream_restarts_; }
  // writ_sessions_active: open MCP sessions (stdio: 1 while serving).
  Gauge& sessions() { return *sessions_; }
  // writ_in_flight_calls: client requests forwarded upstream and not answered yet.
  Gauge& in_flight() { return *in_flight_; }
  // writ_policy_reloads_total{result}: ok or failed.
  Family<Counter>& reloads() { return *reloads_; }
  // writ_audit_write_failures_total: audit records that could not be written.
  Counter& audit_failures() { return *audit_failures_; }
  // Streamable HTTP upstreams' connection reuse (gateway/http_upstream.h; the same events
  // HttpUpstream::stats() counts per instance), summed over sessions, by `upstream`:
  // writ_upstream_http_connections_total: TCP connections opened (GET streams included).
  Family<Counter>& http_connections() { return *http_connections_; }
  // writ_upstream_http_reused_total: messages sent on a kept-alive connection.
  Family<Counter>& http_reused() { return *http_reused_; }
  // writ_upstream_http_resends_total: messages sent again on a fresh connection because
  // the kept-alive one turned out closed.
  Family<Counter>& http_resends() { return *http_resends_; }
  // writ_upstream_http_tls_resumptions_total: TLS handshakes that resumed a kept session.
  Family<Counter>& http_tls_resumptions() { return *http_tls_resumptions_; }

 private:
  Registry registry_;
  Counter* decisions_[4];
  Histogram* decision_seconds_;
  Family<Histogram>* upstream_seconds_;
  Family<Counter>* upstream_errors_;
  Family<Counter>* upstream_restarts_;
  Gauge* sessions_;
  Gauge* in_flight_;
  Family<Counter>* reloads_;
  Counter* audit_failures_;
  Family<Counter>* http_connections_;
  Family<Counter>* http_reused_;
  Family<Counter>* http_resends_;
  Family<Counter>* http_tls_resumptions_;
};

}  // namespace writ::gateway
