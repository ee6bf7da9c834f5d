// replay.cc -- see replay.h.
#include "harness/replay.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#ifdef WRIT_HAVE_SIMDJSON
#include <simdjson.h>
#endif

#include "gateway/trace.h"
#include "harness/report.h"
#include "harness/runner.h"

namespace writ::harness {
namespace {

using Json = nlohmann::json;

std::vector<std::string> SortedStrings(const Json& a) {
  std::vector<std::string> v;
  for (const auto& e : a) v.push_back(e.get<std::string>());  // validated by ParseTraceLine
  std::sort(v.begin(), v.end());
  return v;
}

std::string Uid(const Json& request, const char* entity) {
  auto e = request.find(entity);
  if (e == request.end() || !e->is_object()) return "?";
  auto u = e->find("uid");
  return u != e->end() && u->is_string() ? u->get<std::string>() : "?";
}

std::string VerdictText(const Verdict& v) {
  std::string s = v.decision + " [";
  for (size_t i = 0; i < v.determining.size(); ++i) s += (i ? ", " : "") + v.determining[i];
  return s + "]";
}

std::string Pad(std::string s, size_t w) {
  if (s.size() < w) s.resize(w, ' ');
  return s;
}

// Markdown table cell: code span, pipes escaped.
std::string Cell(const std::string& s) {
  std::string out = "`";
  for (char ch : s) {
    if (ch == '|')
      out += "\\|";
    else if (ch == '`')
      out += "'";
    else if (ch == '\n')
      out += ' ';
    else
      out.push_back(ch);
  }
  return out + "`";
}

struct Groups {
  std::map<std::string, size_t> transitions;                    // "allow -> deny"
  std::map<std::string, std::pair<size_t, size_t>> statements;  // id -> (appears, disappears)
  std::map<std::string, size_t> tools, principals;
};

Groups Group(const ReplayResult& r) {
  Groups g;
  for (size_t i : r.changed) {
    const Verdict& b = r.before[i];
    const Verdict& a = r.after[i];
    ++g.transitions[b.decision + " -> " + a.decision];
    for (const auto& id : a.determining)
      if (!std::binary_search(b.determining.begin(), b.determining.end(), id))
        ++g.statements[id].first;
    for (const auto& id : b.determining)
      if (!std::binary_search(a.determining.begin(), a.determining.end(), id))
        ++g.statements[id].second;
    const Json q = r.records[i].Request();
    ++g.tools[Uid(q, "resource")];
    ++g.principals[Uid(q, "principal")];
  }
  return g;
}

// Entries sorted by count (descending), then name.
std::vector<std::pair<std::string, size_t>> ByCount(const std::map<std::string, size_t>& m) {
  std::vector<std::pair<std::string, size_t>> v(m.begin(), m.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return v;
}

std::string Headline(const ReplayResult& r) {
  std::ostringstream o;
  o << r.records.size() << " recorded request" << (r.records.size() == 1 ? "" : "s") << " in "
    << r.traces << " trace(s), ";
  if (r.changed.empty())
    o << "no decision changes";
  else
    o << r.changed.size() << " change";
  o << " (the policies vs " << r.baseline_label << ")";
  return o.str();
}

std::string RenderJson(const ReplayResult& r, const Groups& g) {
  Json out = {{"requests", r.records.size()},
              {"traces", r.traces},
              {"changed", r.changed.size()},
              {"differs_from_recorded", r.differs_from_recorded},
              {"baseline", r.baseline_label}};
  Json t = Json::array();
  for (const auto& [k, n] : ByCount(g.transitions)) {
    size_t sp = k.find(" -> ");
    t.push_back({{"from", k.substr(0, sp)}, {"to", k.substr(sp + 4)}, {"count", n}});
  }
  out["transitions"] = t;
  Json s = Json::array();
  for (const auto& [id, c] : g.statements)
    s.push_back({{"id", id}, {"appears", c.first}, {"disappears", c.second}});
  out["statements"] = s;
  for (const char* k : {"tools", "principals"}) {
    Json a = Json::array();
    for (const auto& [uid, n] : ByCount(std::string(k) == "tools" ? g.tools : g.principals))
      a.push_back({{"uid", uid}, {"count", n}});
    out[k] = a;
  }
  Json changes = Json::array();
  auto vj = [](const Verdict& v) {
    Json j = {{"decision", v.decision}, {"determining", v.determining}};
    if (!v.error.empty()) j["error"] = v.error;
    return j;
  };
  for (size_t i : r.changed) {
    const ReplayRecord& rec = r.records[i];
    const Json q = rec.Request();
    changes.push_back({{"trace", rec.file()},
                       {"line", rec.line},
                       {"principal", Uid(q, "principal")},
                       {"action", q.value("action", Json("?"))},
                       {"resource", Uid(q, "resource")},
                       {"before", vj(r.before[i])},
                       {"after", vj(r.after[i])}});
  }
  out["changes"] = changes;
  return out.dump(2) + "\n";
}

std::string RenderMarkdown(const ReplayResult& r, const Groups& g, size_t show) {
  std::ostringstream o;
  o << "### Policy impact: " << r.changed.size() << " of " << r.records.size()
    << " recorded requests change\n\n";
  o << "Replayed " << r.records.size() << " recorded request(s) from " << r.traces
    << " trace(s); compared with " << r.baseline_label << ".\n";
  if (r.changed.empty()) {
    o << "\nNo decision changes.\n";
    return o.str();
  }
  o << "\n| change | requests |\n|---|---:|\n";
  for (const auto& [k, n] : ByCount(g.transitions)) o << "| " << k << " | " << n << " |\n";
  o << "\n**By statement** (determining ids that appear or disappear)\n\n"
       "| statement | now determining | no longer determining |\n|---|---:|---:|\n";
  for (const auto& [id, c] : g.statements)
    o << "| " << Cell(id) << " | " << c.first << " | " << c.second << " |\n";
  o << "\n**By tool**\n\n| tool | requests |\n|---|---:|\n";
  for (const auto& [uid, n] : ByCount(g.tools)) o << "| " << Cell(uid) << " | " << n << " |\n";
  o << "\n**By principal**\n\n| principal | requests |\n|---|---:|\n";
  for (const auto& [uid, n] : ByCount(g.principals)) o << "| " << Cell(uid) << " | " << n << " |\n";
  o << "\n<details><summary>Changed requests (" << std::min(show, r.changed.size()) << " of "
    << r.changed.size() << ")</summary>\n\n"
    << "| trace | principal | tool | before | after |\n|---|---|---|---|---|\n";
  for (size_t k = 0; k < r.changed.size() && k < show; ++k) {
    size_t i = r.changed[k];
    const ReplayRecord& rec = r.records[i];
    const Json q = rec.Request();
    o << "| " << Cell(rec.file() + ":" + std::to_string(rec.line)) << " | "
      << Cell(Uid(q, "principal")) << " | " << Cell(Uid(q, "resource")) << " | "
      << Cell(VerdictText(r.before[i])) << " | " << Cell(VerdictText(r.after[i])) << " |\n";
  }
  o << "\n</details>\n";
  return o.str();
}

std::string RenderText(const ReplayResult& r, const Groups& g, size_t show, bool github) {
  std::ostringstream o;
  o << "writ replay: " << Headline(r) << "\n";
  if (r.changed.empty()) return o.str();
  o << "by decision:\n";
  for (const auto& [k, n] : ByCount(g.transitions)) o << "  " << Pad(k, 34) << n << "\n";
  o << "by statement:\n";
  for (const auto& [id, c] : g.statements) {
    if (c.first) o << "  + " << Pad(id, 32) << c.first << "  now determining\n";
    if (c.second) o << "  - " << Pad(id, 32) << c.second << "  no longer determining\n";
  }
  o << "by tool:\n";
  for (const auto& [uid, n] : ByCount(g.tools)) o << "  " << Pad(uid, 34) << n << "\n";
  o << "by principal:\n";
  for (const auto& [uid, n] : ByCount(g.principals)) o << "  " << Pad(uid, 34) << n << "\n";
  o << "changed requests (" << std::min(show, r.changed.size()) << " of " << r.changed.size()
    << "):\n";
  for (size_t k = 0; k < r.changed.size() && k < show; ++k) {
    size_t i = r.changed[k];
    const ReplayRecord& rec = r.records[i];
    const Json q = rec.Request();
    std::string what = Uid(q, "principal") + " " + q.value("action", std::string("?")) + " " +
                       Uid(q, "resource") + ": " + VerdictText(r.before[i]) + " -> " +
                       VerdictText(r.after[i]);
    o << "  " << rec.file() << ":" << rec.line << ": " << what << "\n";
    if (github)
      o << "::warning file=" << rec.file() << ",line=" << rec.line
        << ",title=writ replay::" << GithubEscape("decision changes: " + what) << "\n";
  }
  return o.str();
}

// Strict structural equality: unlike nlohmann's operator==, 1 and 1.0 (or 1 and 1u) differ,
// since PrepareRequest may treat the number types differently.
bool SameJson(const Json& a, const Json& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Json::value_t::object: {
      if (a.size() != b.size()) return false;
      for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
        if (ia.key() != ib.key() || !SameJson(*ia, *ib)) return false;
      return true;
    }
    case Json::value_t::array: {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!SameJson(a[i], b[i])) return false;
      return true;
    }
    case Json::value_t::number_float:  // -0.0 and 0.0 differ too
      return a.get<double>() == b.get<double>() &&
             std::signbit(a.get<double>()) == std::signbit(b.get<double>());
    default:
      return a == b;  // same scalar type: exact comparison
  }
}

#ifdef WRIT_HAVE_SIMDJSON
// simdjson reads up to SIMDJSON_PADDING bytes past a line: the trace buffer must have them.
static_assert(writ::harness::kTracePadding >= simdjson::SIMDJSON_PADDING);
#endif

#ifdef WRIT_HAVE_SIMDJSON
// The in-place conversion of ConvertRequest: *out takes the value of `e`, keeping out's nodes
// and string capacity where the shapes agree. False ("not sure") for a double negative zero
// (left to nlohmann; "-0" is excluded by the caller); *out is then unspecified.
bool Assign(simdjson::dom::element e, Json* out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      simdjson::dom::object obj(e);
      // In place when out holds exactly the same, distinct keys (small objects: the common
      // case of consecutive requests of one shape); else rebuilt. Each key is looked up once:
      // the first pass keeps where it found them.
      constexpr size_t kMaxInPlace = 32;
      Json::object_t::iterator found[kMaxInPlace];
      size_t n = 0;
      bool in_place = out->is_object() && out->size() == obj.size() && obj.size() <= kMaxInPlace;
      if (in_place) {
        auto& map = out->get_ref<Json::object_t&>();
        for (auto field : obj) {
          auto it = map.find(field.key);
          for (size_t k = 0; k < n && it != map.end(); ++k) {
            if (found[k] == it) it = map.end();  // a duplicate key
          }
          if (it == map.end()) {
            in_place = false;
            break;
          }
          found[n++] = it;
        }
      }
      if (in_place) {
        n = 0;
        for (auto field : obj) {
          if (!Assign(field.value, &found[n++]->second)) return false;
        }
        return true;
      }
      *out = Json::object();
      auto& map = out->get_ref<Json::object_t&>();
      for (auto field : obj) {
        auto it = map.find(field.key);
        if (it == map.end()) it = map.emplace(std::string(field.key), Json()).first;
        if (!Assign(field.value, &it->second)) return false;  // duplicate keys: last wins
      }
      return true;
    }
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array arr(e);
      if (!out->is_array()) *out = Json::array();
      auto& vec = out->get_ref<Json::array_t&>();
      vec.resize(arr.size());
      size_t i = 0;
      for (auto v : arr)
        if (!Assign(v, &vec[i++])) return false;
      return true;
    }
    case simdjson::dom::element_type::INT64: {
      int64_t v = int64_t(e);
      // nlohmann: a non-negative integer is number_unsigned, a negative one number_integer.
      if (v >= 0)
        *out = static_cast<uint64_t>(v);
      else
        *out = v;
      return true;
    }
    case simdjson::dom::element_type::UINT64:
      *out = uint64_t(e);
      return true;
    case simdjson::dom::element_type::DOUBLE: {
      double v = double(e);
      if (v == 0 && std::signbit(v)) return false;
      *out = v;
      return true;
    }
    case simdjson::dom::element_type::STRING:
      if (out->is_string())
        out->get_ref<std::string&>().assign(std::string_view(e));  // reuses the capacity
      else
        *out = std::string(std::string_view(e));
      return true;
    case simdjson::dom::element_type::BOOL:
      *out = bool(e);
      return true;
    case simdjson::dom::element_type::NULL_VALUE:
      *out = nullptr;
      return true;
  }
  return false;
}

