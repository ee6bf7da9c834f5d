// typecheck_test.cc -- each check of the type checker: a failing case asserting code, message,
// help and the underlined span, and a passing case that must produce no diagnostic.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "tests/typecheck/check_util.h"

using writ::testing::CheckText;
using writ::testing::Found;

namespace {

// Asserts exactly one diagnostic and returns it.
Found One(const std::vector<Found>& f) {
  INFO("diagnostics: " << f.size());
  for (const auto& d : f) INFO(d.code << " " << d.message);
  REQUIRE(f.size() == 1);
  return f[0];
}

void ExpectClean(const std::string& policy, const std::string& schema = "schema.yaml") {
  auto f = CheckText(policy, schema);
  for (const auto& d : f) {
    FAIL_CHECK("unexpected " << d.code << " at " << d.line << ":" << d.col << ": " << d.message);
  }
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kCall = "permit (principal, action == Action::\"tools/call\", resource";

}  // namespace

TEST_CASE("good.writ has no diagnostics, with and without the schema") {
  std::string text = ReadAll(writ::testing::Fixture("good.writ"));
  REQUIRE(!text.empty());
  ExpectClean(text);
  ExpectClean(text, "");
}

TEST_CASE("E0200 unknown attribute with did-you-mean") {
  Found d = One(CheckText("permit (principal is User, action, resource)\n"
                          "when { principal.departmnt == \"eng\" };"));
  CHECK(d.code == "E0200");
  CHECK(d.message == "unknown attribute `departmnt` on principal (User)");
  CHECK(d.help == "did you mean `department`?");
  CHECK(d.underlined == "principal.departmnt");
  CHECK(d.line == 2);
  CHECK(d.col == 8);

  d = One(CheckText("permit (principal, action, resource) when { context.tme.hour > 3 };"));
  CHECK(d.code == "E0200");
  CHECK(d.message == "unknown attribute `tme` on context");
  CHECK(d.help == "did you mean `time`?");
  CHECK(d.underlined == "context.tme");

  d = One(CheckText("permit (principal, action, resource) when { call.intnet == \"read\" };"));
  CHECK(d.message == "unknown attribute `intnet` on call");
  CHECK(d.help == "did you mean `intent`?");

  d = One(CheckText("permit (principal, action, resource) when { tool.annotations.readOnly };"));
  CHECK(d.message == "unknown attribute `readOnly` on resource.annotations");
  CHECK(d.help == "declared: destructiveHint, idempotentHint, openWorldHint, readOnlyHint");

  // built-in Tool attributes and a nested record are known
  ExpectClean("permit (principal, action, resource)\n"
              "when { tool.server == \"stripe\" && tool.name like \"stripe__*\" && "
              "context.time.weekday == \"Mon\" && call.intent == \"read\" };");
}

TEST_CASE("E0201 operand type errors") {
  std::string p = std::string(kCall) + " == Tool::\"stripe__refund_create\")\n";
  Found d = One(CheckText(p + "when { args.amount > \"5\" };"));
  CHECK(d.code == "E0201");
  CHECK(d.message == "`>` needs Long or Duration operands, found String");
  CHECK(d.help == "write the number without quotes");
  CHECK(d.underlined == "\"5\"");

  d = One(CheckText("permit (principal, action, resource) when { 1 + \"a\" == 3 };", ""));
  CHECK(d.message == "`+` needs Long operands, found String");
  CHECK(d.underlined == "\"a\"");

  d = One(CheckText("permit (principal, action, resource) when { true && 3 };", ""));
  CHECK(d.message == "an operand of `&&` must be a Bool, found Long");
  CHECK(d.underlined == "3");

  d = One(CheckText("permit (principal is User, action, resource) when { principal.roles like \"a*\" };"));
  CHECK(d.message == "`like` needs a String, found Set<String>");
  CHECK(d.help == "to test a set use `.contains(...)`");
  CHECK(d.underlined == "principal.roles");

  d = One(CheckText("permit (principal, action, resource) when { context.env.contains(\"prod\") };"));
  CHECK(d.message == "`.contains` needs a Set, found String");
  CHECK(d.help == "to search a string write `x like \"*text*\"`");
  CHECK(d.underlined == "context.env");

  d = One(CheckText("permit (principal, action, resource) when { principal in \"admins\" };", ""));
  CHECK(d.message == "the right side of `in` must be an entity or a set, found String");
  CHECK(d.help == "write `Role::\"admins\"` (entity) or `[\"admins\"]` (set)");
  CHECK(d.underlined == "\"admins\"");

  d = One(CheckText("permit (principal is User, action, resource) when { principal == \"alice\" };"));
  CHECK(d.message == "cannot compare User with String");
  CHECK(d.help == "write `User::\"alice\"`");
  CHECK(d.underlined == "principal == \"alice\"");

  d = One(CheckText("permit (principal, action, resource) when { context.ip.isInRange(10) };"));
  CHECK(d.message == "`.isInRange` needs an IpAddr or String argument, found Long");

  d = One(CheckText("permit (principal, action, resource) when { context.time.hour };"));
  CHECK(d.message == "a `when` condition must be a Bool, found Long");
  CHECK(d.underlined == "context.time.hour");

  ExpectClean("permit (principal is User, action, resource)\n"
              "when { principal.roles.contains(\"admin\") && principal.roles.containsAny([\"a\"]) "
              "&& \"x\" in principal.roles && -(1) < 2 && !principal.mfa && "
              "principal in Group::\"eng\" && (if principal.mfa then 1 else 2) == 1 };");
}

TEST_CASE("E0202 optional attribute without has") {
  std::string p = std::string(kCall) + " == Tool::\"stripe__refund_create\")\n";
  Found d = One(CheckText(p + "when { args.currency == \"usd\" };"));
  CHECK(d.code == "E0202");
  CHECK(d.message == "attribute `currency` of args may be missing");
  CHECK(d.help ==
        "guard it: `args has currency && args.currency ...` (an unguarded missing attribute is "
        "an error at run time)");
  CHECK(d.underlined == "args.currency");
  CHECK(d.line == 2);

  d = One(CheckText("permit (principal, action, resource) when { principal.mfa };"));
  CHECK(d.message == "`principal` may be Agent, which has no attribute `mfa`");
  CHECK(d.help == "narrow it first: `principal is User && principal.mfa ...`, or guard with "
                  "`principal has mfa`");

  d = One(CheckText("permit (principal is User, action, resource)\n"
                    "when { principal has clearance || principal.clearance > 3 };"));
  CHECK(d.underlined == "principal.clearance");

  // guards through &&, if, ||-negation, !, and across when/unless clauses
  ExpectClean(p + "when { args has currency && args.currency == \"usd\" };");
  ExpectClean(p + "when { if args has reason then args.reason like \"*fraud*\" else false };");
  ExpectClean(p + "when { !(args has reason) || args.reason == \"dup\" };");
  ExpectClean(p + "when { args has reason } when { args.reason == \"dup\" };");
  ExpectClean(p + "unless { !(args has reason) } when { args.reason == \"dup\" };");
  ExpectClean("permit (principal is User, action, resource)\n"
              "when { principal has clearance && principal.clearance > 2 };");
  ExpectClean("permit (principal, action, resource)\n"
              "when { principal is User && principal.mfa };");
}

TEST_CASE("E0203 invalid regex and E0204 duplicate id (schema-independent)") {
  Found d = One(CheckText("permit (principal, action, resource) when { tool.name matches \"(a\" };", ""));
  CHECK(d.code == "E0203");
  CHECK(d.message == "invalid regular expression: missing ): (a");
  CHECK(d.underlined == "tool.name matches \"(a\"");

  d = One(CheckText("@id(\"a\") permit (principal, action, resource);\n"
                    "@id(\"a\") permit (principal, action, resource);", ""));
  CHECK(d.code == "E0204");
  CHECK(d.message == "duplicate id `a`");
  CHECK(d.line == 2);
  CHECK(d.underlined == "@id(\"a\")");
  ExpectClean("permit (principal, action, resource) when { tool.name matches \"^[a-z]+__\" };", "");
}

TEST_CASE("E0205 statements that can never match") {
  Found d = One(CheckText("permit (principal, action, resource) when { 1 > 2 };", ""));
  CHECK(d.code == "E0205");
  CHECK(d.message == "this condition is always false, so the statement never matches");
  CHECK(d.underlined == "1 > 2");

  d = One(CheckText("forbid (principal, action, resource) unless { true || context.x };", ""));
  CHECK(d.message == "this condition is always true, so the statement never matches");

  d = One(CheckText("rule if false && tool.name == \"x\" then log(critical);", ""));
  CHECK(d.message == "this condition is always false, so the rule never applies");

  d = One(CheckText("permit (principal is Agent, action, resource);", "user_only.yaml"));
  CHECK(d.message == "`principal` is never a `Agent`, so this statement never matches");
  CHECK(d.help == "the schema's `principals` lists User; add `Agent` there or change the scope");
  CHECK(d.underlined == "Agent");

  d = One(CheckText("permit (principal in Server::\"s\", action, resource);"));
  CHECK(d.message == "no principal type can be in a `Server`, so this statement never matches");
  CHECK(d.underlined == "Server::\"s\"");

  ExpectClean("permit (principal, action, resource) when { 1 < 2 || context.x };", "");
  ExpectClean("permit (principal is Agent in Role::\"bots\", action, resource in Server::\"s\");");
}

TEST_CASE("E0206 permit shadowed by forbid") {
  auto f = CheckText("@id(\"p\") permit (principal in Role::\"eng\", action == Action::\"tools/call\",\n"
                     "  resource == Tool::\"stripe__refund_create\");\n"
                     "@id(\"f\") forbid (principal, action, resource in Server::\"x\");\n"
                     "@id(\"g\") forbid (principal, action in [Action::\"tools/call\"], resource);",
                     "");
  Found d = One(f);
  CHECK(d.code == "E0206");
  CHECK(d.message == "permit `p` is shadowed by forbid `g`");
  CHECK(d.underlined == "permit");
  CHECK(d.line == 1);
  // a forbid with a condition, or a narrower scope, does not shadow
  ExpectClean("permit (principal, action, resource);\n"
              "forbid (principal, action, resource) when { context.env == \"prod\" };\n"
              "forbid (principal == User::\"bob\", action, resource);", "");
}

TEST_CASE("E0207 unknown tool argument, and args of several tools") {
  std::string p = std::string(kCall) + " == Tool::\"stripe__refund_create\")\n";
  Found d = One(CheckText(p + "when { args.amout > 5 };"));
  CHECK(d.code == "E0207");
  CHECK(d.message == "tool `stripe__refund_create` has no argument `amout`");
  CHECK(d.help == "did you mean `amount`?");
  CHECK(d.underlined == "args.amout");

  d = One(CheckText(std::string(kCall) + " in Server::\"stripe\") when { args.nope == 1 };"));
  CHECK(d.message ==
        "no tool among `stripe__charge_list`, `stripe__refund_create` has an argument `nope`");
  // `amount` exists on only one stripe tool: optional across the server
  d = One(CheckText(std::string(kCall) + " in Server::\"stripe\") when { args.amount > 1 };"));
  CHECK(d.code == "E0202");
  ExpectClean(std::string(kCall) + " in Server::\"stripe\") when { args has amount && args.amount > 1 };");
  // unpinned or unknown server: args is dynamic
  ExpectClean("permit (principal, action, resource) when { args.anything == 1 };");
  ExpectClean(std::string(kCall) + " == Tool::\"github__create_issue\") when { args.title == \"x\" };");
}

TEST_CASE("E0208 unknown entity type, E0209 unknown action, E0210 unknown tool") {
  Found d = One(CheckText("permit (principal in Rol::\"admin\", action, resource);"));
  CHECK(d.code == "E0208");
  CHECK(d.message == "unknown entity type `Rol`");
  CHECK(d.help == "did you mean `Role`?");
  CHECK(d.underlined == "Rol::\"admin\"");

  d = One(CheckText("permit (principal, action, resource) when { principal is Usr };"));
  CHECK(d.code == "E0208");
  CHECK(d.underlined == "Usr");

  d = One(CheckText("permit (principal, action == Action::\"tools/cal\", resource);", ""));
  CHECK(d.code == "E0209");
  CHECK(d.message == "unknown action `tools/cal`");
  CHECK(d.help == "did you mean `Action::\"tools/call\"`?");

  d = One(CheckText(std::string(kCall) + " == Tool::\"stripe__refund_creat\");"));
  CHECK(d.code == "E0210");
  CHECK(d.message == "unknown tool `stripe__refund_creat`");
  CHECK(d.help == "did you mean `Tool::\"stripe__refund_create\"`?");
}

TEST_CASE("rate_limit key is type checked; all errors are reported at once") {
  Found d = One(CheckText("rule if true then rate_limit(key: principal.tenat, limit: 5, per: 1m);"));
  CHECK(d.code == "E0200");
  CHECK(d.underlined == "principal.tenat");

  auto f = CheckText("permit (principal, action, resource) when { 1 + \"a\" == 2 && true && 3 };\n"
                     "permit (principal, action, resource) when { \"x\" like \"y\" && 4 };", "");
  CHECK(f.size() == 3);
}

TEST_CASE("without a schema, attributes are dynamic") {
  ExpectClean("permit (principal, action, resource)\n"
              "when { principal.whatever.deep == \"x\" && args.amount > 5 && context.a.b };", "");
}
