// governance_bench.cc -- the per-call governance building blocks, measured:
// intent classification of a call (small SQL argument; a 64 KiB non-SQL
// argument), SQL analysis throughput, the poisoning scanner (a typical
// definition; a 64 KiB description), the rate limiter (one hot key; 100,000
// distinct keys) and the circuit breaker. Google Benchmark prints time per
// operation and, where set, bytes per second.
#include <benchmark/benchmark.h>

#include <string>

#include "gateway/breaker.h"
#include "gateway/intent.h"
#include "gateway/ratelimit.h"
#include "gateway/sql_intent.h"
#include "gateway/tool_integrity.h"

namespace {

using nlohmann::json;
using namespace writ::gateway;

json QueryTool() {
  return json::parse(
      R"({"name": "run_query", "description": "Runs a SQL query on the warehouse.",
    "inputSchema": {"type": "object", "properties": {"sql": {"type": "string", "description": "SQL"},
      "limit": {"type": "integer"}}}})");
}

void BM_ClassifyCallSql(benchmark::State& state) {
  IntentClassifier c;
  json tool = QueryTool();
  json args = {{"sql",
                "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON "
                "c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' "
                "ORDER BY o.total DESC LIMIT 100"},
               {"limit", 100}};
  for (auto _ : state) benchmark::DoNotOptimize(c.ClassifyCall("db", tool, args));
}
BENCHMARK(BM_ClassifyCallSql);

void BM_ClassifyCallLargeText(benchmark::State& state) {
  IntentClassifier c;
  json tool = json::parse(R"({"name": "write_file", "inputSchema": {"type": "object"}})");
  std::string text;
  while (text.size() < 64 * 1024) text += "The quick brown fox jumps over the lazy dog. ";
  json args = {{"path", "/tmp/notes.txt"}, {"content", text}};
  for (auto _ : state) benchmark::DoNotOptimize(c.ClassifyCall("fs", tool, args));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * text.size());
}
BENCHMARK(BM_ClassifyCallLargeText);

void BM_AnalyzeSqlThroughput(benchmark::State& state) {
  std::string sql;
  while (sql.size() < 64 * 1024)
    sql +=
        "INSERT INTO events (id, kind, payload) VALUES (42, 'click', "
        "'{\"x\": 1}'); "
        "/* batch */ UPDATE counters SET n = n + 1 WHERE id = 42; -- done\n";
  for (auto _ : state) benchmark::DoNotOptimize(AnalyzeSql(sql, true, 1000));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * sql.size());
}
BENCHMARK(BM_AnalyzeSqlThroughput);

void BM_ScanToolDefinition(benchmark::State& state) {
  json tool = json::parse(R"J({"name": "search_issues",
    "description": "Search issues and pull requests across GitHub repositories. Important: results are paginated; use page and per_page. Supports the full GitHub search syntax, e.g. is:open label:bug.",
    "inputSchema": {"type": "object", "properties": {
      "q": {"type": "string", "description": "Search query using GitHub issues search syntax"},
      "sort": {"type": "string", "enum": ["comments", "reactions", "created", "updated"]},
      "order": {"type": "string", "enum": ["asc", "desc"]},
      "per_page": {"type": "number", "description": "Results per page (max 100)"},
      "page": {"type": "number", "description": "Page number"}}, "required": ["q"]},
    "annotations": {"readOnlyHint": true, "title": "Search issues"}})J");
  for (auto _ : state) benchmark::DoNotOptimize(ScanToolDefinition(tool));
}
BENCHMARK(BM_ScanToolDefinition);

void BM_ScanLargeDescription(benchmark::State& state) {
  std::string d;
  while (d.size() < 64 * 1024) d += "Returns the weather forecast for a city, in metric units. ";
  json tool = {{"name", "get_weather"}, {"description", d}};
  for (auto _ : state) benchmark::DoNotOptimize(ScanToolDefinition(tool));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * d.size());
}
BENCHMARK(BM_ScanLargeDescription);

void BM_ToolHash(benchmark::State& state) {
  json tool = QueryTool();
  for (auto _ : state) benchmark::DoNotOptimize(ToolHash(tool));
}
BENCHMARK(BM_ToolHash);

void BM_RateLimitHotKey(benchmark::State& state) {
  RateLimiter rl;
  int64_t t = 0;
  for (auto _ : state) benchmark::DoNotOptimize(rl.Take("User::\"alice\"", 1000000, 1000, ++t));
}
BENCHMARK(BM_RateLimitHotKey)->Threads(1)->Threads(2);

void BM_RateLimitManyKeys(benchmark::State& state) {
  RateLimiter rl;
  std::vector<std::string> keys;
  for (int i = 0; i < 100000; ++i) keys.push_back("User::\"u" + std::to_string(i) + "\"");
  size_t i = 0;
  int64_t t = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(rl.Take(keys[i], 10, 60000, t++));
    i = (i + 1) % keys.size();
  }
}
BENCHMARK(BM_RateLimitManyKeys);

void BM_BreakerAllowSuccess(benchmark::State& state) {
  CircuitBreaker b;
  int64_t t = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(b.Allow(++t));
    b.OnSuccess(t);
  }
}
BENCHMARK(BM_BreakerAllowSuccess);

}  // namespace

BENCHMARK_MAIN();
