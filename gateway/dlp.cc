// dlp.cc -- see dlp.h. DlpScanner::Create (compiles the detectors of dlp_detectors.cc and the
// custom patterns) and the scan itself: the chunked trigger pass, anchored matches, JSON
// walks; Classes and FindingsJson. Redaction is in dlp_redact.cc. Entry points: Create, Scan,
// ScanJson, ScanToolResult.
#include "gateway/dlp.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <set>
#include <utility>

#include "gateway/dlp_internal.h"

namespace writ::gateway {
namespace {

using json = nlohmann::json;
using dlp_internal::Builtin;
using dlp_internal::Builtins;
using dlp_internal::DetectorOptions;
using dlp_internal::EscapePointerToken;

}  // namespace

namespace dlp_internal {

std::string EscapePointerToken(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out.push_back(c);
  }
  return out;
}

}  // namespace dlp_internal

DlpScanner::DlpScanner() = default;
DlpScanner::~DlpScanner() = default;

std::unique_ptr<const DlpScanner> DlpScanner::Create(const DlpConfig& config,
                                                     std::string* error) {
  std::unique_ptr<DlpScanner> s(new DlpScanner());
  s->config_ = config;
  // Built-in patterns are ASCII: matching bytes (Latin-1) is the same and keeps the DFA small.
  RE2::Options latin1 = DetectorOptions();
  latin1.set_encoding(RE2::Options::EncodingLatin1);
  RE2::Options utf8 = DetectorOptions();
  std::set<std::string> seen;
  for (const auto& name : config.detectors) {
    auto it = std::find_if(Builtins().begin(), Builtins().end(),
                           [&](const Builtin& b) { return name == b.name; });
    if (it == Builtins().end()) {
      *error = "unknown dlp detector `" + name + "`";
      return nullptr;
    }
    if (!seen.insert(name).second) continue;
    auto d = std::make_unique<Detector>();
    d->name = name;
    d->re = std::make_unique<RE2>(it->pattern, latin1);
    if (!d->re->ok()) {  // a bug in the table; tests compile every built-in
      *error = "dlp detector `" + name + "`: " + d->re->error();
      return nullptr;
    }
    d->validate = it->validate;
    d->retry_inside = it->retry_inside;
    s->detectors_.push_back(std::move(d));
    if (s->set_ == nullptr) s->set_ = std::make_unique<RE2::Set>(latin1, RE2::UNANCHORED);
    for (const char* t : it->triggers) {
      std::string err;
      if (s->set_->Add(t, &err) < 0) {
        *error = "dlp detector `" + name + "`: invalid trigger: " + err;
        return nullptr;
      }
      s->set_owner_.push_back(s->detectors_.size() - 1);
    }
  }
  s->num_builtin_ = s->detectors_.size();
  for (const auto& c : config.custom) {
    if (IsReservedDlpName(c.name) || !seen.insert(c.name).second) {
      *error = "dlp custom pattern `" + c.name + "`: the name is taken";
      return nullptr;
    }
    auto d = std::make_unique<Detector>();
    d->name = c.name;
    d->re = std::make_unique<RE2>(c.pattern, utf8);
    if (!d->re->ok()) {
      *error = "dlp custom pattern `" + c.name + "`: invalid regex: " + d->re->error();
      return nullptr;
    }
    if (RE2::FullMatch("", *d->re)) {
      *error = "dlp custom pattern `" + c.name + "` matches the empty string";
      return nullptr;
    }
    s->detectors_.push_back(std::move(d));
    if (s->custom_set_ == nullptr)
      s->custom_set_ = std::make_unique<RE2::Set>(utf8, RE2::UNANCHORED);
    std::string err;
    if (s->custom_set_->Add(c.pattern, &err) < 0) {
      *error = "dlp custom pattern `" + c.name + "`: invalid regex: " + err;
      return nullptr;
    }
  }
  if ((s->set_ != nullptr && !s->set_->Compile()) ||
      (s->custom_set_ != nullptr && !s->custom_set_->Compile())) {
    *error = "dlp: the detector set is too large to compile";
    return nullptr;
  }
  return s;
}

