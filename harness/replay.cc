// replay.cc -- see replay.h.
#include "harness/replay.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

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
    ++g.tools[Uid(r.records[i].request, "resource")];
    ++g.principals[Uid(r.records[i].request, "principal")];
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
    changes.push_back({{"trace", rec.file},
                       {"line", rec.line},
                       {"principal", Uid(rec.request, "principal")},
                       {"action", rec.request.value("action", Json("?"))},
                       {"resource", Uid(rec.request, "resource")},
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
    o << "| " << Cell(rec.file + ":" + std::to_string(rec.line)) << " | "
      << Cell(Uid(rec.request, "principal")) << " | " << Cell(Uid(rec.request, "resource")) << " | "
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
    std::string what = Uid(rec.request, "principal") + " " +
                       rec.request.value("action", std::string("?")) + " " +
                       Uid(rec.request, "resource") + ": " + VerdictText(r.before[i]) + " -> " +
                       VerdictText(r.after[i]);
    o << "  " << rec.file << ":" << rec.line << ": " << what << "\n";
    if (github)
      o << "::warning file=" << rec.file << ",line=" << rec.line
        << ",title=writ replay::" << GithubEscape("decision changes: " + what) << "\n";
  }
  return o.str();
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

bool ReadTrace(const std::string& path, std::vector<ReplayRecord>* out, std::string* error,
               int jobs) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  // Lines are read in batches and parsed in parallel; the checks that depend on order (the
  // header first) and the first error (lowest line) are then taken in file order.
  constexpr size_t kBatch = 8192;
  struct Parsed {
    gateway::TraceLineKind kind = gateway::TraceLineKind::kMessage;
    Json json;
    std::string why;
    bool ok = false;
  };
  std::vector<std::string> lines;
  std::vector<Parsed> parsed;
  size_t n = 0;
  bool header = false;
  for (;;) {
    lines.clear();
    std::string line;
    while (lines.size() < kBatch && std::getline(in, line)) lines.push_back(std::move(line));
    if (lines.empty()) break;
    parsed.assign(lines.size(), Parsed{});
    ParallelFor(lines.size(), jobs, [&](size_t i) {
      Parsed& p = parsed[i];
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
      r.file = path;
      r.line = n;
      r.recorded.decision = p.json["decision"]["decision"].get<std::string>();
      r.recorded.determining = SortedStrings(p.json["decision"]["determining"]);
      r.request = std::move(p.json["request"]);
      out->push_back(std::move(r));
    }
  }
  if (in.bad()) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
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

ReplayResult Replay(std::vector<ReplayRecord> records, const runtime::Bundle& bundle,
                    const runtime::Bundle* baseline, std::string baseline_label, int jobs) {
  ReplayResult r;
  r.records = std::move(records);
  r.baseline_label = std::move(baseline_label);
  r.after.resize(r.records.size());
  r.before.resize(r.records.size());
  ParallelFor(r.records.size(), jobs, [&](size_t i) {
    const ReplayRecord& rec = r.records[i];
    r.after[i] = Decide(bundle, rec.request);
    r.before[i] = baseline != nullptr ? Decide(*baseline, rec.request) : rec.recorded;
  });
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
