// typecheck.h -- `writ check`: validates a parsed policy set, with or without a schema.
// Entry point: TypeCheck(). Diagnostic codes E02xx are listed in docs/schema.md.
//
// Without a schema: regexes RE2 rejects, duplicate ids, operand types that are wrong for any
// schema (e.g. `1 + "a"`, `principal == "alice"`), unknown MCP methods in `Action::"..."`,
// statements that can never match (constant-false conditions), permits wholly shadowed by an
// unconditional forbid. With a schema, additionally: unknown entity types and attributes
// (with did-you-mean), operand types of attributes, optional attributes used without `has`
// (facts flow through `&&`, `||`, `!`, `if` and across when/unless clauses, as in Cedar),
// `args.x` on tools that have no `x`, scopes that no principal/resource type can satisfy.
//
// Recursion: the walkers recurse over Expr, whose depth cst_to_ast bounds (kMaxExprDepth).
#pragma once

#include "base/diagnostic.h"
#include "compiler/ast.h"

namespace writ {

class Schema;

// `schema` may be null.
void TypeCheck(const ast::PolicySet& policies, const Schema* schema, Diagnostics* diags);

}  // namespace writ
