// yaml_check.cc -- see yaml_check.h.
#include "gateway/yaml_check.h"

#include <algorithm>
#include <cctype>

#include "gateway/config.h"  // DidYouMean

namespace writ::gateway {

void YamlChecker::Error(const YAML::Node& at, const std::string& key, const std::string& msg,
                        const std::string& help) {
  YAML::Mark m = at.Mark();
  ErrorAt(m.line, m.column, key, msg, help);
}

void YamlChecker::ErrorAt(int line, int col, const std::string& key, const std::string& msg,
                          const std::string& help) {
  out_ << name_;
  if (line >= 0) out_ << ":" << line + 1 << ":" << col + 1;
  out_ << ": " << (key.empty() ? "" : key + ": ") << msg << "\n";
  if (!help.empty()) out_ << "help: " << help << "\n";
  ++count_;
}

void YamlChecker::Keys(const YAML::Node& map, const std::string& prefix,
                       const std::vector<std::string>& allowed) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string hint = DidYouMean(k, allowed);
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    Error(it->first, prefix + k, "unknown key",
          hint.empty() ? "expected one of: " + list : "did you mean `" + hint + "`?");
  }
}

bool YamlChecker::Map(const YAML::Node& n, const std::string& key, const std::string& help) {
  if (n.IsMap()) return true;
  Error(n, key, "expected a mapping", help);
  return false;
}

bool YamlChecker::String(const YAML::Node& n, const std::string& key, std::string* out,
                         const std::string& help) {
  if (!n.IsScalar()) {
    Error(n, key, "expected a string", help);
    return false;
  }
  *out = n.Scalar();
  return true;
}

bool YamlChecker::Int(const YAML::Node& n, const std::string& key, long long lo, long long hi,
                      long long* out) {
  std::string help = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (!n.IsScalar()) {
    Error(n, key, "expected an integer", help);
    return false;
  }
  const std::string& s = n.Scalar();
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (s.empty() || pos != s.size()) {
    Error(n, key, "expected an integer, found `" + s + "`", help);
    return false;
  }
  if (v < lo || v > hi) {
    Error(n, key, "out of range", help);
    return false;
  }
  *out = v;
  return true;
}

bool YamlChecker::StringList(const YAML::Node& n, const std::string& key,
                             std::vector<std::string>* out, const std::string& help) {
  out->clear();
  if (n.IsScalar()) {
    out->push_back(n.Scalar());
    return true;
  }
  if (!n.IsSequence()) {
    Error(n, key, "expected a string or a list of strings", help);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string s;
    if (String(n[i], key + "[" + std::to_string(i) + "]", &s, help)) {
      out->push_back(s);
    } else {
      ok = false;
    }
  }
  return ok;
}

nlohmann::json YamlToJson(const YAML::Node& n, YamlChecker* c, const std::string& key,
                          int depth) {
  if (depth > 32) {
    c->Error(n, key, "nested too deeply", "values may nest at most 32 levels");
    return nullptr;
  }
  if (n.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
      o[k] = YamlToJson(it->second, c, key + "." + k, depth + 1);
    }
    return o;
  }
  if (n.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = 0; i < n.size(); ++i)
      a.push_back(YamlToJson(n[i], c, key + "[" + std::to_string(i) + "]", depth + 1));
    return a;
  }
  if (!n.IsScalar()) return nullptr;  // null
  const std::string& s = n.Scalar();
  if (n.Tag() == "?") {
    if (s == "true") return true;
    if (s == "false") return false;
    if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
      size_t pos = 0;
      try {
        long long v = std::stoll(s, &pos);
        if (pos == s.size()) return v;
      } catch (...) {
      }
    }
  }
  return s;
}

}  // namespace writ::gateway
