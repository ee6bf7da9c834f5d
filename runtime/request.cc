// request.cc -- PrepareRequest: validate request JSON once and extract the bundle's slots.
#include "runtime/request.h"

#include <algorithm>

#include "runtime/bundle.h"

namespace writ::runtime {
namespace {

constexpr int kMaxRequestDepth = 64;

// Rejects documents nested deeper than the limit (the evaluator recurses over values): the
// root is at depth 1, and no value, scalar or not, may be deeper than kMaxRequestDepth. The
// recursion stops at the limit, so it is bounded whatever the document.
bool DepthOk(const nlohmann::json& j, int depth = 1) {
  if (depth > kMaxRequestDepth) return false;
  if (j.is_object()) {
    const auto& m = j.get_ref<const nlohmann::json::object_t&>();
    if (!m.empty() && depth == kMaxRequestDepth) return false;
    for (const auto& [key, c] : m) {
      if (c.is_structured() && !DepthOk(c, depth + 1)) return false;
    }
  } else if (j.is_array()) {
    const auto& a = j.get_ref<const nlohmann::json::array_t&>();
    if (!a.empty() && depth == kMaxRequestDepth) return false;
    for (const auto& c : a) {
      if (c.is_structured() && !DepthOk(c, depth + 1)) return false;
    }
  }
  return true;
}

bool IsCanonicalUid(std::string_view text) {
  std::string canon;
  size_t tl = 0;
  return ParseEntityUid(text, &canon, &tl) && canon == text;
}

// Fills *e (reusing its strings' and vectors' capacity) from the request's entity object.
bool PrepareEntity(const Bundle& b, const nlohmann::json* j, const char* what, RequestEntity* e,
                   std::string* error) {
  e->attrs = nullptr;
  e->parent_ids.clear();
  if (j == nullptr || j->is_null()) {
    *error = std::string("request has no `") + what + "`";
    return false;
  }
  auto uid = j->is_object() ? j->find("uid") : j->end();
  if (!j->is_object() || uid == j->end() || !uid->is_string()) {
    *error = std::string("`") + what + "` must be an object with a string `uid` such as "
             "\"User::\\\"alice\\\"\"";
    return false;
  }
  size_t tl = 0;
  if (!ParseEntityUid(uid->get_ref<const std::string&>(), &e->uid, &tl)) {
    *error = std::string("`") + what + ".uid` is not an entity uid like User::\"alice\"";
    return false;
  }
  e->type = std::string_view(e->uid).substr(0, tl);
  e->uid_id = b.Find(e->uid);
  auto attrs = j->find("attrs");
  if (attrs != j->end()) {
    if (!attrs->is_object()) {
      *error = std::string("`") + what + ".attrs` must be an object";
      return false;
    }
    e->attrs = &*attrs;
  }
  size_t parents = 0;
  auto ps = j->find("parents");
  if (ps != j->end()) {
    if (!ps->is_array()) {
      *error = std::string("`") + what + ".parents` must be an array of entity uids";
      e->parents.clear();
      return false;
    }
    if (e->parents.size() < ps->size()) e->parents.resize(ps->size());
    for (const auto& p : *ps) {
      std::string& canon = e->parents[parents];
      if (!p.is_string() || !ParseEntityUid(p.get_ref<const std::string&>(), &canon, &tl)) {
        *error = std::string("`") + what + ".parents` must hold entity uids like Role::\"admin\"";
        e->parents.clear();
        return false;
      }
      ++parents;
      uint32_t id = b.Find(canon);
      if (id != kAnyKey && id != e->uid_id) e->parent_ids.push_back(id);
    }
    std::sort(e->parent_ids.begin(), e->parent_ids.end());
    auto& ids = e->parent_ids;
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  e->parents.resize(parents);
  return true;
}

}  // namespace

bool JsonDeepError(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::boolean:
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::string: return false;
    case nlohmann::json::value_t::number_unsigned:
      return j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    case nlohmann::json::value_t::array:
      for (const auto& e : j) {
        if (JsonDeepError(e)) return true;
      }
      return false;
    case nlohmann::json::value_t::object: {
      auto it = j.find("__entity");
      if (it != j.end()) {
        return !(j.size() == 1 && it->is_string() && IsCanonicalUid(it->get_ref<const std::string&>()));
      }
      for (const auto& e : j) {
        if (JsonDeepError(e)) return true;
      }
      return false;
    }
    default: return true;  // null, fractions
  }
}

bool ParseEntityUid(std::string_view text, std::string* canonical, size_t* type_len) {
  size_t sep = text.find("::\"");
  if (sep == std::string_view::npos || sep == 0 || text.size() < sep + 4 || text.back() != '"') {
    return false;
  }
  // Type: identifiers joined by ::
  std::string_view type = text.substr(0, sep);
  bool start = true;
  for (size_t i = 0; i < type.size(); ++i) {
    char c = type[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (c == ':') {
      if (start || i + 1 >= type.size() || type[i + 1] != ':') return false;
      ++i;
      start = true;
      continue;
    }
    if (!(alpha || (digit && !start))) return false;
    start = false;
  }
  if (start) return false;
  std::string_view body = text.substr(sep + 3, text.size() - sep - 4);
  if (body.find_first_of("\"\\") == std::string_view::npos) {
    // No escapes and no quotes: the text is already canonical.
    canonical->assign(text);
    *type_len = type.size();
    return true;
  }
  std::string id;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\\') {
      if (i + 1 >= body.size() || (body[i + 1] != '"' && body[i + 1] != '\\')) return false;
      id += body[++i];
    } else if (body[i] == '"') {
      return false;
    } else {
      id += body[i];
    }
  }
  canonical->assign(type);
  *type_len = type.size();
  *canonical += "::\"";
  for (char c : id) {
    if (c == '"' || c == '\\') *canonical += '\\';
    *canonical += c;
  }
  *canonical += '"';
  return true;
}

