// test_file_test.cc -- the policy unit-test file format (harness/test_file.h,
// docs/testing.md): what a file turns into, and every kind of error with its file:line:col.
#include "harness/test_file.h"

#include <doctest/doctest.h>

#include "tests/harness/util.h"

using harness_test::Contains;
using nlohmann::json;
using writ::harness::ParseTestFile;
using writ::harness::TestFile;

namespace {

// Parses `text` as dir/x.test.yaml; returns the errors ("" when it parsed).
std::string Errors(const std::string& text, TestFile* f = nullptr) {
  TestFile local;
  std::string errors;
  bool ok = ParseTestFile(text, "dir/x.test.yaml", f ? f : &local, &errors);
  CHECK(ok == errors.empty());
  return errors;
}

const char kFixtures[] = R"(
fixtures:
  principals:
    sam: {uid: User::"sam", attrs: {mfa: true, level: 3}, parents: [Role::"support"]}
  resources:
    stripe__refund_create: {attrs: {category: financial}, parents: [Group::"money"]}
    invoices: {uid: Resource::"inv", attrs: {}}
  context:
    time: {hour: 14, weekday: tue}
    ip: 10.0.0.1
)";

}  // namespace

TEST_CASE("test file: tool shorthand, fixtures, context merge, defaults") {
  TestFile f;
  REQUIRE(Errors(std::string(kFixtures) + R"(
policies: [a.writ, ../shared]
schema: s.yaml
tests:
  - name: one
    principal: sam
    tool: stripe__refund_create
    args: {amount: 5, note: "5", ok: true, nothing: null}
    context: {time: {hour: 3}, ip: null}
    call: {intent: write}
    expect:
      decision: deny
      determining: [b, a]
      obligations: [{kind: tag, value: pci}]
      errors: []
  - name: two
    principal: {uid: User::"x"}
    resource: invoices
    action: resources/read
    expect: {decision: allow}
)",
                 &f) == "");
  CHECK(f.policies == std::vector<std::string>{"dir/a.writ", "shared"});
  CHECK(f.schema == "dir/s.yaml");
  REQUIRE(f.tests.size() == 2);
  const json& r = f.tests[0].request;
  CHECK(f.tests[0].line == 15);
  CHECK(r["principal"]["uid"] == "User::\"sam\"");
  CHECK(r["principal"]["attrs"]["level"] == 3);
  CHECK(r["action"] == "tools/call");
  CHECK(r["resource"]["uid"] == "Tool::\"stripe__refund_create\"");
  CHECK(r["resource"]["attrs"] ==
        json{{"name", "refund_create"}, {"server", "stripe"}, {"category", "financial"}});
  CHECK(r["resource"]["parents"] == json::array({"Server::\"stripe\"", "Group::\"money\""}));
  CHECK(r["args"] == json{{"amount", 5}, {"note", "5"}, {"ok", true}, {"nothing", nullptr}});
  // Merge patch: hour replaced, weekday kept, ip removed by null.
  CHECK(r["context"] == json{{"time", {{"hour", 3}, {"weekday", "tue"}}}});
  CHECK(r["call"] == json{{"intent", "write"}});
  CHECK(f.tests[0].expect.decision == "deny");
  CHECK(*f.tests[0].expect.determining == std::vector<std::string>{"a", "b"});
  CHECK(f.tests[0].expect.errors->empty());
  const json& r2 = f.tests[1].request;
  CHECK(r2["action"] == "resources/read");
  CHECK(r2["resource"]["uid"] == "Resource::\"inv\"");
  CHECK(r2["context"] == json{{"time", {{"hour", 14}, {"weekday", "tue"}}}, {"ip", "10.0.0.1"}});
  CHECK(r2["args"] == json::object());
  CHECK(!f.tests[1].expect.determining.has_value());
}

TEST_CASE("test file: the default policies are the file's directory") {
  TestFile f;
  REQUIRE(Errors("tests:\n  - {name: a, principal: {uid: User::\"a\"}, tool: s__t, "
                 "expect: {decision: deny}}\n",
                 &f) == "");
  CHECK(f.policies == std::vector<std::string>{"dir"});
  CHECK(f.schema.empty());  // dir/schema.yaml does not exist
}

