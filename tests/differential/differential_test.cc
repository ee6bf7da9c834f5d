// differential_test.cc -- the VM (compile -> Bundle::Load -> PrepareRequest -> Evaluate ->
// DecisionToJson) against the reference evaluator over the AST, on random policy sets and
// random requests (tests/reference/random_gen.h).
//
// Decisions must be equal as whole JSON documents. Visibility may be less precise in the VM
// (it may answer depends-on-args where the truth is allow or deny) but never wrong: VM "deny"
// requires reference "deny", VM "allow" requires reference "allow" (see reference_eval.h for
// why the reference is at least as precise as any sound VM).
//
// WRIT_DIFF_CASES sets the number of decisions (default 200000); WRIT_DIFF_SEED the first
// seed (default 0), to replay a reported failure. On a mismatch the policy text (shrunk to
// the statements that still reproduce it), the request and both outputs are printed.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/diagnostic.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "runtime/evaluator.h"
#include "tests/reference/random_gen.h"
#include "tests/reference/reference_eval.h"

namespace writ {
namespace {

using nlohmann::json;

constexpr int kRequestsPerSet = 50;
constexpr int kVisibilityEvery = 5;  // one request in 5 is also checked for visibility

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// The differential test is about run-time semantics, including of ill-typed expressions (args
// are untrusted and dynamically typed; that is where fail-closed matters), so both sides take
// the parsed policies without the type checker's verdict.
FrontEnd ParseOnly(const std::string& text) { return ParseText("gen.writ", text); }

bool CompileUnchecked(const std::string& text, std::string* bytes, std::string* error) {
  FrontEnd fe = ParseOnly(text);
  CompileResult r;
  if (fe.diags.has_errors() || !Compile(fe.sources, fe.policies, CompileOptions{}, &r, &fe.diags)) {
    *error = Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText);
    return false;
  }
  *bytes = std::move(r.bytes);
  return true;
}

// Everything one side says about one request.
struct Outputs {
  std::string error;  // compile / load / prepare failure
  json decision;
  std::string visibility;
};

Outputs RunVm(const std::string& text, const json& request, bool visibility) {
  Outputs out;
  std::string bytes, error;
  if (!CompileUnchecked(text, &bytes, &error)) {
    out.error = "compile: " + error;
    return out;
  }
  auto bundle = runtime::Bundle::Load(bytes, &error);
  if (bundle == nullptr) {
    out.error = "load: " + error;
    return out;
  }
  runtime::PreparedRequest req;
  if (!runtime::PrepareRequest(*bundle, request, &req, &error)) {
    out.error = "prepare: " + error;
    return out;
  }
  out.decision = runtime::DecisionToJson(*bundle, req, runtime::Evaluate(*bundle, req));
  if (visibility) {
    runtime::PreparedRequest vreq;
    if (!runtime::PrepareRequest(*bundle, request, &vreq, &error)) {
      out.error = "prepare: " + error;
      return out;
    }
    vreq.args_unknown = true;
    out.visibility = runtime::VisibilityName(runtime::ListVisibility(*bundle, vreq));
  }
  return out;
}

Outputs RunReference(const std::string& text, const json& request, bool visibility) {
  Outputs out;
  FrontEnd fe = ParseOnly(text);
  if (fe.diags.has_errors()) {
    out.error = "front end: " + Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText);
    return out;
  }
  out.decision = reference::ReferenceDecide(fe.policies, request);
  if (visibility) out.visibility = reference::ReferenceVisibility(fe.policies, request);
  return out;
}

// "" when the VM agrees with the reference, else what differs.
std::string Compare(const Outputs& vm, const Outputs& ref) {
  if (!ref.error.empty()) return "reference failed: " + ref.error;
  if (!vm.error.empty()) return "vm failed: " + vm.error;
  if (vm.decision != ref.decision) return "decision differs";
  if (vm.visibility == "deny" && ref.visibility != "deny") return "visibility: vm deny";
  if (vm.visibility == "allow" && ref.visibility != "allow") return "visibility: vm allow";
  return "";
}

