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
};

// Returns Writ source text with exactly `options.statements` statements. Valid: it parses
// and checks with no diagnostics.
std::string GeneratePolicySet(const PolicyGenOptions& options);

inline std::string GeneratePolicySet(int statements, uint64_t seed = 1) {
  return GeneratePolicySet(PolicyGenOptions{statements, seed});
}

// A request (docs/semantics.md JSON) over the same catalog: a principal with one or two roles,
// department, mfa, tenant; a tool call with a plausible argument; context hour and DLP
// findings; the call's intent. Deterministic in `seed`.
std::string GenerateRequest(uint64_t seed);

}  // namespace writ::bench
