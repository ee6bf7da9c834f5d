// replay_bench.cc -- `writ replay` throughput in recorded calls per second (target >=
// 100,000/s, docs/performance.md). A generated policy set (bench/policy_gen, 100 and 1,000
// statements) decides 20,000 generated requests; their decision records are written with the
// gateway's TraceWriter (the real trace format); then the whole replay path is timed as
// `writ replay` runs it after compiling: ReadTrace (read, parse, validate every line) +
// Replay (prepare, evaluate, determining ids, compare), once against the recorded decisions
// and once with a baseline bundle (two decisions per call). Prints a table (--rows= selects
// rows), then Google Benchmark's time per replayed call (reading excluded: the request's text
// converted to JSON and decided as Replay decides it) and per phase of it.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <thread>

#include "bench/policy_gen.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "gateway/trace.h"
#include "harness/replay.h"
#include "runtime/evaluator.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kCalls = 20000;

struct Fixture {
  std::shared_ptr<const writ::runtime::Bundle> bundle;
  std::string trace;
  std::vector<writ::harness::ReplayRecord> records;
};

// `distinct`: how many different requests the kCalls records hold (request i % distinct).
Fixture& Get(int n, int distinct = kCalls) {
  static std::map<std::pair<int, int>, Fixture> cache;
  auto it = cache.find({n, distinct});
  if (it != cache.end()) return it->second;
  Fixture& f = cache[{n, distinct}];
  std::string bytes, error;
  if (!writ::CompileText("gen.writ", writ::bench::GeneratePolicySet(n), &bytes, &error)) {
    std::fprintf(stderr, "generated policies do not compile:\n%s", error.c_str());
    std::exit(1);
  }
  f.bundle = writ::runtime::Bundle::Load(bytes, &error);
  if (f.bundle == nullptr) std::exit(1);
  f.trace = (std::filesystem::temp_directory_path() /
             ("writ-replay-bench-" + std::to_string(n) + "-" + std::to_string(distinct) +
              ".jsonl"))
                .string();
  std::filesystem::remove(f.trace);
  auto writer = writ::gateway::TraceWriter::Open({f.trace, false, {}, "bench"}, &error);
  if (writer == nullptr) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::exit(1);
  }
  for (int i = 0; i < kCalls; ++i) {
    nlohmann::json req = nlohmann::json::parse(writ::bench::GenerateRequest(i % distinct));
    writ::runtime::PreparedRequest p;
    if (!writ::runtime::PrepareRequest(*f.bundle, req, &p, &error)) std::exit(1);
    auto d = writ::runtime::Evaluate(*f.bundle, p);
    writ::gateway::TraceSession who{"s-bench", req["principal"], "bench"};
    writer->Decision(who, "srv", "tools/call", req, writ::runtime::DecisionToJson(*f.bundle, p, d),
                     "id", f.bundle->source_hash_hex(), 1);
  }
  writer.reset();
  if (!writ::harness::ReadTrace(f.trace, &f.records, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::exit(1);
  }
  return f;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Best of 3 runs of read + replay (and read + replay with a baseline) with `jobs` threads:
// calls per wall second and per CPU second (the machine may be shared; CPU time is what the
// replay itself costs).
void Row(int n, int jobs, int distinct) {
  Fixture& f = Get(n, distinct);
  double mb = static_cast<double>(std::filesystem::file_size(f.trace)) / 1e6;
  double wall = 1e9, cpu = 1e9, wall_base = 1e9;
  size_t changed = 0, decided = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<writ::harness::ReplayRecord> recs, copy;
    std::string error;
    if (!writ::harness::ReadTrace(f.trace, &copy, &error, jobs)) std::exit(1);  // for +baseline
    double c0 = CpuSeconds();
    auto t0 = Clock::now();
    if (!writ::harness::ReadTrace(f.trace, &recs, &error, jobs)) std::exit(1);
    auto t1 = Clock::now();
    auto res = writ::harness::Replay(std::move(recs), *f.bundle, nullptr, "recorded", jobs);
    auto t2 = Clock::now();
    double c1 = CpuSeconds();
    auto res2 = writ::harness::Replay(std::move(copy), *f.bundle, f.bundle.get(), "b", jobs);
    auto t3 = Clock::now();
    changed += res.changed.size() + res2.changed.size();
    decided = res.distinct_requests;
    wall = std::min(wall, Seconds(t2 - t0));
    cpu = std::min(cpu, c1 - c0);
    wall_base = std::min(wall_base, Seconds(t1 - t0) + Seconds(t3 - t2));
  }
  if (changed != 0) {
    std::fprintf(stderr, "replaying with the recording bundle changed %zu decisions\n", changed);
    std::exit(1);
  }
  std::printf("%-10d %-5d %-9zu %-9.1f %16.0f %16.0f %18.0f\n", n, jobs, decided, mb,
              kCalls / wall, kCalls / cpu, kCalls / wall_base);
}

// --rows=STATEMENTS:JOBS:DISTINCT (repeatable): print only those rows (for perf and for
// alternating runs of two builds); default: the full table.
std::vector<std::array<int, 3>> g_rows;

