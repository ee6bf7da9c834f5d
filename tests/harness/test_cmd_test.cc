// test_cmd_test.cc -- `writ test` end to end (the built binary): exit codes, the failure
// diff and explanation, JSON and GitHub formats, JUnit XML, coverage and --min-coverage, and
// the example of docs/testing.md (which must be examples/quickstart/quickstart.test.yaml
// verbatim, and pass).
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "tests/harness/util.h"

using harness_test::Contains;
using harness_test::RunWrit;
using harness_test::Slurp;
using harness_test::TempDir;
using harness_test::Write;
using nlohmann::json;

namespace {

const char kPolicies[] = R"(
@id("support-refunds")
permit (principal in Role::"support", action == Action::"tools/call",
        resource == Tool::"stripe__refund_create")
when { args.amount <= 50000 }
then tag("pci");

@id("no-big-refunds")
forbid (principal, action, resource == Tool::"stripe__refund_create")
when { args.amount > 50000 }
then reason("too big"), log(critical);

@id("never-used")
permit (principal in Role::"admin", action, resource);
)";

const char kTests[] = R"(fixtures:
  principals:
    sam: {uid: User::"sam", parents: [Role::"support"]}
tests:
  - name: small refund
    principal: sam
    tool: stripe__refund_create
    args: {amount: 10}
    expect: {decision: allow, determining: [support-refunds], obligations: [{kind: tag}]}
  - name: big refund
    principal: sam
    tool: stripe__refund_create
    args: {amount: 60000}
    expect:
      decision: deny
      determining: [no-big-refunds]
      obligations: [{kind: log, level: critical}]
)";

// A scenario directory with the policies and a test file.
void Scenario(const TempDir& d, const std::string& tests) {
  Write(d / "p/refunds.writ", kPolicies);
  Write(d / "p/refunds.test.yaml", tests);
}

}  // namespace

TEST_CASE("writ test: passing tests exit 0; coverage and --min-coverage") {
  TempDir d("pass");
  Scenario(d, kTests);
  auto r = RunWrit({"test", (d / "p").string()});
  CHECK(r.code == 0);
  CHECK(Contains(r.out, "writ test: 2 passed, 0 failed in 1 file(s)"));
  CHECK_FALSE(Contains(r.out, "FAIL"));

  r = RunWrit({"test", "--coverage", "-v", (d / "p").string()});
  CHECK(r.code == 0);
  CHECK(Contains(r.out, "ok   " + (d / "p/refunds.test.yaml").string() + ":5: small refund"));
  CHECK(std::regex_search(r.out, std::regex(R"(refunds\.writ:2:1 +support-refunds +permit +1\n)")));
  CHECK(std::regex_search(r.out, std::regex(R"(refunds\.writ:13:1 +never-used +permit +0\n)")));
  CHECK(Contains(r.out, "not exercised by any test (1):\n  " + (d / "p/refunds.writ").string() +
                            ":13:1 never-used\n"));
  CHECK(Contains(r.out, "coverage: 2 of 3 statements (66.7%)"));

  CHECK(RunWrit({"test", "--min-coverage", "60", (d / "p").string()}).code == 0);
  r = RunWrit({"test", "--min-coverage", "70", (d / "p").string()});
  CHECK(r.code == 1);
  CHECK(Contains(r.err, "66.7% of the statements are exercised, below 70.0%"));

  r = RunWrit({"test", "--format", "json", "--coverage", (d / "p").string()});
  CHECK(r.code == 0);
  json j = json::parse(r.out);
  CHECK(j["passed"] == 2);
  CHECK(j["coverage"]["exercised"] == 2);
  CHECK(j["coverage"]["total"] == 3);
  CHECK(j["results"][1]["actual"]["determining"] == json::array({"no-big-refunds"}));

  r = RunWrit({"test", "--format", "github", "--coverage", (d / "p").string()});
  CHECK(Contains(r.out, "::warning file=" + (d / "p/refunds.writ").string() +
                            ",line=13,col=1,title=writ test coverage::statement `never-used`"));
}

