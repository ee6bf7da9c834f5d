// report.h -- renders a `writ test` run (runner.h): text, JSON, GitHub annotations, JUnit XML
// and the coverage table (formats in docs/testing.md). Pure functions of the run.
#pragma once

#include <string>

#include "harness/runner.h"

namespace writ::harness {

enum class ReportFormat { kText, kJson, kGithub };

struct ReportOptions {
  ReportFormat format = ReportFormat::kText;
  bool verbose = false;   // list passing tests too
  bool coverage = false;  // the coverage table and the unexercised statements
};

// The whole report for stdout, summary line included.
std::string RenderTestRun(const TestRun& run, const ReportOptions& opts);

// JUnit XML: one <testsuite> per test file, one <testcase> per test.
std::string RenderJunit(const TestRun& run);

// Escapes a GitHub workflow-command message (%, CR, LF).
std::string GithubEscape(const std::string& s);

// Escapes text for XML character data and attribute values.
std::string XmlEscape(const std::string& s);

}  // namespace writ::harness
