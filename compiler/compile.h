// compile.h -- the back end in one call: checked AST -> normalized predicates -> decision DAG
// -> serialized bytecode bundle (docs/bytecode.md).
#pragma once

#include <string>

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast.h"

namespace writ {

struct CompileOptions {
  // Per-partition bound on DAG nodes; past it the partition falls back to per-statement
  // predicate programs (still exact, evaluated linearly).
  uint32_t max_nodes_per_partition = 4096;
};

struct CompileResult {
  std::string bytes;     // the serialized bundle; empty on error
  std::string dag_dump;  // stable text dump of the DAG (`--dump=dag`)
};

// REQUIRES: `policies` parsed and type checked without errors.
bool Compile(const SourceMap& sources, const ast::PolicySet& policies, const CompileOptions& opts,
             CompileResult* out, Diagnostics* diags);

// Convenience for tests and tools: parse + check + compile policy text held in memory.
// Returns false and fills *error (rendered diagnostics) on any error.
bool CompileText(const std::string& name, const std::string& text, std::string* bytes,
                 std::string* error);

}  // namespace writ