// The end of the string whose opening quote is at `open`: the index of its closing quote,
// found with memchr (string bytes are most of a trace line), or npos.
size_t StringEnd(std::string_view line, size_t open) {
  size_t q = open;
  for (;;) {
    const void* hit = std::memchr(line.data() + q + 1, '"', line.size() - q - 1);
    if (hit == nullptr) return std::string_view::npos;
    q = static_cast<size_t>(static_cast<const char*>(hit) - line.data());
    size_t backslashes = 0;
    while (q - backslashes > open + 1 && line[q - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return q;  // not escaped
  }
}

// The text of the member `"request"` of a line simdjson validated as an object, found by
// scanning the raw bytes: empty unless that raw key appears exactly once at the top level
// (a key written with escapes is left to the nlohmann path).
std::string_view RawRequest(std::string_view line) {
  constexpr std::string_view kKey = "\"request\"";
  int depth = 0, found = 0;
  size_t value_begin = std::string_view::npos, value_end = 0;
  bool capturing = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (ch == '"') {
      const size_t j = StringEnd(line, i);
      if (j == std::string_view::npos) return {};
      if (depth == 1 && j + 1 - i == kKey.size() && line.substr(i, kKey.size()) == kKey) {
        size_t k = j + 1;
        while (k < line.size() && line[k] == ' ') ++k;
        if (k < line.size() && line[k] == ':') {  // a key, not a value
          ++found;
          ++k;
          while (k < line.size() && line[k] == ' ') ++k;
          value_begin = k;
          capturing = true;
        }
      }
      i = j;
    } else if (ch == '{' || ch == '[') {
      ++depth;
    } else if (ch == '}' || ch == ']') {
      --depth;
      if (capturing && depth == 1) {
        value_end = i + 1;
        capturing = false;
      }
    }
  }
  if (found != 1 || value_begin == std::string_view::npos || value_end <= value_begin) return {};
  return line.substr(value_begin, value_end - value_begin);
}

// True if `line` holds a byte below 0x20 (whitespace, or a raw control byte in a string) or
// a \u escape of a surrogate (its validation is left to nlohmann). Branch-free over blocks.
bool NeedsExactPath(std::string_view line) {
  const auto* p = reinterpret_cast<const unsigned char*>(line.data());
  const size_t n = line.size();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    unsigned control = 0;
    for (size_t k = 0; k < 32; ++k) control |= p[i + k] < 0x20;
    if (control) return true;
  }
  for (; i < n; ++i)
    if (p[i] < 0x20) return true;
  for (size_t b = line.find('\\'); b != std::string_view::npos; b = line.find('\\', b + 2)) {
    if (b + 2 < n && line[b + 1] == 'u' && (line[b + 2] == 'd' || line[b + 2] == 'D')) return true;
  }
  return false;
}

