// docs_test.cc -- every fenced code block tagged ```writ in docs/*.md (and README.md) must
// parse and check with no diagnostics; every block tagged ```writ-error must produce at
// least one error. Keeps the reference honest as the language changes.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/diagnostic.h"
#include "compiler/frontend.h"

namespace fs = std::filesystem;

namespace {

struct Block {
  std::string file;
  int line = 0;  // line of the opening fence
  bool expect_error = false;
  std::string text;
};

std::vector<Block> ExtractBlocks(const fs::path& path) {
  std::ifstream in(path);
  std::vector<Block> out;
  std::string line;
  int n = 0;
  Block* open = nullptr;
  bool in_other = false;  // inside a fence of another language
  while (std::getline(in, line)) {
    ++n;
    std::string trimmed = line.substr(0, line.find_last_not_of(" \t\r") + 1);
    if (open != nullptr) {
      if (trimmed == "```") {
        open = nullptr;
      } else {
        open->text += line + "\n";
      }
      continue;
    }
    if (in_other) {
      if (trimmed == "```") in_other = false;
      continue;
    }
    if (trimmed == "```writ" || trimmed == "```writ-error") {
      out.push_back(Block{path.filename().string(), n, trimmed == "```writ-error", ""});
      open = &out.back();
    } else if (trimmed.rfind("```", 0) == 0) {
      in_other = true;
    }
  }
  return out;
}

std::vector<fs::path> DocFiles() {
  std::vector<fs::path> files;
  const fs::path docs = fs::path(WRIT_SOURCE_DIR) / "docs";
  if (fs::is_directory(docs)) {
    for (const auto& e : fs::directory_iterator(docs)) {
      if (e.path().extension() == ".md") files.push_back(e.path());
    }
  }
  files.push_back(fs::path(WRIT_SOURCE_DIR) / "README.md");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("docs: writ code blocks parse; writ-error blocks fail") {
  size_t total = 0;
  for (const fs::path& f : DocFiles()) {
    if (!fs::exists(f)) continue;
    for (const Block& b : ExtractBlocks(f)) {
      ++total;
      const std::string where = b.file + ":" + std::to_string(b.line);
      writ::FrontEnd fe = writ::RunFrontEndOnText(where, b.text);
      std::string rendered = writ::Render(fe.sources, fe.diags.items(), writ::DiagnosticFormat::kText);
      if (b.expect_error) {
        CHECK_MESSAGE(fe.diags.has_errors(), "```writ-error block at " << where
                                                 << " produced no error:\n" << b.text);
      } else {
        CHECK_MESSAGE(fe.diags.items().empty(), "```writ block at " << where
                                                    << " has diagnostics:\n" << rendered);
      }
    }
  }
  // language.md alone has dozens of examples; guard against the extractor silently breaking.
  CHECK(total >= 30);
}

TEST_CASE("docs: block extraction") {
  const fs::path tmp = fs::temp_directory_path() / "writ_docs_test_extract.md";
  {
    std::ofstream out(tmp);
    out << "text\n```writ\npermit (principal, action, resource);\n```\n"
        << "```sh\n```writ\n```\n"
        << "```writ-error\npermit\n```\n";
  }
  std::vector<Block> blocks = ExtractBlocks(tmp);
  fs::remove(tmp);
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0].line == 2);
  CHECK(!blocks[0].expect_error);
  CHECK(blocks[0].text == "permit (principal, action, resource);\n");
  CHECK(blocks[1].expect_error);
}
