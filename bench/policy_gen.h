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
#include <vector>

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

// What a generated policy set grants: one entry per permit statement (its role and its tool,
// or its server for `resource in Server::...`). Requests drawn from these model traffic that
// calls the tools the policies talk about (GenerateRequest).
struct PolicyGrants {
  struct Grant {
    int tool = 0;     // index into the catalog
    int tenant = 0;
    int role = 0;     // index of the role in `principal in Role::...`
    bool server = false;  // scoped to the tool's whole server
  };
  std::vector<Grant> grants;
};

// Returns Writ source text with exactly `options.statements` statements. Valid: it parses
// and checks with no diagnostics. If `grants` is not null it receives what the permits grant
// (the text is the same either way).
std::string GeneratePolicySet(const PolicyGenOptions& options, PolicyGrants* grants = nullptr);

inline std::string GeneratePolicySet(int statements, uint64_t seed = 1) {
  return GeneratePolicySet(PolicyGenOptions{statements, seed});
}

// A request (docs/semantics.md JSON) over the same catalog: a principal with one or two roles,
// department, mfa, tenant; a tool call with a plausible argument; context hour and DLP
// findings; the call's intent. Deterministic in `seed`.
// `tenants` must match the policy set's for the requests to reach its tools.
//
// Without `grants` (the *uniform* mix) the tool, tenant and roles are drawn uniformly from the
// whole catalog, whatever the policy set says: with a small policy set almost no request
// reaches a statement. With `grants` (the *targeted* mix), kTargetedPercent of requests are
// made by a principal holding the role of a random permit, calling its tool (or a tool of its
// server); the arguments, attributes, context and intent stay random, so conditions, forbids
// and approval rules decide as they would. The others are uniform requests (tools, roles or
// tenants the policies may not mention). This models a gateway whose agents mostly call the
// tools they were granted.
inline constexpr int kTargetedPercent = 90;
std::string GenerateRequest(uint64_t seed, int tenants = 1, const PolicyGrants* grants = nullptr);

}  // namespace writ::bench
