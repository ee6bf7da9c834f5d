// schema.h -- the schema policies are checked against: entity types with attributes and
// hierarchy, the context and call records, and per-tool `args` types. Format and built-in
// defaults: docs/schema.md. Entry points: LoadSchema (a file) and LoadSchemaText (tests).
//
// Thread safety: a Schema is built once by the loader and then only read.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/types.h"

namespace writ {

struct EntityTypeDecl {
  std::string name;
  std::vector<std::string> in;  // types an entity of this type may be a member of
  types::TypePtr attrs;         // a closed kRecord
  Span span;                    // the declaration (empty for built-in types)
};

struct ToolDecl {
  std::string name;    // namespaced: server__tool
  std::string server;
  types::TypePtr args;  // a kRecord
  Span span;
};

class Schema {
 public:
  std::map<std::string, EntityTypeDecl> entities;  // includes built-in Tool, Server, Action
  std::vector<std::string> principals;             // types `principal` may have
  std::vector<std::string> resources;              // types `resource` / `tool` may have
  types::TypePtr context;                          // kRecord
  types::TypePtr call;                             // kRecord
  std::map<std::string, ToolDecl> tools;
  std::vector<std::string> actions;  // Action ids: MCP methods plus schema `actions:`

  const EntityTypeDecl* FindEntity(const std::string& name) const;
  std::vector<std::string> EntityNames() const;
  // True if an entity of type `child` may be (transitively, or reflexively) in one of `parent`.
  bool CanBeIn(const std::string& child, const std::string& parent) const;
  bool IsAction(const std::string& id) const;
};

// The MCP methods a gateway sees; the ids of built-in `Action` entities.
const std::vector<std::string>& McpMethods();

// Loads a schema file (YAML or JSON). The file is added to `sources` so diagnostics can
// point into it. Returns null (with diagnostics) on error; sets *io_error if unreadable.
std::unique_ptr<Schema> LoadSchema(const std::string& path, SourceMap* sources,
                                   Diagnostics* diags, std::string* io_error);

// Same, from text already in memory (registered in `sources` under `name`).
std::unique_ptr<Schema> LoadSchemaText(const std::string& name, const std::string& text,
                                       SourceMap* sources, Diagnostics* diags);

// Parses a type written in a schema ("String", "Set<Long>", an entity type name). Returns null
// if malformed; `*unknown` receives an undeclared name. Exposed for `schema import` and tests.
types::TypePtr ParseTypeName(const std::string& text, const std::vector<std::string>& entities,
                             std::string* unknown);

}  // namespace writ

namespace writ {

// The result of converting a captured MCP `tools/list` result into a schema fragment.
struct ToolsImport {
  std::string text;                   // the fragment (YAML or JSON); empty on error
  std::vector<std::string> warnings;  // JSON-Schema constructs that were degraded
  std::string error;                  // set when the input is not a tools/list result
  size_t tools = 0;
};

// `json_text` is `{"tools": [...]}` or a JSON-RPC response `{"result": {"tools": [...]}}`.
// Each tool becomes `tools: { SERVER__name: { server: SERVER, args: {...} } }`; the mapping of
// JSON Schema to Writ types is documented in docs/schema.md. Never throws.
ToolsImport ImportToolsList(const std::string& json_text, const std::string& server,
                            bool as_json);

}  // namespace writ
