// compile.cc -- Compile(): BuildDag, then serialize with the SHA-256 of the sources.
#include "compiler/compile.h"

#include <openssl/evp.h>

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
  // SHA-256 over each file's path, length and text: the bundle hash audit records carry.
  std::array<uint8_t, 32> hash{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (const auto& f : sources.files()) {
    std::string header = f.path() + '\0' + std::to_string(f.text().size()) + '\0';
    ok = ok && EVP_DigestUpdate(ctx, header.data(), header.size()) == 1 &&
         EVP_DigestUpdate(ctx, f.text().data(), f.text().size()) == 1;
  }
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, hash.data(), &len) == 1 && len == hash.size();
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    diags->Error("E0400", Span{UINT32_MAX, 0, 0}, "cannot compute the bundle hash (OpenSSL failed)",
                 "check the OpenSSL installation");
    return false;
  }
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
