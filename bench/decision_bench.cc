// decision_bench.cc -- the back end and the runtime, measured: compile time, bundle size,
// load (verify) time, and decision latency p50/p99 over generated policy sets of 10, 100,
// 1,000 and 10,000 statements (bench/policy_gen), once with one fixed tool catalog and once
// with the catalog growing with the policy set. Prints two tables, then Google Benchmark's
// mean per decision (scaled catalog, targeted mix).
//
// Two request mixes (bench/policy_gen.h GenerateRequest): *targeted* (90% of requests call a
// tool some permit grants, by a principal with that permit's role; the rest uniform) is the
// headline figure; *uniform* (tool and roles drawn from the whole catalog whatever the policy
// set says, the mix of earlier versions) is reported beside it.
//
// Latency method: 2,000 distinct generated requests per mix are prepared once; each is
// evaluated 64 times in a row and its time per decision is the mean of those 64 (which
// amortizes the clock's own cost); p50 and p99 are taken over the 2,000 requests.
//
// For profiling one configuration: WRIT_BENCH_SIZES=10,10000 measures only those sizes and
// WRIT_BENCH_CATALOG=fixed|scaled only that table (both default to everything).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "bench/policy_gen.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "runtime/evaluator.h"

namespace {

using Clock = std::chrono::steady_clock;
using writ::runtime::Bundle;

struct Requests {
  std::vector<nlohmann::json> docs;
  std::vector<writ::runtime::PreparedRequest> prepared;
};

struct Fixture {
  std::shared_ptr<const Bundle> bundle;
  Requests targeted, uniform;
  size_t bytes = 0;
  double compile_ms = 0, load_ms = 0;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

Fixture& Get(int n, int tenants) {
  static std::map<std::pair<int, int>, Fixture> cache;
  auto it = cache.find({n, tenants});
  if (it != cache.end()) return it->second;
  Fixture& f = cache[{n, tenants}];
  writ::bench::PolicyGrants grants;
  std::string text =
      writ::bench::GeneratePolicySet(writ::bench::PolicyGenOptions{n, 1, tenants}, &grants);
  writ::FrontEnd fe = writ::RunFrontEndOnText("gen.writ", text);
  if (fe.diags.has_errors()) {
    std::fprintf(stderr, "generated policies do not check:\n%s",
                 writ::Render(fe.sources, fe.diags.items(), writ::DiagnosticFormat::kText).c_str());
    std::exit(1);
  }
  writ::CompileResult r;
  writ::Diagnostics d;
  auto t0 = Clock::now();
  if (!writ::Compile(fe.sources, fe.policies, writ::CompileOptions{}, &r, &d)) std::exit(1);
  f.compile_ms = Ms(Clock::now() - t0);
  f.bytes = r.bytes.size();
  std::string error;
  const int loads = n >= 10000 ? 3 : 20;
  t0 = Clock::now();
  for (int i = 0; i < loads; ++i) f.bundle = Bundle::Load(r.bytes, &error);
  f.load_ms = Ms(Clock::now() - t0) / loads;
  if (f.bundle == nullptr) {
    std::fprintf(stderr, "bundle does not load: %s\n", error.c_str());
    std::exit(1);
  }
  const int kRequests = 2000;
  for (Requests* rs : {&f.targeted, &f.uniform}) {
    const writ::bench::PolicyGrants* g = rs == &f.targeted ? &grants : nullptr;
    rs->docs.reserve(kRequests);
    for (int i = 0; i < kRequests; ++i) {
      rs->docs.push_back(nlohmann::json::parse(writ::bench::GenerateRequest(i, tenants, g)));
    }
    rs->prepared.resize(kRequests);
    for (int i = 0; i < kRequests; ++i) {
      if (!writ::runtime::PrepareRequest(*f.bundle, rs->docs[i], &rs->prepared[i], &error)) {
        std::fprintf(stderr, "request does not prepare: %s\n", error.c_str());
        std::exit(1);
      }
    }
  }
  return f;
}

struct Latency {
  double p50 = 0, p99 = 0, mean = 0, prep_p50 = 0;
  size_t not_denied = 0;
};

Latency Measure(const Bundle& bundle, const Requests& rs) {
  std::vector<double> per, prep;
  Latency out;
  for (size_t i = 0; i < rs.prepared.size(); ++i) {
    auto t0 = Clock::now();
    writ::runtime::Decision dec;
    for (int k = 0; k < 64; ++k) {
      dec = writ::runtime::Evaluate(bundle, rs.prepared[i]);
      benchmark::DoNotOptimize(dec);
    }
    per.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / 64);
    out.not_denied += dec.effect != writ::runtime::Effect::kDeny;
    writ::runtime::PreparedRequest tmp;
    std::string error;
    t0 = Clock::now();
    writ::runtime::PrepareRequest(bundle, rs.docs[i], &tmp, &error);
    prep.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  std::sort(per.begin(), per.end());
  std::sort(prep.begin(), prep.end());
  for (double x : per) out.mean += x;
  out.mean /= per.size();
  out.p50 = per[per.size() / 2];
  out.p99 = per[per.size() * 99 / 100];
  out.prep_p50 = prep[prep.size() / 2];
  return out;
}

// The sizes to measure: WRIT_BENCH_SIZES (comma-separated) or all four.
std::vector<int> Sizes() {
  std::vector<int> out;
  if (const char* env = std::getenv("WRIT_BENCH_SIZES")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) out.push_back(std::atoi(item.c_str()));
    }
  }
  if (out.empty()) out = {10, 100, 1000, 10000};
  return out;
}

