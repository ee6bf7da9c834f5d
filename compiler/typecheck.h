// typecheck.h -- `writ check`: validates a parsed policy set, with or without a schema.
//
// Without a schema: regexes RE2 rejects, duplicate ids, operand types that are wrong for any
// schema (e.g. `1 + "a"`), statements that can never match. With a schema, additionally:
// unknown entity types and attributes (with did-you-mean), operand types, optional
// attributes used without `has`, `args.x` on tools that have no `x`, permits wholly
// shadowed by a forbid. See docs/diagnostics.md for the codes.
#pragma once

#include "base/diagnostic.h"
#include "compiler/ast.h"

namespace writ {

class Schema;

// `schema` may be null.
void TypeCheck(const ast::PolicySet& policies, const Schema* schema, Diagnostics* diags);

}  // namespace writ