bool DlpScanner::AcceptMatch(size_t di, std::string_view buf, size_t ss, size_t se, size_t at,
                             std::vector<Hit>* hits, bool* truncated, size_t* next) const {
  const Detector& d = *detectors_[di];
  const int ngroups = d.re->NumberOfCapturingGroups();
  std::vector<re2::StringPiece> sub(static_cast<size_t>(ngroups) + 1);
  // The string alone is the context: \b, ^ and $ see its ends, and no match leaves it.
  re2::StringPiece text(buf.data() + ss, se - ss);
  if (!d.re->Match(text, at - ss, se - ss, RE2::ANCHOR_START, sub.data(), ngroups + 1))
    return false;
  size_t me = at + sub[0].size();
  size_t b = at, e = me;
  for (int g = 1; g <= ngroups; ++g) {
    const re2::StringPiece& sp = sub[static_cast<size_t>(g)];
    if (sp.data() != nullptr) {
      b = static_cast<size_t>(sp.data() - buf.data());
      e = b + sp.size();
      break;
    }
  }
  *next = d.retry_inside ? at + 1 : std::max(me, at + 1);
  // Validators see the whole buffer: a neighbour outside the string is a NUL separator.
  if (e <= b || (d.validate && !d.validate(buf, &b, &e))) return false;
  if (hits->size() >= kMaxFindings) {
    *truncated = true;
    return false;
  }
  hits->push_back({di, b, e});
  *next = e;  // a narrowed span (e.g. one card of several) leaves the rest to rescan
  return true;
}

void DlpScanner::ScanBuffer(std::string_view buf, const std::vector<size_t>& seg_starts,
                            std::vector<Hit>* hits, bool* truncated) const {
  if (detectors_.empty() || buf.empty()) return;
  const size_t n = buf.size();
  re2::StringPiece text(buf.data(), n);
  auto seg_of = [&](size_t p) {  // [start, end) of the string holding offset p
    auto it = std::upper_bound(seg_starts.begin(), seg_starts.end(), p);
    size_t start = *(it - 1);
    size_t end = it == seg_starts.end() ? n : *it - 1;
    return std::pair(start, end);
  };
  // 1. Built-in triggers, chunk by chunk: which detectors to run where. A window overlaps
  //    the next chunk by kTriggerSpan, the longest a trigger can be.
  std::vector<std::vector<std::pair<size_t, size_t>>> ranges(detectors_.size());
  auto add_range = [&](size_t di, size_t cs, size_t ce) {
    auto& r = ranges[di];
    if (!r.empty() && r.back().second == cs) {
      r.back().second = ce;
    } else {
      r.emplace_back(cs, ce);
    }
  };
  std::vector<int> matched;
  if (set_ != nullptr) {
    for (size_t cs = 0; cs < n; cs += kChunk) {
      size_t ce = std::min(n, cs + kChunk), we = std::min(n, ce + kTriggerSpan);
      matched.clear();
      RE2::Set::ErrorInfo info{};
      if (set_->Match(re2::StringPiece(buf.data() + cs, we - cs), &matched, &info)) {
        for (int m : matched) {
          size_t di = set_owner_[static_cast<size_t>(m)];
          if (ranges[di].empty() || ranges[di].back().second != ce) add_range(di, cs, ce);
        }
      } else if (info.kind != RE2::Set::kNoError) {
        // The DFA ran out of memory: fail closed by running every built-in detector here.
        for (size_t di = 0; di < num_builtin_; ++di) add_range(di, cs, ce);
      }
    }
  }
  // 2. Precise matches near each triggered range. A match may start up to kLookBehind before
  //    the range (the trigger can sit inside it, as for email). The search window ends
  //    kLookAhead past the range: enough for every detector to match *some* prefix of a
  //    match that starts in the range (bounded detectors fit whole; JWT, PEM, bearer and
  //    Slack patterns match on a prefix). The full match is then taken anchored at its start
  //    within its string, so a long JWT or key block is found whole, in linear time.
  for (size_t di = 0; di < num_builtin_; ++di) {
    const Detector& d = *detectors_[di];
    size_t pos = 0;
    for (const auto& [rs, re] : ranges[di]) {
      pos = std::max(pos, rs > kLookBehind ? rs - kLookBehind : 0);
      while (pos < re) {
        re2::StringPiece m0;
        if (!d.re->Match(text, pos, std::min(n, re + kLookAhead), RE2::UNANCHORED, &m0, 1))
          break;
        size_t at = static_cast<size_t>(m0.data() - buf.data());
        auto [ss, se] = seg_of(at);
        size_t next = at + 1;
        AcceptMatch(di, buf, ss, se, at, hits, truncated, &next);
        if (*truncated) return;
        pos = std::max(next, at + 1);
      }
    }
  }
  // 3. Custom patterns: one set over the whole buffer, then string by string (their own
  //    regexes, UTF-8, with each string as the context).
  if (custom_set_ == nullptr) return;
  matched.clear();
  RE2::Set::ErrorInfo info{};
  std::vector<bool> run(detectors_.size(), false);
  if (custom_set_->Match(text, &matched, &info)) {
    for (int m : matched) run[num_builtin_ + static_cast<size_t>(m)] = true;
  } else if (info.kind != RE2::Set::kNoError) {
    std::fill(run.begin(), run.end(), true);
  }
  for (size_t di = num_builtin_; di < detectors_.size(); ++di) {
    if (!run[di]) continue;
    const Detector& d = *detectors_[di];
    for (size_t si = 0; si < seg_starts.size(); ++si) {
      size_t ss = seg_starts[si];
      size_t se = si + 1 < seg_starts.size() ? seg_starts[si + 1] - 1 : n;
      std::string_view seg = buf.substr(ss, se - ss);
      re2::StringPiece st(seg.data(), seg.size()), m0;
      size_t pos = 0;
      while (pos < seg.size() &&
             d.re->Match(st, pos, seg.size(), RE2::UNANCHORED, &m0, 1)) {
        size_t at = static_cast<size_t>(m0.data() - seg.data());
        size_t next = ss + at + 1;
        AcceptMatch(di, buf, ss, se, ss + at, hits, truncated, &next);
        if (*truncated) return;
        pos = std::max(next - ss, at + 1);
      }
    }
  }
}

