// fmt_cmd.cc -- `writ fmt [--check] [--diff] PATH... | -`
//
// Rewrites policy files in their canonical form (compiler/fmt.h, docs/formatter.md). A file
// with syntax errors is never rewritten; neither is a file whose formatted text would not
// parse back to the same AST with the same comments (an internal error, exit 2).
// Exit: 0 ok (with --check: nothing to change), 1 syntax errors or (with --check) files that
// would change, 2 usage, I/O or internal error.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/command.h"
#include "compiler/fmt.h"
#include "compiler/load.h"

namespace writ::cli {
namespace {

struct FmtOptions {
  std::vector<std::string> paths;
  bool check = false;
  bool diff = false;
};

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b < s.size()) {
    size_t e = s.find('\n', b);
    if (e == std::string::npos) e = s.size();
    out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// A unified diff with a single hunk covering everything between the common first and last
// lines: enough to review what `writ fmt` would do, and valid input for `patch`.
std::string UnifiedDiff(const std::string& path, const std::string& a, const std::string& b) {
  std::vector<std::string> x = SplitLines(a), y = SplitLines(b);
  size_t pre = 0;
  while (pre < x.size() && pre < y.size() && x[pre] == y[pre]) ++pre;
  size_t suf = 0;
  while (suf + pre < x.size() && suf + pre < y.size() &&
         x[x.size() - 1 - suf] == y[y.size() - 1 - suf]) {
    ++suf;
  }
  size_t ctx_before = std::min<size_t>(pre, 3), ctx_after = std::min<size_t>(suf, 3);
  size_t xs = pre - ctx_before, xe = x.size() - suf + ctx_after;
  size_t ys = pre - ctx_before, ye = y.size() - suf + ctx_after;
  std::ostringstream out;
  out << "--- " << path << "\n+++ " << path << " (formatted)\n";
  out << "@@ -" << (xe > xs ? xs + 1 : xs) << "," << xe - xs << " +" << (ye > ys ? ys + 1 : ys)
      << "," << ye - ys << " @@\n";
  for (size_t i = xs; i < pre; ++i) out << " " << x[i] << "\n";
  for (size_t i = pre; i < x.size() - suf; ++i) out << "-" << x[i] << "\n";
  for (size_t i = pre; i < y.size() - suf; ++i) out << "+" << y[i] << "\n";
  for (size_t i = x.size() - suf; i < xe; ++i) out << " " << x[i] << "\n";
  return out.str();
}

bool WriteFileAtomically(const std::string& path, const std::string& text, std::string* error) {
  std::string tmp = path + ".writ-fmt.tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
      *error = "cannot write " + tmp;
      std::remove(tmp.c_str());
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    *error = "cannot replace " + path + ": " + ec.message();
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

// Formats one text. Returns the exit code for it; sets *changed and *formatted.
int FormatOne(const std::string& path, const std::string& text, bool* changed,
              std::string* formatted) {
  SourceMap sources;
  Diagnostics diags;
  FormatResult r = FormatSource(path, text, &sources, &diags);
  switch (r.status) {
    case FormatStatus::kParseError:
      diags.Sort();
      std::cerr << Render(sources, diags.items(), DiagnosticFormat::kText);
      std::cerr << "writ fmt: " << path << " has syntax errors; left unchanged\n";
      return kExitFailure;
    case FormatStatus::kInternal:
      std::cerr << "writ fmt: internal error: " << path << ": " << r.detail
                << "\nthe file was left unchanged; please report this bug with the file\n";
      return kExitUsage;
    case FormatStatus::kOk: break;
  }
  *changed = r.text != text;
  *formatted = std::move(r.text);
  return kExitOk;
}

int RunFmt(const FmtOptions& o) {
  bool stdin_mode = std::find(o.paths.begin(), o.paths.end(), "-") != o.paths.end();
  if (stdin_mode) {
    if (o.paths.size() != 1) {
      std::cerr << "error: `-` (standard input) cannot be combined with other paths\n";
      return kExitUsage;
    }
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    bool changed = false;
    std::string formatted;
    int rc = FormatOne("<stdin>", text, &changed, &formatted);
    if (rc != kExitOk) return rc;
    if (o.diff && changed) std::cout << UnifiedDiff("<stdin>", text, formatted);
    if (o.check) {
      if (changed && !o.diff) std::cout << "<stdin>\n";
      return changed ? kExitFailure : kExitOk;
    }
    if (!o.diff) std::cout << formatted;
    return kExitOk;
  }

  std::vector<std::string> files;
  std::string error;
  if (!FindPolicyFiles(o.paths, &files, &error)) {
    std::cerr << "error: " << error << "\n";
    return kExitUsage;
  }
  int rc = kExitOk;
  size_t changed_count = 0;
  for (const std::string& f : files) {
    std::string text;
    if (!ReadFile(f, &text, &error)) {
      std::cerr << "error: " << error << "\n";
      rc = kExitUsage;
      continue;
    }
    bool changed = false;
    std::string formatted;
    int one = FormatOne(f, text, &changed, &formatted);
    rc = std::max(rc, one);
    if (one != kExitOk || !changed) continue;
    ++changed_count;
    if (o.diff) std::cout << UnifiedDiff(f, text, formatted);
    if (o.check) {
      if (!o.diff) std::cout << f << "\n";
      rc = std::max(rc, kExitFailure);
      continue;
    }
    if (o.diff) continue;
    if (!WriteFileAtomically(f, formatted, &error)) {
      std::cerr << "error: " << error << "\n";
      rc = kExitUsage;
    }
  }
  if (o.check && changed_count > 0) {
    std::cerr << "writ fmt: " << changed_count << " of " << files.size() << " file(s) "
              << "would be reformatted; run `writ fmt` on them\n";
  }
  return rc;
}

CommandRegistrar reg(20, [](CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<FmtOptions>();
  CLI::App* cmd = app.add_subcommand(
      "fmt", "Rewrite policy files in the one canonical Writ style (comments are kept).");
  cmd->footer(
      "Files with syntax errors are reported and never rewritten. Before writing, the output\n"
      "is parsed again and must give the same policies and the same comments.\n"
      "Exit codes: 0 ok, 1 syntax errors or (--check) files that would change, 2 usage, I/O\n"
      "or internal error.\n"
      "Examples:\n"
      "  writ fmt policies/                 rewrite every *.writ under policies/ in place\n"
      "  writ fmt --check policies/         CI: list files that are not formatted, exit 1\n"
      "  writ fmt --diff policies/a.writ    show what would change, write nothing\n"
      "  writ fmt - < a.writ > b.writ       format standard input to standard output\n"
      "Style: docs/formatter.md");
  cmd->add_option("paths", opts->paths,
                  "Policy files or directories (searched recursively for *.writ), or - for "
                  "standard input")
      ->required();
  cmd->add_flag("--check", opts->check,
                "Write nothing; list files that would change and exit 1 if there are any");
  cmd->add_flag("--diff", opts->diff, "Write nothing; print a unified diff of what would change");
  cmd->callback([opts, exit_code] { *exit_code = RunFmt(*opts); });
});

}  // namespace
}  // namespace writ::cli
