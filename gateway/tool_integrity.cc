// tool_integrity.cc -- see tool_integrity.h and docs/integrity.md.
#include "gateway/tool_integrity.h"

#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <set>
#include <tuple>

#include "base/source.h"
#include "gateway/audit_format.h"

namespace writ::gateway {

using Json = nlohmann::json;

namespace {

std::string Dump(const Json& j) {
  // Definitions come from parsed JSON and are valid UTF-8; `replace` only guards against a
  // throw should one not be.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Clip(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...(" + std::to_string(s.size() - cut) + " more bytes)";
}

}  // namespace

// ---- Canonical form and hash ----------------------------------------------------------

Json CanonicalToolDefinition(const Json& tool) {
  // nlohmann::json objects are std::map: keys are sorted by byte at every depth.
  Json out = Json::object();
  if (!tool.is_object()) return out;
  for (const char* k :
       {"name", "title", "description", "inputSchema", "outputSchema", "annotations"}) {
    auto it = tool.find(k);
    if (it != tool.end()) out[k] = *it;
  }
  return out;
}

std::string CanonicalToolJson(const Json& tool) { return Dump(CanonicalToolDefinition(tool)); }

std::string ToolHash(const Json& tool) { return Sha256Hex(CanonicalToolJson(tool)); }

// ---- Lockfile -------------------------------------------------------------------------

const char* LockStatusName(LockStatus s) {
  switch (s) {
    case LockStatus::kLocked:
      return "locked";
    case LockStatus::kNew:
      return "new";
    case LockStatus::kChanged:
      return "changed";
  }
  return "changed";
}

const char* DriftKindName(DriftKind k) {
  switch (k) {
    case DriftKind::kNew:
      return "new";
    case DriftKind::kChanged:
      return "changed";
    case DriftKind::kRemoved:
      return "removed";
  }
  return "changed";
}

void Lockfile::Add(const std::string& server, const Json& tool) {
  std::string name = tool.is_object() && tool.contains("name") && tool["name"].is_string()
                         ? tool["name"].get<std::string>()
                         : "";
  tools[server + "__" + name] = {ToolHash(tool), CanonicalToolDefinition(tool)};
}

LockStatus Lockfile::Check(const std::string& full_name, const Json& tool) const {
  auto it = tools.find(full_name);
  if (it == tools.end()) return LockStatus::kNew;
  return it->second.sha256 == ToolHash(tool) ? LockStatus::kLocked : LockStatus::kChanged;
}

std::string SerializeLock(const Lockfile& lock) {
  Json tools = Json::object();
  for (const auto& [name, e] : lock.tools)
    tools[name] = {{"sha256", e.sha256}, {"definition", e.definition}};
  Json j = {{"version", kLockVersion}, {"tools", tools}};
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

namespace {

// "name:LINE" of the first occurrence of `needle` in `text` (or just "name").
std::string Where(const std::string& name, const std::string& text, const std::string& needle) {
  size_t at = needle.empty() ? std::string::npos : text.find(needle);
  if (at == std::string::npos) return name;
  return name + ":" + std::to_string(std::count(text.begin(), text.begin() + at, '\n') + 1);
}

}  // namespace

bool ParseLock(const std::string& text, const std::string& name, Lockfile* out,
               std::string* error) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    size_t at = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    size_t line = std::count(text.begin(), text.begin() + at, '\n') + 1;
    *error = name + ":" + std::to_string(line) +
             ": invalid JSON in lockfile\n"
             "help: regenerate it with `writ lock --config CONFIG`\n";
    return false;
  }
  const std::string kHelp =
      "help: regenerate it with `writ lock --config CONFIG` and review the diff\n";
  if (!j.is_object() || !j.contains("version") || !j.contains("tools")) {
    *error = name + ": not a writ lockfile (expected {\"version\": 1, \"tools\": {...}})\n" + kHelp;
    return false;
  }
  if (!j["version"].is_number_integer() || j["version"].get<int64_t>() != kLockVersion) {
    *error = Where(name, text, "\"version\"") + ": version: unsupported lockfile version " +
             Dump(j["version"]) + " (this writ reads version " + std::to_string(kLockVersion) +
             ")\nhelp: upgrade writ, or regenerate the lockfile with this one\n";
    return false;
  }
  if (!j["tools"].is_object()) {
    *error = Where(name, text, "\"tools\"") + ": tools: expected an object\n" + kHelp;
    return false;
  }
  Lockfile lock;
  for (auto it = j["tools"].begin(); it != j["tools"].end(); ++it) {
    const std::string& key = it.key();
    std::string where = Where(name, text, Dump(Json(key)) + ":");
    const Json& e = it.value();
    size_t sep = key.find("__");
    if (sep == std::string::npos || sep == 0) {
      *error = where + ": tools." + key + ": not a SERVER__tool name\n" + kHelp;
      return false;
    }
    if (!e.is_object() || !e.contains("sha256") || !e["sha256"].is_string() ||
        !e.contains("definition") || !e["definition"].is_object()) {
      *error = where + ": tools." + key + ": expected {\"sha256\": ..., \"definition\": {...}}\n" +
               kHelp;
      return false;
    }
    const Json& def = e["definition"];
    if (!def.contains("name") || def["name"] != Json(key.substr(sep + 2))) {
      *error =
          where + ": tools." + key + ": definition.name does not match the entry's name\n" + kHelp;
      return false;
    }
    std::string sha = e["sha256"].get<std::string>();
    if (sha != ToolHash(def)) {
      *error = where + ": tools." + key +
               ": sha256 does not match the definition (edited by hand?)\n" + kHelp;
      return false;
    }
    lock.tools[key] = {sha, CanonicalToolDefinition(def)};
  }
  *out = std::move(lock);
  return true;
}