TEST_CASE("writ test: failures exit 1 with a diff, the explanation, annotations and JUnit") {
  TempDir d("fail");
  std::string tests = kTests;
  tests.replace(tests.find("decision: deny"), 14, "decision: allow");
  tests.replace(tests.find("level: critical"), 15, "level: info");
  Scenario(d, tests);
  const std::string file = (d / "p/refunds.test.yaml").string();
  auto r = RunWrit({"test", "--junit", (d / "junit.xml").string(), (d / "p").string()});
  CHECK(r.code == 1);
  CHECK(Contains(r.out, "FAIL " + file +
                            ":10: big refund\n"
                            "  decision:    expected allow, got deny\n"
                            "  obligations: missing {\"kind\":\"log\",\"level\":\"info\"}\n"));
  CHECK(Contains(r.out, "  explanation of the actual decision:\n    decision: deny\n"));
  CHECK(Contains(r.out, "forbid no-big-refunds"));
  CHECK(Contains(r.out, "writ test: 1 passed, 1 failed in 1 file(s)"));

  std::string xml = Slurp(d / "junit.xml");
  CHECK(Contains(xml, "<testsuites name=\"writ test\" tests=\"2\" failures=\"1\">"));
  CHECK(Contains(xml, "<testcase classname=\"" + file + "\" name=\"small refund\""));
  CHECK(Contains(xml, "<failure message=\"decision:    expected allow, got deny\""));
  CHECK(Contains(xml, "missing {&quot;kind&quot;:&quot;log&quot;"));

  r = RunWrit({"test", "--format", "github", (d / "p").string()});
  CHECK(r.code == 1);
  CHECK(Contains(r.out, "::error file=" + file +
                            ",line=10,title=writ test::big refund%0A  decision:    expected "
                            "allow, got deny%0A"));

  // Determining ids: the diff lists what is missing and what is extra.
  tests = kTests;
  tests.replace(tests.find("[no-big-refunds]"), 16, "[support-refunds]");
  Scenario(d, tests);
  r = RunWrit({"test", (d / "p").string()});
  CHECK(r.code == 1);
  CHECK(Contains(r.out,
                 "  determining: expected [support-refunds], got [no-big-refunds]\n"
                 "               - support-refunds\n"
                 "               + no-big-refunds\n"));
}

TEST_CASE("writ test: usage, malformed files and policy errors exit 2") {
  TempDir d("usage");
  CHECK(RunWrit({"test"}).code == 2);
  auto r = RunWrit({"test", (d / "missing").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, "no such file or directory"));
  r = RunWrit({"test", d.path.string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, "no *.test.yaml files found"));

  Scenario(d,
           "tests:\n  - name: x\n    principal: nobody\n    tool: a__b\n"
           "    expect: {decision: allow}\n");
  r = RunWrit({"test", (d / "p").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, (d / "p/refunds.test.yaml").string() +
                            ":3:16: tests[0].principal: no fixture `nobody`"));
  CHECK(Contains(r.err, "writ test: nothing was run"));

  Scenario(d, kTests);
  Write(d / "p/broken.writ", "permit (principal, action, resource) when { 1 + };\n");
  r = RunWrit({"test", (d / "p").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, (d / "p/broken.writ").string() + ":1:"));  // as `writ check` renders
  CHECK(Contains(r.err, "error["));
  r = RunWrit({"test", "--format", "github", (d / "p").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.out, "::error file=" + (d / "p/broken.writ").string()));
}

TEST_CASE("docs/testing.md: the example is examples/quickstart/quickstart.test.yaml and passes") {
  const std::string src = WRIT_SOURCE_DIR;
  std::string doc = Slurp(src + "/docs/testing.md");
  size_t start = doc.find("```yaml\n# Tests for examples/quickstart");
  REQUIRE(start != std::string::npos);
  start += 8;
  size_t end = doc.find("```", start);
  REQUIRE(end != std::string::npos);
  CHECK(doc.substr(start, end - start) == Slurp(src + "/examples/quickstart/quickstart.test.yaml"));
  auto r = RunWrit({"test", "--coverage", "examples/quickstart/"}, src);
  CHECK(r.code == 0);
  CHECK(Contains(r.out, "writ test: 7 passed, 0 failed in 1 file(s)"));
  // The coverage sample in the doc is the real output.
  size_t c = doc.find("```text\ncoverage:\n");
  REQUIRE(c != std::string::npos);
  c += 8;
  std::string sample = doc.substr(c, doc.find("```", c) - c);
  CHECK(Contains(r.out, sample));
}

