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

TEST_CASE("test file: fixtures.call is every test's default call, merged like context") {
  TestFile f;
  std::string e = Errors(R"(
fixtures:
  principals: {sam: {uid: User::"sam"}}
  call: {intent: read, source: agent}
tests:
  - {name: a, principal: sam, tool: s__t, expect: {decision: deny}}
  - {name: b, principal: sam, tool: s__t, call: {intent: write}, expect: {decision: deny}}
  - {name: c, principal: sam, tool: s__t, call: {source: null}, expect: {decision: deny}}
)",
                         &f);
  REQUIRE(e.empty());
  REQUIRE(f.tests.size() == 3);
  CHECK(f.tests[0].request["call"] == json{{"intent", "read"}, {"source", "agent"}});
  CHECK(f.tests[1].request["call"] == json{{"intent", "write"}, {"source", "agent"}});
  CHECK(f.tests[2].request["call"] == json{{"intent", "read"}});
  e = Errors(
      "fixtures: {call: [read]}\ntests: [{name: a, principal: {uid: User::\"a\"}, "
      "tool: s__t, expect: {decision: deny}}]\n");
  CHECK(Contains(e, "dir/x.test.yaml:1:18: fixtures.call: expected a mapping"));
  CHECK(Contains(e, "help: the default call facts, a mapping, e.g. {intent: read}"));
  CHECK(Contains(Errors("fixtures: {cal: {}}\ntests: [{name: a}]\n"), "did you mean `call`?"));
}

TEST_CASE("test file: exact_obligations, absent_obligations") {
  TestFile f;
  std::string e = Errors(std::string(kFixtures) + R"(
tests:
  - name: a
    principal: sam
    tool: s__t
    expect:
      decision: deny
      exact_obligations: [{kind: reason}, {kind: log, level: critical}]
      absent_obligations: [{kind: notify}]
  - name: b
    principal: sam
    tool: s__t
    expect: {decision: allow, exact_obligations: []}
)",
                         &f);
  REQUIRE(e.empty());
  CHECK(f.tests[0].expect.obligations_exact);
  CHECK(f.tests[0].expect.obligations.size() == 2);
  CHECK(f.tests[0].expect.absent_obligations == std::vector<json>{{{"kind", "notify"}}});
  CHECK(f.tests[1].expect.obligations_exact);
  CHECK(f.tests[1].expect.obligations.empty());
  e = Errors(std::string(kFixtures) + R"(
tests:
  - name: a
    principal: sam
    tool: s__t
    expect: {decision: deny, obligations: [{kind: tag}], exact_obligations: [{kind: tag}]}
  - name: b
    principal: sam
    tool: s__t
    expect: {decision: deny, absent_obligations: []}
  - name: c
    principal: sam
    tool: s__t
    expect: {decision: deny, absent_obligations: [{level: info}], exact_obligation: []}
)");
  CHECK(Contains(e,
                 ":16:77: tests[0].expect.exact_obligations: `obligations` and "
                 "`exact_obligations` are exclusive"));
  CHECK(Contains(e, ":20:50: tests[1].expect.absent_obligations: empty list"));
  CHECK(Contains(e, "help: list the obligations that must not be there"));
  CHECK(Contains(e, "tests[2].expect.absent_obligations[0].kind: missing"));
  CHECK(Contains(e, "tests[2].expect.exact_obligation: unknown key"));
  CHECK(Contains(e, "did you mean `exact_obligations`?"));
}

TEST_CASE("test file: visibility tests list tools per class") {
  TestFile f;
  std::string e = Errors(std::string(kFixtures) + R"(
  call: {intent: read}
tests:
  - name: what sam sees
    principal: sam
    context: {ip: 10.0.0.2}
    visibility:
      visible: [docs__search]
      hidden: [stripe__refund_create, crm__get_account]
      depends_on_args: [github__get_file]
)",
                         &f);
  REQUIRE(e.empty());
  const auto& t = f.tests[0];
  REQUIRE(t.is_visibility());
  REQUIRE(t.visibility.size() == 4);
  CHECK(t.visibility[0].tool == "docs__search");
  CHECK(t.visibility[0].expected == "visible");
  CHECK(t.visibility[0].line == 18);
  CHECK(t.visibility[1].expected == "hidden");
  CHECK(t.visibility[3].expected == "depends_on_args");
  const json& r = t.visibility[1].request;
  CHECK(r["resource"]["uid"] == "Tool::\"stripe__refund_create\"");
  CHECK(r["resource"]["attrs"]["category"] == "financial");  // the resource fixture merged
  CHECK(r["principal"]["uid"] == "User::\"sam\"");
  CHECK(r["call"] == json{{"intent", "read"}});
  CHECK(r["context"]["ip"] == "10.0.0.2");
  CHECK_FALSE(r.contains("args"));

  e = Errors(std::string(kFixtures) + R"(
tests:
  - name: a
    principal: sam
    tool: s__t
    args: {x: 1}
    visibility: {visible: [s__t]}
  - name: b
    principal: sam
    visibility: {visible: [s__t], hidden: [s__t, nounderscore], shown: [x__y]}
    expect: {decision: allow}
  - name: c
    principal: sam
    visibility: {}
  - name: d
    principal: sam
    visibility: {hidden: docs__search}
)");
  CHECK(Contains(e, ":15:11: tests[0].tool: not allowed in a `visibility` test"));
  CHECK(Contains(e, ":16:11: tests[0].args: not allowed in a `visibility` test"));
  CHECK(Contains(e, "help: arguments are unknown when tools/list is decided"));
  CHECK(Contains(e, "tests[1].visibility.hidden[0]: `s__t` is already listed under visible"));
  CHECK(Contains(e, "tests[1].visibility.hidden[1]: `nounderscore` is not SERVER__name"));
  CHECK(Contains(e, "tests[1].visibility.shown: unknown key"));
  CHECK(Contains(e, "tests[1].expect: not allowed in a `visibility` test"));
  CHECK(Contains(e, "tests[2].visibility: no tools listed"));
  CHECK(Contains(e, "tests[3].visibility.hidden: expected a list of tools"));
  size_t errors = 0, helps = 0;
  for (size_t p = 0; (p = e.find("dir/x.test.yaml:", p)) != std::string::npos; ++p) ++errors;
  for (size_t p = 0; (p = e.find("\nhelp: ", p)) != std::string::npos; ++p) ++helps;
  CHECK(errors == 8);
  CHECK(helps == errors);
}
