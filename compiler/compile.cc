// compile.cc -- Compile(): BuildDag, then serialize with the SHA-256 of the sources.
#include "compiler/compile.h"

#include <openssl/sha.h>

#include "compiler/ast_to_dag.h"
#include "compiler/dag_to_bytecode.h"
#include "compiler/frontend.h"

namespace writ {

bool Compile(const SourceMap& sources, const ast::PolicySet& policies, const CompileOptions& opts,
             CompileResult* out, Diagnostics* diags) {
  BundleTables tables;
  std::string error;
  if (!BuildDag(sources, policies, opts, &tables, &out->dag_dump, &error)) {
    diags->Error("E0400", Span{UINT32_MAX, 0, 0}, error, "simplify the expression");
    return false;
  }
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  for (const auto& f : sources.files()) {
    std::string header = f.path() + '\0' + std::to_string(f.text().size()) + '\0';
    SHA256_Update(&ctx, header.data(), header.size());
    SHA256_Update(&ctx, f.text().data(), f.text().size());
  }
  std::array<uint8_t, 32> hash;
  SHA256_Final(hash.data(), &ctx);
  out->bytes = SerializeBundle(tables, hash);
  return true;
}

bool CompileText(const std::string& name, const std::string& text, std::string* bytes,
                 std::string* error) {
  FrontEnd fe = RunFrontEndOnText(name, text);
  if (fe.diags.has_errors()) {
    *error = Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText);
    return false;
  }
  CompileResult r;
  Diagnostics d;
  if (!Compile(fe.sources, fe.policies, CompileOptions{}, &r, &d)) {
    *error = Render(fe.sources, d.items(), DiagnosticFormat::kText);
    return false;
  }
  *bytes = std::move(r.bytes);
  return true;
}

}  // namespace writ