bool LoadLock(const std::string& path, Lockfile* out, std::string* error) {
  std::string text, err;
  if (!ReadFile(path, &text, &err)) {
    *error = err + "\nhelp: create it with `writ lock --config CONFIG -o " + path + "`\n";
    return false;
  }
  return ParseLock(text, path, out, error);
}

bool WriteLock(const std::string& path, const Lockfile& lock, std::string* error) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << SerializeLock(lock);
    f.flush();
    if (!f) {
      *error = "cannot write " + tmp;
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path;
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

std::vector<Drift> CheckAgainstLock(const Lockfile& lock, const Lockfile& live) {
  std::vector<Drift> out;
  auto l = lock.tools.begin();
  auto v = live.tools.begin();
  while (l != lock.tools.end() || v != live.tools.end()) {
    if (v == live.tools.end() || (l != lock.tools.end() && l->first < v->first)) {
      out.push_back({DriftKind::kRemoved, l->first, l->second.sha256, "", {}});
      ++l;
    } else if (l == lock.tools.end() || v->first < l->first) {
      out.push_back({DriftKind::kNew, v->first, "", v->second.sha256, {}});
      ++v;
    } else {
      if (l->second.sha256 != v->second.sha256) {
        Drift d{DriftKind::kChanged, l->first, l->second.sha256, v->second.sha256, {}};
        const Json& a = l->second.definition;
        const Json& b = v->second.definition;
        for (const auto& op : Json::diff(a, b)) {
          std::string path = op.value("path", "");
          std::string kind = op.value("op", "");
          Json::json_pointer p(path);
          std::string old_v = a.contains(p) ? Clip(Dump(a.at(p)), 300) : "";
          std::string new_v = op.contains("value") ? Clip(Dump(op["value"]), 300) : "";
          if (kind == "replace") {
            d.diff.push_back("~ " + path + ": " + old_v + " -> " + new_v);
          } else if (kind == "add") {
            d.diff.push_back("+ " + path + ": " + new_v);
          } else if (kind == "remove") {
            d.diff.push_back("- " + path + ": " + old_v);
          }
        }
        out.push_back(std::move(d));
      }
      ++l;
      ++v;
    }
  }
  return out;
}

std::string FormatDrift(const std::vector<Drift>& drift) {
  std::string s;
  for (const auto& d : drift) {
    s += std::string(DriftKindName(d.kind)) + " " + d.tool;
    if (d.kind == DriftKind::kChanged)
      s += " (sha256 " + d.locked_sha256.substr(0, 12) + " -> " + d.live_sha256.substr(0, 12) + ")";
    s += "\n";
    for (const auto& line : d.diff) s += "    " + line + "\n";
  }
  return s;
}

// ---- Poisoning scanner ----------------------------------------------------------------

namespace {

struct Detector {
  const char* kind;
  RE2 re;
};

const std::vector<Detector*>& Detectors() {
  static const auto* d = [] {
    RE2::Options o;
    o.set_case_sensitive(false);
    o.set_log_errors(false);
    auto* v = new std::vector<Detector*>{
        new Detector{kHiddenInstruction,
                     RE2(R"(\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?)"
                         R"((?:the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|)"
                         R"(other|system|original)\s+(?:instructions?|prompts?|rules|directions|)"
                         R"(directives|guidelines|messages|context))"
                         R"(|\b(?:do\s+not|don'?t|never)\s+(?:tell|inform|notify|alert|warn|)"
                         R"(mention\s+(?:this|it|that)\s+to|reveal\s+(?:this|it|that)\s+to|)"
                         R"(let)\s+(?:the\s+)?user)"
                         R"(|\bwithout\s+(?:telling|informing|notifying|alerting|asking|letting|)"
                         R"(showing)\s+(?:the\s+)?user)"
                         R"(|\b(?:the\s+)?user\s+(?:must|should|may)\s+(?:not|never)\s+)"
                         R"((?:know|see|notice|be\s+(?:told|informed|shown)|find\s+out))"
                         R"(|\b(?:hide|conceal|keep)\s+(?:this|it|that)\s+(?:secret\s+)?from\s+)"
                         R"((?:the\s+)?user)"
                         R"(|\b(?:you\s+are\s+now\s+(?:a|an|in)|from\s+now\s+on,?\s+you\s+)"
                         R"((?:must|will|are)|new\s+instructions?\s*:|system\s+override|)"
                         R"(this\s+is\s+(?:a|an)\s+(?:system|developer|admin)\s+)"
                         R"((?:message|instruction|notice)))",
                         o)},
        new Detector{kSensitiveFile,
                     RE2(R"(\b(?:read|cat|open|send|include|pass|upload|attach|copy|exfiltrate|)"
                         R"(provide|output|print|paste|fetch|load|append)\b[^.\n]{0,80}?)"
                         R"((~/\.ssh|\.ssh/|\bid_rsa\b|\bid_ed25519\b|\bid_ecdsa\b|)"
                         R"(\bauthorized_keys\b|\.aws/credentials|/etc/passwd|/etc/shadow|)"
                         R"((?:^|[\s/'"`])\.env\b|\bmcp\.json\b|claude_desktop_config|\.npmrc\b|)"
                         R"(\.netrc\b|\.pypirc\b|\.git-credentials|\.kube/config|)"
                         R"(\.docker/config\.json|\bwallet\.dat\b|\.gnupg\b))",
                         o)},
        new Detector{
            kInstructionTag,
            RE2(R"(<\s*/?\s*(?:important|system|instructions?|admin|hidden|secret|)"
                R"(critical|override|assistant|prompt|system[_-]prompt|priority)"
                R"()(?:\s[^>]{0,60})?\s*>)"
                R"(|\[\s*/?\s*(?:inst|system|sys)\s*\]|<\|[a-z_]{2,20}\|>|<<\s*/?sys\s*>>)",
                o)},
        new Detector{kInvisibleChar,
                     RE2(R"([\x{200B}-\x{200D}\x{2060}-\x{2064}\x{FEFF}\x{180E}\x{00AD}\x{034F})"
                         R"(\x{115F}\x{1160}\x{3164}\x{FFA0}\x{E0000}-\x{E007F}])")},
        new Detector{kBidiControl, RE2(R"([\x{202A}-\x{202E}\x{2066}-\x{2069}])")},
        new Detector{kEncodedBlob, RE2(R"([A-Za-z0-9+/_-]{100,}={0,2})")},
    };
    return v;
  }();
  return *d;
}

// A base64-looking run counts if it mixes cases and digits; a pure hex run if >= 128.
bool IsBlob(std::string_view run) {
  bool lower = false, upper = false, digit = false, hex_only = true;
  for (char c : run) {
    lower |= std::islower(static_cast<unsigned char>(c)) != 0;
    upper |= std::isupper(static_cast<unsigned char>(c)) != 0;
    digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '=') hex_only = false;
  }
  if (hex_only) return run.size() >= 128;
  return lower && upper && digit;
}

// Renders bytes [b, e) of `s` (widened to character boundaries) with invisible, bidi and
// control characters as \u{XXXX}.
std::string Excerpt(std::string_view s, size_t mb, size_t me) {
  const size_t kContext = 40, kMaxMatch = 80;
  size_t b = mb > kContext ? mb - kContext : 0;
  size_t e = std::min(s.size(), me + kContext);
  auto boundary = [&](size_t i) {
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    return i;
  };
  b = boundary(b);
  e = boundary(e);
  std::string out;
  if (b > 0) out += "...";
  size_t i = b;
  while (i < e) {
    if (i >= mb + kMaxMatch && i < me) {  // a long match: keep its start
      out += "...";
      i = boundary(me);
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + n > s.size()) n = 1;
    uint32_t cp = c;
    if (n == 2) cp = c & 0x1F;
    if (n == 3) cp = c & 0x0F;
    if (n == 4) cp = c & 0x07;
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    bool hidden = cp < 0x20 || cp == 0x7F || (cp >= 0x200B && cp <= 0x200F) ||
                  (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) ||
                  cp == 0xFEFF || cp == 0x180E || cp == 0xAD || cp == 0x34F ||
                  (cp >= 0xE0000 && cp <= 0xE007F) || cp == 0x115F || cp == 0x1160 ||
                  cp == 0x3164 || cp == 0xFFA0 || (n == 1 && c >= 0x80);
    if (hidden) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u{%04X}", cp);
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  if (e < s.size()) out += "...";
  return out;
}

std::string PointerEscape(const std::string& k) {
  std::string out;
  for (char c : k) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void ScanString(std::string_view s, const std::string& path, size_t max,
                std::vector<PoisonFinding>* out) {
  for (const Detector* d : Detectors()) {
    re2::StringPiece in(s.data(), s.size());
    re2::StringPiece m;
    size_t pos = 0;
    // The first match per kind and string; for blobs, the first run that passes IsBlob.
    while (out->size() < max && pos <= s.size() &&
           d->re.Match(in, pos, s.size(), RE2::UNANCHORED, &m, 1)) {
      size_t mb = static_cast<size_t>(m.data() - s.data());
      size_t me = mb + m.size();
      if (d->kind == std::string_view(kEncodedBlob) &&
          !IsBlob(std::string_view(m.data(), m.size()))) {
        pos = me > mb ? me : mb + 1;
        continue;
      }
      out->push_back({d->kind, path, Excerpt(s, mb, me)});
      break;
    }
  }
}

}  // namespace

std::vector<PoisonFinding> ScanToolDefinition(const Json& tool, size_t max_findings) {
  std::vector<PoisonFinding> out;
  Json def = CanonicalToolDefinition(tool);
  // Depth-first with an explicit stack of open containers; paths are rendered from the
  // stack's segments when a string is scanned, so memory stays O(depth).
  struct Frame {
    const Json* v;
    Json::const_iterator it;
    size_t index = 0;
    std::string seg;  // the path segment of the child being visited
  };
  size_t budget = 1 << 20;
  bool reported_depth = false, reported_size = false;
  std::vector<Frame> stack{{&def, def.begin(), 0, ""}};
  auto path = [&] {
    std::string p;
    for (const auto& f : stack) {
      if (p.size() > 512) return p + "...";
      p += f.seg.size() > 128 ? Clip(f.seg, 128) : f.seg;
    }
    return p;
  };
  auto scan = [&](const std::string& s) {
    if (s.size() > budget) {
      if (!reported_size)
        out.push_back({kUnscannable, path(), "strings larger than 1 MiB in total"});
      reported_size = true;
      budget = 0;
      return;
    }
    budget -= s.size();
    ScanString(s, path(), max_findings, &out);
  };
  while (!stack.empty() && out.size() < max_findings) {
    Frame& f = stack.back();
    if (f.it == f.v->end()) {
      stack.pop_back();
      continue;
    }
    const Json& c = *f.it;
    bool object = f.v->is_object();
    f.seg = "/" + (object ? PointerEscape(f.it.key()) : std::to_string(f.index));
    if (object && stack.size() > 1) scan(f.it.key());  // keys inside schemas can carry text
    ++f.it;
    ++f.index;
    if (c.is_structured()) {
      if (stack.size() >= 64) {
        if (!reported_depth) out.push_back({kUnscannable, path(), "nested deeper than 64 levels"});
        reported_depth = true;
        continue;
      }
      stack.push_back({&c, c.begin(), 0, ""});  // invalidates f
    } else if (c.is_string()) {
      scan(c.get_ref<const std::string&>());
    }
  }
  // A key and its value can produce the same finding; keep one.
  std::vector<PoisonFinding> unique;
  for (auto& f : out) {
    bool dup = std::any_of(unique.begin(), unique.end(), [&](const PoisonFinding& u) {
      return u.kind == f.kind && u.path == f.path;
    });
    if (!dup) unique.push_back(std::move(f));
  }
  return unique;
}

std::vector<std::string> FindingKinds(const std::vector<PoisonFinding>& findings) {
  std::set<std::string> kinds;
  for (const auto& f : findings) kinds.insert(f.kind);
  return {kinds.begin(), kinds.end()};
}

// ---- Shadowing ------------------------------------------------------------------------

std::vector<Shadowing> FindShadowing(
    const std::map<std::string, std::vector<Json>>& tools_by_server) {
  std::map<std::string, std::set<std::string>> exact;          // name -> servers
  std::map<std::string, std::set<std::string>> similar;        // normalized -> servers
  std::map<std::string, std::set<std::string>> similar_names;  // normalized -> names
  std::map<std::string, std::string> first_name;               // normalized -> a name
  std::vector<Shadowing> out;
  for (const auto& [server, tools] : tools_by_server) {
    for (const auto& t : tools) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
      std::string name = t["name"].get<std::string>();
      exact[name].insert(server);
      std::string norm;
      for (char c : name) {
        if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
        norm.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      }
      similar[norm].insert(server);
      similar_names[norm].insert(name);
      first_name.emplace(norm, name);
      // A tool named like another server's namespaced tool: evil's `fs__read_file`.
      size_t sep = name.find("__");
      if (sep != std::string::npos) {
        std::string other = name.substr(0, sep);
        if (other != server && tools_by_server.count(other)) {
          out.push_back({name, {other, server}, "namespaced name"});
          std::sort(out.back().servers.begin(), out.back().servers.end());
        }
      }
    }
  }
  for (const auto& [name, servers] : exact)
    if (servers.size() > 1) out.push_back({name, {servers.begin(), servers.end()}, "same name"});
  for (const auto& [norm, servers] : similar) {
    if (servers.size() < 2 || similar_names[norm].size() < 2) continue;
    out.push_back({first_name[norm], {servers.begin(), servers.end()}, "similar name"});
  }
  std::sort(out.begin(), out.end(), [](const Shadowing& a, const Shadowing& b) {
    return std::tie(a.tool, a.how) < std::tie(b.tool, b.how);
  });
  return out;
}

}  // namespace writ::gateway