TEST_CASE("test file: errors name file:line:col and the key, with help") {
  // Invalid YAML.
  std::string e = Errors("tests: [\n  - a: b\n");
  CHECK(Contains(e, "dir/x.test.yaml:"));
  CHECK(Contains(e, "invalid YAML"));
  // Not a mapping; no tests.
  CHECK(Contains(Errors("- 1\n"), "a test file must be a YAML mapping"));
  CHECK(Contains(Errors("fixtures: {}\n"), "dir/x.test.yaml: tests: missing"));
  CHECK(Contains(Errors("tests: []\n"), "tests: expected a non-empty list"));
  // Unknown keys, with a did-you-mean.
  e = Errors(
      "tests:\n  - name: a\n    principl: {uid: User::\"a\"}\n    tool: s__t\n"
      "    expect: {decision: deny}\n");
  CHECK(Contains(e, "dir/x.test.yaml:3:5: tests[0].principl: unknown key"));
  CHECK(Contains(e, "help: did you mean `principal`?"));
  CHECK(Contains(e, "tests[0].principal: missing"));
  CHECK(Contains(Errors("polices: a\ntests: [{name: a}]\n"), "did you mean `policies`?"));
  // A bad decision, with a suggestion.
  e = Errors(
      "tests:\n  - name: a\n    principal: {uid: User::\"a\"}\n    tool: s__t\n"
      "    expect: {decision: alow}\n");
  CHECK(Contains(e, "dir/x.test.yaml:5:24: tests[0].expect.decision: `alow` is not a decision"));
  CHECK(Contains(e, "did you mean `allow`?"));
  // Unknown fixture; bad uid; bad tool name; tool and resource together; duplicate names.
  e = Errors(std::string(kFixtures) + R"(
tests:
  - {name: a, principal: samm, tool: s__t, expect: {decision: deny}}
  - {name: b, principal: {uid: alice}, tool: nounderscore, expect: {decision: deny}}
  - {name: c, principal: sam, tool: s__t, resource: invoices, expect: {decision: deny}}
  - {name: a, principal: sam, tool: s__t, expect: {decision: deny}}
  - {name: d, principal: sam, tool: s__t, expect: {decision: deny, obligations: [{value: x}]}}
  - {name: e, principal: sam, tool: s__t}
)");
  CHECK(Contains(e, ":13:26: tests[0].principal: no fixture `samm` in fixtures.principals"));
  CHECK(Contains(e, "did you mean `sam`?"));
  CHECK(Contains(e, "tests[1].principal.uid: `alice` is not an entity uid"));
  CHECK(Contains(e, "tests[1].tool: `nounderscore` is not SERVER__name"));
  CHECK(Contains(e, "tests[2].resource: `tool` and `resource` are exclusive"));
  CHECK(Contains(e, "tests[3].name: duplicate test name `a`"));
  CHECK(Contains(e, "tests[4].expect.obligations[0].kind: missing"));
  CHECK(Contains(e, ":18:5: tests[5].expect: missing"));
  // Every problem is reported, each with a help line.
  size_t errors = 0, helps = 0;
  for (size_t p = 0; (p = e.find("dir/x.test.yaml:", p)) != std::string::npos; ++p) ++errors;
  for (size_t p = 0; (p = e.find("\nhelp: ", p)) != std::string::npos; ++p) ++helps;
  CHECK(errors == 7);
  CHECK(helps == errors);
  // A fixture resource whose uid contradicts the tool it extends.
  e = Errors(
      "fixtures: {resources: {s__t: {uid: Tool::\"other\"}}}\n"
      "tests: [{name: a, principal: {uid: User::\"a\"}, tool: s__t, "
      "expect: {decision: deny}}]\n");
  CHECK(Contains(e, "fixtures.resources.s__t has uid Tool::\"other\""));
}

TEST_CASE("test file: obligations match on the keys given") {
  using writ::harness::ObligationMatches;
  json actual = {{"kind", "rate_limit"}, {"key", "User::\"a\""}, {"limit", 20}, {"per_ms", 1}};
  CHECK(ObligationMatches({{"kind", "rate_limit"}}, actual));
  CHECK(ObligationMatches({{"kind", "rate_limit"}, {"limit", 20}}, actual));
  CHECK_FALSE(ObligationMatches({{"kind", "rate_limit"}, {"limit", 10}}, actual));
  CHECK_FALSE(ObligationMatches({{"kind", "rate_limit"}, {"burst", 1}}, actual));
  CHECK_FALSE(ObligationMatches({{"kind", "log"}}, actual));
}

TEST_CASE("test file: FindTestFiles finds *.test.yaml recursively, sorted") {
  harness_test::TempDir d("find");
  harness_test::Write(d / "b/z.test.yaml", "");
  harness_test::Write(d / "a.test.yml", "");
  harness_test::Write(d / "b/policy.writ", "");
  harness_test::Write(d / "b/notes.yaml", "");
  std::vector<std::string> files;
  std::string error;
  REQUIRE(writ::harness::FindTestFiles({d.path.string()}, &files, &error));
  REQUIRE(files.size() == 2);
  CHECK(files[0] == (d / "a.test.yml").string());
  CHECK(files[1] == (d / "b/z.test.yaml").string());
  CHECK_FALSE(writ::harness::FindTestFiles({(d / "missing").string()}, &files, &error));
  CHECK(Contains(error, "no such file or directory"));
}
