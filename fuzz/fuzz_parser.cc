// fuzz_parser.cc -- libFuzzer target for the front end: arbitrary bytes as a policy file
// through RunFrontEndOnText (lexer, depth pre-scan, ANTLR parser, cst_to_ast, type checker).
// Any crash, sanitizer report, leak or timeout is a bug: the front end must turn every input
// into diagnostics. Run with scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/ast_dump.h"
#include "compiler/frontend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  writ::FrontEnd fe = writ::RunFrontEndOnText("fuzz.writ", text);
  // Exercise the dump and the renderer too: they walk every node and span.
  std::string dump = writ::ast::DumpPolicySet(fe.policies);
  std::string diags = writ::Render(fe.sources, fe.diags.items(), writ::DiagnosticFormat::kText);
  // Invariant: a clean run produced statements for every `;`-terminated input it accepted.
  if (fe.diags.items().empty() && !fe.policies.files.empty()) {
    for (const auto* s : fe.policies.AllStatements()) {
      if (s->span.end > text.size() || s->span.begin > s->span.end) __builtin_trap();
    }
  }
  for (const auto& d : fe.diags.items()) {
    if (d.span.end > text.size() || d.span.begin > d.span.end) __builtin_trap();
    if (d.code.empty() || d.message.empty()) __builtin_trap();
  }
  return 0;
}