// The fast path for trace lines: simdjson's DOM parser (full validation), the recorded
// decision read directly and the request kept as its text (ConvertRequest at decision time).
// It accepts only lines it can decide exactly as gateway::ParseTraceLine(lean) does, and
// returns kUnsure for everything else -- headers, errors, unknown types, duplicate keys
// replay reads, raw control bytes, \u escapes of surrogates, integers beyond 64 bits, deep
// nesting, a `request` key written with escapes -- which then take the nlohmann path (the
// same result, and the same error message naming FILE:LINE). `padded`: the line is followed
// by at least simdjson::SIMDJSON_PADDING readable bytes.
// Thread safety: one parser per thread (thread_local).
enum class Fast { kUnsure, kMessage, kDecision };

Fast FastParseLine(std::string_view line, bool padded, ReplayRecord* rec) {
  if (line.size() > gateway::kMaxTraceLine || NeedsExactPath(line)) return Fast::kUnsure;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(line.data(), line.size(), /*realloc_if_needed=*/!padded).get(root) !=
      simdjson::SUCCESS)
    return Fast::kUnsure;
  simdjson::dom::object top;
  if (root.get_object().get(top) != simdjson::SUCCESS) return Fast::kUnsure;
  // The keys ParseTraceLine reads; each must appear at most once.
  std::optional<simdjson::dom::element> type, direction, session, message, request, decision;
  for (auto field : top) {
    std::optional<simdjson::dom::element>* slot = nullptr;
    if (field.key == "writ_trace") return Fast::kUnsure;  // a header
    if (field.key == "type") slot = &type;
    if (field.key == "direction") slot = &direction;
    if (field.key == "session") slot = &session;
    if (field.key == "message") slot = &message;
    if (field.key == "request") slot = &request;
    if (field.key == "decision") slot = &decision;
    if (slot == nullptr) continue;
    if (slot->has_value()) return Fast::kUnsure;
    *slot = field.value;
  }
  auto is_string = [](const std::optional<simdjson::dom::element>& e) {
    return e.has_value() && e->is_string();
  };
  if (!is_string(type) || !is_string(direction) || !is_string(session)) return Fast::kUnsure;
  std::string_view dir(*direction);
  if (dir != "client_to_gateway" && dir != "gateway_to_client") return Fast::kUnsure;
  std::string_view t(*type);
  if (t == "message")
    return message.has_value() && message->is_object() ? Fast::kMessage : Fast::kUnsure;
  if (t != "decision" || !request.has_value() || !request->is_object() || !decision.has_value() ||
      !decision->is_object())
    return Fast::kUnsure;
  std::optional<simdjson::dom::element> effect, determining;
  for (auto field : simdjson::dom::object(*decision)) {
    std::optional<simdjson::dom::element>* slot = nullptr;
    if (field.key == "decision") slot = &effect;
    if (field.key == "determining") slot = &determining;
    if (slot == nullptr) continue;
    if (slot->has_value()) return Fast::kUnsure;
    *slot = field.value;
  }
  if (!is_string(effect) || !determining.has_value() || !determining->is_array())
    return Fast::kUnsure;
  std::string_view eff(*effect);
  if (eff != "allow" && eff != "deny" && eff != "require_approval") return Fast::kUnsure;
  for (auto id : simdjson::dom::array(*determining))
    if (!id.is_string()) return Fast::kUnsure;
  rec->request_text = RawRequest(line);
  if (rec->request_text.empty()) return Fast::kUnsure;
  rec->recorded.decision = std::string(eff);
  rec->recorded.determining.clear();
  for (auto id : simdjson::dom::array(*determining))
    rec->recorded.determining.emplace_back(std::string_view(id));
  std::sort(rec->recorded.determining.begin(), rec->recorded.determining.end());
  return Fast::kDecision;
}
#endif  // WRIT_HAVE_SIMDJSON

