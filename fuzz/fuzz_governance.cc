// fuzz_governance.cc -- libFuzzer target for the governance analyzers that read untrusted
// input: AnalyzeSql on arbitrary bytes (both as declared SQL and as a plain string), and,
// when the input parses as JSON, IntentClassifier::ClassifyCall (as arguments) and the
// poisoning scanner and canonical hash (as a tool definition). Invariants (a violation
// traps): nothing throws or crashes; every result has a reason; SQL analysis of a text is
// never weaker than that of any prefix ending at a statement boundary (appending statements
// can only raise the intent); the canonical hash is independent of key order (a re-parse of
// the canonical text hashes the same).
#include <cstddef>
#include <cstdint>
#include <string>

#include "gateway/intent.h"
#include "gateway/sql_intent.h"
#include "gateway/tool_integrity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace writ::gateway;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  SqlAnalysis declared = AnalyzeSql(text, true, 1000);
  SqlAnalysis plain = AnalyzeSql(text, false, 1000);
  if (declared.is_sql && declared.why.empty()) __builtin_trap();
  if (plain.is_sql && plain.why.empty()) __builtin_trap();
  // Appending a statement never lowers the intent.
  std::string more = std::string(text) + "\n;SELECT 1";
  SqlAnalysis longer = AnalyzeSql(more, true, 1000);
  if (declared.is_sql && static_cast<int>(longer.intent) < static_cast<int>(declared.intent))
    __builtin_trap();

  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  static const IntentClassifier* classifier = new IntentClassifier();
  IntentResult r = classifier->ClassifyCall("s", nlohmann::json{{"name", "run_sql"}}, j);
  if (r.why.empty()) __builtin_trap();
  if (j.is_object()) {
    r = classifier->ClassifyTool("s", j);
    if (r.why.empty()) __builtin_trap();
    ScanToolDefinition(j);
    std::string canonical = CanonicalToolJson(j);
    nlohmann::json back = nlohmann::json::parse(canonical, nullptr, false);
    if (back.is_discarded() || ToolHash(back) != ToolHash(j)) __builtin_trap();
  }
  return 0;
}
