// reference_test.cc -- hand-written cases for the reference evaluator: every row of the
// operator table of docs/semantics.md, the combining rules and obligation merging, each
// asserting the full decision JSON.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "base/diagnostic.h"
#include "compiler/frontend.h"
#include "tests/reference/reference_eval.h"

namespace writ::reference {
namespace {

using nlohmann::json;

// A request with the usual vocabulary; each top-level key of `patch` replaces the default.
json Request(const json& patch = json::object()) {
  json r = {
      {"principal",
       {{"uid", "User::\"alice\""},
        {"attrs", {{"department", "eng"}, {"roles", {"dev", "ops"}}, {"mfa", true},
                   {"clearance", 3}}},
        {"parents", {"Role::\"analyst\"", "Group::\"eng\""}}}},
      {"action", "tools/call"},
      {"resource",
       {{"uid", "Tool::\"stripe__refund_create\""},
        {"attrs", {{"category", "financial"}}},
        {"parents", {"Server::\"stripe\""}}}},
      {"args", {{"amount", 70000}, {"currency", "usd"}}},
      {"context", {{"ip", "10.1.2.3"}, {"time", {{"hour", 14}, {"weekday", "tue"}}}}},
      {"call", {{"intent", "write"}}}};
  for (auto it = patch.begin(); it != patch.end(); ++it) r[it.key()] = it.value();
  return r;
}

// Parse only: the oracle must also define the meaning of ill-typed policies.
FrontEnd Parse(const std::string& text) {
  FrontEnd fe = ParseText("t.writ", text);
  INFO(Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText));
  REQUIRE(!fe.diags.has_errors());
  return fe;
}

json Decide(const std::string& text, const json& request = Request()) {
  FrontEnd fe = Parse(text);
  return ReferenceDecide(fe.policies, request);
}

json D(const char* decision, std::vector<std::string> determining,
       json obligations = json::array(), std::vector<std::string> errors = {}) {
  return {{"decision", decision},
          {"determining", determining},
          {"obligations", obligations},
          {"errors", errors}};
}

// The value of `expr` as seen by `permit when { expr }` and by a forbid: "true", "false" or
// "error" (the permit grants only on true; the forbid matches on true or error).
std::string Cond(const std::string& expr, const json& request = Request()) {
  json p = Decide("@id(\"p\") permit (principal, action, resource) when { " + expr + " };",
                  request);
  if (p["decision"] == "allow") {
    CHECK(p == D("allow", {"p"}));
    return "true";
  }
  if (p["errors"].empty()) {
    CHECK(p == D("deny", {}));
    return "false";
  }
  CHECK(p == D("deny", {}, json::array(), {"p"}));
  return "error";
}

TEST_CASE("literals and attribute access") {
  CHECK(Cond("true") == "true");
  CHECK(Cond("false") == "false");
  CHECK(Cond("1") == "error");  // a non-Bool condition
  CHECK(Cond("principal.department == \"eng\"") == "true");
  CHECK(Cond("principal[\"department\"] == \"eng\"") == "true");
  CHECK(Cond("principal.nope == \"eng\"") == "error");
  CHECK(Cond("resource.category == \"financial\"") == "true");
  CHECK(Cond("tool.category == \"financial\"") == "true");
  CHECK(Cond("action.x == 1") == "error");         // action has no attributes
  CHECK(Cond("User::\"alice\".department == \"eng\"") == "error");  // nor other entities
  CHECK(Cond("\"s\".x == 1") == "error");
  CHECK(Cond("context.time.hour == 14") == "true");
  CHECK(Cond("context.time.minute == 14") == "error");
  CHECK(Cond("call.intent == \"write\"") == "true");
  CHECK(Cond("{a: 1, b: \"x\"}.b == \"x\"") == "true");
  CHECK(Cond("(if true then principal else resource).mfa") == "true");
  CHECK(Cond("{p: principal}.p.clearance == 3") == "true");
}

TEST_CASE("has") {
  CHECK(Cond("args has amount") == "true");
  CHECK(Cond("args has nope") == "false");
  CHECK(Cond("principal has mfa") == "true");
  CHECK(Cond("resource has mfa") == "false");
  CHECK(Cond("action has mfa") == "false");
  CHECK(Cond("User::\"alice\" has mfa") == "false");
  CHECK(Cond("args.amount has x") == "error");
  CHECK(Cond("\"s\" has x") == "error");
  CHECK(Cond("args has \"amount\"") == "true");
  // null: present (has is true) but an error when read.
  json r = Request({{"args", {{"amount", nullptr}, {"currency", "usd"}}}});
  CHECK(Cond("args has amount", r) == "true");
  CHECK(Cond("args.amount == 1", r) == "error");
  CHECK(Cond("args.currency == \"usd\"", r) == "true");
}

TEST_CASE("equality") {
  CHECK(Cond("1 == 1") == "true");
  CHECK(Cond("1 != 2") == "true");
  CHECK(Cond("1 == \"1\"") == "false");  // different types: unequal, never an error
  CHECK(Cond("1 != \"1\"") == "true");
  CHECK(Cond("args.amount == \"70000\"") == "false");
  CHECK(Cond("1m == 60s") == "true");
  CHECK(Cond("60000 == 1m") == "false");
  CHECK(Cond("[1, 2, 2] == [2, 1]") == "true");  // sets compare as sets
  CHECK(Cond("[1, 2] == [1, 2, 3]") == "false");
  CHECK(Cond("{a: 1, b: [1]} == {b: [1], a: 1}") == "true");
  CHECK(Cond("{a: 1} == {a: 1, b: 2}") == "false");
  CHECK(Cond("principal == User::\"alice\"") == "true");
  CHECK(Cond("principal == Agent::\"alice\"") == "false");
  CHECK(Cond("action == Action::\"tools/call\"") == "true");
  CHECK(Cond("principal.roles == [\"ops\", \"dev\"]") == "true");
  CHECK(Cond("ip(\"10.0.0.0/8\") == ip(\"10.0.0.0/8\")") == "true");
  CHECK(Cond("ip(\"10.1.0.0/8\") == ip(\"10.0.0.0/8\")") == "false");
  CHECK(Cond("ip(\"10.0.0.1\") == \"10.0.0.1\"") == "false");
  CHECK(Cond("args.nope == 1") == "error");
  CHECK(Cond("1 == args.nope") == "error");
  CHECK(Cond("args.nope != 1") == "error");
  // A JSON record with a null inside is an error when compared as a whole.
  json r = Request({{"args", {{"m", {{"a", 1}, {"b", nullptr}}}}}});
  CHECK(Cond("args.m == {a: 1}", r) == "error");
  CHECK(Cond("args.m.a == 1", r) == "true");
  CHECK(Cond("args.m == 5", r) == "error");
  // JSON arrays with an error element are errors.
  json s = Request({{"args", {{"s", {1, nullptr}}, {"f", {1, 2.5}}}}});
  CHECK(Cond("args.s == [1]", s) == "error");
  CHECK(Cond("args.f.contains(1)", s) == "error");
}

TEST_CASE("ordering comparisons") {
  CHECK(Cond("1 < 2") == "true");
  CHECK(Cond("2 <= 2") == "true");
  CHECK(Cond("3 > 2") == "true");
  CHECK(Cond("2 >= 3") == "false");
  CHECK(Cond("15m < 1h") == "true");
  CHECK(Cond("1h >= 60m") == "true");
  CHECK(Cond("1 < 1h") == "error");
  CHECK(Cond("\"a\" < \"b\"") == "error");
  CHECK(Cond("true < false") == "error");
  CHECK(Cond("args.amount > 50000") == "true");
  CHECK(Cond("args.currency > 50000") == "error");
}

TEST_CASE("arithmetic and overflow") {
  CHECK(Cond("1 + 2 == 3") == "true");
  CHECK(Cond("1 - 2 == -1") == "true");
  CHECK(Cond("3 * 4 == 12") == "true");
  CHECK(Cond("-(3) == -3") == "true");
  CHECK(Cond("9223372036854775807 + 1 > 0") == "error");
  CHECK(Cond("-9223372036854775808 - 1 < 0") == "error");
  CHECK(Cond("-9223372036854775808 == -9223372036854775807 - 1") == "true");
  CHECK(Cond("-(-9223372036854775808) > 0") == "error");
  CHECK(Cond("4611686018427387904 * 2 > 0") == "error");
  CHECK(Cond("4611686018427387904 * -2 < 0") == "true");
  CHECK(Cond("1m + 1m == 2m") == "error");  // Long only
  CHECK(Cond("\"a\" + 1 == 2") == "error");
  CHECK(Cond("-\"a\" == 2") == "error");
  CHECK(Cond("args.amount * 1000000000000000 > 0") == "error");
}

TEST_CASE("Kleene logic in both orders") {
  CHECK(Cond("false && args.nope") == "false");
  CHECK(Cond("args.nope && false") == "false");
  CHECK(Cond("true && args.nope") == "error");
  CHECK(Cond("args.nope && true") == "error");
  CHECK(Cond("true || args.nope") == "true");
  CHECK(Cond("args.nope || true") == "true");
  CHECK(Cond("false || args.nope") == "error");
  CHECK(Cond("args.nope || false") == "error");
  CHECK(Cond("!args.nope") == "error");
  CHECK(Cond("!false") == "true");
  CHECK(Cond("!1") == "error");
  CHECK(Cond("1 && false") == "false");  // a non-Bool operand is an error
  CHECK(Cond("1 && true") == "error");
  CHECK(Cond("1 || true") == "true");
  CHECK(Cond("true && true && true") == "true");
  CHECK(Cond("args.nope || args.nope2 || true") == "true");
}

TEST_CASE("if-then-else") {
  CHECK(Cond("if true then true else args.nope") == "true");  // only the chosen branch
  CHECK(Cond("if false then args.nope else true") == "true");
  CHECK(Cond("if args.nope then true else true") == "error");
  CHECK(Cond("if 1 then true else true") == "error");
  CHECK(Cond("(if principal.mfa then 1 else 2) == 1") == "true");
}

TEST_CASE("in: entity hierarchy and sets") {
  CHECK(Cond("principal in Role::\"analyst\"") == "true");
  CHECK(Cond("principal in User::\"alice\"") == "true");
  CHECK(Cond("principal in Role::\"admin\"") == "false");
  CHECK(Cond("resource in Server::\"stripe\"") == "true");
  CHECK(Cond("action in Action::\"tools/call\"") == "true");
  CHECK(Cond("User::\"alice\" in Role::\"analyst\"") == "false");  // literals have no parents
  CHECK(Cond("principal in [Role::\"admin\", Group::\"eng\"]") == "true");
  CHECK(Cond("principal in [Role::\"admin\", \"x\"]") == "false");
  CHECK(Cond("principal in [User::\"alice\"]") == "true");
  CHECK(Cond("\"dev\" in principal.roles") == "true");
  CHECK(Cond("\"qa\" in principal.roles") == "false");
  CHECK(Cond("1 in [1, 2]") == "true");
  CHECK(Cond("[1] in [[1], 2]") == "true");
  CHECK(Cond("1 in User::\"alice\"") == "error");
  CHECK(Cond("principal in \"x\"") == "error");
  CHECK(Cond("1 in 1") == "error");
  CHECK(Cond("1 in [1, args.nope]") == "error");
  CHECK(Cond("resource in principal") == "false");
  json r = Request({{"args", {{"owner", {{"__entity", "User::\"alice\""}}}}}});
  CHECK(Cond("args.owner == principal", r) == "true");
  CHECK(Cond("args.owner in Role::\"analyst\"", r) == "false");
  CHECK(Cond("args.owner in [User::\"alice\"]", r) == "true");
  json bad = Request({{"args", {{"owner", {{"__entity", "alice"}}}}}});
  CHECK(Cond("args has owner", bad) == "true");
  CHECK(Cond("args.owner == 1", bad) == "error");
}

TEST_CASE("is") {
  CHECK(Cond("principal is User") == "true");
  CHECK(Cond("principal is Agent") == "false");
  CHECK(Cond("principal is User in Group::\"eng\"") == "true");
  CHECK(Cond("principal is User in Group::\"ops\"") == "false");
  CHECK(Cond("principal is Agent in args.nope") == "false");  // false && error
  CHECK(Cond("principal is User in args.nope") == "error");
  CHECK(Cond("resource is Tool in [Server::\"x\", Server::\"stripe\"]") == "true");
  CHECK(Cond("\"x\" is User") == "error");
  CHECK(Cond("Ns::T::\"a\" is Ns::T") == "true");
}

TEST_CASE("like, matches, lower") {
  CHECK(Cond("\"stripe__refund\" like \"stripe__*\"") == "true");
  CHECK(Cond("\"abc\" like \"a*c\"") == "true");
  CHECK(Cond("\"ac\" like \"a*c\"") == "true");
  CHECK(Cond("\"a\" like \"a*a\"") == "false");
  CHECK(Cond("\"abc\" like \"abc\"") == "true");
  CHECK(Cond("\"abcd\" like \"abc\"") == "false");
  CHECK(Cond("\"a*c\" like \"a\\*c\"") == "true");
  CHECK(Cond("\"abc\" like \"a\\*c\"") == "false");
  CHECK(Cond("\"xaybzc\" like \"*a*b*c\"") == "true");
  CHECK(Cond("\"abab\" like \"*ab*ab\"") == "true");
  CHECK(Cond("\"aba\" like \"*ab*ab\"") == "false");
  CHECK(Cond("\"\" like \"*\"") == "true");
  CHECK(Cond("1 like \"*\"") == "error");
  CHECK(Cond("\"DROP TABLE x\" matches \"(?i)drop\\\\s+table\"") == "true");
  CHECK(Cond("\"select\" matches \"^drop\"") == "false");
  CHECK(Cond("\"xabcx\" matches \"abc\"") == "true");  // partial match
  CHECK(Cond("1 matches \"1\"") == "error");
  CHECK(Cond("\"AbC\".lower() == \"abc\"") == "true");
  CHECK(Cond("\"ÀB\".lower() == \"Àb\"") == "true");  // ASCII only
  CHECK(Cond("1.lower() == \"1\"") == "error");
}

TEST_CASE("set methods") {
  CHECK(Cond("principal.roles.contains(\"dev\")") == "true");
  CHECK(Cond("principal.roles.contains(1)") == "false");
  CHECK(Cond("\"dev\".contains(\"d\")") == "error");
  CHECK(Cond("[1, 2].containsAll([2])") == "true");
  CHECK(Cond("[1, 2].containsAll([2, 3])") == "false");
  CHECK(Cond("[1, 2].containsAll([])") == "true");
  CHECK(Cond("[1, 2].containsAny([3, 2])") == "true");
  CHECK(Cond("[1, 2].containsAny([])") == "false");
  CHECK(Cond("[1, 2].containsAny(2)") == "error");
  CHECK(Cond("1.containsAll([1])") == "error");
  CHECK(Cond("[].isEmpty()") == "true");
  CHECK(Cond("[1].isEmpty()") == "false");
  CHECK(Cond("\"\".isEmpty()") == "error");
  CHECK(Cond("[{a: 1}].contains({a: 1})") == "true");
  CHECK(Cond("[1].contains(args.nope)") == "error");
}

TEST_CASE("ip and isInRange") {
  CHECK(Cond("context.ip.isInRange(ip(\"10.0.0.0/8\"))") == "true");
  CHECK(Cond("context.ip.isInRange(\"10.0.0.0/8\")") == "true");
  CHECK(Cond("context.ip.isInRange(ip(\"192.168.0.0/16\"))") == "false");
  CHECK(Cond("ip(\"10.1.0.0/16\").isInRange(ip(\"10.0.0.0/8\"))") == "true");
  CHECK(Cond("ip(\"10.0.0.0/8\").isInRange(ip(\"10.1.0.0/16\"))") == "false");
  CHECK(Cond("ip(\"0.0.0.0/0\").isInRange(\"0.0.0.0/0\")") == "true");
  CHECK(Cond("\"1.2.3.4\".isInRange(\"0.0.0.0/0\")") == "true");
  CHECK(Cond("\"::1\".isInRange(\"::1/128\")") == "true");
  CHECK(Cond("\"2001:db8::1\".isInRange(\"2001:db8::/32\")") == "true");
  CHECK(Cond("\"2001:db9::1\".isInRange(\"2001:db8::/32\")") == "false");
  CHECK(Cond("\"::ffff:10.0.0.1\".isInRange(\"10.0.0.0/8\")") == "false");  // no v4-mapping
  CHECK(Cond("\"10.0.0.1\".isInRange(\"::/0\")") == "false");
  CHECK(Cond("\"10.0.0.256\".isInRange(\"10.0.0.0/8\")") == "error");
  CHECK(Cond("\"10.0.0.1\".isInRange(\"10.0.0.0/33\")") == "error");
  CHECK(Cond("\"10.0.0.1\".isInRange(\"10.0.0.0/08\")") == "error");
  CHECK(Cond("\"010.0.0.1\".isInRange(\"10.0.0.0/8\")") == "error");
  CHECK(Cond("\"::1\".isInRange(\"::/129\")") == "error");
  CHECK(Cond("\"bad\".isInRange(\"10.0.0.0/8\")") == "error");
  CHECK(Cond("1.isInRange(\"10.0.0.0/8\")") == "error");
  CHECK(Cond("ip(\"nope\") == ip(\"nope\")") == "error");
}

TEST_CASE("set and record literals with errors") {
  CHECK(Cond("[1, args.nope] == [1]") == "error");
  CHECK(Cond("{a: args.nope} == {a: 1}") == "error");
  CHECK(Cond("{a: args.nope}.b == 1") == "error");
}

TEST_CASE("JSON numbers") {
  json r = Request({{"args", {{"f", 1.5}, {"z", 5.0}, {"big", 9223372036854775807ULL},
                              {"huge", 9223372036854775808ULL}, {"neg", -9223372036854775807LL - 1}}}});
  CHECK(Cond("args.f > 0", r) == "error");
  CHECK(Cond("args.z == 5", r) == "error");  // floats are errors even when whole
  CHECK(Cond("args.big == 9223372036854775807", r) == "true");
  CHECK(Cond("args.huge > 0", r) == "error");
  CHECK(Cond("args.neg == -9223372036854775808", r) == "true");
  CHECK(Cond("args.neg - 1 < 0", r) == "error");
}

TEST_CASE("scopes") {
  auto dec = [](const std::string& scope, const json& r = Request()) {
    return Decide("@id(\"p\") permit (" + scope + ");", r)["decision"].get<std::string>();
  };
  CHECK(dec("principal, action, resource") == "allow");
  CHECK(dec("principal == User::\"alice\", action, resource") == "allow");
  CHECK(dec("principal == User::\"bob\", action, resource") == "deny");
  CHECK(dec("principal in Role::\"analyst\", action, resource") == "allow");
  CHECK(dec("principal in User::\"alice\", action, resource") == "allow");
  CHECK(dec("principal in [Role::\"x\", Group::\"eng\"], action, resource") == "allow");
  CHECK(dec("principal is User, action, resource") == "allow");
  CHECK(dec("principal is Agent, action, resource") == "deny");
  CHECK(dec("principal is User in Group::\"eng\", action, resource") == "allow");
  CHECK(dec("principal is User in Group::\"x\", action, resource") == "deny");
  CHECK(dec("principal, action == Action::\"tools/call\", resource") == "allow");
  CHECK(dec("principal, action == Action::\"resources/read\", resource") == "deny");
  CHECK(dec("principal, action in [Action::\"resources/read\", Action::\"tools/call\"], "
            "resource") == "allow");
  CHECK(dec("principal, action in [Action::\"resources/read\"], resource") == "deny");
  CHECK(dec("principal, action, resource in Server::\"stripe\"") == "allow");
  CHECK(dec("principal, action, tool == Tool::\"stripe__refund_create\"") == "allow");
  CHECK(dec("principal, action, resource is Tool in Server::\"github\"") == "deny");
}

TEST_CASE("combining: forbid wins, default deny, require_approval") {
  const std::string permit = "@id(\"p\") permit (principal, action, resource);\n";
  const std::string forbid = "@id(\"f\") forbid (principal, action, resource);\n";
  CHECK(Decide("") == D("deny", {}));
  CHECK(Decide(permit) == D("allow", {"p"}));
  CHECK(Decide(permit + forbid) == D("deny", {"f"}));
  CHECK(Decide(forbid) == D("deny", {"f"}));
  CHECK(Decide(permit + "@id(\"q\") permit (principal, action, resource) when { false };") ==
        D("allow", {"p"}));
  CHECK(Decide(permit + "@id(\"a\") permit (principal, action, resource);") ==
        D("allow", {"a", "p"}));
  json approval = {{"kind", "require_approval"},
                   {"approvers", {"finance-leads"}},
                   {"timeout_ms", 900000}};
  std::string rule =
      "@id(\"r\") rule if resource.category == \"financial\" "
      "then require_approval(approvers: \"finance-leads\", timeout: 15m);\n";
  CHECK(Decide(permit + rule) == D("require_approval", {"p", "r"}, {approval}));
  // A rule never grants by itself; its obligations still apply.
  CHECK(Decide(rule) == D("deny", {}, {approval}));
  // Forbid wins over require_approval.
  CHECK(Decide(permit + rule + forbid) == D("deny", {"f"}, {approval}));
  // A permit carrying require_approval.
  CHECK(Decide("@id(\"p\") permit (principal, action, resource) then require_approval();") ==
        D("require_approval", {"p"},
          {{{"kind", "require_approval"}, {"approvers", {"default"}}, {"timeout_ms", 900000}}}));
  // A non-matching permit's obligations do not apply.
  CHECK(Decide(permit + "@id(\"q\") permit (principal, action, resource) when { false } "
                        "then reason(\"x\");") == D("allow", {"p"}));
}

TEST_CASE("errors fail closed in forbid and rule, not in permit") {
  const std::string permit = "@id(\"p\") permit (principal, action, resource);\n";
  // The headline case: a string amount must not slip past a numeric limit.
  std::string big =
      "@id(\"no-big-refunds\") forbid (principal, action == Action::\"tools/call\", "
      "resource == Tool::\"stripe__refund_create\") when { args.amount > 50000 } "
      "then reason(\"refunds above 50,000 need the finance desk\");\n";
  json reason = {{"kind", "reason"}, {"message", "refunds above 50,000 need the finance desk"}};
  CHECK(Decide(permit + big, Request({{"args", {{"amount", "50001"}}}})) ==
        D("deny", {"no-big-refunds"}, {reason}, {"no-big-refunds"}));
  CHECK(Decide(permit + big, Request({{"args", {{"amount", 50001}}}})) ==
        D("deny", {"no-big-refunds"}, {reason}));
  CHECK(Decide(permit + big, Request({{"args", {{"amount", 50000}}}})) == D("allow", {"p"}));
  CHECK(Decide(permit + big, Request({{"args", json::object()}})) ==
        D("deny", {"no-big-refunds"}, {reason}, {"no-big-refunds"}));
  CHECK(Decide(permit + big, Request({{"args", {{"amount", 50000.5}}}})) ==
        D("deny", {"no-big-refunds"}, {reason}, {"no-big-refunds"}));
  CHECK(Decide(permit + big, Request({{"args", {{"amount", nullptr}}}})) ==
        D("deny", {"no-big-refunds"}, {reason}, {"no-big-refunds"}));
  // A scope that does not match: no error even though the condition would err.
  CHECK(Decide(permit + big, Request({{"action", "resources/read"}, {"args", {{"amount", "x"}}}})) ==
        D("allow", {"p"}));
  // An erroring permit grants nothing, and is listed in errors.
  CHECK(Decide("@id(\"p\") permit (principal, action, resource) when { args.nope > 1 } "
               "then log(info);") == D("deny", {}, json::array(), {"p"}));
  // An erroring unless is an error too.
  CHECK(Decide("@id(\"p\") permit (principal, action, resource) unless { args.nope };") ==
        D("deny", {}, json::array(), {"p"}));
  CHECK(Decide("@id(\"p\") permit (principal, action, resource) unless { false };") ==
        D("allow", {"p"}));
  // An erroring rule matches and its obligations apply.
  CHECK(Decide(permit + "@id(\"r\") rule if args.nope == 1 then tag(\"x\");") ==
        D("allow", {"p"}, {{{"kind", "tag"}, {"value", "x"}}}, {"r"}));
  CHECK(Decide(permit + "@id(\"r\") rule if 5 then require_approval();") ==
        D("require_approval", {"p", "r"},
          {{{"kind", "require_approval"}, {"approvers", {"default"}}, {"timeout_ms", 900000}}},
          {"r"}));
}

TEST_CASE("ids without @id") {
  json d = Decide("permit (principal, action, resource);\nforbid (principal, action, resource) "
                  "when { false };");
  CHECK(d == D("allow", {"t:1"}));
}

TEST_CASE("obligation merging") {
  std::string text = R"(
@id("a") permit (principal, action, resource)
then require_approval(approvers: ["b-team", "a-team"], timeout: 30m),
     rate_limit(key: principal, limit: 10, per: 1h),
     rate_limit(key: args.currency, limit: 5, per: 1m),
     redact("email", "args.card"),
     notify("slack", "#sec"),
     log(info), tag("pci"), reason("zeta");
@id("b") permit (principal, action, resource)
then require_approval(timeout: 10m),
     rate_limit(limit: 20, per: 1h),
     rate_limit(key: args.currency, limit: 1, per: 10s),
     redact("email"), redact("ssn"),
     notify("slack", "#sec"), notify("pagerduty", "oncall"),
     log(critical), log(debug), tag("pci", "hipaa"), reason("alpha");
@id("c") rule if true then rate_limit(key: [tool, principal], limit: 3, per: 1d),
     rate_limit(key: args.nope, limit: 7, per: 1s),
     rate_limit(key: {n: args.amount, s: "x\"y"}, limit: 7, per: 1s),
     rate_limit(key: context.time.hour, limit: 1, per: 2s),
     rate_limit(key: context.time.hour, limit: 2, per: 4s),
     rate_limit(key: context.time.hour, limit: 3, per: 4s);
@id("d") permit (principal, action, resource) when { false } then log(critical), tag("never");
)";
  json want = D(
      "require_approval", {"a", "b"},
      {{{"kind", "require_approval"},
        {"approvers", {"a-team", "b-team", "default"}},
        {"timeout_ms", 600000}},
       {{"kind", "rate_limit"}, {"key", "14"}, {"limit", 1}, {"per_ms", 2000}},
       {{"kind", "rate_limit"}, {"key", "<error>"}, {"limit", 7}, {"per_ms", 1000}},
       {{"kind", "rate_limit"}, {"key", "User::\"alice\""}, {"limit", 10}, {"per_ms", 3600000}},
       {{"kind", "rate_limit"},
        {"key", "[Tool::\"stripe__refund_create\", User::\"alice\"]"},
        {"limit", 3},
        {"per_ms", 86400000}},
       {{"kind", "rate_limit"}, {"key", "usd"}, {"limit", 5}, {"per_ms", 60000}},
       {{"kind", "rate_limit"},
        {"key", "{\"n\": 70000, \"s\": \"x\\\"y\"}"},
        {"limit", 7},
        {"per_ms", 1000}},
       {{"kind", "redact"}, {"targets", {"args.card", "email", "ssn"}}},
       {{"kind", "notify"}, {"channel", "pagerduty"}, {"target", "oncall"}},
       {{"kind", "notify"}, {"channel", "slack"}, {"target", "#sec"}},
       {{"kind", "log"}, {"level", "critical"}},
       {{"kind", "tag"}, {"value", "hipaa"}},
       {{"kind", "tag"}, {"value", "pci"}},
       {{"kind", "reason"}, {"message", "alpha"}},
       {{"kind", "reason"}, {"message", "zeta"}}});
  json got = Decide(text);
  INFO(got.dump(1));
  CHECK(got == want);
}