std::vector<std::string> SplitStatements(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(";\n", start);
    if (end == std::string::npos) break;
    out.push_back(text.substr(start, end + 2 - start));
    start = end + 2;
  }
  return out;
}

// Greedily drops statements while the disagreement persists.
std::string Shrink(const std::string& text, const json& request, bool visibility) {
  std::vector<std::string> stmts = SplitStatements(text);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x;
    return s;
  };
  for (size_t k = 0; k < stmts.size();) {
    std::vector<std::string> fewer = stmts;
    fewer.erase(fewer.begin() + static_cast<long>(k));
    std::string t = join(fewer);
    if (!Compare(RunVm(t, request, visibility), RunReference(t, request, visibility)).empty()) {
      stmts = std::move(fewer);
    } else {
      ++k;
    }
  }
  return join(stmts);
}

TEST_CASE("the VM agrees with the reference evaluator on random cases") {
  const uint64_t total = EnvOr("WRIT_DIFF_CASES", 200000);
  const uint64_t first = EnvOr("WRIT_DIFF_SEED", 0);
  const uint64_t sets = (total + kRequestsPerSet - 1) / kRequestsPerSet;
  auto start = std::chrono::steady_clock::now();
  uint64_t decisions = 0, mismatches = 0;
  uint64_t determining_mismatches = 0;  // DeterminingStatements vs DecisionToJson
  std::vector<uint32_t> determining, planned;
  runtime::PlanScratch scratch;  // shared by the plans of every policy set, as in replay
  uint64_t statements = 0, split = 0;  // statements; those whose formula the plans split
  for (uint64_t seed = first; seed < first + sets; ++seed) {
    const std::string text = reference::RandomPolicySet(seed);
    FrontEnd fe = ParseOnly(text);
    REQUIRE_MESSAGE(!fe.diags.has_errors(), "generator produced invalid policies, seed " << seed);
    std::string bytes, error;
    REQUIRE_MESSAGE(CompileUnchecked(text, &bytes, &error),
                    "seed " << seed << ": " << error << "\n" << text);
    auto bundle = runtime::Bundle::Load(bytes, &error);
    REQUIRE_MESSAGE(bundle != nullptr, "seed " << seed << ": " << error << "\n" << text);
    const runtime::StatementPlan plan(*bundle);
    statements += bundle->statements_.size();
    split += bundle->statements_.size() - plan.whole_count();
    for (int r = 0; r < kRequestsPerSet; ++r) {
      const json request = [&] {
        json q = reference::RandomRequest(seed * 1000003 + static_cast<uint64_t>(r));
        if (r % kVisibilityEvery == 0) q["action"] = "tools/call";
        return q;
      }();
      const bool vis = r % kVisibilityEvery == 0;
      ++decisions;
      Outputs vm;
      runtime::PreparedRequest req;
      if (!runtime::PrepareRequest(*bundle, request, &req, &error)) {
        vm.error = "prepare: " + error;
      } else {
        const runtime::Decision d = runtime::Evaluate(*bundle, req);
        vm.decision = runtime::DecisionToJson(*bundle, req, d);
        // The replay path's determining statements must be the ones DecisionToJson reports.
        runtime::DeterminingStatements(*bundle, req, d, &determining);
        json ids = json::array();
        for (uint32_t st : determining) ids.push_back(std::string(bundle->str(bundle->statements_[st].id)));
        std::sort(ids.begin(), ids.end());
        if (ids != vm.decision.value("determining", json::array()) && ++determining_mismatches <= 3)
          FAIL_CHECK("DeterminingStatements " << ids.dump() << " != DecisionToJson "
                                              << vm.decision.dump() << " (seed " << seed
                                              << ", request " << r << ")\n" << text);
        // The same statements with the bundle's StatementPlan (formulas split into shared
        // atoms, each run once per request).
        runtime::DeterminingStatements(plan, req, d, &scratch, &planned);
        if (planned != determining && ++determining_mismatches <= 3) {
          json got = json::array();
          for (uint32_t st : planned)
            got.push_back(std::string(bundle->str(bundle->statements_[st].id)));
          FAIL_CHECK("DeterminingStatements with a plan " << got.dump() << " != without "
                                                          << ids.dump() << " (seed " << seed
                                                          << ", request " << r << ")\n" << text);
        }
        if (vis) {
          req.args_unknown = true;
          vm.visibility = runtime::VisibilityName(runtime::ListVisibility(*bundle, req));
        }
      }
      Outputs ref;
      ref.decision = reference::ReferenceDecide(fe.policies, request);
      if (vis) ref.visibility = reference::ReferenceVisibility(fe.policies, request);
      std::string why = Compare(vm, ref);
      if (why.empty()) continue;
      if (++mismatches > 5) continue;  // report the first few in full
      std::string small = Shrink(text, request, vis);
      Outputs svm = RunVm(small, request, vis), sref = RunReference(small, request, vis);
      std::ostringstream msg;
      msg << why << " (seed " << seed << ", request " << r << ")\n"
          << "--- policies (shrunk from " << SplitStatements(text).size() << " statements)\n"
          << small << "--- request\n"
          << request.dump() << "\n--- vm\n"
          << (svm.error.empty() ? svm.decision.dump() : svm.error) << "  visibility "
          << svm.visibility << "\n--- reference\n"
          << (sref.error.empty() ? sref.decision.dump() : sref.error) << "  visibility "
          << sref.visibility << "\n--- unshrunk policies\n"
          << text;
      FAIL_CHECK(msg.str());
    }
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(decisions << " decisions over " << sets << " policy sets in " << secs << " s, "
                    << mismatches << " mismatches; the statement plans split " << split
                    << " of " << statements << " formulas");
  CHECK(mismatches == 0);
  CHECK(determining_mismatches == 0);
  CHECK(split * 10 >= statements * 9);  // the split path is what the plan check exercises
}

// The switch index folds entries for any action / any resource into the specific groups
// unless the copies would pass Bundle::MaxFoldedCandidates; then it stays unfolded and is
// probed the long way. Both layouts must select the same statements: a policy set built to
// pass the bound (K tools with their own permits x M per-user permits on every tool), and a
// small one of the same shape, against the reference on requests over all users and tools.
std::string SwitchShapeSet(int tools, int users) {
  auto n = [](int i) { return std::to_string(i); };
  std::string t;
  for (int k = 0; k < tools; ++k) {
    t += "@id(\"tool-" + n(k) + "\")\n";
    t += "permit (principal in Group::\"g" + n(k % 3) + "\", action == Action::\"tools/call\",\n";
    t += "  resource == Tool::\"t" + n(k) + "\")\n";
    t += "when { args has amount && args.amount < " + n(10 * k) + " };\n";
  }
  for (int u = 0; u < users; ++u) {
    t += "@id(\"user-" + n(u) + "\")\n";
    t += "permit (principal == User::\"u" + n(u) + "\",\n";
    t += "  action in [Action::\"tools/call\", Action::\"resources/read\"], resource)\n";
    t += "when { context.hour > " + n(u % 24) + " };\n";
  }
  t += "@id(\"no-intern\")\n";
  t += "forbid (principal in Group::\"intern\", action, resource in Server::\"s1\");\n";
  t += "@id(\"any-action\")\n";
  t += "forbid (principal, action, resource == Tool::\"t2\") when { args.amount > 5 };\n";
  t += "@id(\"read-all\")\npermit (principal, action == Action::\"resources/read\", resource);\n";
  t += "@id(\"rule\")\nrule if context.hour < 3 then require_approval(approvers: \"ops\");\n";
  return t;
}

void CheckSwitchShape(int tools, int users, bool expect_folded) {
  const std::string text = SwitchShapeSet(tools, users);
  FrontEnd fe = ParseOnly(text);
  REQUIRE_MESSAGE(!fe.diags.has_errors(),
                  Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText));
  std::string bytes, error;
  REQUIRE_MESSAGE(CompileUnchecked(text, &bytes, &error), error);
  auto bundle = runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  CHECK(bundle->switch_folded() == expect_folded);
  auto n = [](int i) { return std::to_string(i); };
  int decided_allow = 0;
  for (int i = 0; i < 600; ++i) {
    json parents = json::array({"Group::\"g" + n(i % 4) + "\""});
    if (i % 5 == 0) parents.push_back("Group::\"intern\"");
    if (i % 7 == 0) parents.push_back(parents[0]);  // a repeated parent selects nothing twice
    json principal = {{"uid", "User::\"u" + n(i % (users + 3)) + "\""}, {"parents", parents}};
    json resource = {{"uid", "Tool::\"t" + n((i * 7) % (tools + 2)) + "\""},
                     {"parents", json::array({"Server::\"s" + n(i % 3) + "\""})}};
    json request = {
        {"principal", principal},
        {"action", i % 6 == 0 ? "resources/read" : i % 11 == 0 ? "prompts/get" : "tools/call"},
        {"resource", resource},
        {"args", {{"amount", (i * 13) % (10 * tools + 10)}}},
        {"context", {{"hour", i % 24}}}};
    runtime::PreparedRequest req;
    REQUIRE_MESSAGE(runtime::PrepareRequest(*bundle, request, &req, &error), error);
    json vm = runtime::DecisionToJson(*bundle, req, runtime::Evaluate(*bundle, req));
    json ref = reference::ReferenceDecide(fe.policies, request);
    CHECK_MESSAGE(vm == ref, "request " << request.dump() << "\nvm " << vm.dump()
                                        << "\nreference " << ref.dump());
    decided_allow += vm["decision"] != "deny";
  }
  CHECK(decided_allow > 50);  // the requests reach permits, not only default deny
}

