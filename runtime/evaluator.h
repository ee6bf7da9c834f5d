// evaluator.h -- the runtime's public API: load a bundle, prepare a request, decide.
//
//   std::string error;
//   auto bundle = runtime::Bundle::Load(bytes, &error);        // verified; null on error
//   runtime::PreparedRequest req;
//   if (!runtime::PrepareRequest(*bundle, request_json, &req, &error)) ...;
//   runtime::Decision d = runtime::Evaluate(*bundle, req);     // no heap allocation
//   nlohmann::json out = runtime::DecisionToJson(*bundle, req, d);
//
// Semantics: docs/semantics.md. Thread safety: a Bundle is immutable and may be shared by any
// number of threads (hold it as std::shared_ptr<const Bundle>); a PreparedRequest belongs to
// one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/request.h"

namespace writ::runtime {

enum class Effect : uint8_t { kAllow, kDeny, kRequireApproval };
const char* EffectName(Effect e);  // "allow" "deny" "require_approval"

// The outcome of one decision. Fixed size, no heap.
struct Decision {
  static constexpr int kMaxParts = 64;
  Effect effect = Effect::kDeny;
  uint8_t part_count = 0;
  bool overflow = false;  // more partition chunks than kMaxParts: decided deny (fail closed)
  // The partition chunks (indices into Bundle::partitions_) the request selected.
  std::array<uint32_t, kMaxParts> parts{};
};

// Decides a prepared request. Never throws, never allocates.
Decision Evaluate(const Bundle& bundle, const PreparedRequest& req);

// The JSON form of docs/semantics.md: decision, determining, obligations, errors.
nlohmann::json DecisionToJson(const Bundle& bundle, const PreparedRequest& req, const Decision& d);

// The statements (indices into Bundle::statements_) that matched the request -- a permit
// whose formula is true, a forbid or rule whose formula is true or an error -- and those
// whose formula is an error (docs/semantics.md, "Statements"). Allocates; for tools
// (DecisionToJson, coverage in `writ test`), not the request path.
void MatchStatements(const Bundle& bundle, const PreparedRequest& req,
                     std::set<uint32_t>* matched, std::set<uint32_t>* errored);

// The determining statements of decision `d` (indices, sorted, unique) -- the same set
// DecisionToJson reports -- running only the formulas that can be determining for d.effect,
// and only in the chunks whose DAG for that kind says yes.
// For replaying many requests (`writ replay`); allocates only *out's growth.
void DeterminingStatements(const Bundle& bundle, const PreparedRequest& req, const Decision& d,
                           std::vector<uint32_t>* out);

// Why: the partitions selected, the path through each DAG (predicate, its value), the leaf,
// and the statements that matched, with their source locations. Human-readable text.
std::string Explain(const Bundle& bundle, const PreparedRequest& req);

// List-time visibility of (principal, resource) with args unknown.
enum class Visibility : uint8_t { kAllow, kDeny, kDependsOnArgs };
const char* VisibilityName(Visibility v);  // "allow" "deny" "depends-on-args"
Visibility ListVisibility(const Bundle& bundle, const PreparedRequest& req);

}  // namespace writ::runtime
