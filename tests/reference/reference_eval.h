// reference_eval.h -- the reference evaluator: docs/semantics.md implemented as a direct
// recursive walk over the AST. Used only in tests, as the oracle the VM must agree with.
//
// Entry points: ReferenceDecide (the decision JSON of `writ eval`) and ReferenceVisibility
// (list-time visibility with `args` unknown). Simplicity over speed: every operator is one
// case of one switch, written from the tables of docs/semantics.md. Recursion depth is bounded
// by ast::kMaxExprDepth (cst_to_ast rejects deeper trees).
//
// The .cc is `reference_util.cc` so that it is globbed into writ_reference_tests. Another test
// folder that needs the oracle adds `#include "tests/reference/reference_eval.h"` and a one-line
// `*_util.cc` that does `#include "tests/reference/reference_util.cc"` (see
// tests/differential/).
//
// Choices where docs/semantics.md is silent are marked `CHOICE:` in reference_util.cc.
//
// Thread safety: the functions are reentrant (a thread_local regex cache).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "compiler/ast.h"

namespace writ::reference {

// The decision JSON of docs/semantics.md: {"decision", "determining", "obligations",
// "errors"}. A malformed request (see docs: wrong top-level types, bad uid) yields
// {"error": "<message>"} instead.
nlohmann::json ReferenceDecide(const ast::PolicySet& policies, const nlohmann::json& request);

// "allow", "deny" or "depends-on-args": the decision for (principal, action, resource,
// context, call) of `request` with `args` unknown. Its `args` is ignored. "allow" means every
// possible args yields allow or require_approval, "deny" that every possible args yields deny.
// See VisibilityDetail for how it is computed; "error: ..." for a malformed request.
std::string ReferenceVisibility(const ast::PolicySet& policies, const nlohmann::json& request);

// How ReferenceVisibility was decided (for the oracle's own tests):
//   abstract: a three-valued walk where every `args` read is unknown. Sound: when it says
//             "allow" or "deny" that holds for all args; otherwise "depends-on-args".
//   sampled:  concrete decisions for `samples` generated args (values built from every
//             `args` path and literal of the policy set, plus missing/null/wrong types):
//             "allow" (all non-deny), "deny" (all deny), "depends-on-args" (both seen).
// ReferenceVisibility = abstract if it is not "depends-on-args", else sampled. So a sound VM
// can never disagree with it under the differential test's rule (VM "deny" implies reference
// "deny", VM "allow" implies reference "allow"), and an unsound VM is caught whenever a
// sample witnesses the other outcome.
struct VisibilityDetail {
  std::string abstract;
  std::string sampled;
  int samples = 0;
  std::string result;
};
VisibilityDetail ReferenceVisibilityDetail(const ast::PolicySet& policies,
                                           const nlohmann::json& request, int sample_count = 48);

}  // namespace writ::reference
