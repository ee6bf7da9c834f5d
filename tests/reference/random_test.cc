// random_test.cc -- the random generators: deterministic, always well formed, and diverse
// enough that random requests reach every decision; plus metamorphic checks of the oracle
// itself on random cases (statement order does not matter; visibility is consistent).
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "base/diagnostic.h"
#include "compiler/frontend.h"
#include "tests/reference/random_gen.h"
#include "tests/reference/reference_eval.h"

namespace writ::reference {
namespace {

using nlohmann::json;

int Cases(int fallback) {
  const char* env = std::getenv("WRIT_RANDOM_CASES");
  return env != nullptr ? std::atoi(env) : fallback;
}

TEST_CASE("generators are deterministic") {
  CHECK(RandomPolicySet(42) == RandomPolicySet(42));
  CHECK(RandomRequest(42) == RandomRequest(42));
  CHECK(RandomPolicySet(42) != RandomPolicySet(43));
  CHECK(RandomRequest(42) != RandomRequest(43));
}

TEST_CASE("random policy sets parse") {
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(Cases(300)); ++seed) {
    std::string text = RandomPolicySet(seed);
    FrontEnd fe = ParseText("gen.writ", text);
    INFO("seed " << seed << "\n" << text << "\n"
                 << Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText));
    REQUIRE(!fe.diags.has_errors());
    REQUIRE(!fe.policies.AllStatements().empty());
  }
}

// Reverses the statements: the decision must not depend on their order.
std::string Reversed(const std::string& text) {
  std::vector<std::string> stmts;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(";\n", start);
    if (end == std::string::npos) break;
    stmts.push_back(text.substr(start, end + 2 - start));
    start = end + 2;
  }
  std::string out;
  for (size_t k = stmts.size(); k-- > 0;) out += stmts[k];
  return out;
}

TEST_CASE("random cases reach every outcome; the oracle is order independent") {
  std::map<std::string, int> decisions, visibility;
  int errored = 0, with_obligations = 0, sampled_refined = 0;
  int sets = Cases(300);
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(sets); ++seed) {
    std::string text = RandomPolicySet(seed);
    FrontEnd fe = ParseText("gen.writ", text);
    REQUIRE(!fe.diags.has_errors());
    // Explicit ids only, so that reversing keeps every id.
    bool explicit_ids = true;
    for (const auto* st : fe.policies.AllStatements()) explicit_ids &= st->explicit_id;
    FrontEnd rev = ParseText("gen.writ", Reversed(text));
    REQUIRE(!rev.diags.has_errors());
    for (uint64_t r = 0; r < 20; ++r) {
      json req = RandomRequest(seed * 1000 + r);
      json d = ReferenceDecide(fe.policies, req);
      INFO("seed " << seed << " request " << req.dump() << "\n" << text);
      REQUIRE(!d.contains("error"));
      decisions[d["decision"].get<std::string>()]++;
      errored += !d["errors"].empty();
      with_obligations += !d["obligations"].empty();
      if (explicit_ids) CHECK(ReferenceDecide(rev.policies, req) == d);
      if (r < 3) {
        json vreq = req;
        vreq["action"] = "tools/call";
        VisibilityDetail v = ReferenceVisibilityDetail(fe.policies, vreq, 16);
        visibility[v.result]++;
        if (v.abstract != "depends-on-args") {
          CHECK(v.sampled == v.abstract);  // the sound answer is never contradicted
        } else if (v.result != "depends-on-args") {
          ++sampled_refined;
        }
        // The concrete decision for this very request is one of the sampled args.
        json concrete = ReferenceDecide(fe.policies, vreq);
        if (v.result == "allow") CHECK(concrete["decision"] != "deny");
        if (v.result == "deny") CHECK(concrete["decision"] == "deny");
      }
    }
  }
  MESSAGE("decisions: allow " << decisions["allow"] << ", deny " << decisions["deny"]
                              << ", require_approval " << decisions["require_approval"]
                              << "; with errors " << errored << ", with obligations "
                              << with_obligations << "; visibility allow "
                              << visibility["allow"] << ", deny " << visibility["deny"]
                              << ", depends " << visibility["depends-on-args"]
                              << " (refined by samples: " << sampled_refined << ")");
  int total = sets * 20;
  CHECK(decisions["allow"] > total / 20);
  CHECK(decisions["deny"] > total / 20);
  CHECK(decisions["require_approval"] > total / 100);
  CHECK(errored > total / 20);
  CHECK(with_obligations > total / 20);
  CHECK(visibility["depends-on-args"] > 0);
  CHECK(visibility["allow"] > 0);
}

}  // namespace
}  // namespace writ::reference
