// runner.h -- runs policy unit tests (`writ test`, docs/testing.md): compiles each distinct
// (policies, schema) set once, decides every test's request with the runtime, compares with
// the expectation, and counts per-statement hits for coverage. Entry point: RunTests.
// Reporting (text, JSON, GitHub, JUnit) is in report.h.
//
// Also the policy loading shared with `writ replay` (LoadPolicySet).
//
// Thread safety: plain functions over values; the bundles are immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/diagnostic.h"
#include "harness/test_file.h"
#include "runtime/evaluator.h"

namespace writ::harness {

// Compiles policy files/directories (`schema` may be empty) into a bundle, or loads a bundle
// file when `paths` is one existing file that does not end in `.writ`. On failure returns
// null and sets *rendered to the diagnostics exactly as `writ check --format` renders them
// (or an "error: ..." line for an I/O problem).
std::shared_ptr<const runtime::Bundle> LoadPolicySet(const std::vector<std::string>& paths,
                                                     const std::string& schema,
                                                     DiagnosticFormat format,
                                                     std::string* rendered);

// The determining statement ids of a decision, sorted (as DecisionToJson computes them, without
// building the obligations). Allocates.
std::vector<std::string> DeterminingIds(const runtime::Bundle& bundle,
                                        const runtime::PreparedRequest& req,
                                        const runtime::Decision& d);

struct TestResult {
  const TestFile* file = nullptr;
  const TestCase* test = nullptr;
  bool ok = false;
  nlohmann::json actual;          // DecisionToJson; null if the request was rejected
  std::vector<std::string> diff;  // readable lines, e.g. "decision:    expected deny, got allow"
  std::string explanation;        // runtime::Explain of the actual decision (failures only)
};

struct StatementCoverage {
  std::string file;
  uint32_t line = 0, col = 0;
  std::string id;
  std::string effect;  // permit | forbid | rule
  uint64_t hits = 0;
};

struct TestRun {
  std::vector<TestFile> files;
  std::vector<TestResult> results;
  std::vector<StatementCoverage> coverage;  // sorted by file, line
  size_t passed = 0, failed = 0;
  // Exercised statements / all statements, in percent (100 when there are none).
  double CoveragePercent() const;
};

// Loads every test file, compiles their policy sets and runs the tests. Returns false on a
// malformed test file or policies that do not compile, with *errors rendered (test-file
// errors as FILE:LINE:COL lines, policy errors in `format`); `run` is then incomplete.
bool RunTests(const std::vector<std::string>& test_files, DiagnosticFormat format, TestRun* run,
              std::string* errors);

}  // namespace writ::harness
