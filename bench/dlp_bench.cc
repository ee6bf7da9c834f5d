// dlp_bench.cc -- DLP scan throughput (gateway/dlp.h) for the default detector set on
// realistic mixed text: JSON tool results, logs and prose (tests/dlp/corpus/*.txt, repeated
// to ~1 MiB), with and without a sprinkling of PII (about one finding per 2 KB), scanned as
// plain text (Scan) and as a parsed tool result (ScanToolResult). Prints MB/s per case, then
// Google Benchmark's figures (bytes_per_second). Also the SecretScrubber over the same text
// with 100 secrets.
//
//   ninja -C build writ_dlp_bench && build/bench/writ_dlp_bench
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/dlp.h"
#include "gateway/secrets.h"

namespace {

// CPU time of this process: the machine is shared, so wall time would measure the others.
struct Clock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<Clock, duration>;
  static time_point now() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return time_point(duration(ts.tv_sec * 1000000000LL + ts.tv_nsec));
  }
};
using nlohmann::json;
using writ::gateway::DlpConfig;
using writ::gateway::DlpScanner;

const DlpScanner& Scanner() {
  static std::unique_ptr<const DlpScanner> s = [] {
    std::string error;
    DlpConfig c;
    c.max_scan_bytes = 64 << 20;
    auto p = DlpScanner::Create(c, &error);
    if (p == nullptr) {
      std::fprintf(stderr, "dlp: %s\n", error.c_str());
      std::exit(1);
    }
    return p;
  }();
  return *s;
}

std::string Corpus() {
  std::string all;
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(WRIT_SOURCE_DIR) / "tests/dlp/corpus"))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  return all;
}

// ~1 MiB of corpus text; with `pii`, one PII item every ~2 KB.
std::string Text(bool pii) {
  static const char* kPii[] = {"ann.lee@example.com", "+44 20 7946 0958", "234-56-7890",
                               "4111 1111 1111 1111", "GB82WEST12345698765432",
                               "AKIAIOSFODNN7EXAMPLE", "Bearer abc123def456ghi789jkl"};
  std::string base = Corpus(), out;
  size_t k = 0;
  while (out.size() < (1 << 20)) {
    for (size_t i = 0; i < base.size(); i += 2048) {
      out.append(base, i, 2048);
      if (pii) {
        out += " ";
        out += kPii[k++ % 7];
        out += " ";
      }
    }
  }
  return out;
}

// The same text as an MCP tool result: lines become text content items and a
// structuredContent array of records.
json ToolResult(const std::string& text) {
  json content = json::array(), rows = json::array();
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (n++ % 2 == 0) {
      content.push_back({{"type", "text"}, {"text", line}});
    } else {
      rows.push_back({{"id", n}, {"line", line}, {"ok", true}});
    }
  }
  return {{"content", content}, {"structuredContent", {{"rows", rows}}}};
}

double MBps(size_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

void PrintTable() {
  std::printf("DLP scan throughput, default detectors (%zu classes), 1 thread, CPU time\n",
              Scanner().config().detectors.size());
  std::printf("| input | bytes | findings | MB/s |\n|---|---|---|---|\n");
  for (bool pii : {false, true}) {
    std::string text = Text(pii);
    // Warm up (DFA cache), then time enough repetitions for ~0.5 s.
    size_t findings = Scanner().Scan(text).findings.size();
    int reps = 0;
    auto t0 = Clock::now();
    while (Clock::now() - t0 < std::chrono::milliseconds(500)) {
      benchmark::DoNotOptimize(Scanner().Scan(text));
      ++reps;
    }
    std::printf("| text%s | %zu | %zu | %.0f |\n", pii ? " + PII" : "", text.size(), findings,
                MBps(text.size() * reps, Clock::now() - t0));
    json result = ToolResult(text);
    const size_t wire = result.dump().size();  // the message as the gateway receives it
    auto r = Scanner().ScanToolResult(result);
    reps = 0;
    t0 = Clock::now();
    while (Clock::now() - t0 < std::chrono::milliseconds(500)) {
      benchmark::DoNotOptimize(Scanner().ScanToolResult(result));
      ++reps;
    }
    std::printf("| tool result JSON%s (%zu items; MB/s of serialized JSON) | %zu | %zu | %.0f |\n",
                pii ? " + PII" : "",
                result["content"].size() + result["structuredContent"]["rows"].size(), wire,
                r.findings.size(), MBps(wire * reps, Clock::now() - t0));
  }
  std::printf("\n");
}

void BM_ScanText(benchmark::State& state) {
  std::string text = Text(state.range(0) != 0);
  for (auto _ : state) benchmark::DoNotOptimize(Scanner().Scan(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ScanText)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_ScanToolResult(benchmark::State& state) {
  json result = ToolResult(Text(state.range(0) != 0));
  size_t bytes = result.dump().size();
  for (auto _ : state) benchmark::DoNotOptimize(Scanner().ScanToolResult(result));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_ScanToolResult)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_ScrubSecrets(benchmark::State& state) {
  std::vector<std::pair<std::string, std::string>> secrets;
  for (int i = 0; i < state.range(0); ++i)
    secrets.emplace_back("S" + std::to_string(i), "tok_" + std::to_string(i * 104729) + "_xyz");
  writ::gateway::SecretScrubber s(secrets);
  std::string text = Text(false);
  for (auto _ : state) {
    std::string copy = text;
    benchmark::DoNotOptimize(s.ScrubString(&copy));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ScrubSecrets)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  PrintTable();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
