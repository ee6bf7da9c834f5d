// diagnostic.h -- errors about policy text, collected (never thrown) and rendered for people
// (text), machines (json) and CI (GitHub Actions annotations).
//
// Every diagnostic has a stable code (docs/diagnostics.md lists them), a lowercase message,
// the exact span it is about, and a `help:` line telling how to fix it.
#pragma once

#include <string>
#include <vector>

#include "base/source.h"
#include "base/span.h"

namespace writ {

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string code;     // e.g. "E0104"
  Span span;
  std::string message;  // lowercase, no trailing period
  std::string help;     // how to fix it; may be empty only for internal errors
};

// Collects diagnostics from every pass of one run.
class Diagnostics {
 public:
  void Error(std::string code, Span span, std::string message, std::string help) {
    items_.push_back({Severity::kError, std::move(code), span, std::move(message), std::move(help)});
  }
  void Warning(std::string code, Span span, std::string message, std::string help) {
    items_.push_back(
        {Severity::kWarning, std::move(code), span, std::move(message), std::move(help)});
  }
  void Add(Diagnostic d) { items_.push_back(std::move(d)); }
  bool has_errors() const;
  size_t error_count() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  // Orders by file, position, then code, and drops exact duplicates.
  void Sort();

 private:
  std::vector<Diagnostic> items_;
};

enum class DiagnosticFormat { kText, kJson, kGithub };

// Renders sorted diagnostics. Text: `path:line:col: error[CODE]: message`, the source line, a
// caret underline, then `help: ...`.
std::string Render(const SourceMap& sources, const std::vector<Diagnostic>& diags,
                   DiagnosticFormat format);

// Levenshtein distance, for did-you-mean suggestions.
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is close enough to be a plausible typo, else "".
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace writ
