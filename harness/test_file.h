// test_file.h -- the policy unit-test file format (docs/testing.md): YAML `*.test.yaml` files
// with fixtures and tests, each test a request and the decision it must get. Entry points:
// FindTestFiles, LoadTestFile (ParseTestFile for text held in memory).
//
// A test file is outside input: every problem is reported with its file:line:col and key,
// never asserted on. Thread safety: plain functions over values.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace writ::harness {

// What a call test expects (`expect:`).
struct Expectation {
  std::string decision;                                 // allow | deny | require_approval
  std::optional<std::vector<std::string>> determining;  // exact (sorted) when given
  // `obligations:` (each must match one obligation, keys given) or `exact_obligations:` (the
  // same, one to one, and no other obligation); obligations_exact tells which was written.
  std::vector<nlohmann::json> obligations;
  bool obligations_exact = false;
  std::vector<nlohmann::json> absent_obligations;  // none may match any obligation
  std::optional<std::vector<std::string>> errors;  // exact (sorted) when given
};

// One tool of a `visibility:` test: its list-time request and the class it must get:
// "visible" (listed, every call allowed whatever the arguments), "hidden" (not listed) or
// "depends_on_args" (listed; calls are decided by their arguments).
struct ToolVisibility {
  std::string tool;       // SERVER__name
  int line = 0, col = 0;  // 1-based, where the tool is named
  std::string expected;
  nlohmann::json request;  // docs/semantics.md form, without args (unknown at list time)
};

struct TestCase {
  std::string name;
  int line = 0;            // 1-based line of the test's `- name:` entry
  nlohmann::json request;  // a call test's request, in the form of docs/semantics.md
  Expectation expect;
  std::vector<ToolVisibility> visibility;  // non-empty: a tools/list visibility test
  bool is_visibility() const { return !visibility.empty(); }
};

struct TestFile {
  std::string path;
  std::vector<std::string> policies;  // resolved against the file's directory
  std::string schema;                 // resolved, or empty: no schema
  std::vector<TestCase> tests;
};

// Test files named by `paths`: a file as is, a directory searched recursively for
// `*.test.yaml` and `*.test.yml` (sorted). False with *error when a path does not exist.
bool FindTestFiles(const std::vector<std::string>& paths, std::vector<std::string>* out,
                   std::string* error);

// Reads and validates one test file. False with *errors holding every problem, each as
// `FILE:LINE:COL: KEY: message` and a `help:` line.
bool LoadTestFile(const std::string& path, TestFile* out, std::string* errors);

// The same for text held in memory; `path` names the file in messages and is the base for
// relative `policies:`/`schema:` (and the default schema lookup).
bool ParseTestFile(const std::string& text, const std::string& path, TestFile* out,
                   std::string* errors);

// True when every key of `expected` (an obligation in `writ eval` form) is in `actual` with
// an equal value.
bool ObligationMatches(const nlohmann::json& expected, const nlohmann::json& actual);

}  // namespace writ::harness
