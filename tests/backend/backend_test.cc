// backend_test.cc -- compile + verify + evaluate: the combining rules of docs/semantics.md,
// fail-closed errors, obligations, list-time visibility, golden DAG and bytecode dumps, and
// basic corruption rejection.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "base/source.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "runtime/evaluator.h"

namespace {

using nlohmann::json;
using namespace writ;

std::shared_ptr<const runtime::Bundle> Build(const std::string& text) {
  std::string bytes, error;
  REQUIRE_MESSAGE(CompileText("t.writ", text, &bytes, &error), error);
  auto b = runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(b != nullptr, error);
  return b;
}

json Req(json args, std::string intent = "write", json principal_parents = json::array({"Role::\"analyst\""})) {
  return json{{"principal", {{"uid", "User::\"alice\""}, {"attrs", {{"dept", "eng"}}}, {"parents", principal_parents}}},
              {"action", "tools/call"},
              {"resource", {{"uid", "Tool::\"stripe__refund_create\""}, {"attrs", {{"category", "financial"}}},
                            {"parents", {"Server::\"stripe\""}}}},
              {"args", args},
              {"context", {{"hour", 10}}},
              {"call", {{"intent", intent}}}};
}

json Decide(const runtime::Bundle& b, const json& request) {
  runtime::PreparedRequest req;
  std::string error;
  REQUIRE_MESSAGE(runtime::PrepareRequest(b, request, &req, &error), error);
  return runtime::DecisionToJson(b, req, runtime::Evaluate(b, req));
}

const char* kPolicies = R"(
@id("analysts") permit (principal in Role::"analyst", action == Action::"tools/call", resource in Server::"stripe");
@id("big") forbid (principal, action == Action::"tools/call", resource == Tool::"stripe__refund_create")
  when { args.amount > 50000 } then reason("too big");
@id("approve") rule if tool.category == "financial" && call.intent == "destructive"
  then require_approval(approvers: "finance", timeout: 15m), log(critical);
)";

}  // namespace

TEST_CASE("combining: forbid wins, default deny, approval, allow") {
  auto b = Build(kPolicies);
  json d = Decide(*b, Req({{"amount", 10}}));
  CHECK(d["decision"] == "allow");
  CHECK(d["determining"] == json::array({"analysts"}));
  d = Decide(*b, Req({{"amount", 60000}}));
  CHECK(d["decision"] == "deny");
  CHECK(d["determining"] == json::array({"big"}));
  CHECK(d["obligations"].back()["message"] == "too big");
  d = Decide(*b, Req({{"amount", 10}}, "destructive"));
  CHECK(d["decision"] == "require_approval");
  CHECK(d["determining"] == json::array({"analysts", "approve"}));
  d = Decide(*b, Req({{"amount", 10}}, "read", json::array()));
  CHECK(d["decision"] == "deny");
  CHECK(d["determining"].empty());
}

TEST_CASE("errors fail closed: a string amount cannot slip past a numeric forbid") {
  auto b = Build(kPolicies);
  for (json bad : {json("50001"), json(nullptr), json(1.5), json::array({1})}) {
    json d = Decide(*b, Req({{"amount", bad}}));
    CHECK_MESSAGE(d["decision"] == "deny", bad.dump());
    CHECK(d["errors"] == json::array({"big"}));
  }
  json d = Decide(*b, Req(json::object()));  // missing attribute
  CHECK(d["decision"] == "deny");
}

TEST_CASE("an erroring permit grants nothing; Kleene logic in both orders") {
  auto b = Build(R"(
    @id("p") permit (principal, action, resource) when { args.n > 1 };
    @id("k1") permit (principal, action, resource) when { args.f && args.n > 1 };
    @id("k2") forbid (principal, action, resource) when { args.n > 1 && args.f };
  )");
  json d = Decide(*b, Req({{"n", "x"}, {"f", false}}));
  CHECK(d["decision"] == "deny");
  CHECK(d["determining"].empty());
  CHECK(d["errors"] == json::array({"p"}));
  d = Decide(*b, Req({{"n", 5}, {"f", false}}));
  CHECK(d["decision"] == "allow");
}

TEST_CASE("obligations merge: strictest rate limit, highest log level, union of approvers") {
  auto b = Build(R"(
    @id("a") permit (principal, action, resource)
      then rate_limit(key: principal, limit: 10, per: 1h), log(info), require_approval(approvers: "x", timeout: 30m);
    @id("b") permit (principal, action, resource)
      then rate_limit(key: principal, limit: 5, per: 1h), log(critical), require_approval(approvers: ["y", "x"], timeout: 15m), tag("pci");
  )");
  json d = Decide(*b, Req(json::object()));
  CHECK(d["decision"] == "require_approval");
  json ob = d["obligations"];
  CHECK(ob[0] == json{{"kind", "require_approval"}, {"approvers", {"x", "y"}}, {"timeout_ms", 900000}});
  CHECK(ob[1] == json{{"kind", "rate_limit"}, {"key", "User::\"alice\""}, {"limit", 5}, {"per_ms", 3600000}});
  CHECK(ob[2] == json{{"kind", "log"}, {"level", "critical"}});
  CHECK(ob[3] == json{{"kind", "tag"}, {"value", "pci"}});
}

