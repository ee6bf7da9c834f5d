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

// The statement formulas of a bundle split for DeterminingStatements: each formula program
// (straight-line postfix code, compiler/ast_to_dag.cc EmitFormula) is parsed back into its
// Kleene and/or/not tree over *leaves* -- the maximal sub-programs that are not and/or/not.
// A leaf whose code equals a program of the bundle (a DAG atom, a scope test) runs as that
// program (RunAtom: fast shapes included); equal leaves of different statements are one leaf.
// So a request runs each leaf at most once for all the statements it decides and the chunk
// DAGs it walks (PlanScratch remembers the results).
// A formula is run whole, as before, if its code could reach a per-run limit of the VM when
// run whole (the arena of VM-built sets and records, the lower() buffers), does not parse,
// is longer than kMaxCode instructions or its tree deeper than kMaxDepth.
// Built once per bundle (one pass over the formulas' code); holds a pointer to the bundle,
// which must outlive it. Immutable: shared by any number of threads.
class StatementPlan {
 public:
  explicit StatementPlan(const Bundle& bundle);
  StatementPlan(const StatementPlan&) = delete;
  StatementPlan& operator=(const StatementPlan&) = delete;

  static constexpr int kMaxDepth = 48;            // of a formula's and/or/not tree
  static constexpr uint32_t kMaxCode = 4096;      // instructions of a formula split
  static constexpr uint32_t kWhole = 0xFFFFFFFFu;  // root of a formula run whole
  enum Kind : uint8_t { kLeaf, kConst, kNot, kAnd, kOr };
  struct Node {
    Kind kind;
    uint8_t value;  // kConst: a Tri
    uint32_t a;     // kLeaf: leaf index; kNot: the operand; kAnd/kOr: first kid in kids_
    uint32_t n;     // kAnd/kOr: kid count
  };
  struct Leaf {
    uint32_t program;  // a program with this code (DAG atoms first), or kWhole: run the code
    uint32_t begin, count;  // the code (insns)
  };

  const Bundle& bundle() const { return *bundle_; }
  size_t leaf_count() const { return leaves_.size(); }
  // For tests: statements run whole, statements split.
  size_t whole_count() const;

 private:
  friend struct PlanAccess;
  const Bundle* bundle_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> kids_;
  std::vector<Leaf> leaves_;
  std::vector<uint32_t> root_;          // per statement: a node, or kWhole
  std::vector<uint32_t> atom_leaf_;     // per program: its leaf, or kWhole (not a DAG atom)
};

// The per-thread memory of DeterminingStatements with a plan: each leaf's result for the
// current request. Reused across requests and plans without clearing (a generation count);
// grows once to the largest plan's leaf count, then does not allocate.
class PlanScratch {
 private:
  friend struct PlanAccess;
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> value_;
  uint32_t generation_ = 0;
};

// The same result as DeterminingStatements(bundle, req, d, out) above (tests/differential
// checks both against DecisionToJson), with each leaf run at most once per call and the
// chunks' DAGs walked over the same remembered results. Allocates only at *out's and the
// scratch's growth.
// REQUIRES: d was decided by Evaluate(plan.bundle(), req); like Evaluate, not for list time
// (req.args_unknown: then the formulas are run whole, as the function above does).
void DeterminingStatements(const StatementPlan& plan, const PreparedRequest& req,
                           const Decision& d, PlanScratch* scratch, std::vector<uint32_t>* out);

// Why: the partitions selected, the path through each DAG (predicate, its value), the leaf,
// and the statements that matched, with their source locations. Human-readable text.
std::string Explain(const Bundle& bundle, const PreparedRequest& req);

// List-time visibility of (principal, resource) with args unknown.
enum class Visibility : uint8_t { kAllow, kDeny, kDependsOnArgs };
const char* VisibilityName(Visibility v);  // "allow" "deny" "depends-on-args"
Visibility ListVisibility(const Bundle& bundle, const PreparedRequest& req);

}  // namespace writ::runtime
