// schema.cc -- loading and validating a schema file (YAML or JSON, via yaml-cpp). Every
// problem becomes a Diagnostic with a byte span into the schema file (codes E03xx, listed in
// docs/schema.md). Entry points: LoadSchema, LoadSchemaText (schema.h).
#include "compiler/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

namespace writ {
namespace {

using types::Attribute;
using types::TypePtr;

// Records nested deeper than this in a schema are rejected (bounds the loader's recursion).
constexpr int kMaxSchemaDepth = 32;

const std::vector<std::string>& PrimitiveNames() {
  static const std::vector<std::string> k{"String", "Long", "Bool", "Duration",
                                          "IpAddr", "Record", "Any"};
  return k;
}

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

TypePtr ParseTypeNameAt(std::string text, const std::vector<std::string>& entities,
                        std::string* unknown, int depth) {
  text = Trim(text);
  if (depth > kMaxSchemaDepth) return nullptr;
  if (text.rfind("Set<", 0) == 0 && text.size() > 5 && text.back() == '>') {
    TypePtr elem = ParseTypeNameAt(text.substr(4, text.size() - 5), entities, unknown, depth + 1);
    return elem ? types::SetOf(elem) : nullptr;
  }
  if (text == "String") return types::String();
  if (text == "Long") return types::Long();
  if (text == "Bool") return types::Bool();
  if (text == "Duration") return types::Duration();
  if (text == "IpAddr") return types::IpAddr();
  if (text == "Record") return types::OpenRecord();
  if (text == "Any") return types::Any();
  if (std::find(entities.begin(), entities.end(), text) != entities.end()) {
    return types::Entity({text});
  }
  if (unknown->empty()) *unknown = text;
  return nullptr;
}

class Loader {
 public:
  Loader(const SourceMap& sources, uint32_t file, Diagnostics* diags)
      : text_(sources.file(file).text()), file_(file), diags_(diags) {}

  std::unique_ptr<Schema> Load() {
    YAML::Node root;
    try {
      root = YAML::Load(text_);
    } catch (const YAML::ParserException& e) {
      uint32_t pos = e.mark.is_null() ? 0 : static_cast<uint32_t>(std::max(0, e.mark.pos));
      Error("E0300", Span{file_, pos, pos + 1}, "invalid schema syntax: " + e.msg,
            "the schema is YAML (or JSON); check indentation, quotes and brackets here");
      return nullptr;
    } catch (const YAML::Exception& e) {
      Error("E0300", Span{file_, 0, 0}, std::string("invalid schema: ") + e.what(),
            "the schema is YAML (or JSON)");
      return nullptr;
    }
    auto s = std::make_unique<Schema>();
    try {
      Build(root, s.get());
    } catch (const YAML::Exception& e) {  // defensive: conversions are guarded, but never crash
      Error("E0300", Span{file_, 0, 0}, std::string("invalid schema: ") + e.what(),
            "the schema is YAML (or JSON)");
    }
    if (errors_ > 0) return nullptr;
    return s;
  }

 private:
  void Error(const char* code, Span span, std::string msg, std::string help) {
    ++errors_;
    diags_->Error(code, span, std::move(msg), std::move(help));
  }

  Span SpanOf(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    if (m.is_null() || m.pos < 0) return Span{file_, 0, 0};
    uint32_t b = static_cast<uint32_t>(m.pos);
    uint32_t len = 1;
    if (n.IsScalar()) {
      len = static_cast<uint32_t>(std::max<size_t>(1, n.Scalar().size()));
      if (b < text_.size() && (text_[b] == '"' || text_[b] == '\'')) len += 2;
    }
    return Span{file_, b, std::min<uint32_t>(b + len, static_cast<uint32_t>(text_.size()))};
  }

  bool ExpectMap(const YAML::Node& n, const std::string& what) {
    if (n.IsMap()) return true;
    if (n.IsNull()) return false;  // `key:` with no value means "nothing declared"
    Error("E0303", SpanOf(n), what + " must be a map", "write `" + what + ": { name: ... }`");
    return false;
  }

  std::string KeyOf(const YAML::Node& k) {
    if (!k.IsScalar()) {
      Error("E0303", SpanOf(k), "map keys must be plain names", "write a name such as `amount`");
      return "";
    }
    return k.Scalar();
  }

  // Warns about keys of map `n` not in `allowed`.
  void CheckKeys(const YAML::Node& n, const std::vector<std::string>& allowed,
                 const std::string& where) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = KeyOf(it->first);
      if (key.empty() || std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string guess = ClosestMatch(key, allowed);
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      Error("E0301", SpanOf(it->first), "unknown key `" + key + "` in " + where,
            guess.empty() ? "allowed keys: " + list : "did you mean `" + guess + "`?");
    }
  }