TEST_CASE("list-time visibility: allow, deny, depends-on-args") {
  auto b = Build(R"(
    @id("read") permit (principal in Role::"analyst", action, resource in Server::"stripe") when { args.amount < 100 };
    @id("nope") forbid (principal in Role::"contractor", action, resource);
  )");
  auto vis = [&](json parents) {
    runtime::PreparedRequest req;
    std::string error;
    json r = Req(json::object(), "write", parents);
    REQUIRE(runtime::PrepareRequest(*b, r, &req, &error));
    return std::string(runtime::VisibilityName(runtime::ListVisibility(*b, req)));
  };
  CHECK(vis(json::array({"Role::\"analyst\""})) == "depends-on-args");
  CHECK(vis(json::array({"Role::\"analyst\"", "Role::\"contractor\""})) == "deny");
  CHECK(vis(json::array()) == "deny");
  auto b2 = Build(R"(@id("all") permit (principal in Role::"analyst", action, resource);)");
  runtime::PreparedRequest req;
  std::string error;
  json r = Req(json::object(), "write");
  REQUIRE(runtime::PrepareRequest(*b2, r, &req, &error));
  CHECK(runtime::ListVisibility(*b2, req) == runtime::Visibility::kAllow);
}

TEST_CASE("atoms on one value imply each other: every value, missing and wrong-typed") {
  // The DAG builder substitutes what one test of call.intent or context.hour implies about the
  // others (ast_to_dag.cc ImpliedBy). Decisions must be exactly LANGUAGE.md §4 for values on
  // both sides of every constant, a missing value (an error) and a wrong type.
  auto b = Build(R"(
    @id("p-read") permit (principal, action, resource) when { call.intent == "read" && context.hour >= 7 };
    @id("p-write") permit (principal, action, resource) when { call.intent == "write" && context.hour < 19 };
    @id("p-other") permit (principal, action, resource)
      when { call.intent != "read" && call.intent != "write" && context.hour > 12 };
    @id("f-night") forbid (principal, action, resource) when { context.hour < 7 || context.hour > 22 };
    @id("f-del") forbid (principal, action, resource) when { call.intent == "delete" && context.hour <= 12 };
  )");
  enum T { kT, kF, kE };
  auto and_ = [](T x, T y) { return x == kF || y == kF ? kF : x == kE || y == kE ? kE : kT; };
  auto or_ = [](T x, T y) { return x == kT || y == kT ? kT : x == kE || y == kE ? kE : kF; };
  auto not_ = [](T x) { return x == kE ? kE : x == kT ? kF : kT; };
  const std::vector<json> intents = {"read", "write", "delete", "other", nullptr, 5};
  const std::vector<json> hours = {3, 6, 7, 12, 13, 18, 19, 22, 23, nullptr, "x"};
  int allowed = 0;
  for (const json& intent : intents) {
    for (const json& hour : hours) {
      json r = Req(json::object());
      if (intent.is_null()) {
        r["call"].erase("intent");
      } else {
        r["call"]["intent"] = intent;
      }
      if (hour.is_null()) {
        r["context"].erase("hour");
      } else {
        r["context"]["hour"] = hour;
      }
      auto is = [&](const char* c) {
        return intent.is_null() ? kE : (intent.is_string() && intent == c) ? kT : kF;
      };
      auto cmp = [&](auto pred) { return hour.is_number() ? (pred(hour.get<int>()) ? kT : kF) : kE; };
      T p_read = and_(is("read"), cmp([](int h) { return h >= 7; }));
      T p_write = and_(is("write"), cmp([](int h) { return h < 19; }));
      T p_other = and_(and_(not_(is("read")), not_(is("write"))), cmp([](int h) { return h > 12; }));
      T f_night = or_(cmp([](int h) { return h < 7; }), cmp([](int h) { return h > 22; }));
      T f_del = and_(is("delete"), cmp([](int h) { return h <= 12; }));
      const bool forbid = f_night != kF || f_del != kF;  // an error counts as a match
      const bool permit = p_read == kT || p_write == kT || p_other == kT;
      const std::string want = !forbid && permit ? "allow" : "deny";
      allowed += want == "allow";
      CHECK_MESSAGE(Decide(*b, r)["decision"] == want, "intent " << intent << " hour " << hour);
    }
  }
  CHECK(allowed > 5);  // the table covers both outcomes
}

