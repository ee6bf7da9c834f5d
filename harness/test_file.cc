// test_file.cc -- see test_file.h. yaml-cpp throws on syntax errors; that is caught here and
// turned into a located error like every other (test files are not on the request path).
#include "harness/test_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "base/source.h"
#include "gateway/config.h"
#include "gateway/yaml_check.h"
#include "runtime/request.h"

namespace fs = std::filesystem;

namespace writ::harness {
namespace {

using Json = nlohmann::json;

using Checker = gateway::YamlChecker;  // located errors, as in the gateway config

// YAML -> JSON as in the gateway's config: plain true/false -> bool, plain integers ->
// integer, plain null -> null, any quoted scalar a string.
Json ToJson(const YAML::Node& n, Checker* c, const std::string& key, int depth) {
  return gateway::YamlToJson(n, c, key, depth);
}

std::string Resolve(const fs::path& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (dir / p).lexically_normal().string();
}

bool ValidUid(const std::string& s) {
  std::string canonical;
  size_t type_len = 0;
  return runtime::ParseEntityUid(s, &canonical, &type_len);
}

const char kUidHelp[] =
    "an entity uid is Type::\"id\", e.g. User::\"alice\" (quote the whole "
    "value in flow lists if your editor complains)";

// An entity (fixture or inline): {uid, attrs, parents}. Null JSON on error.
Json Entity(const YAML::Node& n, Checker* c, const std::string& key, bool uid_required) {
  if (!c->Map(n, key, "an entity: {uid: Type::\"id\", attrs: {...}, parents: [...]}"))
    return nullptr;
  c->Keys(n, key + ".", {"uid", "attrs", "parents"});
  Json e = {{"attrs", Json::object()}, {"parents", Json::array()}};
  int before = c->count();
  if (n["uid"]) {
    std::string uid;
    if (c->String(n["uid"], key + ".uid", &uid, kUidHelp)) {
      if (ValidUid(uid))
        e["uid"] = uid;
      else
        c->Error(n["uid"], key + ".uid", "`" + uid + "` is not an entity uid", kUidHelp);
    }
  } else if (uid_required) {
    c->Error(n, key + ".uid", "missing", kUidHelp);
  }
  if (n["attrs"]) {
    if (c->Map(n["attrs"], key + ".attrs", "attributes are a mapping, e.g. {mfa: true}"))
      e["attrs"] = ToJson(n["attrs"], c, key + ".attrs", 1);
  }
  if (n["parents"]) {
    std::vector<std::string> ps;
    const YAML::Node pn = n["parents"];
    if (c->StringList(pn, key + ".parents", &ps, "a list of uids, e.g. [Role::\"admin\"]")) {
      for (size_t i = 0; i < ps.size(); ++i) {
        if (!ValidUid(ps[i])) {
          c->Error(pn.IsSequence() ? pn[i] : pn, key + ".parents",
                   "`" + ps[i] + "` is not an entity uid", kUidHelp);
        }
        e["parents"].push_back(ps[i]);
      }
    }
  }
  return c->count() == before ? e : Json(nullptr);
}

// A string or a list of strings, sorted.
bool SortedIds(const YAML::Node& n, Checker* c, const std::string& key,
               std::vector<std::string>* out) {
  if (!n.IsSequence()) {
    c->Error(n, key, "expected a list of statement ids", "e.g. [no-big-refunds]; [] for none");
    return false;
  }
  if (!c->StringList(n, key, out, "statement ids")) return false;
  std::sort(out->begin(), out->end());
  return true;
}

std::string Uid(std::string_view type, const std::string& id) {
  std::string s(type);
  s += "::\"";
  for (char ch : id) {
    if (ch == '"' || ch == '\\') s.push_back('\\');
    s.push_back(ch);
  }
  return s + "\"";
}

struct Fixtures {
  std::map<std::string, Json> principals, resources;
  Json context = Json::object();
  Json call = Json::object();
};

void ParseFixtures(const YAML::Node& n, Checker* c, Fixtures* f) {
  if (!c->Map(n, "fixtures", "fixtures: {principals: {...}, resources: {...}, context: {...}}"))
    return;
  c->Keys(n, "fixtures.", {"principals", "resources", "context", "call"});
  for (const char* kind : {"principals", "resources"}) {
    const YAML::Node m = n[kind];
    if (!m) continue;
    std::string key = std::string("fixtures.") + kind;
    if (!c->Map(m, key, "a mapping from a name to an entity")) continue;
    for (auto it = m.begin(); it != m.end(); ++it) {
      std::string name = it->first.Scalar();
      // A resource fixture may omit uid when it only adds attrs to `tool: NAME`.
      Json e = Entity(it->second, c, key + "." + name, std::string(kind) == "principals");
      if (e.is_null()) continue;
      (std::string(kind) == "principals" ? f->principals : f->resources)[name] = e;
    }
  }
  if (n["context"] && c->Map(n["context"], "fixtures.context", "a mapping, e.g. {ip: 10.0.0.1}"))
    f->context = ToJson(n["context"], c, "fixtures.context", 1);
  if (n["call"] &&
      c->Map(n["call"], "fixtures.call", "the default call facts, a mapping, e.g. {intent: read}"))
    f->call = ToJson(n["call"], c, "fixtures.call", 1);
}

// A principal or resource: a fixture name or an inline entity.
Json EntityRef(const YAML::Node& n, Checker* c, const std::string& key,
               const std::map<std::string, Json>& fixtures, const char* fixture_key) {
  if (n.IsScalar()) {
    auto it = fixtures.find(n.Scalar());
    if (it != fixtures.end() && it->second.contains("uid")) return it->second;
    std::vector<std::string> names;
    for (const auto& [k, v] : fixtures) names.push_back(k);
    std::string hint = gateway::DidYouMean(n.Scalar(), names);
    c->Error(n, key, "no fixture `" + n.Scalar() + "` in fixtures." + fixture_key,
             hint.empty() ? std::string("define it under fixtures.") + fixture_key +
                                " or write the entity inline: {uid: ..., attrs: ..., parents: ...}"
                          : "did you mean `" + hint + "`?");
    return nullptr;
  }
  return Entity(n, c, key, true);
}

// `tool: SERVER__name`: the resource the gateway builds (gateway/proxy.cc BuildToolRequest).
Json ToolEntity(const YAML::Node& n, Checker* c, const std::string& key, const Fixtures& f) {
  std::string full;
  if (!c->String(n, key, &full, "SERVER__name, e.g. stripe__refund_create")) return nullptr;
  size_t sep = full.find("__");
  if (sep == std::string::npos || sep == 0 || sep + 2 >= full.size()) {
    c->Error(n, key, "`" + full + "` is not SERVER__name",
             "tools are named as the gateway lists them, e.g. stripe__refund_create");
    return nullptr;
  }
  std::string server = full.substr(0, sep), name = full.substr(sep + 2);
  Json e = {{"uid", Uid("Tool", full)},
            {"attrs", {{"name", name}, {"server", server}}},
            {"parents", Json::array({Uid("Server", server)})}};
  auto it = f.resources.find(full);
  if (it != f.resources.end()) {
    const Json& fx = it->second;
    if (fx.contains("uid") && fx["uid"] != e["uid"]) {
      c->Error(n, key,
               "fixtures.resources." + full + " has uid " + fx["uid"].get<std::string>() +
                   ", not " + e["uid"].get<std::string>(),
               "drop its uid (the tool's uid is implied) or use `resource: " + full + "`");
      return nullptr;
    }
    for (auto a = fx["attrs"].begin(); a != fx["attrs"].end(); ++a) e["attrs"][a.key()] = *a;
    for (const auto& p : fx["parents"])
      if (std::find(e["parents"].begin(), e["parents"].end(), p) == e["parents"].end())
        e["parents"].push_back(p);
  }
  return e;
}

// A list of obligation patterns (`writ eval` form; the keys given are compared).
void Obligations(const YAML::Node& obs, Checker* c, const std::string& key,
                 std::vector<Json>* out) {
  if (!obs.IsSequence()) {
    c->Error(obs, key, "expected a list", "e.g. [{kind: log, level: critical}]");
    return;
  }
  for (size_t i = 0; i < obs.size(); ++i) {
    std::string k = key + "[" + std::to_string(i) + "]";
    if (!c->Map(obs[i], k, "an obligation as `writ eval` prints it, e.g. {kind: tag, value: pci}"))
      continue;
    Json o = ToJson(obs[i], c, k, 1);
    if (!o.contains("kind") || !o["kind"].is_string()) {
      c->Error(obs[i], k + ".kind", "missing",
               "every obligation names its kind: require_approval, rate_limit, redact, "
               "notify, log, tag or reason");
      continue;
    }
    out->push_back(std::move(o));
  }
}

void ParseExpect(const YAML::Node& n, Checker* c, const std::string& key, Expectation* x) {
  if (!c->Map(n, key, "expect: {decision: allow}")) return;
  c->Keys(n, key + ".",
          {"decision", "determining", "obligations", "exact_obligations", "absent_obligations",
           "errors"});
  const std::vector<std::string> kEffects = {"allow", "deny", "require_approval"};
  if (!n["decision"]) {
    c->Error(n, key + ".decision", "missing", "one of allow, deny, require_approval");
  } else if (c->String(n["decision"], key + ".decision", &x->decision, "")) {
    if (std::find(kEffects.begin(), kEffects.end(), x->decision) == kEffects.end()) {
      std::string hint = gateway::DidYouMean(x->decision, kEffects);
      c->Error(
          n["decision"], key + ".decision", "`" + x->decision + "` is not a decision",
          hint.empty() ? "one of allow, deny, require_approval" : "did you mean `" + hint + "`?");
    }
  }
  std::vector<std::string> ids;
  if (n["determining"] && SortedIds(n["determining"], c, key + ".determining", &ids))
    x->determining = ids;
  if (n["errors"] && SortedIds(n["errors"], c, key + ".errors", &ids)) x->errors = ids;
  if (n["obligations"] && n["exact_obligations"]) {
    c->Error(n["exact_obligations"], key + ".exact_obligations",
             "`obligations` and `exact_obligations` are exclusive",
             "`obligations:` lists some of the decision's obligations, `exact_obligations:` "
             "all of them; keep one");
    return;
  }
  if (n["exact_obligations"]) {
    x->obligations_exact = true;
    Obligations(n["exact_obligations"], c, key + ".exact_obligations", &x->obligations);
  } else if (n["obligations"]) {
    Obligations(n["obligations"], c, key + ".obligations", &x->obligations);
  }
  if (n["absent_obligations"]) {
    Obligations(n["absent_obligations"], c, key + ".absent_obligations", &x->absent_obligations);
    if (n["absent_obligations"].IsSequence() && n["absent_obligations"].size() == 0)
      c->Error(n["absent_obligations"], key + ".absent_obligations", "empty list",
               "list the obligations that must not be there, e.g. [{kind: notify}]; for "
               "\"no obligations at all\" write `exact_obligations: []`");
  }
}

// `visibility: {visible: [...], hidden: [...], depends_on_args: [...]}`: the list-time
// request of each tool named.
void ParseVisibility(const YAML::Node& n, Checker* c, const std::string& key, const Json& base,
                     const Fixtures& f, std::vector<ToolVisibility>* out) {
  const char kHelp[] =
      "visibility: {visible: [SERVER__name, ...], hidden: [...], depends_on_args: [...]}";
  if (!c->Map(n, key, kHelp)) return;
  const int before = c->count();
  c->Keys(n, key + ".", {"visible", "hidden", "depends_on_args"});
  std::map<std::string, std::string> seen;  // tool -> its class
  for (const char* cls : {"visible", "hidden", "depends_on_args"}) {
    const YAML::Node list = n[cls];
    if (!list) continue;
    const std::string k = key + "." + cls;
    if (!list.IsSequence()) {
      c->Error(list, k, "expected a list of tools", "e.g. [docs__search, docs__read]");
      continue;
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string ki = k + "[" + std::to_string(i) + "]";
      ToolVisibility v;
      v.expected = cls;
      v.line = list[i].Mark().line + 1;
      v.col = list[i].Mark().column + 1;
      Json resource = ToolEntity(list[i], c, ki, f);
      if (resource.is_null()) continue;
      v.tool = list[i].Scalar();
      auto [it, inserted] = seen.emplace(v.tool, cls);
      if (!inserted) {
        c->Error(list[i], ki, "`" + v.tool + "` is already listed under " + it->second,
                 "a tool has one visibility; list it once");
        continue;
      }
      v.request = base;
      v.request["resource"] = resource;
      out->push_back(std::move(v));
    }
  }
  if (seen.empty() && c->count() == before) c->Error(n, key, "no tools listed", kHelp);
}

void ParseTest(const YAML::Node& n, Checker* c, const std::string& key, const Fixtures& f,
               TestCase* t) {
  t->line = n.Mark().line + 1;
  c->Keys(n, key + ".",
          {"name", "principal", "action", "tool", "resource", "args", "context", "call", "expect",
           "visibility"});
  if (!n["name"])
    c->Error(n, key + ".name", "missing", "every test has a name, unique in its file");
  else
    c->String(n["name"], key + ".name", &t->name, "a short sentence saying what is tested");
  const bool visibility = static_cast<bool>(n["visibility"]);
  Json& r = t->request;
  r = Json::object();
  if (!n["principal"])
    c->Error(n, key + ".principal", "missing", "a fixtures.principals name or an inline entity");
  else
    r["principal"] = EntityRef(n["principal"], c, key + ".principal", f.principals, "principals");
  std::string action = "tools/call";
  if (n["action"])
    c->String(n["action"], key + ".action", &action, "an MCP method, e.g. tools/call");
  r["action"] = action;
  if (visibility) {
    for (const char* k : {"tool", "resource", "args", "expect"}) {
      if (!n[k]) continue;
      c->Error(n[k], key + "." + k, "not allowed in a `visibility` test",
               std::string(k) == "args"
                   ? "arguments are unknown when tools/list is decided; test calls with "
                     "`expect:` in a separate test"
               : std::string(k) == "expect"
                   ? "a test either checks a call (`expect:`) or what tools/list shows "
                     "(`visibility:`); split it in two"
                   : "list the tools under visibility: {visible: [...], hidden: [...], "
                     "depends_on_args: [...]}");
    }
  } else if (n["tool"] && n["resource"]) {
    c->Error(n["resource"], key + ".resource", "`tool` and `resource` are exclusive",
             "`tool: SERVER__name` builds the resource; give one of them");
  } else if (n["tool"]) {
    r["resource"] = ToolEntity(n["tool"], c, key + ".tool", f);
  } else if (n["resource"]) {
    r["resource"] = EntityRef(n["resource"], c, key + ".resource", f.resources, "resources");
  } else {
    c->Error(n, key + ".tool", "missing",
             "give `tool: SERVER__name` or `resource:` (a fixture name or an inline entity)");
  }
  if (!visibility) {
    r["args"] = Json::object();
    if (n["args"] && c->Map(n["args"], key + ".args", "a mapping, e.g. {amount: 100}"))
      r["args"] = ToJson(n["args"], c, key + ".args", 1);
  }
  // `call` and `context` start from their fixtures and are merged over them.
  r["call"] = f.call;
  if (n["call"] &&
      c->Map(n["call"], key + ".call", "a mapping, merged over fixtures.call, e.g. {intent: read}"))
    r["call"].merge_patch(ToJson(n["call"], c, key + ".call", 1));
  r["context"] = f.context;
  if (n["context"] &&
      c->Map(n["context"], key + ".context", "a mapping, merged over fixtures.context"))
    r["context"].merge_patch(ToJson(n["context"], c, key + ".context", 1));
  if (visibility) {
    ParseVisibility(n["visibility"], c, key + ".visibility", r, f, &t->visibility);
    r = Json::object();  // the requests are per tool
  } else if (!n["expect"]) {
    c->Error(n, key + ".expect", "missing",
             "what the test expects, e.g. expect: {decision: deny}; or `visibility:` to test "
             "what tools/list shows");
  } else {
    ParseExpect(n["expect"], c, key + ".expect", &t->expect);
  }
}

}  // namespace

bool ObligationMatches(const Json& expected, const Json& actual) {
  if (!expected.is_object() || !actual.is_object()) return false;
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    auto a = actual.find(it.key());
    if (a == actual.end() || *a != it.value()) return false;
  }
  return true;
}

