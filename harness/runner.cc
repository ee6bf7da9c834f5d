// runner.cc -- see runner.h.
#include "harness/runner.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "base/source.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"

namespace fs = std::filesystem;

namespace writ::harness {
namespace {

using Json = nlohmann::json;

// "a, b" of a sorted id list, in brackets.
std::string IdList(const std::vector<std::string>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + ids[i];
  return s + "]";
}

std::vector<std::string> Strings(const Json& a) {
  std::vector<std::string> v;
  if (a.is_array())
    for (const auto& e : a)
      if (e.is_string()) v.push_back(e.get<std::string>());
  std::sort(v.begin(), v.end());
  return v;
}

// Appends the lines of an exact id-list comparison to *diff.
void CompareIds(const char* label, const std::vector<std::string>& expected,
                const std::vector<std::string>& actual, std::vector<std::string>* diff) {
  if (expected == actual) return;
  std::string head = std::string(label) + ":";
  head.resize(std::max<size_t>(head.size() + 1, 13), ' ');
  diff->push_back(head + "expected " + IdList(expected) + ", got " + IdList(actual));
  std::string pad(13, ' ');
  for (const auto& e : expected)
    if (!std::binary_search(actual.begin(), actual.end(), e)) diff->push_back(pad + "- " + e);
  for (const auto& a : actual)
    if (!std::binary_search(expected.begin(), expected.end(), a)) diff->push_back(pad + "+ " + a);
}

const char* EffectWord(uint8_t e) { return e == 0 ? "permit" : e == 1 ? "forbid" : "rule"; }

// Pairs expected obligation patterns with distinct actual obligations (augmenting paths;
// the lists are short). Returns the patterns left unpaired and, in *unpaired_actual, the
// actual obligations no pattern took.
std::vector<size_t> MatchOneToOne(const std::vector<Json>& expected, const Json& actual,
                                  std::vector<size_t>* unpaired_actual) {
  const size_t m = actual.size();
  std::vector<int> owner(m, -1);  // actual index -> expected index
  std::function<bool(size_t, std::vector<bool>&)> augment = [&](size_t e, std::vector<bool>& seen) {
    for (size_t a = 0; a < m; ++a) {
      if (seen[a] || !ObligationMatches(expected[e], actual[a])) continue;
      seen[a] = true;
      if (owner[a] < 0 || augment(static_cast<size_t>(owner[a]), seen)) {
        owner[a] = static_cast<int>(e);
        return true;
      }
    }
    return false;
  };
  std::vector<size_t> missing;
  for (size_t e = 0; e < expected.size(); ++e) {
    std::vector<bool> seen(m, false);
    if (!augment(e, seen)) missing.push_back(e);
  }
  for (size_t a = 0; a < m; ++a)
    if (owner[a] < 0) unpaired_actual->push_back(a);
  return missing;
}

// `obligations:` (each pattern matches some obligation), `exact_obligations:` (one to one,
// nothing else) and `absent_obligations:` (no obligation matches).
void CompareObligations(const Expectation& x, const Json& actual, std::vector<std::string>* diff) {
  const Json list = actual.is_array() ? actual : Json::array();
  const size_t before = diff->size();
  if (x.obligations_exact) {
    std::vector<size_t> extra;
    for (size_t e : MatchOneToOne(x.obligations, list, &extra))
      diff->push_back("obligations: missing " + x.obligations[e].dump());
    for (size_t a : extra) diff->push_back("obligations: unexpected " + list[a].dump());
  } else {
    for (const auto& ob : x.obligations) {
      bool found = false;
      for (const auto& a : list) found |= ObligationMatches(ob, a);
      if (!found) diff->push_back("obligations: missing " + ob.dump());
    }
  }
  for (const auto& ob : x.absent_obligations)
    for (const auto& a : list)
      if (ObligationMatches(ob, a))
        diff->push_back("obligations: present, expected absent: " + a.dump() + " (matches " +
                        ob.dump() + ")");
  if (diff->size() != before) diff->push_back("             actual: " + list.dump());
}

// A `visibility:` test: each tool's list-time visibility (args unknown) against its class.
void RunVisibility(const runtime::Bundle& b, const TestCase& t, TestResult* r) {
  r->actual = {{"visibility", Json::object()}};
  for (const ToolVisibility& v : t.visibility) {
    runtime::PreparedRequest req;
    std::string error;
    if (!runtime::PrepareRequest(b, v.request, &req, &error)) {
      r->diff.push_back("visibility:  " + v.tool + ": rejected before any decision: " + error);
      continue;
    }
    const runtime::Visibility got = runtime::ListVisibility(b, req);
    const std::string cls = got == runtime::Visibility::kAllow  ? "visible"
                            : got == runtime::Visibility::kDeny ? "hidden"
                                                                : "depends_on_args";
    r->actual["visibility"][v.tool] = cls;
    if (cls != v.expected) {
      r->diff.push_back("visibility:  " + v.tool + ": expected " + v.expected + ", got " + cls);
      if (r->explanation.empty())
        r->explanation = "(a call of " + v.tool +
                         " without arguments; tools/list decides with them unknown)\n" +
                         runtime::Explain(b, req);
    }
  }
  r->ok = r->diff.empty();
}

}  // namespace

std::shared_ptr<const runtime::Bundle> LoadPolicySet(const std::vector<std::string>& paths,
                                                     const std::string& schema,
                                                     DiagnosticFormat format,
                                                     std::string* rendered) {
  std::string bytes, error;
  std::error_code ec;
  if (paths.size() == 1 && fs::is_regular_file(paths[0], ec) &&
      fs::path(paths[0]).extension() != ".writ") {
    if (!ReadFile(paths[0], &bytes, &error)) {
      *rendered = "error: " + error + "\n";
      return nullptr;
    }
    auto b = runtime::Bundle::Load(bytes, &error);
    if (b == nullptr)
      *rendered = "error: " + paths[0] + ": " + error +
                  "\nhelp: give a policy directory, or a bundle from `writ build -o`\n";
    return b;
  }
  FrontEnd fe = RunFrontEnd(paths, schema);
  if (!fe.io_error.empty()) {
    *rendered = "error: " + fe.io_error + "\n";
    return nullptr;
  }
  if (fe.diags.has_errors()) {
    *rendered = Render(fe.sources, fe.diags.items(), format);
    return nullptr;
  }
  if (fe.policies.AllStatements().empty()) {
    std::string list;
    for (const auto& p : paths) list += (list.empty() ? "" : " ") + p;
    *rendered = "error: no policy statements in " + list +
                "\nhelp: point `policies:` (or --policies) at the *.writ files to test\n";
    return nullptr;
  }
  Diagnostics d;
  CompileResult r;
  if (!Compile(fe.sources, fe.policies, CompileOptions{}, &r, &d)) {
    *rendered = Render(fe.sources, d.items(), format);
    return nullptr;
  }
  auto b = runtime::Bundle::Load(r.bytes, &error);
  if (b == nullptr)
    *rendered = "internal error: the compiled bundle does not verify: " + error + "\n";
  return b;
}

std::vector<std::string> DeterminingIds(const runtime::Bundle& b,
                                        const runtime::PreparedRequest& req,
                                        const runtime::Decision& d) {
  thread_local std::vector<uint32_t> stmts;
  runtime::DeterminingStatements(b, req, d, &stmts);
  std::vector<std::string> ids;
  ids.reserve(stmts.size());
  for (uint32_t s : stmts) ids.emplace_back(b.str(b.statements_[s].id));
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

double TestRun::CoveragePercent() const {
  if (coverage.empty()) return 100.0;
  size_t hit = 0;
  for (const auto& s : coverage) hit += s.hits > 0;
  return 100.0 * static_cast<double>(hit) / static_cast<double>(coverage.size());
}

bool RunTests(const std::vector<std::string>& test_files, DiagnosticFormat format, TestRun* run,
              std::string* errors) {
  std::string all_errors;
  run->files.reserve(test_files.size());
  for (const auto& path : test_files) {
    TestFile f;
    std::string e;
    if (!LoadTestFile(path, &f, &e)) all_errors += e;
    run->files.push_back(std::move(f));
  }
  if (!all_errors.empty()) {
    *errors = all_errors;
    return false;
  }
  // One bundle per distinct (policies, schema).
  using Key = std::pair<std::vector<std::string>, std::string>;
  std::map<Key, std::shared_ptr<const runtime::Bundle>> bundles;
  for (const auto& f : run->files) {
    Key k{f.policies, f.schema};
    if (bundles.count(k)) continue;
    std::string rendered;
    auto b = LoadPolicySet(f.policies, f.schema, format, &rendered);
    if (b == nullptr) {
      *errors = rendered;
      return false;
    }
    bundles[k] = b;
  }
  // Coverage keyed by (file, line, col, id): a statement loaded by two sets counts once.
  std::map<std::tuple<std::string, uint32_t, uint32_t, std::string>, StatementCoverage> cov;
  for (const auto& [k, b] : bundles) {
    for (const auto& m : b->statements_) {
      StatementCoverage s{std::string(b->str(m.file)), m.line, m.col, std::string(b->str(m.id)),
                          EffectWord(m.effect),        0};
      cov.emplace(std::make_tuple(s.file, s.line, s.col, s.id), s);
    }
  }
  for (const auto& f : run->files) {
    const runtime::Bundle& b = *bundles[Key{f.policies, f.schema}];
    for (const auto& t : f.tests) {
      TestResult r;
      r.file = &f;
      r.test = &t;
      if (t.is_visibility()) {
        RunVisibility(b, t, &r);
        run->results.push_back(std::move(r));
        continue;
      }
      runtime::PreparedRequest req;
      std::string error;
      if (!runtime::PrepareRequest(b, t.request, &req, &error)) {
        r.diff.push_back("request:     rejected before any decision: " + error);
        run->results.push_back(std::move(r));
        continue;
      }
      runtime::Decision d = runtime::Evaluate(b, req);
      r.actual = runtime::DecisionToJson(b, req, d);
      std::set<uint32_t> matched, errored;
      runtime::MatchStatements(b, req, &matched, &errored);
      for (uint32_t s : matched) {
        const runtime::StatementMeta& m = b.statements_[s];
        auto it = cov.find(
            std::make_tuple(std::string(b.str(m.file)), m.line, m.col, std::string(b.str(m.id))));
        if (it != cov.end()) ++it->second.hits;
      }
      const Expectation& x = t.expect;
      std::string got = r.actual.value("decision", "");
      if (got != x.decision)
        r.diff.push_back("decision:    expected " + x.decision + ", got " + got);
      if (x.determining)
        CompareIds("determining", *x.determining, Strings(r.actual["determining"]), &r.diff);
      CompareObligations(x, r.actual["obligations"], &r.diff);
      if (x.errors) CompareIds("errors", *x.errors, Strings(r.actual["errors"]), &r.diff);
      r.ok = r.diff.empty();
      if (!r.ok) r.explanation = runtime::Explain(b, req);
      run->results.push_back(std::move(r));
    }
  }
  for (const auto& r : run->results) (r.ok ? run->passed : run->failed)++;
  for (auto& [k, s] : cov) run->coverage.push_back(std::move(s));
  return true;
}

}  // namespace writ::harness