  TypePtr TypeOf(const YAML::Node& n, int depth) {
    if (depth > kMaxSchemaDepth) {
      Error("E0307", SpanOf(n), "schema types nest too deeply",
            "records may nest at most " + std::to_string(kMaxSchemaDepth) + " levels");
      return types::Any();
    }
    if (n.IsMap()) return RecordOf(n, depth + 1);
    if (!n.IsScalar()) {
      Error("E0303", SpanOf(n), "a type must be a name or a map of attributes",
            "write e.g. `String`, `Set<String>`, `User` or `{ street: String }`");
      return types::Any();
    }
    std::string unknown;
    TypePtr t = ParseTypeNameAt(n.Scalar(), entity_names_, &unknown, 0);
    if (t) return t;
    std::vector<std::string> cands = PrimitiveNames();
    cands.insert(cands.end(), entity_names_.begin(), entity_names_.end());
    cands.push_back("Set<String>");
    std::string guess = ClosestMatch(unknown.empty() ? n.Scalar() : unknown, cands);
    Error("E0302", SpanOf(n),
          unknown.empty() ? "malformed type `" + n.Scalar() + "`"
                          : "unknown type `" + unknown + "`",
          guess.empty() ? "types: String, Long, Bool, Duration, IpAddr, Set<T>, Record, Any, a "
                          "declared entity type, or a map (record)"
                        : "did you mean `" + guess + "`?");
    return types::Any();
  }

  // A map of `name[?]: type` into attributes.
  std::map<std::string, Attribute> AttrsOf(const YAML::Node& n, int depth) {
    std::map<std::string, Attribute> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = KeyOf(it->first);
      if (key.empty()) continue;
      Attribute a;
      a.span = SpanOf(it->first);
      if (key.size() > 1 && key.back() == '?') {
        a.optional = true;
        key.pop_back();
      }
      a.type = TypeOf(it->second, depth);
      if (!out.emplace(key, a).second) {
        Error("E0306", a.span, "attribute `" + key + "` is declared twice",
              "declare each attribute once, with a trailing `?` if it is optional");
      }
    }
    return out;
  }

  TypePtr RecordOf(const YAML::Node& n, int depth) {
    return types::Record(AttrsOf(n, depth));
  }