Value FromJson(const nlohmann::json& j) {
  Value v;
  switch (j.type()) {
    case nlohmann::json::value_t::boolean:
      v.type = VType::kBool;
      v.b = j.get<bool>();
      break;
    case nlohmann::json::value_t::number_integer:
      v.type = VType::kLong;
      v.i = j.get<int64_t>();
      break;
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) {
        v.type = VType::kLong;
        v.i = static_cast<int64_t>(u);
      }
      break;
    }
    case nlohmann::json::value_t::string:
      v.type = VType::kString;
      v.s = j.get_ref<const std::string&>();
      break;
    case nlohmann::json::value_t::array:
      if (!JsonDeepError(j)) {
        v.type = VType::kSet;
        v.j = &j;
      }
      break;
    case nlohmann::json::value_t::object: {
      auto it = j.find("__entity");
      if (it != j.end()) {  // an entity reference: the only key, a canonical uid
        if (j.size() == 1 && it->is_string() && IsCanonicalUid(it->get_ref<const std::string&>())) {
          v.type = VType::kEntity;
          v.i = -1;
          v.s = it->get_ref<const std::string&>();
        }
        return v;
      }
      v.type = VType::kRecord;
      v.j = &j;
      break;
    }
    default:  // null, fractions
      break;
  }
  return v;
}

bool PrepareRequest(const Bundle& b, const nlohmann::json& doc, PreparedRequest* out,
                    std::string* error) {
  // Every field is set below; strings and vectors keep their capacity for the next request.
  out->doc = &doc;
  out->args_unknown = false;
  if (!doc.is_object()) {
    *error = "request must be a JSON object";
    return false;
  }
  if (!DepthOk(doc)) {
    *error = "request nests deeper than " + std::to_string(kMaxRequestDepth) + " levels";
    return false;
  }
  auto get = [&](const char* k) -> const nlohmann::json* {
    auto it = doc.find(k);
    return it == doc.end() ? nullptr : &*it;
  };
  if (!PrepareEntity(b, get("principal"), "principal", &out->principal, error)) return false;
  if (!PrepareEntity(b, get("resource"), "resource", &out->resource, error)) return false;
  const nlohmann::json* action = get("action");
  if (action == nullptr || !action->is_string() || action->get_ref<const std::string&>().empty()) {
    *error = "request `action` must be the MCP method as a string, e.g. \"tools/call\"";
    return false;
  }
  out->action.parents.clear();
  out->action.parent_ids.clear();
  out->action.attrs = nullptr;
  out->action.uid = "Action::\"";
  for (char c : action->get_ref<const std::string&>()) {
    if (c == '"' || c == '\\') out->action.uid += '\\';
    out->action.uid += c;
  }
  out->action.uid += '"';
  out->action.type = std::string_view(out->action.uid).substr(0, 6);
  out->action.uid_id = b.Find(out->action.uid);
  const nlohmann::json* roots[5] = {out->principal.attrs, out->resource.attrs, get("args"),
                                    get("context"), get("call")};
  static const char* kRootNames[5] = {"", "", "args", "context", "call"};
  for (int r = 2; r < 5; ++r) {
    if (roots[r] != nullptr && !roots[r]->is_object()) {
      *error = std::string("request `") + kRootNames[r] + "` must be an object";
      return false;
    }
  }
  static const nlohmann::json kEmpty = nlohmann::json::object();
  // Whether each root is a record attributes can be read from (an object, not an entity
  // reference): asked once per root, not once per slot.
  bool readable[5];
  for (int r = 0; r < 5; ++r) {
    if (roots[r] == nullptr) roots[r] = &kEmpty;
    readable[r] = roots[r]->is_object() && !roots[r]->contains("__entity");
  }
  out->slots.resize(b.slots_.size());
  for (size_t i = 0; i < b.slots_.size(); ++i) {
    const Slot& s = b.slots_[i];
    const int root = static_cast<int>(s.root);
    const nlohmann::json* j = roots[root];
    bool ok = true;
    for (uint32_t k = 0; k < s.depth && ok; ++k) {
      std::string_view name = b.str(b.path_pool_[s.path + k]);
      if (k == 0 ? !readable[root] : !j->is_object() || j->contains("__entity")) {
        ok = false;
        break;
      }
      auto it = j->find(name);
      if (it == j->end()) {
        ok = false;
      } else {
        j = &*it;
      }
    }
    out->slots[i] = ok ? FromJson(*j) : Value{};
  }
  out->slot_ids.resize(b.slots_.size());
  for (size_t i = 0; i < b.slots_.size(); ++i) {
    out->slot_ids[i] = out->slots[i].type == VType::kString ? b.Find(out->slots[i].s) : kAnyKey;
  }
  return true;
}

}  // namespace writ::runtime
