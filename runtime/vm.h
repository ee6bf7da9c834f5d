// vm.h -- the stack machine that runs one atom program (internal to runtime/).
//
// Programs are straight-line postfix code with no jumps: errors are values, so evaluating
// both branches of an `if` and selecting is equivalent to short-circuiting, and the verifier
// can check stack depth statically. Run() never allocates and never throws.
#pragma once

#include "runtime/bundle.h"
#include "runtime/request.h"

namespace writ::runtime {

// Three-valued result of an atom, plus kUnknown at list time.
enum class Tri : uint8_t { kTrue = 0, kFalse = 1, kError = 2, kUnknown = 3 };

Value Run(const Bundle& b, const PreparedRequest& req, const Program& p);

// Runs an atom program and maps its value: Bool -> true/false, anything else -> error.
// With req.args_unknown, an atom that reads args is kUnknown.
Tri RunAtom(const Bundle& b, const PreparedRequest& req, uint32_t program);

// Walks one DAG from `ref` (a node, or a leaf reference) to its leaf; returns the outcome
// index. Evaluates atoms as RunAtom does.
uint32_t WalkDag(const Bundle& b, const PreparedRequest& req, uint32_t ref);

// Does the DAG of `kind` say yes in any of the partition chunks parts[0..count)? Walks them in
// order and stops at the first yes, over the run layout (Bundle::run_nodes_, run_parts_: a
// chunk whose DAG of that kind is a leaf costs one load). The evaluator's inner loop: one
// call per DAG kind. (With req.args_unknown, which the request path never sets, an unknown
// atom takes its error edge.)
bool AnyDagSaysYes(const Bundle& b, const PreparedRequest& req, const uint32_t* parts, int count,
                   DagKind kind);

// Runs a rate-limit key program and renders its value: a String as itself, anything else in
// canonical Writ syntax; "<error>" if the value holds an error anywhere.
std::string KeyText(const Bundle& b, const PreparedRequest& req, const Program& p);

}  // namespace writ::runtime