  std::vector<std::string> EntityList(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      if (CheckEntityName(n, what)) out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence()) {
      Error("E0303", SpanOf(n), "`" + what + "` must be a list of entity types",
            "write `" + what + ": [User, Agent]`");
      return out;
    }
    for (const auto& e : n) {
      if (!e.IsScalar()) {
        Error("E0303", SpanOf(e), "`" + what + "` lists entity type names",
              "write `" + what + ": [User, Agent]`");
      } else if (CheckEntityName(e, what)) {
        out.push_back(e.Scalar());
      }
    }
    return out;
  }

  bool CheckEntityName(const YAML::Node& n, const std::string& what) {
    const std::string& name = n.Scalar();
    if (std::find(entity_names_.begin(), entity_names_.end(), name) != entity_names_.end()) {
      return true;
    }
    std::string guess = ClosestMatch(name, entity_names_);
    Error("E0304", SpanOf(n), "unknown entity type `" + name + "` in `" + what + "`",
          guess.empty() ? "declare it under `entities:` first"
                        : "did you mean `" + guess + "`?");
    return false;
  }

  void Build(const YAML::Node& root, Schema* s) {
    if (!root.IsMap()) {
      if (!root.IsNull()) {
        Error("E0303", SpanOf(root), "a schema must be a map",
              "start with `entities:`, `principals:`, `context:` or `tools:`");
      }
      root_ok_ = false;
    }
    static const std::vector<std::string> kTop{"entities", "principals", "resources", "context",
                                               "call",     "tools",      "actions"};
    entity_names_ = {"Action", "Server", "Tool"};
    // Copy-construct (never assign) nodes: assigning a missing (zombie) node throws.
    YAML::Node ents = root_ok_ ? YAML::Node(root["entities"]) : YAML::Node();
    if (root_ok_) {
      CheckKeys(root, kTop, "the schema");
      if (ents && ExpectMap(ents, "entities")) {
        for (auto it = ents.begin(); it != ents.end(); ++it) {
          std::string name = KeyOf(it->first);
          if (!name.empty() &&
              std::find(entity_names_.begin(), entity_names_.end(), name) == entity_names_.end()) {
            entity_names_.push_back(name);
          }
        }
      }
    }
    std::sort(entity_names_.begin(), entity_names_.end());

    // Built-in entity types (docs/schema.md, "Built-in defaults").
    auto opt = [](TypePtr t) { return Attribute{std::move(t), true, {}}; };
    auto req = [](TypePtr t) { return Attribute{std::move(t), false, {}}; };
    std::map<std::string, Attribute> tool_attrs{
        {"name", req(types::String())},
        {"server", req(types::String())},
        {"intent", req(types::String())},
        {"category", opt(types::String())},
        {"tags", req(types::SetOf(types::String()))},
        {"annotations", req(types::Record({{"readOnlyHint", opt(types::Bool())},
                                           {"destructiveHint", opt(types::Bool())},
                                           {"idempotentHint", opt(types::Bool())},
                                           {"openWorldHint", opt(types::Bool())}}))},
    };
    std::map<std::string, std::map<std::string, Attribute>> attrs{
        {"Tool", tool_attrs}, {"Server", {{"name", req(types::String())}}}, {"Action", {}}};
    std::map<std::string, std::vector<std::string>> ins{{"Tool", {"Server"}}};
    std::map<std::string, Span> spans;

    if (ents && ents.IsMap()) {
      for (auto it = ents.begin(); it != ents.end(); ++it) {
        std::string name = KeyOf(it->first);
        if (name.empty()) continue;
        spans[name] = SpanOf(it->first);
        const YAML::Node body = it->second;  // a copy: yaml-cpp returns proxies
        if (!ExpectMap(body, "entity `" + name + "`")) continue;
        CheckKeys(body, {"in", "attributes"}, "entity `" + name + "`");
        if (YAML::Node in = body["in"]) {
          for (auto& t : EntityList(in, "in")) {
            if (std::find(ins[name].begin(), ins[name].end(), t) == ins[name].end()) {
              ins[name].push_back(t);
            }
          }
        }
        if (YAML::Node at = body["attributes"]; at && ExpectMap(at, "attributes")) {
          for (auto& [k, a] : AttrsOf(at, 1)) attrs[name][k] = a;  // user overrides defaults
        }
      }
    }
    for (const auto& name : entity_names_) {
      EntityTypeDecl d;
      d.name = name;
      d.in = ins[name];
      d.attrs = types::Record(attrs[name]);
      d.span = spans[name];
      s->entities.emplace(name, std::move(d));
    }

    std::map<std::string, Attribute> call_attrs{{"intent", req(types::String())}};
    std::map<std::string, Attribute> ctx_attrs;
    s->actions = McpMethods();
    if (root_ok_) {
      if (YAML::Node p = root["principals"]) s->principals = EntityList(p, "principals");
      if (YAML::Node r = root["resources"]) s->resources = EntityList(r, "resources");
      if (YAML::Node c = root["context"]; c && ExpectMap(c, "context")) ctx_attrs = AttrsOf(c, 1);
      if (YAML::Node c = root["call"]; c && ExpectMap(c, "call")) {
        for (auto& [k, a] : AttrsOf(c, 1)) call_attrs[k] = a;
      }
      if (YAML::Node a = root["actions"]) {
        if (!a.IsSequence()) {
          Error("E0303", SpanOf(a), "`actions` must be a list of method names",
                "write `actions: [\"custom/method\"]`");
        } else {
          for (const auto& m : a) {
            if (m.IsScalar()) s->actions.push_back(m.Scalar());
          }
        }
      }
      if (YAML::Node t = root["tools"]; t && ExpectMap(t, "tools")) LoadTools(t, s);
    }
    if (!root_ok_ || !root["principals"]) {
      for (const auto& n : entity_names_) {
        if (n != "Action" && n != "Server" && n != "Tool") s->principals.push_back(n);
      }
    }
    if (!root_ok_ || !root["resources"]) s->resources = {"Tool"};
    s->context = types::Record(ctx_attrs);
    s->call = types::Record(call_attrs);
  }

  void LoadTools(const YAML::Node& tools, Schema* s) {
    for (auto it = tools.begin(); it != tools.end(); ++it) {
      std::string name = KeyOf(it->first);
      if (name.empty()) continue;
      ToolDecl d;
      d.name = name;
      d.span = SpanOf(it->first);
      const YAML::Node body = it->second;  // a copy: yaml-cpp returns proxies
      size_t sep = name.find("__");
      if (sep != std::string::npos) d.server = name.substr(0, sep);
      std::map<std::string, Attribute> args;
      if (ExpectMap(body, "tool `" + name + "`")) {
        CheckKeys(body, {"server", "args", "description"}, "tool `" + name + "`");
        if (YAML::Node sv = body["server"]; sv && sv.IsScalar()) d.server = sv.Scalar();
        if (YAML::Node a = body["args"]; a && ExpectMap(a, "args")) args = AttrsOf(a, 1);
      }
      if (d.server.empty()) {
        Error("E0308", d.span, "tool `" + name + "` names no server",
              "add `server: NAME`, or name the tool `server__tool`");
      }
      d.args = types::Record(std::move(args));
      s->tools.emplace(name, std::move(d));
    }
  }

  const std::string& text_;
  uint32_t file_;
  Diagnostics* diags_;
  int errors_ = 0;
  bool root_ok_ = true;
  std::vector<std::string> entity_names_;
};

}  // namespace

