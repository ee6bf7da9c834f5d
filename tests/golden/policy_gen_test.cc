// policy_gen_test.cc -- the benchmark's policy generator (bench/policy_gen.h) must produce
// valid, deterministic policy sets, or the benchmark numbers mean nothing. The generator is
// compiled in directly because tests do not link the bench library.
#include <doctest/doctest.h>

#include "bench/policy_gen.cc"  // NOLINT(build/include): see above
#include "compiler/frontend.h"

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
