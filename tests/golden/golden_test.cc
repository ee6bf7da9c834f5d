// golden_test.cc -- golden tests for the front end: every fixture under tests/golden/parse/
// is parsed and checked (no schema), and the output is compared with files next to it:
//
//   NAME.writ   one input file            NAME/      a directory: several input files (*.writ,
//                                                    sorted), checked together as one set
//   NAME.diag   the text rendering of the diagnostics, exactly as `writ check` prints them
//               (absent when there are none)
//   NAME.ast    ast::DumpPolicySet of the statements (present only when there are no
//               diagnostics)
//
// Paths in diagnostics are relative to tests/golden/ (e.g. `parse/NAME.writ`) so the files
// do not depend on where the repository is checked out.
//
// WRIT_UPDATE_GOLDEN=1 rewrites the expected files from the current output (and deletes
// stale ones). Review the diff before committing. See tests/README.md.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast_dump.h"
#include "compiler/parse/parser.h"
#include "compiler/typecheck.h"

namespace fs = std::filesystem;

namespace {

const fs::path kGoldenRoot = fs::path(WRIT_SOURCE_DIR) / "tests" / "golden";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool UpdateMode() {
  const char* v = std::getenv("WRIT_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

struct Outputs {
  std::string diag;
  std::string ast;
};

// Runs what `writ check` runs (parse + type check without a schema) on the fixture files.
Outputs RunFixture(const std::vector<fs::path>& files) {
  writ::SourceMap sources;
  for (const fs::path& f : files) {
    sources.Add(fs::relative(f, kGoldenRoot).generic_string(), ReadAll(f));
  }
  writ::Diagnostics diags;
  writ::ast::PolicySet set = writ::ParseAll(sources, &diags);
  writ::TypeCheck(set, nullptr, &diags);
  diags.Sort();
  Outputs out;
  out.diag = writ::Render(sources, diags.items(), writ::DiagnosticFormat::kText);
  if (diags.items().empty()) out.ast = writ::ast::DumpPolicySet(set);
  return out;
}

// Compares (or, in update mode, writes) one expected file; empty means "must not exist".
void Expect(const fs::path& path, const std::string& actual) {
  if (UpdateMode()) {
    if (actual.empty()) {
      fs::remove(path);
    } else if (!fs::exists(path) || ReadAll(path) != actual) {
      std::ofstream(path, std::ios::binary) << actual;
      MESSAGE("updated " << path.filename().string());
    }
    return;
  }
  const std::string expected = fs::exists(path) ? ReadAll(path) : std::string();
  INFO("golden file: " << path.string()
                       << "\n(run with WRIT_UPDATE_GOLDEN=1 to accept the new output)");
  CHECK(actual == expected);
}

}  // namespace

TEST_CASE("golden: parser fixtures") {
  const fs::path dir = kGoldenRoot / "parse";
  REQUIRE(fs::is_directory(dir));
  std::vector<fs::path> fixtures;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() || e.path().extension() == ".writ") fixtures.push_back(e.path());
  }
  std::sort(fixtures.begin(), fixtures.end());
  REQUIRE(fixtures.size() > 30);
  for (const fs::path& fx : fixtures) {
    std::vector<fs::path> files;
    if (fs::is_directory(fx)) {
      for (const auto& e : fs::directory_iterator(fx)) {
        if (e.path().extension() == ".writ") files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(fx);
    }
    const fs::path base = fx.parent_path() / fx.stem();
    CAPTURE(fx.filename().string());
    Outputs out = RunFixture(files);
    Expect(fs::path(base.string() + ".diag"), out.diag);
    Expect(fs::path(base.string() + ".ast"), out.ast);
    // Fixtures named ok_* must be clean, err_* must produce diagnostics.
    const std::string name = fx.filename().string();
    if (name.rfind("ok_", 0) == 0) {
      CHECK_MESSAGE(out.diag.empty(), name << " should have no diagnostics:\n" << out.diag);
    } else if (name.rfind("err_", 0) == 0) {
      CHECK_MESSAGE(!out.diag.empty(), name << " should produce diagnostics");
    }
  }
}