const std::vector<std::string>& McpMethods() {
  static const std::vector<std::string> k{
      "initialize",          "ping",
      "tools/list",          "tools/call",
      "resources/list",      "resources/templates/list",
      "resources/read",      "resources/subscribe",
      "resources/unsubscribe", "prompts/list",
      "prompts/get",         "completion/complete",
      "logging/setLevel",    "sampling/createMessage",
      "elicitation/create",  "roots/list",
  };
  return k;
}

const EntityTypeDecl* Schema::FindEntity(const std::string& name) const {
  auto it = entities.find(name);
  return it == entities.end() ? nullptr : &it->second;
}

std::vector<std::string> Schema::EntityNames() const {
  std::vector<std::string> out;
  for (const auto& [n, d] : entities) out.push_back(n);
  return out;
}

bool Schema::CanBeIn(const std::string& child, const std::string& parent) const {
  // Breadth-first over the `in` graph (explicit worklist; cycles are harmless).
  std::set<std::string> seen{child};
  std::vector<std::string> work{child};
  while (!work.empty()) {
    std::string t = work.back();
    work.pop_back();
    if (t == parent) return true;
    const EntityTypeDecl* d = FindEntity(t);
    if (d == nullptr) continue;
    for (const auto& p : d->in) {
      if (seen.insert(p).second) work.push_back(p);
    }
  }
  return false;
}

bool Schema::IsAction(const std::string& id) const {
  return std::find(actions.begin(), actions.end(), id) != actions.end();
}

types::TypePtr ParseTypeName(const std::string& text, const std::vector<std::string>& entities,
                             std::string* unknown) {
  return ParseTypeNameAt(text, entities, unknown, 0);
}

std::unique_ptr<Schema> LoadSchemaText(const std::string& name, const std::string& text,
                                       SourceMap* sources, Diagnostics* diags) {
  uint32_t file = sources->Add(name, text);
  return Loader(*sources, file, diags).Load();
}

std::unique_ptr<Schema> LoadSchema(const std::string& path, SourceMap* sources,
                                   Diagnostics* diags, std::string* io_error) {
  std::string text;
  if (!ReadFile(path, &text, io_error)) return nullptr;
  return LoadSchemaText(path, text, sources, diags);
}

}  // namespace writ

// ---- `writ schema import`: MCP tools/list -> schema fragment ----

#include <nlohmann/json.hpp>

