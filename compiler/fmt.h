// fmt.h -- the Writ formatter: prints a parsed policy file in its one canonical form
// (`writ fmt`). The layout rules are written down in docs/formatter.md; this header is the
// single entry point: Format() prints, FormatSource() prints with the safety checks that
// `writ fmt` relies on before it rewrites a file.
//
// Guarantees (checked by tests/fmt/ over every fixture and every policy in the repository):
//   - meaning: parsing Format(x) gives the same AST as x, spans and `.a` / `["a"]` spelling
//     aside (FormatSource() re-checks this on every run and refuses to write otherwise);
//   - comments: every comment of the input appears in the output, text unchanged;
//   - idempotence: Format(Format(x)) == Format(x).
#pragma once

#include <string>

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast.h"

namespace writ {

// Canonical text of `file`, whose source text is sources.file(file.file).
// REQUIRES: `file` parsed without errors (a statement dropped for a syntax error would be
// lost; FormatSource() checks this).
std::string Format(const SourceMap& sources, const ast::PolicyFile& file);

enum class FormatStatus {
  kOk,          // `text` holds the canonical form (possibly equal to the input)
  kParseError,  // the input has syntax errors, reported in *diags; nothing to write
  kInternal,    // the formatter would change meaning or drop a comment: a formatter bug;
                // `detail` says what differed. Never write `text` in this case.
};

struct FormatResult {
  FormatStatus status = FormatStatus::kOk;
  std::string text;
  std::string detail;
};

// Parses `text` (named `path` in diagnostics), formats it, re-parses the output and checks
// that its AST (spans ignored) and its comments equal the input's.
FormatResult FormatSource(const std::string& path, const std::string& text, SourceMap* sources,
                          Diagnostics* diags);

// The AST dump of a file with spans removed and attribute spelling unified (`.a` and `["a"]`
// mean the same), so two files can be compared for meaning. Used by FormatSource and tests.
std::string MeaningDump(const ast::PolicyFile& file);

}  // namespace writ
