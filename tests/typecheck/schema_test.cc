// schema_test.cc -- the schema loader (errors with line:col spans into the schema file, the
// built-in defaults) and `writ schema import` on captured tools/list results.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "compiler/schema.h"
#include "tests/typecheck/check_util.h"

using writ::testing::Found;
using writ::testing::LoadSchemaDiags;

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Found One(const std::vector<Found>& f) {
  for (const auto& d : f) INFO(d.code << " " << d.message);
  REQUIRE(f.size() == 1);
  return f[0];
}

}  // namespace

TEST_CASE("the documented example schema loads, with built-in defaults merged in") {
  writ::SourceMap sources;
  writ::Diagnostics diags;
  std::string err;
  auto s = writ::LoadSchema(writ::testing::Fixture("schema.yaml"), &sources, &diags, &err);
  REQUIRE(s != nullptr);
  CHECK(!diags.has_errors());
  CHECK(s->principals == std::vector<std::string>{"User", "Agent"});
  const writ::EntityTypeDecl* tool = s->FindEntity("Tool");
  REQUIRE(tool != nullptr);
  CHECK(tool->attrs->attrs.count("annotations") == 1);
  CHECK(tool->attrs->attrs.at("category").optional == false);  // the schema overrides it
  CHECK(tool->attrs->attrs.at("server").optional == false);
  CHECK(s->CanBeIn("Tool", "Server"));
  CHECK(s->CanBeIn("User", "Group"));
  CHECK(!s->CanBeIn("Agent", "Group"));
  CHECK(s->call->attrs.count("intent") == 1);
  CHECK(s->IsAction("tools/call"));
  CHECK(writ::types::ToString(*s->tools.at("stripe__refund_create").args) ==
        "{amount: Long, currency?: String, reason?: String}");
  CHECK(s->tools.at("stripe__refund_create").server == "stripe");
}

TEST_CASE("docs examples: every schema fragment under fixtures/docs_*.yaml loads cleanly") {
  for (const char* name : {"docs_minimal.yaml", "docs_json_schema.json", "stripe_import.yaml"}) {
    INFO(name);
    std::string text = ReadAll(writ::testing::Fixture(name));
    REQUIRE(!text.empty());
    CHECK(LoadSchemaDiags(text).empty());
  }
}

TEST_CASE("schema errors point at the schema file") {
  Found d = One(LoadSchemaDiags("entities:\n  User:\n    attributes:\n      age: Lng\n"));
  CHECK(d.code == "E0302");
  CHECK(d.message == "unknown type `Lng`");
  CHECK(d.help == "did you mean `Long`?");
  CHECK(d.line == 4);
  CHECK(d.col == 12);
  CHECK(d.underlined == "Lng");

  d = One(LoadSchemaDiags("entities:\n  User: { atributes: {} }\n"));
  CHECK(d.code == "E0301");
  CHECK(d.message == "unknown key `atributes` in entity `User`");
  CHECK(d.help == "did you mean `attributes`?");
  CHECK(d.underlined == "atributes");

  d = One(LoadSchemaDiags("entitys: {}\n"));
  CHECK(d.message == "unknown key `entitys` in the schema");
  CHECK(d.line == 1);

  d = One(LoadSchemaDiags("entities:\n  User: { in: [Rol] }\n  Role: {}\n"));
  CHECK(d.code == "E0304");
  CHECK(d.message == "unknown entity type `Rol` in `in`");
  CHECK(d.help == "did you mean `Role`?");

  d = One(LoadSchemaDiags("principals: [Usr]\nentities: { User: {} }\n"));
  CHECK(d.code == "E0304");
  CHECK(d.underlined == "Usr");

  d = One(LoadSchemaDiags("context: { ip: Set<Strin> }\n"));
  CHECK(d.message == "unknown type `Strin`");

  d = One(LoadSchemaDiags("context: { a: String, \"a?\": Long }\n"));
  CHECK(d.code == "E0306");

  d = One(LoadSchemaDiags("tools:\n  refund: { args: { amount: Long } }\n"));
  CHECK(d.code == "E0308");
  CHECK(d.message == "tool `refund` names no server");

  d = One(LoadSchemaDiags("entities: [User]\n"));
  CHECK(d.code == "E0303");
  CHECK(d.message == "entities must be a map");

  d = One(LoadSchemaDiags("entities:\n  User: {\n"));
  CHECK(d.code == "E0300");
  CHECK(d.message.rfind("invalid schema syntax: ", 0) == 0);

  // several errors at once
  CHECK(LoadSchemaDiags("context: { a: Strng, b: Lon }\n").size() == 2);
  // JSON works too
  CHECK(LoadSchemaDiags("{\"context\": {\"ip\": \"IpAddr\"}}").empty());
  CHECK(LoadSchemaDiags("").empty());
}

TEST_CASE("schema import: a JSON-RPC tools/list response from a stripe-like server") {
  std::string in = ReadAll(writ::testing::Fixture("stripe_tools_list.json"));
  writ::ToolsImport r = writ::ImportToolsList(in, "stripe", false);
  CHECK(r.error.empty());
  CHECK(r.tools == 3);
  CHECK(r.warnings ==
        std::vector<std::string>{
            "stripe__charge_list.filter: `oneOf` with several alternatives; imported as Any"});
  // the golden output is the file the docs show; it must also load as a schema
  CHECK(r.text == ReadAll(writ::testing::Fixture("stripe_import.yaml")));
}

TEST_CASE("schema import: a filesystem-like server, JSON output, degraded constructs") {
  std::string in = ReadAll(writ::testing::Fixture("filesystem_tools_list.json"));
  writ::ToolsImport r = writ::ImportToolsList(in, "fs", true);
  CHECK(r.error.empty());
  CHECK(r.tools == 5);
  CHECK(r.warnings.size() == 2);
  CHECK(LoadSchemaDiags(r.text).empty());
  writ::SourceMap sources;
  writ::Diagnostics diags;
  auto s = writ::LoadSchemaText("fs.json", r.text, &sources, &diags);
  REQUIRE(s != nullptr);
  CHECK(writ::types::ToString(*s->tools.at("fs__read_file").args) ==
        "{head?: Long, path: String, tail?: Long}");
  CHECK(writ::types::ToString(*s->tools.at("fs__edit_file").args) ==
        "{dryRun?: Bool, edits: Set<Record>, path: String}");
  CHECK(writ::types::ToString(*s->tools.at("fs__move_file").args) ==
        "{destination: Any, source: String}");
}

TEST_CASE("schema import: inputs that are not tools/list results never crash") {
  for (const char* in : {"", "not json", "[]", "{}", "{\"tools\": 3}", "{\"result\": {}}",
                         "{\"tools\": [1, {\"name\": 2}, {\"name\": \"x\", \"inputSchema\": 5}]}",
                         "{\"tools\": [{\"name\": \"x\", \"inputSchema\": {\"type\": \"array\"}}]}"}) {
    INFO(in);
    writ::ToolsImport r = writ::ImportToolsList(in, "s", false);
    CHECK((r.error.empty() ? !r.text.empty() : r.text.empty()));
  }
  std::string deep = "{\"type\":\"object\",\"properties\":{\"a\":";
  std::string nested;
  for (int i = 0; i < 200; ++i) nested += deep;
  nested += "{\"type\":\"string\"}";
  for (int i = 0; i < 200; ++i) nested += "}}";
  writ::ToolsImport r =
      writ::ImportToolsList("{\"tools\":[{\"name\":\"x\",\"inputSchema\":" + nested + "}]}", "s", false);
  CHECK(r.error.empty());
  CHECK(!r.warnings.empty());
}
