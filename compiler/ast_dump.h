// ast_dump.h -- the stable text dump of the AST (`writ check --dump=ast`), pinned by golden
// tests. One statement per block; every node prints its byte span as [begin,end).
#pragma once

#include <string>

#include "compiler/ast.h"

namespace writ::ast {

std::string DumpExpr(const Expr& e);
std::string DumpStatement(const Statement& s);
std::string DumpPolicySet(const PolicySet& set);

// Quotes and escapes a string the way Writ source writes it.
std::string Quote(const std::string& s);

}  // namespace writ::ast
