// ast_to_dag.h -- normalization and the decision DAG: the one entry point is BuildDag().
//
// Each statement becomes a formula: a Kleene-logic combination (and/or/not, negation pushed
// to the atoms, boolean constants folded) of atoms, where an atom is any non-connective
// expression compiled to a straight-line VM program (identical atoms are interned, so shared).
// Statements are partitioned by (action key, resource key) from their scopes; each partition
// becomes a DAG by Shannon expansion on its atoms with three-way (true/false/error) branching,
// hash-consed so identical subgraphs are shared. Leaves name precombined outcomes.
//
// Blow-up bound: a partition whose DAG would exceed CompileOptions::max_nodes_per_partition
// nodes is split in halves (recursively) into chunks whose DAGs are evaluated one after
// another and combined at run time; evaluation stays exact.
#pragma once

#include <string>

#include "base/source.h"
#include "compiler/ast.h"
#include "compiler/compile.h"
#include "runtime/bundle.h"

namespace writ {

// The raw tables of a bundle, as dag_to_bytecode serializes them (see runtime/bundle.h).
struct BundleTables {
  std::vector<std::string> strings;
  std::vector<int64_t> longs;
  std::vector<uint32_t> constants, path_pool, stmt_pool, partition_pool, regexes, likes,
      record_keys, program_pool, program_text;
  std::vector<runtime::Slot> slots;
  std::vector<runtime::Insn> insns;
  std::vector<runtime::Program> programs;
  std::vector<runtime::Node> nodes;
  std::vector<runtime::Outcome> outcomes;
  std::vector<runtime::Partition> partitions;
  std::vector<runtime::SwitchEntry> switch_entries;
  std::vector<runtime::StatementMeta> statements;
};

// Fills `out` and a stable text dump of the DAG. Returns false with *error when a statement
// cannot be compiled (e.g. a program deeper than the VM stack).
bool BuildDag(const SourceMap& sources, const ast::PolicySet& policies, const CompileOptions& opts,
              BundleTables* out, std::string* dag_dump, std::string* error);

}  // namespace writ
