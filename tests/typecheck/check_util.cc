// check_util.cc -- see check_util.h. (Named *_util.cc so the test glob links it.)
#include "tests/typecheck/check_util.h"

#include <doctest/doctest.h>

#include "compiler/parse/parser.h"
#include "compiler/schema.h"
#include "compiler/typecheck.h"

namespace writ::testing {
namespace {

std::vector<Found> Collect(const SourceMap& sources, Diagnostics& diags) {
  diags.Sort();
  std::vector<Found> out;
  for (const auto& d : diags.items()) {
    LineCol lc = sources.file(d.span.file).Locate(d.span.begin);
    out.push_back({d.code, d.message, d.help, std::string(sources.Text(d.span)), lc.line, lc.col});
  }
  return out;
}

}  // namespace

std::string Fixture(const std::string& name) {
  return std::string(WRIT_SOURCE_DIR) + "/tests/typecheck/fixtures/" + name;
}

std::vector<Found> CheckText(const std::string& policy, const std::string& schema) {
  SourceMap sources;
  Diagnostics diags;
  uint32_t file = sources.Add("test.writ", policy);
  std::unique_ptr<Schema> s;
  if (!schema.empty()) {
    std::string err;
    s = LoadSchema(Fixture(schema), &sources, &diags, &err);
    REQUIRE(err.empty());
    REQUIRE(s != nullptr);
  }
  ast::PolicySet set;
  set.files.push_back(ParseFile(sources, file, &diags));
  REQUIRE_MESSAGE(!diags.has_errors(), "policy text must parse: " << policy);
  TypeCheck(set, s.get(), &diags);
  return Collect(sources, diags);
}

std::vector<Found> LoadSchemaDiags(const std::string& schema_text) {
  SourceMap sources;
  Diagnostics diags;
  std::unique_ptr<Schema> s = LoadSchemaText("schema.yaml", schema_text, &sources, &diags);
  CHECK((s == nullptr) == diags.has_errors());
  return Collect(sources, diags);
}

}  // namespace writ::testing