// rep[i] = the lowest index whose request is identical to record i's (i itself when first):
// the same text for fast-path records, the same JSON (SameJson) for the others.
std::vector<size_t> Representatives(const std::vector<ReplayRecord>& records) {
  std::vector<size_t> rep(records.size());
  std::unordered_map<std::string_view, size_t> by_text;
  std::unordered_multimap<size_t, size_t> by_json;  // hash -> representative index
  by_text.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    rep[i] = i;
    const ReplayRecord& rec = records[i];
    if (rec.request_json == nullptr) {
      rep[i] = by_text.emplace(rec.request_text, i).first->second;
      continue;
    }
    const size_t h = std::hash<Json>{}(*rec.request_json);
    auto [b, e] = by_json.equal_range(h);
    for (auto it = b; it != e; ++it) {
      if (SameJson(*records[it->second].request_json, *rec.request_json)) {
        rep[i] = it->second;
        break;
      }
    }
    if (rep[i] == i) by_json.emplace(h, i);
  }
  return rep;
}

// Reads a whole file in large blocks, followed by kTracePadding zero bytes.
bool ReadAll(const std::string& path, std::string* bytes, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  // One allocation of the file's size (when it can be known), filled in 4 MiB blocks.
  constexpr size_t kBlock = 4 << 20;
  struct stat st {};
  size_t size = 0, capacity = 0;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) capacity = static_cast<size_t>(st.st_size);
  // One byte more than the file: the read that reaches its end is short, so the end is found
  // without growing the buffer (growing would copy the whole file).
  bytes->resize(capacity + kTracePadding + 1);
  for (;;) {
    if (size == bytes->size()) bytes->resize(std::max(size + kBlock, 2 * size));  // grew
    const size_t want = std::min(kBlock, bytes->size() - size);
    const size_t got = std::fread(bytes->data() + size, 1, want, f);
    size += got;
    if (got < want) break;
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    *error = "cannot read " + path + ": " + std::strerror(err);
    return false;
  }
  bytes->resize(size);
  bytes->resize(size + kTracePadding, '\0');
  return true;
}

}  // namespace

