// statement_plan_test.cc -- runtime::StatementPlan (evaluator.h): statement formulas split
// at and/or/not into leaves shared across statements, each run once per request. The
// determining statements it gives must be exactly those of the whole-formula path
// (tests/differential checks both against DecisionToJson on random policy sets); here:
// which formulas are split, that leaves are shared, the whole-formula fallbacks, and
// agreement on requests that make atoms true, false and errors.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "runtime/bundle.h"
#include "runtime/evaluator.h"

namespace writ::runtime {
namespace {

using nlohmann::json;

// Shared conditions (principal.mfa, the hour tests, args has amount) across statements;
// errors (missing or mistyped attributes) are values; a forbid or rule matches on an error.
constexpr const char* kPolicies = R"(
@id("p1") permit (principal in Role::"eng", action == Action::"tools/call",
                  resource in Server::"github")
when { principal.mfa && args has repo && args.repo like "acme/*" }
unless { context.hour < 7 || context.hour > 19 };
@id("p2") permit (principal in Role::"eng", action == Action::"tools/call", resource)
when { principal.mfa && (args.amount <= 100 || !(principal.level > 3)) };
@id("p3") permit (principal, action, resource == Tool::"github__create_issue")
when { principal.mfa && (if args has amount then args.amount < 10 else true) };
@id("f1") forbid (principal, action == Action::"tools/call", resource)
when { context.hour > 22 && !principal.mfa };
@id("f2") forbid (principal in Role::"intern", action, resource)
unless { principal.roles.contains("mentor") || principal.mfa };
@id("r1") rule if args.amount > 50 && principal.mfa
then require_approval(approvers: "x", timeout: 5m);
@id("r2") rule if context.hour < 7 then require_approval(approvers: "y", timeout: 5m);
)";

std::shared_ptr<const Bundle> Compile(const std::string& text) {
  std::string bytes, error;
  REQUIRE_MESSAGE(CompileText("plan.writ", text, &bytes, &error), error);
  auto bundle = Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  return bundle;
}

// Requests over every combination of the attributes the policies read, including missing
// and mistyped values (errors).
std::vector<json> Requests() {
  std::vector<json> out;
  const json mfas[] = {true, false, "yes", nullptr};
  const json hours[] = {3, 12, 23, "noon", nullptr};
  const json amounts[] = {5, 60, 500, "many", nullptr};
  const json roles[] = {"Role::\"eng\"", "Role::\"intern\""};
  const json levels[] = {2, 5, nullptr};
  const char* tools[] = {"Tool::\"github__create_issue\"", "Tool::\"stripe__refund\""};
  for (const auto& mfa : mfas)
    for (const auto& hour : hours)
      for (const auto& amount : amounts)
        for (const auto& role : roles)
          for (const auto& level : levels)
            for (const char* tool : tools) {
              json attrs = {{"roles", {"dev"}}};
              if (!mfa.is_null()) attrs["mfa"] = mfa;
              if (!level.is_null()) attrs["level"] = level;
              json args = {{"repo", "acme/x"}};
              if (!amount.is_null()) args["amount"] = amount;
              json ctx = json::object();
              if (!hour.is_null()) ctx["hour"] = hour;
              out.push_back({{"principal",
                              {{"uid", "User::\"a\""}, {"attrs", attrs}, {"parents", {role}}}},
                             {"action", "tools/call"},
                             {"resource",
                              {{"uid", tool},
                               {"parents", {std::string(tool).find("github") != std::string::npos
                                                ? "Server::\"github\""
                                                : "Server::\"stripe\""}}}},
                             {"args", args},
                             {"context", ctx}});
            }
  return out;
}

// Checks that the plan's determining statements equal the whole-formula path's for every
// request; returns how many requests had determining statements.
int Agree(const Bundle& bundle, const StatementPlan& plan) {
  PlanScratch scratch;
  std::vector<uint32_t> planned, whole;
  int nonempty = 0;
  for (const json& doc : Requests()) {
    PreparedRequest req;
    std::string error;
    REQUIRE_MESSAGE(PrepareRequest(bundle, doc, &req, &error), error);
    const Decision d = Evaluate(bundle, req);
    DeterminingStatements(plan, req, d, &scratch, &planned);
    DeterminingStatements(bundle, req, d, &whole);
    CHECK_MESSAGE(planned == whole, doc.dump());
    nonempty += !planned.empty();
  }
  return nonempty;
}

TEST_CASE("a statement plan splits formulas into shared leaves and agrees with whole formulas") {
  auto bundle = Compile(kPolicies);
  const StatementPlan plan(*bundle);
  CHECK(&plan.bundle() == bundle.get());
  CHECK(plan.whole_count() == 0);  // every formula here is split
  // principal.mfa alone appears in five statements and is one leaf; the leaves are fewer
  // than the statements' atoms counted per statement.
  CHECK(plan.leaf_count() > 0);
  CHECK(plan.leaf_count() < 20);
  const int nonempty = Agree(*bundle, plan);
  CHECK(nonempty > 100);  // the comparison is not vacuous
}

TEST_CASE("a formula that could reach the VM's lower() limit when run whole is not split") {
  // Twelve lower() calls: above the plan's bound (half the VM's per-run limit), so the
  // formula runs whole, as DecisionToJson runs it.
  std::string cond;
  for (int i = 0; i < 12; ++i) {
    cond += std::string(i ? " || " : "") + "args.repo.lower() == \"n" + std::to_string(i) + "\"";
  }
  auto bundle = Compile(std::string(kPolicies) +
                        "@id(\"f3\") forbid (principal, action, resource) when { " + cond +
                        " };\n");
  const StatementPlan plan(*bundle);
  CHECK(plan.whole_count() == 1);
  Agree(*bundle, plan);
}

}  // namespace
}  // namespace writ::runtime
