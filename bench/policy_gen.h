// policy_gen.h -- a deterministic generator of realistic Writ policy sets, for benchmarks
// (front end now, the compiler back end and evaluator later) and for load tests.
//
// The one entry point is GeneratePolicySet(n, seed): the same (n, seed) always yields the
// same text, byte for byte, on every platform (it uses its own PRNG, not <random>'s
// distributions, whose output is implementation-defined).
//
// What a generated set looks like: roles and teams over a catalog of MCP servers and tools
// (`github__create_issue`, `stripe__refund_create`, ...); permits scoped by role and server
// with argument conditions; forbids on destructive and exfiltrating calls; approval rules;
// rate limits; notifications and tags. Every statement carries a unique `@id`.
#pragma once

#include <cstdint>
#include <string>

namespace writ::bench {

struct PolicyGenOptions {
  int statements = 100;  // exact number of statements generated
  uint64_t seed = 1;
  // Number of tenants (teams), each with its own instances of the 15 servers / 24 tools
  // ("github_t3__create_issue"). 1 = one fixed catalog whatever the size; large organizations
  // are better modelled by about one tenant per 500 statements (ScaledTenants).
  int tenants = 1;
};

inline int ScaledTenants(int statements) { return 1 + statements / 500; }

// Returns Writ source text with exactly `options.statements` statements. Valid: it parses
// and checks with no diagnostics.
std::string GeneratePolicySet(const PolicyGenOptions& options);

inline std::string GeneratePolicySet(int statements, uint64_t seed = 1) {
  return GeneratePolicySet(PolicyGenOptions{statements, seed});
}

// A request (docs/semantics.md JSON) over the same catalog: a principal with one or two roles,
// department, mfa, tenant; a tool call with a plausible argument; context hour and DLP
// findings; the call's intent. Deterministic in `seed`.
// `tenants` must match the policy set's for the requests to reach its tools.
std::string GenerateRequest(uint64_t seed, int tenants = 1);

}  // namespace writ::bench