void ParallelFor(size_t n, int jobs, const std::function<void(size_t)>& fn) {
  size_t threads = jobs > 0 ? static_cast<size_t>(jobs)
                            : std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  threads = std::min(threads, n / 256 + 1);  // small inputs: not worth a thread
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  const size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 0; t < threads; ++t) {
    size_t begin = t * chunk, end = std::min(n, begin + chunk);
    pool.emplace_back([&fn, begin, end] {
      for (size_t i = begin; i < end; ++i) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

Json ReplayRecord::Request() const {
  if (request_json != nullptr) return *request_json;
  Json j = Json::parse(request_text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json::object() : j;  // the text was validated when read
}

bool HaveFastPath() {
#ifdef WRIT_HAVE_SIMDJSON
  return true;
#else
  return false;
#endif
}

bool ConvertRequest(std::string_view text, Json* out) {
#ifdef WRIT_HAVE_SIMDJSON
  // simdjson reads "-0" as the integer 0, nlohmann as a signed integer (and 0 as unsigned):
  // a text that may hold a negative zero takes the nlohmann path.
  bool negative_zero = false;
  for (size_t m = text.find('-'); m != std::string_view::npos && !negative_zero;
       m = text.find('-', m + 1))
    negative_zero = m + 1 < text.size() && text[m + 1] == '0';
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (!negative_zero &&
      parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root) ==
          simdjson::SUCCESS &&
      Assign(root, out))
    return true;
#endif
  *out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

bool ReadTrace(const std::string& path, std::vector<ReplayRecord>* out, std::string* error,
               int jobs, bool use_fast) {
  auto trace = std::make_shared<TraceText>();
  trace->path = path;
  if (!ReadAll(path, &trace->bytes, error)) return false;
  const std::string_view all =
      std::string_view(trace->bytes).substr(0, trace->bytes.size() - kTracePadding);
  // Lines (split at '\n' as std::getline does) are parsed in parallel batches; the checks
  // that depend on order (the header first) and the first error (lowest line) are then taken
  // in file order.
  constexpr size_t kBatch = 8192;
  struct Parsed {
    gateway::TraceLineKind kind = gateway::TraceLineKind::kMessage;
    Json json;
    std::string why;
    bool ok = false;
    bool fast = false;  // decided by FastParseLine: `record` holds the decision
    ReplayRecord record;
  };
  std::vector<std::string_view> lines;
  std::vector<Parsed> parsed;
  size_t n = 0, pos = 0;
  bool header = false;
  while (pos < all.size()) {
    lines.clear();
    while (lines.size() < kBatch && pos < all.size()) {
      size_t nl = all.find('\n', pos);
      if (nl == std::string_view::npos) nl = all.size();
      lines.push_back(all.substr(pos, nl - pos));
      pos = nl + 1;
    }
    parsed.clear();
    parsed.resize(lines.size());
    ParallelFor(lines.size(), jobs, [&](size_t i) {
      Parsed& p = parsed[i];
#ifdef WRIT_HAVE_SIMDJSON
      if (use_fast) {
        // Every line is followed by the rest of the buffer and its padding.
        Fast f = FastParseLine(lines[i], /*padded=*/true, &p.record);
        if (f != Fast::kUnsure) {
          p.ok = p.fast = true;
          p.kind = f == Fast::kMessage ? gateway::TraceLineKind::kMessage
                                       : gateway::TraceLineKind::kDecision;
          return;
        }
        p.record = ReplayRecord{};
      }
#endif
      p.ok = gateway::ParseTraceLine(lines[i], &p.kind, &p.json, &p.why, /*lean=*/true);
    });
    for (size_t i = 0; i < parsed.size(); ++i) {
      ++n;
      Parsed& p = parsed[i];
      auto fail = [&](const std::string& what) {
        *error = path + ":" + std::to_string(n) + ": " + what;
        return false;
      };
      if (!p.ok) return fail(p.why);
      if (p.kind == gateway::TraceLineKind::kHeader) {
        header = true;
        continue;
      }
      if (!header)
        return fail("a record before the header line (is this a writ trace? docs/replay.md)");
      if (p.kind != gateway::TraceLineKind::kDecision) continue;
      ReplayRecord r;
      if (p.fast) {
        r = std::move(p.record);
      } else {
        r.recorded.decision = p.json["decision"]["decision"].get<std::string>();
        r.recorded.determining = SortedStrings(p.json["decision"]["determining"]);
        r.request_json = std::make_shared<const Json>(std::move(p.json["request"]));
      }
      r.trace = trace;
      r.line = n;
      out->push_back(std::move(r));
    }
  }
  if (n == 0) {
    *error = path + ": empty file, not a trace (the first line is a header, docs/replay.md)";
    return false;
  }
  return true;
}

Verdict Decide(const runtime::Bundle& bundle, const Json& request) {
  Verdict v;
  runtime::PreparedRequest req;
  if (!runtime::PrepareRequest(bundle, request, &req, &v.error)) {
    v.decision = "deny";
    return v;
  }
  runtime::Decision d = runtime::Evaluate(bundle, req);
  v.decision = runtime::EffectName(d.effect);
  v.determining = DeterminingIds(bundle, req, d);
  return v;
}

Verdict Decide(const runtime::StatementPlan& plan, const Json& request) {
  // Per thread, reused by the next call: the prepared request's buffers, the plan's leaf
  // results and the determining statements.
  thread_local runtime::PreparedRequest req;
  thread_local runtime::PlanScratch scratch;
  thread_local std::vector<uint32_t> stmts;
  const runtime::Bundle& bundle = plan.bundle();
  Verdict v;
  if (!runtime::PrepareRequest(bundle, request, &req, &v.error)) {
    v.decision = "deny";
    return v;
  }
  const runtime::Decision d = runtime::Evaluate(bundle, req);
  v.decision = runtime::EffectName(d.effect);
  runtime::DeterminingStatements(plan, req, d, &scratch, &stmts);
  v.determining.reserve(stmts.size());
  for (uint32_t s : stmts) v.determining.emplace_back(bundle.str(bundle.statements_[s].id));
  std::sort(v.determining.begin(), v.determining.end());
  v.determining.erase(std::unique(v.determining.begin(), v.determining.end()),
                      v.determining.end());
  return v;
}

namespace {

// The request of a record as JSON: its own parsed copy, or its text converted into a
// per-thread buffer that the next call reuses (valid until then).
const Json& RequestOf(const ReplayRecord& rec) {
  if (rec.request_json != nullptr) return *rec.request_json;
  thread_local Json scratch;
  if (!ConvertRequest(rec.request_text, &scratch))
    scratch = Json();  // cannot happen (validated when read); PrepareRequest rejects null
  return scratch;
}

}  // namespace

Verdict Decide(const runtime::Bundle& bundle, const ReplayRecord& record) {
  return Decide(bundle, RequestOf(record));
}

ReplayResult Replay(std::vector<ReplayRecord> records, const runtime::Bundle& bundle,
                    const runtime::Bundle* baseline, std::string baseline_label, int jobs,
                    bool decide_once) {
  ReplayResult r;
  r.records = std::move(records);
  r.baseline_label = std::move(baseline_label);
  r.after.resize(r.records.size());
  r.before.resize(r.records.size());
  // Decide() is a pure function of (bundle, request): identical requests are decided once
  // (the lowest index), then their verdicts copied.
  std::vector<size_t> rep;
  if (decide_once) rep = Representatives(r.records);
  std::vector<size_t> unique;
  for (size_t i = 0; i < r.records.size(); ++i)
    if (!decide_once || rep[i] == i) unique.push_back(i);
  r.distinct_requests = unique.size();
  // Each bundle's statement formulas split once, for the determining statements.
  const runtime::StatementPlan plan(bundle);
  std::optional<runtime::StatementPlan> baseline_plan;
  if (baseline != nullptr) baseline_plan.emplace(*baseline);
  ParallelFor(unique.size(), jobs, [&](size_t k) {
    const size_t i = unique[k];
    const Json& request = RequestOf(r.records[i]);  // converted once for both bundles
    r.after[i] = Decide(plan, request);
    if (baseline != nullptr) r.before[i] = Decide(*baseline_plan, request);
  });
  for (size_t i = 0; i < r.records.size(); ++i) {
    if (decide_once && rep[i] != i) {
      r.after[i] = r.after[rep[i]];
      if (baseline != nullptr) r.before[i] = r.before[rep[i]];
    }
    if (baseline == nullptr) r.before[i] = r.records[i].recorded;
  }
  for (size_t i = 0; i < r.records.size(); ++i) {
    if (!(r.after[i] == r.before[i])) r.changed.push_back(i);
    if (!(r.after[i] == r.records[i].recorded)) ++r.differs_from_recorded;
  }
  return r;
}

std::string RenderReplay(const ReplayResult& r, ReplayFormat format, size_t show) {
  Groups g = Group(r);
  switch (format) {
    case ReplayFormat::kJson:
      return RenderJson(r, g);
    case ReplayFormat::kMarkdown:
      return RenderMarkdown(r, g, show);
    case ReplayFormat::kGithub:
      return RenderText(r, g, show, true);
    case ReplayFormat::kText:
      break;
  }
  return RenderText(r, g, show, false);
}

}  // namespace writ::harness
