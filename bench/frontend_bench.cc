// frontend_bench.cc -- the front end (parse + type check) over generated policy sets of
// 10 to 10,000 statements. Target: 10,000 statements in under 1 s. Results: docs/performance.md.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "bench/policy_gen.h"
#include "compiler/frontend.h"

namespace {

void BM_FrontEnd(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string text = writ::bench::GeneratePolicySet(n, /*seed=*/42);
  {
    writ::FrontEnd fe = writ::RunFrontEndOnText("generated.writ", text);
    if (fe.diags.has_errors() || fe.policies.AllStatements().size() != static_cast<size_t>(n)) {
      state.SkipWithError("generated policy set does not check cleanly");
      return;
    }
  }
  for (auto _ : state) {
    writ::FrontEnd fe = writ::RunFrontEndOnText("generated.writ", text);
    benchmark::DoNotOptimize(fe.policies.files.data());
  }
  state.counters["statements"] = n;
  state.counters["bytes"] = static_cast<double>(text.size());
  state.counters["stmts/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FrontEnd)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