TEST_CASE("the folded and the unfolded switch index select the same statements") {
  CheckSwitchShape(6, 6, /*expect_folded=*/true);
  CheckSwitchShape(80, 80, /*expect_folded=*/false);
}

// A chain of `x == "a"`, `x == "b"`, ... on one value becomes one kSlotSwitch node in the run
// layout (Bundle::RunNode). Policy sets built to make such chains -- on string attributes, on
// a record (args.meta), more cases than kMaxSwitchCases, mixed with other conditions -- must
// decide as the reference does for every kind of value: each constant, other strings, a
// missing attribute, a number, a Bool, a set, an entity, a record, a record holding an error.
std::string SwitchChainSet(int cases) {
  auto n = [](int i) { return std::to_string(i); };
  const char* values[] = {"context.env", "call.intent", "args.currency", "args.meta"};
  std::string t;
  int id = 0;
  for (const char* x : values) {
    for (int k = 0; k < cases; ++k) {
      const std::string v = "\"v" + n(k) + "\"";
      t += "@id(\"s" + n(id++) + "\")\n";
      if (k % 3 == 0) {
        t += "permit (principal, action, resource) when { " + std::string(x) + " == " + v + " };\n";
      } else if (k % 3 == 1) {
        // A second test of its own, true for every request or false for every request, so
        // the chain's cases lead to different nodes with different answers.
        t += "forbid (principal, action, resource) when { " + std::string(x) + " == " + v +
             " && context.hour " + (k % 2 ? "<" : ">") + " " + n(100 + id) + " };\n";
      } else {
        t += "rule if " + std::string(x) + " == " + v +
             " then require_approval(approvers: \"ops\");\n";
      }
    }
  }
  t += "@id(\"hour\")\npermit (principal, action, resource) when { context.hour < 12 };\n";
  return t;
}