bool FindTestFiles(const std::vector<std::string>& paths, std::vector<std::string>* out,
                   std::string* error) {
  auto is_test = [](const fs::path& p) {
    std::string n = p.filename().string();
    auto ends = [&](const std::string& suf) {
      return n.size() > suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
    };
    return ends(".test.yaml") || ends(".test.yml");
  };
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(p, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && is_test(it->path())) found.push_back(it->path().string());
      }
      if (ec) {
        *error = "cannot read directory " + p + ": " + ec.message();
        return false;
      }
      std::sort(found.begin(), found.end());
      out->insert(out->end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      out->push_back(p);
    } else {
      *error = "no such file or directory: " + p;
      return false;
    }
  }
  return true;
}

bool ParseTestFile(const std::string& text, const std::string& path, TestFile* out,
                   std::string* errors) {
  Checker c(path);
  *out = TestFile{};
  out->path = path;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    c.ErrorAt(e.mark.line, e.mark.column, "", "invalid YAML: " + e.msg,
              "see docs/testing.md for the format");
    *errors = c.text();
    return false;
  }
  if (!root.IsMap()) {
    c.ErrorAt(-1, 0, "", "a test file must be a YAML mapping with `tests:`",
              "see docs/testing.md for an example");
    *errors = c.text();
    return false;
  }
  c.Keys(root, "", {"policies", "schema", "fixtures", "tests"});
  const fs::path dir = fs::path(path).parent_path();
  std::vector<std::string> ps;
  if (root["policies"]) {
    if (c.StringList(root["policies"], "policies", &ps, "policy files or directories"))
      for (const auto& p : ps) out->policies.push_back(Resolve(dir, p));
  } else {
    out->policies.push_back(dir.empty() ? "." : dir.string());
  }
  if (root["schema"]) {
    if (c.String(root["schema"], "schema", &out->schema, "a schema file (YAML or JSON)"))
      out->schema = Resolve(dir, out->schema);
  } else {
    for (const char* name : {"schema.yaml", "schema.json"}) {
      std::error_code ec;
      if (fs::is_regular_file(dir / name, ec)) {
        out->schema = (dir / name).string();
        break;
      }
    }
  }
  Fixtures f;
  if (root["fixtures"]) ParseFixtures(root["fixtures"], &c, &f);
  const YAML::Node tests = root["tests"];
  if (!tests) {
    c.ErrorAt(-1, 0, "tests", "missing", "list the tests under `tests:` (docs/testing.md)");
  } else if (!tests.IsSequence() || tests.size() == 0) {
    c.Error(tests, "tests", "expected a non-empty list of tests",
            "e.g.\n  tests:\n    - name: ...\n      principal: alice\n      tool: s__t\n"
            "      expect: {decision: allow}");
  } else {
    std::map<std::string, int> names;
    for (size_t i = 0; i < tests.size(); ++i) {
      std::string key = "tests[" + std::to_string(i) + "]";
      if (!c.Map(tests[i], key, "a test: {name, principal, tool, args, expect}")) continue;
      TestCase t;
      ParseTest(tests[i], &c, key, f, &t);
      if (!t.name.empty()) {
        auto [it, inserted] = names.emplace(t.name, t.line);
        if (!inserted)
          c.Error(tests[i]["name"], key + ".name", "duplicate test name `" + t.name + "`",
                  "the first is at line " + std::to_string(it->second) +
                      "; names identify "
                      "tests in reports, make them unique");
      }
      out->tests.push_back(std::move(t));
    }
  }
  *errors = c.text();
  return c.count() == 0;
}

bool LoadTestFile(const std::string& path, TestFile* out, std::string* errors) {
  std::string text, error;
  if (!ReadFile(path, &text, &error)) {
    *errors = "error: " + error + "\n";
    return false;
  }
  return ParseTestFile(text, path, out, errors);
}

}  // namespace writ::harness
