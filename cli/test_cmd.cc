// test_cmd.cc -- `writ test [--format text|json|github] [--junit FILE] [--coverage]
// [--min-coverage N] [--verbose] PATH...`: runs policy unit tests (docs/testing.md).
//
// Exit: 0 all passed (and coverage >= --min-coverage), 1 failures or coverage too low,
// 2 usage or I/O error, a malformed test file, or policies that do not compile.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "harness/report.h"
#include "harness/runner.h"
#include "harness/test_file.h"

namespace writ::cli {
namespace {

struct TestOptions {
  std::vector<std::string> paths;
  std::string format = "text";
  std::string junit;
  bool coverage = false;
  double min_coverage = -1;
  bool verbose = false;
};

int RunTestCmd(const TestOptions& o) {
  std::vector<std::string> files;
  std::string error;
  if (!harness::FindTestFiles(o.paths, &files, &error)) {
    std::cerr << "error: " << error << "\n";
    return kExitUsage;
  }
  if (files.empty()) {
    std::cerr << "error: no *.test.yaml files found\nhelp: write tests as docs/testing.md "
                 "describes, beside the policies they test\n";
    return kExitUsage;
  }
  DiagnosticFormat dfmt = o.format == "json"     ? DiagnosticFormat::kJson
                          : o.format == "github" ? DiagnosticFormat::kGithub
                                                 : DiagnosticFormat::kText;
  harness::TestRun run;
  std::string errors;
  if (!harness::RunTests(files, dfmt, &run, &errors)) {
    // Policy diagnostics in json/github go to stdout like `writ check`; the rest to stderr.
    bool structured = dfmt != DiagnosticFormat::kText && errors.rfind("error:", 0) != 0 &&
                      errors.find(".test.y") == std::string::npos;
    (structured ? std::cout : std::cerr) << errors;
    std::cerr << "writ test: nothing was run\n";
    return kExitUsage;
  }
  harness::ReportOptions ropts;
  ropts.format = o.format == "json"     ? harness::ReportFormat::kJson
                 : o.format == "github" ? harness::ReportFormat::kGithub
                                        : harness::ReportFormat::kText;
  ropts.verbose = o.verbose;
  ropts.coverage = o.coverage;
  std::cout << harness::RenderTestRun(run, ropts);
  if (!o.junit.empty()) {
    std::ofstream f(o.junit, std::ios::trunc);
    f << harness::RenderJunit(run);
    f.close();
    if (!f) {
      std::cerr << "error: cannot write " << o.junit << "\n";
      return kExitUsage;
    }
  }
  int rc = run.failed > 0 ? kExitFailure : kExitOk;
  if (o.min_coverage >= 0 && run.CoveragePercent() < o.min_coverage) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%.1f%% of the statements are exercised, below %.1f%%",
                  run.CoveragePercent(), o.min_coverage);
    std::cerr << "writ test: coverage " << buf
              << "\nhelp: run with --coverage to list the statements no test exercises\n";
    rc = kExitFailure;
  }
  return rc;
}

CommandRegistrar reg(40, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<TestOptions>();
  CLI::App* cmd = app.add_subcommand("test", "Run policy unit tests (*.test.yaml).");
  cmd->footer(
      "The test file format is in docs/testing.md.\n"
      "Exit codes: 0 all passed, 1 failures or coverage below --min-coverage, 2 usage or I/O "
      "error,\na malformed test file, or policies that do not compile.\n"
      "Examples:\n"
      "  writ test policies/\n"
      "  writ test --coverage --min-coverage 90 policies/\n"
      "  writ test --junit policy-tests.xml --format github policies/");
  cmd->add_option("paths", o->paths, "Test files, or directories searched for *.test.yaml")
      ->required();
  cmd->add_option("--format,-f", o->format, "Output format")
      ->check(CLI::IsMember({"text", "json", "github"}));
  cmd->add_option("--junit", o->junit, "Also write JUnit XML to this file");
  cmd->add_flag("--coverage", o->coverage,
                "Print per-statement hit counts and unexercised statements");
  cmd->add_option("--min-coverage", o->min_coverage,
                  "Exit 1 when fewer than N percent of the statements are exercised")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_flag("--verbose,-v", o->verbose, "Also list passing tests");
  cmd->callback([o, exit_code] { *exit_code = RunTestCmd(*o); });
});

}  // namespace
}  // namespace writ::cli
