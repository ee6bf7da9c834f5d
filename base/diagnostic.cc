// diagnostic.cc -- sorting and rendering of diagnostics.
#include "base/diagnostic.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

namespace writ {

bool Diagnostics::has_errors() const { return error_count() > 0; }

size_t Diagnostics::error_count() const {
  return std::count_if(items_.begin(), items_.end(),
                       [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void Diagnostics::Sort() {
  auto key = [](const Diagnostic& d) {
    return std::tie(d.span.file, d.span.begin, d.span.end, d.code, d.message);
  };
  std::stable_sort(items_.begin(), items_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  items_.erase(std::unique(items_.begin(), items_.end(),
                           [&](const Diagnostic& a, const Diagnostic& b) {
                             return key(a) == key(b) && a.help == b.help;
                           }),
               items_.end());
}

namespace {

const char* SeverityName(Severity s) { return s == Severity::kError ? "error" : "warning"; }

void RenderText(const SourceMap& sources, const Diagnostic& d, std::ostringstream& out) {
  const bool have_file = d.span.file < sources.files().size();
  if (!have_file) {
    out << SeverityName(d.severity) << "[" << d.code << "]: " << d.message << "\n";
    if (!d.help.empty()) out << "  help: " << d.help << "\n";
    return;
  }
  const SourceFile& f = sources.file(d.span.file);
  LineCol at = f.Locate(d.span.begin);
  out << f.path() << ":" << at.line << ":" << at.col << ": " << SeverityName(d.severity) << "["
      << d.code << "]: " << d.message << "\n";
  std::string_view line = f.Line(at.line);
  std::string num = std::to_string(at.line);
  std::string pad(num.size(), ' ');
  out << " " << num << " | " << line << "\n";
  // Underline from the start column to the span's end, clipped to this line.
  out << " " << pad << " | ";
  size_t start = at.col - 1;
  for (size_t i = 0; i < start && i < line.size(); ++i) out << (line[i] == '\t' ? '\t' : ' ');
  size_t width = d.span.end > d.span.begin ? d.span.end - d.span.begin : 1;
  if (start + width > line.size()) width = line.size() > start ? line.size() - start : 1;
  out << std::string(width, '^') << "\n";
  if (!d.help.empty()) out << " " << pad << " = help: " << d.help << "\n";
}

// GitHub workflow commands: escape data and property values.
std::string GithubEscape(std::string_view s, bool property) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '%': out += "%25"; break;
      case '\r': out += "%0D"; break;
      case '\n': out += "%0A"; break;
      case ':': out += property ? "%3A" : ":"; break;
      case ',': out += property ? "%2C" : ","; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string Render(const SourceMap& sources, const std::vector<Diagnostic>& diags,
                   DiagnosticFormat format) {
  std::ostringstream out;
  if (format == DiagnosticFormat::kJson) {
    nlohmann::json arr = nlohmann::json::array();
    for (const Diagnostic& d : diags) {
      nlohmann::json j{{"severity", SeverityName(d.severity)},
                       {"code", d.code},
                       {"message", d.message},
                       {"help", d.help}};
      if (d.span.file < sources.files().size()) {
        const SourceFile& f = sources.file(d.span.file);
        LineCol b = f.Locate(d.span.begin), e = f.Locate(d.span.end);
        j["file"] = f.path();
        j["line"] = b.line;
        j["column"] = b.col;
        j["end_line"] = e.line;
        j["end_column"] = e.col;
        j["offset"] = d.span.begin;
        j["length"] = d.span.end - d.span.begin;
      }
      arr.push_back(std::move(j));
    }
    out << arr.dump(2) << "\n";
    return out.str();
  }
  for (const Diagnostic& d : diags) {
    if (format == DiagnosticFormat::kText) {
      RenderText(sources, d, out);
      continue;
    }
    out << "::" << SeverityName(d.severity);
    if (d.span.file < sources.files().size()) {
      const SourceFile& f = sources.file(d.span.file);
      LineCol b = f.Locate(d.span.begin), e = f.Locate(d.span.end);
      out << " file=" << GithubEscape(f.path(), true) << ",line=" << b.line << ",col=" << b.col
          << ",endLine=" << e.line << ",endColumn=" << e.col << ",";
    } else {
      out << " ";
    }
    out << "title=" << GithubEscape("writ " + d.code, true) << "::"
        << GithubEscape(d.message + (d.help.empty() ? "" : "\nhelp: " + d.help), false) << "\n";
  }
  return out.str();
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  size_t limit = std::max<size_t>(1, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

}  // namespace writ
