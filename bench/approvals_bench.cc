// approvals_bench.cc -- the request-path cost of the kill switch check (KillSwitch::Blocks,
// gateway/killswitch.h) with nothing engaged and with scopes engaged, and the throughput of
// the approval store's request/approve/consume cycle (SQLite, WAL, synchronous=FULL: bounded
// by the disk's flush rate). Prints ns per operation; docs/performance.md records them.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gateway/approvals.h"
#include "gateway/killswitch.h"

namespace fs = std::filesystem;
using namespace writ::gateway;

namespace {

std::string TempDb(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("writ-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::path p = dir / name;
  fs::remove(p);
  fs::remove(p.string() + "-wal");
  fs::remove(p.string() + "-shm");
  return p.string();
}

void BM_KillSwitchBlocks_NothingEngaged(benchmark::State& state) {
  std::string err;
  auto ks = KillSwitch::Open(TempDb("ks0.db"), &err);
  for (auto _ : state) benchmark::DoNotOptimize(ks->Blocks("github", "User::\"alice\""));
}
BENCHMARK(BM_KillSwitchBlocks_NothingEngaged);

// 100 servers and 100 principals engaged; the call matches none of them.
void BM_KillSwitchBlocks_200EngagedMiss(benchmark::State& state) {
  std::string err;
  auto ks = KillSwitch::Open(TempDb("ks1.db"), &err);
  for (int i = 0; i < 100; ++i) {
    KillScope s{KillScope::Kind::kServer, "server" + std::to_string(i)};
    ks->Engage(s, "bench", "bench", 1, &err);
    KillScope p{KillScope::Kind::kPrincipal, "User::\"u" + std::to_string(i) + "\""};
    ks->Engage(p, "bench", "bench", 1, &err);
  }
  for (auto _ : state) benchmark::DoNotOptimize(ks->Blocks("github", "User::\"alice\""));
}
BENCHMARK(BM_KillSwitchBlocks_200EngagedMiss);

void BM_KillSwitchBlocks_Threads(benchmark::State& state) {
  static std::unique_ptr<KillSwitch> ks;
  if (state.thread_index() == 0) {
    std::string err;
    ks = KillSwitch::Open(TempDb("ks2.db"), &err);
    ks->Engage({KillScope::Kind::kServer, "other"}, "bench", "bench", 1, &err);
  }
  for (auto _ : state) benchmark::DoNotOptimize(ks->Blocks("github", "User::\"alice\""));
}
BENCHMARK(BM_KillSwitchBlocks_Threads)->Threads(2);

// One full cycle: request (new), approve, consume. Three committed transactions.
void BM_ApprovalCycle(benchmark::State& state) {
  std::string err;
  auto store = ApprovalStore::Open(TempDb("ap.db"), &err);
  int64_t n = 0;
  for (auto _ : state) {
    ApprovalBinding b{"User::\"alice\"", "fs", "fs__delete", ApprovalArgsDigest({{"n", ++n}}), "b"};
    auto r = store->Request(b, {{"ops"}, "d", "s", "{}"}, 60'000, 1'000'000 + n, &err);
    store->Approve(r->id, "carol", "", 1'000'000 + n);
    benchmark::DoNotOptimize(store->Consume(r->id, 1'000'000 + n));
  }
}
BENCHMARK(BM_ApprovalCycle)->Unit(benchmark::kMicrosecond);

// The lookup of an existing live approval (an identical retry), among 1,000 rows.
void BM_ApprovalRequestExisting(benchmark::State& state) {
  std::string err;
  auto store = ApprovalStore::Open(TempDb("ap2.db"), &err);
  for (int i = 0; i < 1000; ++i) {
    ApprovalBinding b{"User::\"alice\"", "fs", "fs__delete", ApprovalArgsDigest({{"n", i}}), "b"};
    store->Request(b, {}, 3'600'000, 1'000'000, &err);
  }
  ApprovalBinding b{"User::\"alice\"", "fs", "fs__delete", ApprovalArgsDigest({{"n", 42}}), "b"};
  for (auto _ : state) benchmark::DoNotOptimize(store->Request(b, {}, 3'600'000, 1'000'001, &err));
}
BENCHMARK(BM_ApprovalRequestExisting)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