void PrintTable() {
  std::printf(
      "\nwrit replay throughput (%d recorded calls of generated policies; read + parse +"
      " re-decide + compare):\n",
      kCalls);
  std::printf("%-10s %-5s %-9s %-9s %16s %16s %18s\n", "statements", "jobs", "distinct", "trace MB",
              "calls/s (wall)", "calls/CPU-s", "+baseline (wall)");
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (!g_rows.empty()) {
    for (const auto& [n, jobs, distinct] : g_rows) Row(n, jobs, distinct);
    return;
  }
  // Every request different (the worst case: nothing to decide once), and each request
  // recorded 10 times (an assumed repeat rate: the same principal, tool and arguments).
  for (int distinct : {kCalls, kCalls / 10}) {
    for (int n : {100, 1000}) {
      Row(n, 1, distinct);
      if (cores > 1) Row(n, static_cast<int>(std::min(16u, cores)), distinct);
    }
  }
  std::printf(
      "(+baseline also decides every call with a baseline bundle: two decisions per "
      "call)\n\n");
}

void BM_ReplayDecide(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  const writ::runtime::StatementPlan plan(*f.bundle);
  nlohmann::json request;
  size_t i = 0;
  for (auto _ : state) {
    writ::harness::ConvertRequest(f.records[i].request_text, &request);
    auto v = writ::harness::Decide(plan, request);
    benchmark::DoNotOptimize(v);
    if (++i == f.records.size()) i = 0;
  }
}
BENCHMARK(BM_ReplayDecide)->Arg(100)->Arg(1000);

// The phases of deciding one record, each over the 20,000 distinct requests in turn: the
// request text converted to JSON (ConvertRequest), PrepareRequest, Evaluate, and the
// determining statements (runtime::DeterminingStatements).
struct Phases {
  std::vector<nlohmann::json> json;
  std::vector<writ::runtime::PreparedRequest> prepared;
  std::vector<writ::runtime::Decision> decisions;
};
Phases& GetPhases(int n) {
  static std::map<int, Phases> cache;
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  Fixture& f = Get(n);
  Phases& p = cache[n];
  p.json.resize(f.records.size());
  p.prepared.resize(f.records.size());
  for (size_t i = 0; i < f.records.size(); ++i) {
    std::string error;
    if (!writ::harness::ConvertRequest(f.records[i].request_text, &p.json[i]) ||
        !writ::runtime::PrepareRequest(*f.bundle, p.json[i], &p.prepared[i], &error))
      std::exit(1);
    p.decisions.push_back(writ::runtime::Evaluate(*f.bundle, p.prepared[i]));
  }
  return p;
}

void BM_PhaseConvert(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  nlohmann::json scratch;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writ::harness::ConvertRequest(f.records[i].request_text, &scratch));
    if (++i == f.records.size()) i = 0;
  }
}
BENCHMARK(BM_PhaseConvert)->Arg(1000);

void BM_PhasePrepare(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  Phases& p = GetPhases(static_cast<int>(state.range(0)));
  writ::runtime::PreparedRequest req;
  std::string error;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writ::runtime::PrepareRequest(*f.bundle, p.json[i], &req, &error));
    if (++i == p.json.size()) i = 0;
  }
}
BENCHMARK(BM_PhasePrepare)->Arg(1000);

void BM_PhaseEvaluate(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  Phases& p = GetPhases(static_cast<int>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(writ::runtime::Evaluate(*f.bundle, p.prepared[i]));
    if (++i == p.prepared.size()) i = 0;
  }
}
BENCHMARK(BM_PhaseEvaluate)->Arg(1000);

void BM_PhaseDetermining(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  Phases& p = GetPhases(static_cast<int>(state.range(0)));
  std::vector<uint32_t> out;
  size_t i = 0;
  for (auto _ : state) {
    writ::runtime::DeterminingStatements(*f.bundle, p.prepared[i], p.decisions[i], &out);
    benchmark::DoNotOptimize(out.data());
    if (++i == p.prepared.size()) i = 0;
  }
}
BENCHMARK(BM_PhaseDetermining)->Arg(1000);

// The same with the bundle's StatementPlan (as Replay runs it).
void BM_PhaseDeterminingPlan(benchmark::State& state) {
  Fixture& f = Get(static_cast<int>(state.range(0)));
  Phases& p = GetPhases(static_cast<int>(state.range(0)));
  const writ::runtime::StatementPlan plan(*f.bundle);
  writ::runtime::PlanScratch scratch;
  std::vector<uint32_t> out;
  size_t i = 0;
  for (auto _ : state) {
    writ::runtime::DeterminingStatements(plan, p.prepared[i], p.decisions[i], &scratch, &out);
    benchmark::DoNotOptimize(out.data());
    if (++i == p.prepared.size()) i = 0;
  }
}
BENCHMARK(BM_PhaseDeterminingPlan)->Arg(1000);

}  // namespace

int main(int argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::array<int, 3> row{};
    if (std::sscanf(argv[i], "--rows=%d:%d:%d", &row[0], &row[1], &row[2]) == 3 && row[0] > 0 &&
        row[1] > 0 && row[2] > 0 && row[2] <= kCalls) {
      g_rows.push_back(row);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  PrintTable();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