// Whether to print the table of this catalog shape (WRIT_BENCH_CATALOG=fixed|scaled).
bool CatalogWanted(bool scaled) {
  const char* env = std::getenv("WRIT_BENCH_CATALOG");
  if (env == nullptr || *env == 0) return true;
  return std::string(env) == (scaled ? "scaled" : "fixed");
}

void PrintTable(bool scaled) {
  if (!CatalogWanted(scaled)) return;
  std::printf("\n%s\n", scaled ? "catalog scaled with the policy set (1 tenant = 24 tools per 500 statements):"
                                 : "one fixed catalog (24 tools on 15 servers) at every size:");
  std::printf("%10s %6s %11s %10s %8s | %27s | %27s | %11s\n", "", "", "", "", "",
              "targeted mix (headline)", "uniform mix (before)", "");
  std::printf("%10s %6s %11s %10s %8s | %6s %6s %6s %7s | %6s %6s %6s %7s | %11s\n", "statements",
              "tools", "compile_ms", "bundle_kb", "load_ms", "p50_ns", "p99_ns", "mean", "allowed",
              "p50_ns", "p99_ns", "mean", "allowed", "prep_p50_ns");
  for (int n : Sizes()) {
    const int tenants = scaled ? writ::bench::ScaledTenants(n) : 1;
    Fixture& f = Get(n, tenants);
    const Latency t = Measure(*f.bundle, f.targeted);
    const Latency u = Measure(*f.bundle, f.uniform);
    std::printf("%10d %6d %11.1f %10.1f %8.2f | %6.0f %6.0f %6.0f %7zu | %6.0f %6.0f %6.0f %7zu"
                " | %11.0f\n",
                n, 24 * tenants, f.compile_ms, f.bytes / 1024.0, f.load_ms, t.p50, t.p99, t.mean,
                t.not_denied, u.p50, u.p99, u.mean, u.not_denied, t.prep_p50);
  }
  std::printf("(allowed: requests of 2,000 not denied, i.e. allow or require_approval)\n");
  std::fflush(stdout);
}

void BM_Evaluate(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Fixture& f = Get(n, writ::bench::ScaledTenants(n));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writ::runtime::Evaluate(*f.bundle, f.targeted.prepared[i]));
    if (++i == f.targeted.prepared.size()) i = 0;
  }
}
BENCHMARK(BM_Evaluate)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace

int main(int argc, char** argv) {
  PrintTable(false);
  PrintTable(true);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
