// config_yaml.cc -- YAML value helpers for the configuration parser (config_internal.h):
// Resolve, Duration, LongDuration, RequiredPath, Choice, ParseListen; and DidYouMean
// (config.h), used for every unknown key or value. The Checker and ToJson are in
// yaml_check.{h,cc}. Entry point for users: ParseConfig (config.cc).
#include <cctype>
#include <filesystem>

#include "gateway/config_internal.h"

namespace writ::gateway {
namespace config_internal {

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (base_dir.empty() || p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

namespace {

// Duration and LongDuration: a plain integer is ms; units ms and s, and also m and h when
// `minutes_hours`; from 1 ms to `max_ms`.
bool ParseDuration(const YAML::Node& n, Checker* c, const std::string& key, bool minutes_hours,
                   long long max_ms, const std::string& help, long long* ms) {
  if (!n.IsScalar()) {
    c->Error(n, key, "expected a duration", help);
    return false;
  }
  std::string s = n.Scalar();
  long long mult = 1;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    s.resize(s.size() - 2);
  } else if (char u = s.empty() ? '\0' : s.back();
             u == 's' || (minutes_hours && (u == 'm' || u == 'h'))) {
    mult = u == 's' ? 1000 : u == 'm' ? 60000 : 3600000;
    s.pop_back();
  }
  size_t pos = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (s.empty() || pos != s.size() || v < 1 || v > max_ms / mult) {
    c->Error(n, key,
             "`" + n.Scalar() + "` is not a duration from 1ms to " +
                 std::to_string(max_ms / 3600000) + "h",
             help);
    return false;
  }
  *ms = v * mult;
  return true;
}

}  // namespace

bool Duration(const YAML::Node& n, Checker* c, const std::string& key, long long* ms) {
  return ParseDuration(n, c, key, /*minutes_hours=*/false, 3600000,
                       "a duration such as 500ms or 1s (a plain integer is milliseconds)", ms);
}

bool LongDuration(const YAML::Node& n, Checker* c, const std::string& key, long long max_ms,
                  long long* ms) {
  return ParseDuration(n, c, key, /*minutes_hours=*/true, max_ms,
                       "a duration such as 500ms, 30s, 15m or 24h (a plain integer is ms)", ms);
}

void RequiredPath(const YAML::Node& n, const std::string& field, const std::string& key,
                  const std::string& base_dir, const std::string& purpose,
                  const std::string& example, Checker* c, std::string* out) {
  if (!n[field]) {
    c->Error(n, key, "missing", purpose + ", e.g. `" + field + ": " + example + "`");
  } else if (c->String(n[field], key, out, "a file path") && out->empty()) {
    c->Error(n[field], key, "empty", "a file path, e.g. " + example);
  } else {
    *out = Resolve(base_dir, *out);
  }
}

// One of `choices`; *index is set to its position.
bool Choice(const YAML::Node& n, Checker* c, const std::string& key,
            const std::vector<std::string>& choices, size_t* index) {
  std::string list;
  for (const auto& x : choices) list += (list.empty() ? "" : " | ") + x;
  if (!n.IsScalar()) {
    c->Error(n, key, "expected one of " + list, "");
    return false;
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    if (n.Scalar() == choices[i]) {
      *index = i;
      return true;
    }
  }
  std::string hint = DidYouMean(n.Scalar(), choices);
  c->Error(n, key, "`" + n.Scalar() + "` is not one of " + list,
           hint.empty() ? "write one of: " + list : "did you mean `" + hint + "`?");
  return false;
}

// "HOST:PORT" or "[V6]:PORT" (a bare ":PORT" means 127.0.0.1).
bool ParseListen(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) return false;
  std::string h = s.substr(0, colon), p = s.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "127.0.0.1";
  if (h.find_first_of(" /") != std::string::npos) return false;
  for (char ch : p)
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
  if (p.size() > 5) return false;
  int v = std::stoi(p);
  if (v > 65535) return false;
  *host = h;
  *port = v;
  return true;
}

}  // namespace config_internal

std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t sub = prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    size_t d = prev[c.size()];
    if (d < best_d && d * 2 < std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace writ::gateway