namespace writ {
namespace {

using OJson = nlohmann::ordered_json;

// JSON Schema nested deeper than this becomes `Record` / `Any` (bounds the recursion).
constexpr int kMaxImportDepth = 16;

// Maps one JSON Schema to a Writ type: a type name (string) or a record (object). Sets
// *nullable when the schema admits null. Unsupported constructs degrade to `Any` / `Record`.
OJson ImportType(const OJson& s, const std::string& where, int depth, bool* nullable,
                 std::vector<std::string>* warn) {
  auto degrade = [&](const std::string& why, const char* to) {
    warn->push_back(where + ": " + why + "; imported as " + to);
    return OJson(to);
  };
  if (!s.is_object()) return degrade("schema is not an object", "Any");
  if (depth > kMaxImportDepth) return degrade("nested too deeply", "Any");
  OJson type = s.contains("type") ? s["type"] : OJson();
  if (type.is_array()) {  // ["string", "null"]: nullable string
    OJson rest = OJson::array();
    for (const auto& t : type) {
      if (t == "null") {
        *nullable = true;
      } else {
        rest.push_back(t);
      }
    }
    if (rest.size() != 1) return degrade("several types", "Any");
    type = rest[0];
  }
  if (type.is_null()) {
    for (const char* comb : {"anyOf", "oneOf"}) {
      if (!s.contains(comb) || !s[comb].is_array()) continue;
      std::vector<const OJson*> alts;
      for (const auto& a : s[comb]) {
        if (a.is_object() && a.contains("type") && a["type"] == "null") {
          *nullable = true;
        } else {
          alts.push_back(&a);
        }
      }
      if (alts.size() == 1) return ImportType(*alts[0], where, depth + 1, nullable, warn);
      return degrade(std::string("`") + comb + "` with several alternatives", "Any");
    }
    if (s.contains("enum") && s["enum"].is_array() && !s["enum"].empty()) {
      for (const auto& v : s["enum"]) {
        if (!v.is_string()) return degrade("`enum` of non-strings", "Any");
      }
      return "String";
    }
    if (s.contains("const") && s["const"].is_string()) return "String";
    if (s.contains("properties")) {
      type = "object";
    } else {
      return degrade(s.contains("$ref")     ? "`$ref` is not followed"
                     : s.contains("allOf") ? "`allOf` is not supported"
                                            : "no `type`",
                     "Any");
    }
  }
  if (!type.is_string()) return degrade("`type` is not a string", "Any");
  const std::string t = type.get<std::string>();
  if (t == "string") return "String";
  if (t == "integer" || t == "number") return "Long";  // see docs/schema.md: no floats in Writ
  if (t == "boolean") return "Bool";
  if (t == "null") return degrade("type `null`", "Any");
  if (t == "array") {
    if (!s.contains("items")) return degrade("array without `items`", "Set<Any>");
    bool ignored = false;
    OJson elem = ImportType(s["items"], where + "[]", depth + 1, &ignored, warn);
    if (!elem.is_string()) return degrade("array of objects", "Set<Record>");
    return "Set<" + elem.get<std::string>() + ">";
  }
  if (t == "object") {
    if (!s.contains("properties") || !s["properties"].is_object() || s["properties"].empty()) {
      return "Record";
    }
    std::set<std::string> required;
    if (s.contains("required") && s["required"].is_array()) {
      for (const auto& r : s["required"]) {
        if (r.is_string()) required.insert(r.get<std::string>());
      }
    }
    OJson rec = OJson::object();
    for (const auto& [name, prop] : s["properties"].items()) {
      if (name.empty() || name.back() == '?') {
        warn->push_back(where + "." + name + ": property name cannot be expressed; skipped");
        continue;
      }
      bool null = false;
      OJson pt = ImportType(prop, where + "." + name, depth + 1, &null, warn);
      rec[required.count(name) && !null ? name : name + "?"] = pt;
    }
    return rec;
  }
  return degrade("unknown type `" + t + "`", "Any");
}

void EmitYaml(YAML::Emitter& out, const OJson& v) {
  if (v.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, x] : v.items()) {
      out << YAML::Key << k << YAML::Value;
      EmitYaml(out, x);
    }
    out << YAML::EndMap;
  } else {
    out << (v.is_string() ? v.get<std::string>() : v.dump());
  }
}

}  // namespace

ToolsImport ImportToolsList(const std::string& json_text, const std::string& server,
                            bool as_json) {
  ToolsImport r;
  OJson doc = OJson::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    r.error = "input is not valid JSON";
    return r;
  }
  const OJson* list = nullptr;
  if (doc.is_object() && doc.contains("tools")) list = &doc["tools"];
  if (doc.is_object() && doc.contains("result") && doc["result"].is_object() &&
      doc["result"].contains("tools")) {
    list = &doc["result"]["tools"];
  }
  if (list == nullptr || !list->is_array()) {
    r.error = "expected `{\"tools\": [...]}` or a JSON-RPC response `{\"result\": {\"tools\": [...]}}`";
    return r;
  }
  OJson tools = OJson::object();
  for (const auto& t : *list) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) {
      r.warnings.push_back("a tool without a string `name` was skipped");
      continue;
    }
    std::string name = server + "__" + t["name"].get<std::string>();
    OJson args = OJson::object();
    if (t.contains("inputSchema")) {
      bool ignored = false;
      OJson a = ImportType(t["inputSchema"], name, 0, &ignored, &r.warnings);
      if (a.is_object()) {
        args = a;
      } else if (a != "Record") {
        r.warnings.push_back(name + ": inputSchema is not an object schema; args left empty");
      }
    }
    OJson entry = OJson::object();
    entry["server"] = server;
    entry["args"] = args;
    tools[name] = entry;
    ++r.tools;
  }
  OJson frag = OJson::object();
  frag["tools"] = tools;
  if (as_json) {
    r.text = frag.dump(2) + "\n";
  } else {
    YAML::Emitter out;
    out << YAML::Comment("imported by `writ schema import --server " + server + "`");
    out << YAML::Newline;
    EmitYaml(out, frag);
    r.text = std::string(out.c_str()) + "\n";
  }
  return r;
}

}  // namespace writ