DlpReport DlpScanner::Scan(std::string_view text) const {
  DlpReport r;
  if (text.size() > config_.max_scan_bytes) {
    text = text.substr(0, config_.max_scan_bytes);
    r.truncated = true;
  }
  r.scanned_bytes = text.size();
  std::vector<Hit> hits;
  ScanBuffer(text, {0}, &hits, &r.truncated);
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.begin, a.detector) < std::tie(b.begin, b.detector);
  });
  for (const Hit& h : hits)
    r.findings.push_back({detectors_[h.detector]->name, "", h.begin, h.end - h.begin});
  return r;
}

DlpReport DlpScanner::ScanJson(const json& doc) const { return ScanJsonImpl(doc, false); }
DlpReport DlpScanner::ScanToolResult(const json& result) const {
  return ScanJsonImpl(result, true);
}

DlpReport DlpScanner::ScanJsonImpl(const json& doc, bool tool_result) const {
  DlpReport r;
  // Where each string came from: a node per visited value, its parent and its token.
  struct Node {
    int parent;
    const std::string* key;  // object member name, or null for an array element / the root
    size_t index;
  };
  struct Seg {
    int node;
    bool in_key, in_number;
  };
  std::vector<Node> nodes{{-1, nullptr, 0}};
  nodes.reserve(1024);
  std::vector<Seg> segs;
  std::vector<size_t> starts;
  std::string buf;
  std::vector<const json*> skip;  // base64 payloads of tool results
  if (tool_result && doc.is_object() && doc.contains("content") && doc["content"].is_array()) {
    for (const auto& item : doc["content"]) {
      if (!item.is_object()) continue;
      if (item.contains("data")) skip.push_back(&item["data"]);
      if (item.contains("resource") && item["resource"].is_object() &&
          item["resource"].contains("blob"))
        skip.push_back(&item["resource"]["blob"]);
    }
  }
  bool full = false;
  // No built-in finding is shorter than 6 bytes (a@b.co); custom patterns may be.
  const size_t min_len = detectors_.size() > num_builtin_ ? 1 : 6;
  auto add = [&](std::string_view s, int node, bool in_key, bool in_number) {
    if (full || s.size() < min_len) return;
    size_t room = config_.max_scan_bytes > buf.size() ? config_.max_scan_bytes - buf.size() : 0;
    if (s.size() > room) {
      s = s.substr(0, room);
      full = true;
      r.truncated = true;
    }
    starts.push_back(buf.size());
    segs.push_back({node, in_key, in_number});
    buf.append(s);
    buf.push_back('\0');
  };
  std::vector<std::pair<const json*, int>> stack{{&doc, 0}};
  while (!stack.empty() && !full) {
    auto [v, id] = stack.back();
    stack.pop_back();
    if (nodes[static_cast<size_t>(id)].key != nullptr)
      add(*nodes[static_cast<size_t>(id)].key, id, true, false);
    if (!skip.empty() && std::find(skip.begin(), skip.end(), v) != skip.end()) continue;
    if (v->is_string()) {
      add(v->get_ref<const std::string&>(), id, false, false);
    } else if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u >= 1000000000ULL) add(std::to_string(u), id, false, true);
    } else if (v->is_number_integer()) {
      int64_t i = v->get<int64_t>();
      if (i >= 1000000000LL || i <= -1000000000LL) add(std::to_string(i), id, false, true);
    } else if (v->is_object()) {
      size_t first = stack.size();
      for (auto it = v->begin(); it != v->end(); ++it) {
        nodes.push_back({id, &it.key(), 0});
        stack.emplace_back(&it.value(), static_cast<int>(nodes.size() - 1));
      }
      std::reverse(stack.begin() + static_cast<long>(first), stack.end());
    } else if (v->is_array()) {
      size_t first = stack.size();
      for (size_t i = 0; i < v->size(); ++i) {
        nodes.push_back({id, nullptr, i});
        stack.emplace_back(&(*v)[i], static_cast<int>(nodes.size() - 1));
      }
      std::reverse(stack.begin() + static_cast<long>(first), stack.end());
    }
  }
  if (!buf.empty()) buf.pop_back();  // no trailing separator
  r.scanned_bytes = buf.size();
  std::vector<Hit> hits;
  ScanBuffer(buf, starts, &hits, &r.truncated);
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.begin, a.detector) < std::tie(b.begin, b.detector);
  });
  auto path_of = [&](int id) {
    std::vector<std::string> tokens;
    for (int n = id; n > 0; n = nodes[static_cast<size_t>(n)].parent) {
      const Node& node = nodes[static_cast<size_t>(n)];
      tokens.push_back(node.key ? EscapePointerToken(*node.key) : std::to_string(node.index));
    }
    std::string p;
    for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) p += "/" + *it;
    return p;
  };
  for (const Hit& h : hits) {
    size_t si = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), h.begin) -
                                    starts.begin()) - 1;
    const Seg& seg = segs[si];
    r.findings.push_back({detectors_[h.detector]->name, path_of(seg.node), h.begin - starts[si],
                          h.end - h.begin, seg.in_key, seg.in_number});
  }
  return r;
}

std::vector<std::string> DlpScanner::Classes(const DlpReport& report) {
  std::set<std::string> s;
  for (const auto& f : report.findings) s.insert(f.cls);
  if (report.truncated) s.insert("truncated");
  return {s.begin(), s.end()};
}

json DlpScanner::FindingsJson(const DlpReport& report, size_t max_items) {
  json out = {{"classes", Classes(report)}, {"truncated", report.truncated}};
  json items = json::array();
  for (size_t i = 0; i < report.findings.size() && i < max_items; ++i) {
    const DlpFinding& f = report.findings[i];
    json item = {{"class", f.cls}, {"path", f.path}, {"offset", f.offset}, {"length", f.length}};
    if (f.in_key) item["in_key"] = true;
    items.push_back(std::move(item));
  }
  out["findings"] = std::move(items);
  if (report.findings.size() > max_items)
    out["findings_omitted"] = report.findings.size() - max_items;
  return out;
}

}  // namespace writ::gateway
