// dlp_redact.cc -- redaction targets (docs/dlp.md, "Redaction targets"): parsing path targets
// such as args.items[*].email and masking a JSON document by class or by path. Entry points:
// DlpScanner::ValidTarget and DlpScanner::RedactJson (dlp.h).
#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "gateway/dlp_internal.h"

namespace writ::gateway {
namespace {

using json = nlohmann::json;
using dlp_internal::At;
using dlp_internal::EscapePointerToken;
using dlp_internal::IsAlnum;
using dlp_internal::IsDigit;

// Tokens of a path target: .key, ["key"], [n], [*], .*
struct PathStep {
  enum Kind { kKey, kIndex, kAnyKey, kAnyIndex } kind;
  std::string key;
  size_t index = 0;
};

bool ParsePathTarget(std::string_view t, std::string* root, std::vector<PathStep>* steps,
                     std::string* error) {
  auto ident = [](char c) { return IsAlnum(c) || c == '_' || c == '-' || c == '$'; };
  size_t i = 0;
  while (i < t.size() && ident(t[i])) ++i;
  *root = std::string(t.substr(0, i));
  if (*root != "args" && *root != "result") {
    *error = "redact target `" + std::string(t) + "`: a path must start with `args` or `result`";
    return false;
  }
  auto bad = [&](const std::string& what) {
    *error = "redact target `" + std::string(t) + "`: " + what + " at offset " +
             std::to_string(i);
    return false;
  };
  while (i < t.size()) {
    if (t[i] == '.') {
      ++i;
      if (i < t.size() && t[i] == '*') {
        steps->push_back({PathStep::kAnyKey, "", 0});
        ++i;
        continue;
      }
      size_t j = i;
      while (j < t.size() && ident(t[j])) ++j;
      if (j == i) return bad("expected a key after `.`");
      steps->push_back({PathStep::kKey, std::string(t.substr(i, j - i)), 0});
      i = j;
    } else if (t[i] == '[') {
      ++i;
      if (i < t.size() && t[i] == '*') {
        if (At(t, i + 1) != ']') return bad("expected `]`");
        steps->push_back({PathStep::kAnyIndex, "", 0});
        i += 2;
      } else if (i < t.size() && t[i] == '"') {
        std::string key;
        ++i;
        while (i < t.size() && t[i] != '"') {
          if (t[i] == '\\' && i + 1 < t.size()) ++i;
          key.push_back(t[i++]);
        }
        if (At(t, i) != '"' || At(t, i + 1) != ']') return bad("unterminated `[\"...\"]`");
        steps->push_back({PathStep::kKey, key, 0});
        i += 2;
      } else {
        size_t j = i, v = 0;
        while (j < t.size() && IsDigit(t[j]) && j - i < 9) v = v * 10 + (t[j++] - '0');
        if (j == i || At(t, j) != ']') return bad("expected an index, `*` or a quoted key");
        steps->push_back({PathStep::kIndex, "", v});
        i = j + 1;
      }
    } else {
      return bad("unexpected `" + std::string(1, t[i]) + "`");
    }
  }
  return true;
}

constexpr char kRedactedValue[] = "[REDACTED]";

}  // namespace

bool DlpScanner::IsPathTarget(std::string_view target) {
  return target.find_first_of(".[") != std::string_view::npos || target == "args" ||
         target == "result";
}

bool DlpScanner::ValidTarget(std::string_view target, std::string* error) const {
  if (target == "*" || target == "all") return true;
  if (IsPathTarget(target)) {
    std::string root;
    std::vector<PathStep> steps;
    return ParsePathTarget(target, &root, &steps, error);
  }
  for (const auto& d : detectors_)
    if (d->name == target) return true;
  std::string list;
  for (const auto& d : detectors_) list += (list.empty() ? "" : ", ") + d->name;
  *error = "redact target `" + std::string(target) +
           "` is not a dlp class of this gateway (" + list + "), `*`, or a path such as "
           "args.card.number";
  return false;
}

bool DlpScanner::RedactJson(json* doc, std::string_view root,
                            const std::vector<std::string>& targets, const DlpReport* report,
                            DlpRedaction* out, std::string* error) const {
  // Classify every target first: nothing is changed unless all are valid.
  bool all = false;
  std::set<std::string> classes;
  std::vector<std::pair<std::string, std::vector<PathStep>>> paths;
  for (const auto& t : targets) {
    if (!ValidTarget(t, error)) return false;
    if (t == "*" || t == "all") {
      all = true;
    } else if (IsPathTarget(t)) {
      std::string r;
      std::vector<PathStep> steps;
      ParsePathTarget(t, &r, &steps, error);
      if (r == root) paths.emplace_back(t, std::move(steps));
    } else {
      classes.insert(t);
    }
  }
  try {
    if (all || !classes.empty()) {
      DlpReport local;
      if (report == nullptr) {
        local = ScanJson(*doc);
        report = &local;
      }
      // Group spans by (path, in_key).
      std::map<std::pair<std::string, bool>, std::vector<const DlpFinding*>> by_path;
      for (const auto& f : report->findings)
        if (all || classes.count(f.cls)) by_path[{f.path, f.in_key}].push_back(&f);
      std::vector<std::pair<std::string, std::string>> renames;  // path, new key
      for (auto& [where, fs] : by_path) {
        json::json_pointer ptr(where.first);
        if (!doc->contains(ptr)) continue;
        std::string text;
        json& v = (*doc)[ptr];
        if (where.second) {
          if (ptr.empty()) continue;
          text = ptr.back();
        } else if (v.is_string()) {
          text = v.get<std::string>();
        } else if (v.is_number_integer()) {
          v = "[REDACTED:" + fs.front()->cls + "]";
          out->items.push_back({where.first, fs.front()->cls});
          continue;
        } else {
          continue;
        }
        // Merge overlapping spans (ordered by offset, longest first); label with the first.
        std::sort(fs.begin(), fs.end(), [](const DlpFinding* a, const DlpFinding* b) {
          if (a->offset != b->offset) return a->offset < b->offset;
          return a->length != b->length ? a->length > b->length : a->cls < b->cls;
        });
        std::vector<std::tuple<size_t, size_t, std::string>> spans;
        for (const DlpFinding* f : fs) {
          size_t b = f->offset, e = std::min(text.size(), f->offset + f->length);
          if (b >= e) continue;
          if (!spans.empty() && b < std::get<1>(spans.back())) {
            std::get<1>(spans.back()) = std::max(std::get<1>(spans.back()), e);
          } else {
            spans.emplace_back(b, e, f->cls);
          }
        }
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
          auto& [b, e, cls] = *it;
          text.replace(b, e - b, "[REDACTED:" + cls + "]");
          out->items.push_back({where.first, cls});
        }
        if (where.second) {
          renames.emplace_back(where.first, text);
        } else {
          v = text;
        }
      }
      // Keys last, deepest first, so no rename moves a path still to be renamed.
      std::sort(renames.begin(), renames.end(), [](const auto& a, const auto& b) {
        return std::count(a.first.begin(), a.first.end(), '/') >
               std::count(b.first.begin(), b.first.end(), '/');
      });
      for (auto& [p, key] : renames) {
        json::json_pointer ptr(p);
        json& parent = (*doc)[ptr.parent_pointer()];
        std::string old = ptr.back(), fresh = key;
        for (int n = 2; parent.contains(fresh); ++n) fresh = key + "#" + std::to_string(n);
        json moved = std::move(parent[old]);
        parent.erase(old);
        parent[fresh] = std::move(moved);
      }
    }
    for (const auto& [target, steps] : paths) {
      std::vector<std::pair<json*, std::string>> frontier{{doc, ""}};
      for (const PathStep& st : steps) {
        std::vector<std::pair<json*, std::string>> next;
        for (auto& [v, p] : frontier) {
          if (st.kind == PathStep::kKey && v->is_object() && v->contains(st.key)) {
            next.emplace_back(&(*v)[st.key], p + "/" + EscapePointerToken(st.key));
          } else if (st.kind == PathStep::kIndex && v->is_array() && st.index < v->size()) {
            next.emplace_back(&(*v)[st.index], p + "/" + std::to_string(st.index));
          } else if (st.kind == PathStep::kAnyKey && v->is_object()) {
            for (auto it = v->begin(); it != v->end(); ++it)
              next.emplace_back(&it.value(), p + "/" + EscapePointerToken(it.key()));
          } else if (st.kind == PathStep::kAnyIndex && v->is_array()) {
            for (size_t i = 0; i < v->size(); ++i)
              next.emplace_back(&(*v)[i], p + "/" + std::to_string(i));
          }
        }
        frontier = std::move(next);
      }
      for (auto& [v, p] : frontier) {
        *v = kRedactedValue;
        out->items.push_back({p, target});
      }
    }
  } catch (const std::exception& e) {
    // Only reachable if `report` does not describe `doc` (a REQUIRES violation).
    *error = std::string("redaction failed: ") + e.what();
    return false;
  }
  return true;
}

}  // namespace writ::gateway
