// request.cc -- PrepareRequest: validate request JSON once and extract the bundle's slots.
#include "runtime/request.h"

#include <algorithm>

#include "runtime/bundle.h"

namespace writ::runtime {
namespace {

constexpr int kMaxRequestDepth = 64;

// Rejects documents nested deeper than the limit (the evaluator recurses over values).
bool DepthOk(const nlohmann::json& root) {
  std::vector<std::pair<const nlohmann::json*, int>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [j, d] = stack.back();
    stack.pop_back();
    if (d > kMaxRequestDepth) return false;
    if (j->is_structured()) {
      for (const auto& c : *j) stack.push_back({&c, d + 1});
    }
  }
  return true;
}

bool IsCanonicalUid(std::string_view text) {
  std::string canon;
  size_t tl = 0;
  return ParseEntityUid(text, &canon, &tl) && canon == text;
}

bool PrepareEntity(const Bundle& b, const nlohmann::json* j, const char* what, RequestEntity* e,
                   std::string* error) {
  if (j == nullptr || j->is_null()) {
    *error = std::string("request has no `") + what + "`";
    return false;
  }
  if (!j->is_object() || !j->contains("uid") || !(*j)["uid"].is_string()) {
    *error = std::string("`") + what + "` must be an object with a string `uid` such as "
             "\"User::\\\"alice\\\"\"";
    return false;
  }
  size_t tl = 0;
  if (!ParseEntityUid((*j)["uid"].get_ref<const std::string&>(), &e->uid, &tl)) {
    *error = std::string("`") + what + ".uid` is not an entity uid like User::\"alice\"";
    return false;
  }
  e->type = std::string_view(e->uid).substr(0, tl);
  e->uid_id = b.Find(e->uid);
  if (j->contains("attrs")) {
    const auto& a = (*j)["attrs"];
    if (!a.is_object()) {
      *error = std::string("`") + what + ".attrs` must be an object";
      return false;
    }
    e->attrs = &a;
  }
  if (j->contains("parents")) {
    const auto& ps = (*j)["parents"];
    if (!ps.is_array()) {
      *error = std::string("`") + what + ".parents` must be an array of entity uids";
      return false;
    }
    for (const auto& p : ps) {
      std::string canon;
      if (!p.is_string() || !ParseEntityUid(p.get_ref<const std::string&>(), &canon, &tl)) {
        *error = std::string("`") + what + ".parents` must hold entity uids like Role::\"admin\"";
        return false;
      }
      uint32_t id = b.Find(canon);
      if (id != kAnyKey && id != e->uid_id) e->parent_ids.push_back(id);
      e->parents.push_back(std::move(canon));
    }
    std::sort(e->parent_ids.begin(), e->parent_ids.end());
    auto& ids = e->parent_ids;
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
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
  std::string id;
  std::string_view body = text.substr(sep + 3, text.size() - sep - 4);
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
  *out = PreparedRequest{};
  out->doc = &doc;
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
  out->slots.resize(b.slots_.size());
  for (size_t i = 0; i < b.slots_.size(); ++i) {
    const Slot& s = b.slots_[i];
    const nlohmann::json* j = roots[static_cast<int>(s.root)];
    if (j == nullptr) j = &kEmpty;
    bool ok = true;
    for (uint32_t k = 0; k < s.depth && ok; ++k) {
      std::string_view name = b.str(b.path_pool_[s.path + k]);
      if (!j->is_object() || j->contains("__entity")) {
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