TEST_CASE("docs/ci.md: the workflow is valid YAML running the four policy CI commands") {
  const std::string src = WRIT_SOURCE_DIR;
  std::string doc = Slurp(src + "/docs/ci.md");
  size_t start = doc.find("```yaml\nname: policies");
  REQUIRE(start != std::string::npos);
  start += 8;
  YAML::Node wf = YAML::Load(doc.substr(start, doc.find("```", start) - start));
  std::string runs;
  for (const auto& step : wf["jobs"]["policies"]["steps"])
    if (step["run"]) runs += step["run"].as<std::string>();
  for (const char* cmd : {"writ fmt --check", "writ check --format github",
                          "writ test --format github --min-coverage",
                          "writ replay --format markdown", "--baseline", "git worktree add"})
    CHECK_MESSAGE(Contains(runs, cmd), cmd);
  // scripts/policy-ci.sh runs the same commands.
  std::string script = Slurp(src + "/scripts/policy-ci.sh");
  for (const char* cmd : {"fmt --check", "check --format", "test --format", "--min-coverage",
                          "replay --format", "--baseline", "git archive"})
    CHECK_MESSAGE(Contains(script, cmd), cmd);
}

TEST_CASE("scripts/policy-ci.sh: passes on a tested scenario, fails on a failing test") {
  TempDir d("ci");
  Scenario(d, kTests);
  const std::string script = std::string(WRIT_SOURCE_DIR) + "/scripts/policy-ci.sh";
  const std::string env =
      "WRIT=" + harness_test::Quote(std::string(WRIT_BINARY_DIR) + "/cli/writ") +
      " WRIT_MIN_COVERAGE=60 ";
  REQUIRE(RunWrit({"fmt", (d / "p").string()}).code == 0);  // fmt --check is a step
  // Not a git checkout: the baseline is skipped with a message, the rest runs.
  std::string cmd = "cd " + harness_test::Quote(d.path.string()) + " && " + env +
                    harness_test::Quote(script) + " . > out.txt 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
  std::string out = Slurp(d / "out.txt");
  CHECK(Contains(out, "skipping the baseline"));
  CHECK(Contains(out, "writ test: 2 passed, 0 failed"));
  CHECK(Contains(out, "policy-ci: ok (1 scenario(s))"));
  std::string failing = kTests;
  failing.replace(failing.find("decision: deny"), 14, "decision: allow");
  Write(d / "p/refunds.test.yaml", failing);
  CHECK(std::system(cmd.c_str()) != 0);
}

TEST_CASE("writ test: exact and absent obligations, visibility tests, fixtures.call") {
  TempDir d("x");
  const std::string policies = std::string(kPolicies) + R"(
@id("docs-read")
permit (principal, action == Action::"tools/call", resource in Server::"docs")
when { call.intent == "read" };
)";
  const std::string tests = R"(fixtures:
  principals:
    sam: {uid: User::"sam", parents: [Role::"support"]}
  call: {intent: read}