TEST_CASE("rate-limit strictness: smaller limit/per, tie on the smaller limit") {
  json got = Decide(R"(
@id("a") permit (principal, action, resource) then rate_limit(limit: 10, per: 1m);
@id("b") rule if true then rate_limit(limit: 5, per: 30s);
)");
  CHECK(got["obligations"] ==
        json::array({{{"kind", "rate_limit"}, {"key", "User::\"alice\""}, {"limit", 5},
                      {"per_ms", 30000}}}));
  got = Decide(R"(
@id("a") permit (principal, action, resource) then rate_limit(limit: 10, per: 1m);
@id("b") rule if true then rate_limit(limit: 100, per: 1h);
)");
  CHECK(got["obligations"][0]["limit"] == 100);  // 100/h is stricter than 10/min
}

TEST_CASE("obligations of forbids apply on deny") {
  json got = Decide(R"(
@id("f") forbid (principal, action, resource) then reason("no"), log(warning);
@id("p") permit (principal, action, resource) then tag("t");
)");
  CHECK(got == D("deny", {"f"},
                 {{{"kind", "log"}, {"level", "warning"}},
                  {{"kind", "tag"}, {"value", "t"}},
                  {{"kind", "reason"}, {"message", "no"}}}));
}

TEST_CASE("malformed requests") {
  FrontEnd fe = Parse("permit (principal, action, resource);");
  CHECK(ReferenceDecide(fe.policies, json::array()).contains("error"));
  json r = Request();
  r.erase("principal");
  CHECK(ReferenceDecide(fe.policies, r).contains("error"));
  CHECK(ReferenceDecide(fe.policies, Request({{"action", 5}})).contains("error"));
  CHECK(ReferenceDecide(fe.policies, Request({{"args", 5}})).contains("error"));
  CHECK(ReferenceDecide(fe.policies, Request({{"principal", {{"uid", "alice"}}}}))
            .contains("error"));
  CHECK(ReferenceDecide(fe.policies, Request({{"resource", {{"parents", {"x"}}}}}))
            .contains("error"));
  // Missing sections are empty records.
  json minimal = {{"principal", {{"uid", "User::\"a\\\"b\""}}},
                  {"action", "tools/call"},
                  {"resource", {{"uid", "Tool::\"t\""}}}};
  CHECK(ReferenceDecide(fe.policies, minimal)["decision"] == "allow");
  FrontEnd fe2 = Parse("@id(\"p\") permit (principal == User::\"a\\\"b\", action, resource) "
                       "when { args == {} && context == {} && call == {} };");
  CHECK(ReferenceDecide(fe2.policies, minimal)["decision"] == "allow");
}

