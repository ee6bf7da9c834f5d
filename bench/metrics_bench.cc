// metrics_bench.cc -- cost of the gateway's metrics on the request path (gateway/metrics.h):
// a counter increment, a histogram observation (single-threaded and contended by 2 threads),
// a labelled series lookup (done once per upstream, not per call), and rendering /metrics.
#include <benchmark/benchmark.h>

#include "gateway/metrics.h"

namespace {

using writ::gateway::Counter;
using writ::gateway::Histogram;
using writ::gateway::LatencyBuckets;
using writ::gateway::Metrics;
using writ::gateway::Registry;

void BM_CounterInc(benchmark::State& state) {
  static Counter c;
  for (auto _ : state) c.Inc();
  benchmark::DoNotOptimize(c.Value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  static Histogram h(LatencyBuckets());
  double v = 0.00012 * (state.thread_index() + 1);
  for (auto _ : state) h.Observe(v);
  benchmark::DoNotOptimize(h.Count());
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

void BM_FamilyWith(benchmark::State& state) {
  Registry r;
  auto& f = r.AddCounter("x_total", "x", {"upstream"});
  for (int i = 0; i < 16; ++i) f.With({"up" + std::to_string(i)});
  std::vector<std::string> key{"up7"};
  for (auto _ : state) benchmark::DoNotOptimize(&f.With(key));
}
BENCHMARK(BM_FamilyWith);

void BM_RenderGlobal(benchmark::State& state) {
  Metrics& m = Metrics::Global();
  for (int i = 0; i < 8; ++i) {
    m.upstream_seconds().With({"up" + std::to_string(i)}).Observe(0.001);
    m.upstream_errors().With({"up" + std::to_string(i)}).Inc();
  }
  size_t bytes = 0;
  for (auto _ : state) bytes = m.Render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderGlobal);

}  // namespace

BENCHMARK_MAIN();
