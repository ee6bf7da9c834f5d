// policy_gen_test.cc -- the benchmark's policy generator (bench/policy_gen.h) must produce
// valid, deterministic policy sets, or the benchmark numbers mean nothing. The generator is
// compiled in directly because tests do not link the bench library.
#include <doctest/doctest.h>

#include "bench/policy_gen.cc"  // NOLINT(build/include): see above
#include "compiler/frontend.h"

#include <nlohmann/json.hpp>

TEST_CASE("policy_gen: valid and deterministic") {
  for (int n : {1, 10, 500}) {
    std::string text = writ::bench::GeneratePolicySet(n, 7);
    CHECK(text == writ::bench::GeneratePolicySet(n, 7));
    writ::FrontEnd fe = writ::RunFrontEndOnText("gen.writ", text);
    CHECK(fe.diags.items().empty());
    CHECK(fe.policies.AllStatements().size() == static_cast<size_t>(n));
  }
  CHECK(writ::bench::GeneratePolicySet(50, 1) != writ::bench::GeneratePolicySet(50, 2));
}

namespace {

// Does request `j` call a tool of grant `g` (its tool, or any tool of its server) with the
// grant's role as its first role?
bool Hits(const nlohmann::json& j, const writ::bench::PolicyGrants::Grant& g) {
  const auto& t = writ::bench::kTools[static_cast<size_t>(g.tool)];
  const std::string_view role_name = writ::bench::kRoles[static_cast<size_t>(g.role)];
  const std::string role = "Role::\"" + std::string(role_name) + "\"";
  const std::string tool = "Tool::\"" + std::string(t.server) + "__" + std::string(t.name) + "\"";
  const std::string server = "Server::\"" + std::string(t.server) + "\"";
  const bool tool_ok =
      g.server ? j["resource"]["parents"][0] == server : j["resource"]["uid"] == tool;
  return tool_ok && j["principal"]["parents"][0] == role;
}

}  // namespace

TEST_CASE("policy_gen: the targeted request mix calls granted tools with the granted role") {
  writ::bench::PolicyGrants grants;
  std::string text =
      writ::bench::GeneratePolicySet(writ::bench::PolicyGenOptions{10, 1, 1}, &grants);
  CHECK(text == writ::bench::GeneratePolicySet(10, 1));  // recording grants changes nothing
  REQUIRE(!grants.grants.empty());
  const int kRequests = 400;
  int targeted = 0, uniform = 0;
  for (int i = 0; i < kRequests; ++i) {
    const std::string req = writ::bench::GenerateRequest(i, 1, &grants);
    CHECK(req == writ::bench::GenerateRequest(i, 1, &grants));  // deterministic
    const nlohmann::json t = nlohmann::json::parse(req);
    const nlohmann::json u = nlohmann::json::parse(writ::bench::GenerateRequest(i, 1));
    bool hit_t = false, hit_u = false;
    for (const auto& g : grants.grants) {
      hit_t |= Hits(t, g);
      hit_u |= Hits(u, g);
    }
    targeted += hit_t;
    uniform += hit_u;
  }
  // kTargetedPercent (90%) are drawn from the grants; a uniform request may hit by chance.
  CHECK(targeted >= kRequests * 80 / 100);
  CHECK(targeted <= kRequests * 98 / 100);
  // Without grants the mix is the uniform one of earlier versions: far fewer hits.
  CHECK(uniform < kRequests * 15 / 100);
}
