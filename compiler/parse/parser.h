// parser.h -- the one entry point from policy text to AST: ParseFile().
//
// Runs the ANTLR lexer and parser generated from grammar/Writ.g4, replaces ANTLR's console
// error printing with Writ diagnostics (targeted help for common mistakes), and converts the
// parse tree to the AST (cst_to_ast). ANTLR types never leave compiler/parse/.
#pragma once

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast.h"

namespace writ {

// Limits applied before the (recursive) ANTLR parser runs, so hostile input cannot overflow
// the stack: bracket nesting plus `if` nesting within one statement.
inline constexpr int kMaxNesting = 64;
// Files larger than this are rejected with a diagnostic.
inline constexpr size_t kMaxPolicyFileBytes = 16u << 20;

// Parses file `file` of `sources`. Appends diagnostics; returns the statements that parsed
// cleanly (a statement with a syntax error is dropped). Never throws.
ast::PolicyFile ParseFile(const SourceMap& sources, uint32_t file, Diagnostics* diags);

// Parses every file of `sources` into one policy set.
ast::PolicySet ParseAll(const SourceMap& sources, Diagnostics* diags);

}  // namespace writ
