// frontend.cc -- RunFrontEnd: load, parse, schema, type check.
#include "compiler/frontend.h"

#include "compiler/load.h"
#include "compiler/parse/parser.h"
#include "compiler/schema.h"
#include "compiler/typecheck.h"

namespace writ {

FrontEnd::FrontEnd() = default;
FrontEnd::~FrontEnd() = default;
FrontEnd::FrontEnd(FrontEnd&&) noexcept = default;

FrontEnd RunFrontEnd(const std::vector<std::string>& paths, const std::string& schema_path) {
  FrontEnd fe;
  std::vector<std::string> files;
  if (!FindPolicyFiles(paths, &files, &fe.io_error)) return fe;
  if (!LoadSources(files, &fe.sources, &fe.io_error)) return fe;
  fe.policies = ParseAll(fe.sources, &fe.diags);
  if (!schema_path.empty()) {
    std::unique_ptr<Schema> s = LoadSchema(schema_path, &fe.sources, &fe.diags, &fe.io_error);
    if (!fe.io_error.empty()) return fe;
    fe.schema = std::move(s);
    if (fe.schema == nullptr) {  // schema errors are reported; do not type check against it
      fe.diags.Sort();
      return fe;
    }
  }
  TypeCheck(fe.policies, fe.schema.get(), &fe.diags);
  fe.diags.Sort();
  return fe;
}

FrontEnd ParseText(const std::string& name, const std::string& text) {
  FrontEnd fe;
  fe.sources.Add(name, text);
  fe.policies = ParseAll(fe.sources, &fe.diags);
  fe.diags.Sort();
  return fe;
}

FrontEnd RunFrontEndOnText(const std::string& name, const std::string& text,
                           const Schema* schema) {
  FrontEnd fe;
  fe.sources.Add(name, text);
  fe.policies = ParseAll(fe.sources, &fe.diags);
  TypeCheck(fe.policies, schema, &fe.diags);
  fe.diags.Sort();
  return fe;
}

}  // namespace writ