tests:
  - name: big refund obligations
    principal: sam
    tool: stripe__refund_create
    args: {amount: 60000}
    expect:
      decision: deny
      exact_obligations: [{kind: log, level: critical}, {kind: reason}]
      absent_obligations: [{kind: tag}]
  - name: small refund
    principal: sam
    tool: stripe__refund_create
    args: {amount: 10}
    expect: {decision: allow, exact_obligations: [{kind: tag, value: pci}]}
  - name: what sam sees
    principal: sam
    visibility:
      visible: [docs__search]
      hidden: [github__delete_repository]
      depends_on_args: [stripe__refund_create]
  - name: writes to docs are not listed
    principal: sam
    call: {intent: write}
    visibility: {hidden: [docs__search]}
)";
  Write(d / "p/refunds.writ", policies);
  Write(d / "p/refunds.test.yaml", tests);
  auto r = RunWrit({"test", "--format", "json", (d / "p").string()});
  CHECK(r.code == 0);
  json j = json::parse(r.out);
  CHECK(j["passed"] == 4);
  CHECK(j["results"][2]["actual"]["visibility"] ==
        json{{"docs__search", "visible"},
             {"github__delete_repository", "hidden"},
             {"stripe__refund_create", "depends_on_args"}});
  CHECK(j["results"][2]["expected"] == j["results"][2]["actual"]);

  // Each can fail, with a diff.
  std::string bad = tests;
  bad.replace(bad.find("{kind: reason}]"), 15, "]");               // one too few
  bad.replace(bad.find("[{kind: tag}]"), 13, "[{kind: reason}]");  // present
  bad.replace(bad.find("[{kind: tag, value: pci}]"), 25, "[{kind: tag}, {kind: tag}]");
  bad.replace(bad.find("hidden: [github"), 6, "visible");  // wrong class
  bad.replace(bad.find("visible: [docs__search]"), 23, "hidden: [docs__search]");
  bad.replace(bad.find("call: {intent: write}"), 21, "call: {intent: read}");
  Write(d / "p/refunds.test.yaml", bad);
  r = RunWrit({"test", (d / "p").string()});
  CHECK(r.code == 1);
  CHECK(Contains(r.out, "writ test: 0 passed, 4 failed in 1 file(s)"));
  CHECK(
      Contains(r.out, "  obligations: unexpected {\"kind\":\"reason\",\"message\":\"too big\"}\n"));
  CHECK(Contains(r.out,
                 "  obligations: present, expected absent: {\"kind\":\"reason\","
                 "\"message\":\"too big\"} (matches {\"kind\":\"reason\"})\n"));
  CHECK(Contains(r.out, "  obligations: missing {\"kind\":\"tag\"}\n"));
  CHECK(Contains(r.out, "  visibility:  docs__search: expected hidden, got visible\n"));
  CHECK(
      Contains(r.out, "  visibility:  github__delete_repository: expected visible, got hidden\n"));
  CHECK(Contains(r.out, "FAIL " + (d / "p/refunds.test.yaml").string() +
                            ":25: writes to docs are not listed\n"
                            "  visibility:  docs__search: expected hidden, got visible\n"));
  CHECK(Contains(r.out, "(a call of docs__search without arguments; tools/list decides"));
  // The failure sample of docs/testing.md is this output.
  const std::string doc = Slurp(std::string(WRIT_SOURCE_DIR) + "/docs/testing.md");
  size_t c = doc.find("```text\n  obligations: unexpected");
  REQUIRE(c != std::string::npos);
  c += 8;
  CHECK(Contains(r.out, doc.substr(c, doc.find("```", c) - c)));
}

TEST_CASE("docs/testing.md: the examples of the newer keys are verbatim from policies/") {
  const std::string src = WRIT_SOURCE_DIR;
  const std::string doc = Slurp(src + "/docs/testing.md");
  const std::string files = Slurp(src + "/policies/contractor-docs-only/contractors.test.yaml") +
                            Slurp(src + "/policies/financial-destructive-alerts/alerts.test.yaml");
  int blocks = 0;
  for (size_t p = 0; (p = doc.find("```yaml\n", p)) != std::string::npos;) {
    p += 8;
    const std::string block = doc.substr(p, doc.find("```", p) - p);
    if (block.rfind("# Tests for examples/quickstart", 0) == 0) continue;  // checked above
    CAPTURE(block);
    CHECK(Contains(files, block));
    ++blocks;
  }
  CHECK(blocks == 5);
  for (const char* key :
       {"exact_obligations", "absent_obligations", "visibility:", "call: {intent"})
    CHECK(Contains(doc, key));
  auto r = RunWrit(
      {"test", "policies/contractor-docs-only", "policies/financial-destructive-alerts"}, src);
  CHECK(r.code == 0);
  CHECK(Contains(r.out, "writ test: 24 passed, 0 failed in 2 file(s)"));
}