TEST_CASE("visibility") {
  auto vis = [](const std::string& text, const json& r = Request()) {
    FrontEnd fe = ParseText("t.writ", text);
    REQUIRE(!fe.diags.has_errors());
    VisibilityDetail d = ReferenceVisibilityDetail(fe.policies, r);
    // The sound abstract answer is never contradicted by a sample.
    if (d.abstract != "depends-on-args") CHECK(d.sampled == d.abstract);
    return d;
  };
  CHECK(vis("").result == "deny");
  CHECK(vis("permit (principal, action, resource);").result == "allow");
  CHECK(vis("permit (principal == User::\"bob\", action, resource);").result == "deny");
  CHECK(vis("permit (principal, action, resource) when { args.amount < 10 };").result ==
        "depends-on-args");
  CHECK(vis("permit (principal, action, resource);"
            "forbid (principal, action, resource) when { args.amount > 50000 };")
            .result == "depends-on-args");
  CHECK(vis("permit (principal, action, resource);"
            "forbid (principal, action, resource) when { principal.mfa };")
            .result == "deny");
  CHECK(vis("permit (principal, action, resource);"
            "forbid (principal, action, resource) when { principal.nope };")
            .result == "deny");  // an argument-independent error fails closed
  CHECK(vis("permit (principal, action, resource) when { false && args.x };").result == "deny");
  CHECK(vis("permit (principal, action, resource) when { true || args.x };").result == "allow");
  CHECK(vis("permit (principal, action, resource);"
            "forbid (principal, action, resource) when { false && args.x };")
            .result == "allow");
  CHECK(vis("permit (principal, action, resource) then require_approval();").result == "allow");
  // Correlated atoms: the abstract walk cannot tell, the samples show every args denies.
  VisibilityDetail d = vis("permit (principal, action, resource) when { args.a > 5 };"
                           "forbid (principal, action, resource) when { args.a > 5 };");
  CHECK(d.abstract == "depends-on-args");
  CHECK(d.result == "deny");
  d = vis("permit (principal, action, resource) when { args.a == 7 };");
  CHECK(d.result == "depends-on-args");
  CHECK(d.samples > 10);
}

}  // namespace
}  // namespace writ::reference
