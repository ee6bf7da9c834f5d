// cst_to_ast.h -- converts an ANTLR parse tree of one file into ast::PolicyFile, reporting
// semantic-syntax errors (unknown effect, `=` for `==`, malformed scope, unknown obligation,
// bad literal, nesting too deep, ...) with targeted help. Internal to compiler/parse/.
#pragma once

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast.h"
#include "WritParser.h"

namespace writ::parse {

void CstToAst(const SourceMap& sources, uint32_t file, writgen::WritParser::FileContext* cst,
              ast::PolicyFile* out, Diagnostics* diags);

// Decodes the escapes of a string literal's body (without quotes). With `like_pattern`, `\*`
// decodes to a literal `*` (the caller splits the body on unescaped `*` first). On a bad escape
// returns false and sets *bad_offset (relative to body) and *bad_len.
bool Unescape(std::string_view body, bool like_pattern, std::string* out, size_t* bad_offset,
              size_t* bad_len);

}  // namespace writ::parse