TEST_CASE("values: sets, records, like, matches, lower, ip, if, overflow") {
  auto b = Build(R"(
    @id("set") permit (principal, action, resource) when { args.tags.contains("x") && args.tags.containsAll(["x"]) && [args.a, 2].contains(2) };
    @id("rec") permit (principal, action, resource) when { args.r == {k: 1, "j": [1, 2]} && args.r has k };
    @id("str") permit (principal, action, resource) when { args.s like "ab*z\*" && args.s matches "^ab" && args.s.lower() == "abyz*" };
    @id("ip") permit (principal, action, resource) when { args.ip.isInRange(ip("10.0.0.0/8")) };
    @id("if") permit (principal, action, resource) when { if args.n > 0 then args.n * 2 == 4 else false };
    @id("ovf") forbid (principal, action, resource) when { args.n + 9223372036854775807 < 0 };
  )");
  json d = Decide(*b, Req({{"tags", {"x", "y"}}, {"a", 1}, {"r", {{"k", 1}, {"j", {2, 1}}}}, {"s", "ABYz*"},
                           {"ip", "10.1.2.3"}, {"n", 0}}));
  // n = 0: `ovf` is false; "ABYz*" like "ab*z\*" is false (like is case-sensitive).
  CHECK(d["decision"] == "allow");
  CHECK(d["determining"] == json::array({"ip", "rec", "set"}));
  d = Decide(*b, Req({{"tags", {"x"}}, {"a", 1}, {"r", {{"k", 1}, {"j", {2, 1}}}}, {"s", "abyz*"}, {"ip", "10.1.2.3"}, {"n", 2}}));
  CHECK(d["decision"] == "deny");
  CHECK(d["determining"] == json::array({"ovf"}));  // 2 + max overflows: error -> forbid matches
  CHECK(d["errors"] == json::array({"ovf"}));
  d = Decide(*b, Req({{"tags", {"x"}}, {"a", 1}, {"r", {{"k", 1}, {"j", {2, 1}}}}, {"s", "abyz*"}, {"ip", "10.1.2.3"}, {"n", -1}}));
  CHECK(d["decision"] == "allow");
  CHECK(d["determining"] == json::array({"ip", "rec", "set", "str"}));
}

TEST_CASE("request validation errors are reported, not thrown") {
  auto b = Build(kPolicies);
  runtime::PreparedRequest req;
  std::string error;
  json r = Req(json::object());
  r["principal"]["uid"] = "alice";
  CHECK_FALSE(runtime::PrepareRequest(*b, r, &req, &error));
  CHECK(error.find("principal.uid") != std::string::npos);
  json deep = 1;
  for (int i = 0; i < 100; ++i) deep = json::array({deep});
  r = Req({{"x", deep}});
  CHECK_FALSE(runtime::PrepareRequest(*b, r, &req, &error));
}

TEST_CASE("corrupted bundles are rejected: every truncation and sampled byte flips") {
  std::string bytes, error;
  REQUIRE(CompileText("t.writ", kPolicies, &bytes, &error));
  for (size_t n = 0; n < bytes.size(); ++n) {
    CHECK(runtime::Bundle::Load(bytes.substr(0, n), &error) == nullptr);
  }
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] ^= 0x5a;
    if (i >= 32 && i < 64) continue;  // source hash bytes are not checksummed (identity only)
    CHECK_MESSAGE(runtime::Bundle::Load(bad, &error) == nullptr, i);
  }
}

TEST_CASE("golden DAG and bytecode dumps") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(WRIT_SOURCE_DIR) / "tests/backend/golden";
  bool update = std::getenv("WRIT_UPDATE_GOLDEN") != nullptr;
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".writ") continue;
    ++n;
    std::string text, error;
    REQUIRE(ReadFile(e.path().string(), &text, &error));
    FrontEnd fe = RunFrontEndOnText(e.path().filename().string(), text);
    REQUIRE_MESSAGE(!fe.diags.has_errors(), Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText));
    CompileResult r;
    Diagnostics d;
    REQUIRE(Compile(fe.sources, fe.policies, CompileOptions{}, &r, &d));
    auto b = runtime::Bundle::Load(r.bytes, &error);
    REQUIRE_MESSAGE(b != nullptr, error);
    std::string got = r.dag_dump + "\n---- bytecode ----\n" + runtime::Disassemble(*b);
    fs::path expected = e.path();
    expected.replace_extension(".dag");
    if (update) {
      std::ofstream(expected) << got;
      continue;
    }
    std::string want;
    REQUIRE_MESSAGE(ReadFile(expected.string(), &want, &error), "run with WRIT_UPDATE_GOLDEN=1 to create " << expected);
    CHECK_MESSAGE(got == want, "golden mismatch for " << e.path() << "; rerun with WRIT_UPDATE_GOLDEN=1 if intended\n" << got);
  }
  CHECK(n >= 2);
}