TEST_CASE("chains of string equality on one value decide as the reference does") {
  // Each value's statements alternate permit / forbid / rule, so a DAG kind sees a third of
  // the cases: the last size makes chains longer than kMaxSwitchCases.
  const int kLong = 3 * static_cast<int>(runtime::Bundle::kMaxSwitchCases) + 15;
  for (int cases : {3, 12, kLong}) {
    const std::string text = SwitchChainSet(cases);
    FrontEnd fe = ParseOnly(text);
    REQUIRE_MESSAGE(!fe.diags.has_errors(),
                    Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText));
    std::string bytes, error;
    REQUIRE_MESSAGE(CompileUnchecked(text, &bytes, &error), error);
    auto bundle = runtime::Bundle::Load(bytes, &error);
    REQUIRE_MESSAGE(bundle != nullptr, error);
    size_t switches = 0, max_cases = 0, mixed = 0;  // mixed: cases lead to different nodes
    for (const auto& node : bundle->run_nodes_) {
      if (node.fast.shape != runtime::Bundle::kSlotSwitch) continue;
      ++switches;
      max_cases = std::max<size_t>(max_cases, node.fast.n);
      const uint32_t* next = bundle->switch_next_.data() + node.fast.k;
      mixed += std::any_of(next, next + node.fast.n, [&](uint32_t r) { return r != next[0]; });
    }
    if (cases >= 6) CHECK(mixed > 0);
    // The layout made switches (chains need two cases of one kind), so the requests below
    // exercise them.
    if (cases >= 6) CHECK(switches > 0);
    if (cases == kLong) {
      CHECK(max_cases == runtime::Bundle::kMaxSwitchCases);
    }
    // Every constant (each case of each chain), one more, and the other kinds of value.
    std::vector<json> kinds = {json(""), json(5), json(true), json::array({"v0"}),
                               json({{"__entity", "User::\"v0\""}}), json({{"a", 1}}),
                               json({{"a", nullptr}}), json(nullptr)};
    for (int k = 0; k <= cases; ++k) kinds.push_back("v" + std::to_string(k));
    int decided = 0, allowed = 0;
    // Each of the four values takes each kind (or is missing), at an hour where the `hour`
    // permit applies and the forbids' hour test is true (2), and where neither is (13 -- only
    // a permit case can allow), with and without a second chain taking a case.
    for (int which = 0; which < 4; ++which) {
      for (size_t kind = 0; kind <= kinds.size(); ++kind) {
        for (int hour : {2, 13}) {
          for (bool second : {false, true}) {
            // The other values hold a string no statement names (a missing one would make
            // every forbid on it an error, so everything would be denied).
            json request = {{"principal", {{"uid", "User::\"alice\""}}},
                            {"action", "tools/call"},
                            {"resource", {{"uid", "Tool::\"t\""}}},
                            {"args", {{"currency", "x"}, {"meta", "x"}}},
                            {"context", {{"hour", hour}, {"env", "x"}}},
                            {"call", {{"intent", second ? "v1" : "x"}}}};
            json* slot = which == 0   ? &request["context"]["env"]
                         : which == 1 ? &request["call"]["intent"]
                         : which == 2 ? &request["args"]["currency"]
                                      : &request["args"]["meta"];
            if (kind < kinds.size()) {
              *slot = kinds[kind];
            } else {  // missing
              static const char* kKeys[] = {"env", "intent", "currency", "meta"};
              json& parent = which == 0   ? request["context"]
                             : which == 1 ? request["call"]
                                          : request["args"];
              parent.erase(kKeys[which]);
            }
            runtime::PreparedRequest req;
            REQUIRE_MESSAGE(runtime::PrepareRequest(*bundle, request, &req, &error), error);
            json vm = runtime::DecisionToJson(*bundle, req, runtime::Evaluate(*bundle, req));
            json ref = reference::ReferenceDecide(fe.policies, request);
            CHECK_MESSAGE(vm == ref, "cases " << cases << ", request " << request.dump()
                                              << "\nvm " << vm.dump() << "\nreference "
                                              << ref.dump());
            ++decided;
            allowed += vm["decision"] != "deny";
          }
        }
      }
    }
    CHECK(decided > 0);
    CHECK(allowed > 0);  // some requests reach a permit through a switch case
  }
}

}  // namespace
}  // namespace writ
