// report.cc -- see report.h.
#include "harness/report.h"

#include <cstdio>
#include <set>
#include <sstream>

namespace writ::harness {
namespace {

using Json = nlohmann::json;

std::string Where(const TestResult& r) { return r.file->path + ":" + std::to_string(r.test->line); }

std::string Indent(const std::string& text, const std::string& pad) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out += pad + line + "\n";
  return out;
}

std::string Percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", p);
  return buf;
}

size_t Exercised(const TestRun& run) {
  size_t n = 0;
  for (const auto& s : run.coverage) n += s.hits > 0;
  return n;
}

std::string CoverageText(const TestRun& run, bool github) {
  std::ostringstream o;
  size_t w_loc = 0, w_id = 0;
  for (const auto& s : run.coverage) {
    w_loc = std::max(
        w_loc, s.file.size() + std::to_string(s.line).size() + std::to_string(s.col).size() + 2);
    w_id = std::max(w_id, s.id.size());
  }
  o << "coverage:\n";
  for (const auto& s : run.coverage) {
    std::string loc = s.file + ":" + std::to_string(s.line) + ":" + std::to_string(s.col);
    loc.resize(w_loc + 2, ' ');
    std::string id = s.id;
    id.resize(w_id + 2, ' ');
    std::string eff = s.effect;
    eff.resize(8, ' ');
    o << "  " << loc << id << eff << s.hits << "\n";
  }
  const size_t hit = Exercised(run);
  o << "not exercised by any test (" << run.coverage.size() - hit << "):\n";
  for (const auto& s : run.coverage) {
    if (s.hits > 0) continue;
    o << "  " << s.file << ":" << s.line << ":" << s.col << " " << s.id << "\n";
    if (github)
      o << "::warning file=" << s.file << ",line=" << s.line << ",col=" << s.col
        << ",title=writ test coverage::"
        << GithubEscape("statement `" + s.id + "` is not exercised by any test") << "\n";
  }
  o << "coverage: " << hit << " of " << run.coverage.size() << " statements ("
    << Percent(run.CoveragePercent()) << ")\n";
  return o.str();
}

}  // namespace

std::string GithubEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '%')
      out += "%25";
    else if (ch == '\r')
      out += "%0D";
    else if (ch == '\n')
      out += "%0A";
    else
      out.push_back(ch);
  }
  return out;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 forbids most control characters even escaped.
        if (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r')
          out += "?";
        else
          out.push_back(static_cast<char>(ch));
    }
  }
  return out;
}

std::string RenderTestRun(const TestRun& run, const ReportOptions& opts) {
  if (opts.format == ReportFormat::kJson) {
    Json results = Json::array();
    for (const auto& r : run.results) {
      const Expectation& x = r.test->expect;
      Json expected = {{"decision", x.decision}};
      if (x.determining) expected["determining"] = *x.determining;
      if (x.obligations_exact)
        expected["exact_obligations"] = x.obligations;
      else if (!x.obligations.empty())
        expected["obligations"] = x.obligations;
      if (!x.absent_obligations.empty()) expected["absent_obligations"] = x.absent_obligations;
      if (x.errors) expected["errors"] = *x.errors;
      if (r.test->is_visibility()) {
        expected = {{"visibility", Json::object()}};
        for (const auto& v : r.test->visibility) expected["visibility"][v.tool] = v.expected;
      }
      Json j = {{"file", r.file->path}, {"line", r.test->line}, {"name", r.test->name},
                {"ok", r.ok},           {"expected", expected}, {"actual", r.actual},
                {"diff", r.diff}};
      if (!r.ok) j["explanation"] = r.explanation;
      results.push_back(std::move(j));
    }
    Json out = {{"passed", run.passed},
                {"failed", run.failed},
                {"files", run.files.size()},
                {"results", results}};
    if (opts.coverage) {
      Json stmts = Json::array();
      for (const auto& s : run.coverage)
        stmts.push_back({{"file", s.file},
                         {"line", s.line},
                         {"col", s.col},
                         {"id", s.id},
                         {"effect", s.effect},
                         {"hits", s.hits}});
      out["coverage"] = {{"statements", stmts},
                         {"exercised", Exercised(run)},
                         {"total", run.coverage.size()},
                         {"percent", run.CoveragePercent()}};
    }
    return out.dump(2) + "\n";
  }
  std::ostringstream o;
  const bool github = opts.format == ReportFormat::kGithub;
  for (const auto& r : run.results) {
    if (r.ok) {
      if (opts.verbose) o << "ok   " << Where(r) << ": " << r.test->name << "\n";
      continue;
    }
    o << "FAIL " << Where(r) << ": " << r.test->name << "\n";
    std::string diff;
    for (const auto& line : r.diff) diff += "  " + line + "\n";
    o << diff;
    if (!r.explanation.empty())
      o << "  explanation of the actual decision:\n" << Indent(r.explanation, "    ");
    if (github)
      o << "::error file=" << r.file->path << ",line=" << r.test->line
        << ",title=writ test::" << GithubEscape(r.test->name + "\n" + diff) << "\n";
  }
  if (opts.coverage) o << CoverageText(run, github);
  o << "writ test: " << run.passed << " passed, " << run.failed << " failed in " << run.files.size()
    << " file(s)\n";
  return o.str();
}

std::string RenderJunit(const TestRun& run) {
  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << "<testsuites name=\"writ test\" tests=\"" << run.results.size() << "\" failures=\""
    << run.failed << "\">\n";
  for (const auto& f : run.files) {
    size_t tests = 0, failures = 0;
    for (const auto& r : run.results) {
      if (r.file != &f) continue;
      ++tests;
      failures += !r.ok;
    }
    o << "  <testsuite name=\"" << XmlEscape(f.path) << "\" tests=\"" << tests << "\" failures=\""
      << failures << "\" errors=\"0\">\n";
    for (const auto& r : run.results) {
      if (r.file != &f) continue;
      o << "    <testcase classname=\"" << XmlEscape(f.path) << "\" name=\""
        << XmlEscape(r.test->name) << "\" file=\"" << XmlEscape(f.path) << "\" line=\""
        << r.test->line << "\"";
      if (r.ok) {
        o << "/>\n";
        continue;
      }
      std::string body;
      for (const auto& line : r.diff) body += line + "\n";
      o << ">\n      <failure message=\"" << XmlEscape(r.diff.empty() ? "" : r.diff[0])
        << "\" type=\"PolicyTestFailure\">" << XmlEscape(body + "\n" + r.explanation)
        << "</failure>\n    </testcase>\n";
    }
    o << "  </testsuite>\n";
  }
  o << "</testsuites>\n";
  return o.str();
}

}  // namespace writ::harness
