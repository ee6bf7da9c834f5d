// fmt_test.cc -- the formatter (compiler/fmt.h) and `writ fmt` (cli/fmt_cmd.cc).
//
// Golden files: tests/fmt/fixtures/NAME.writ is formatted and compared with NAME.fmt.writ.
// To accept a new golden after an intended change: `writ fmt - < NAME.writ > NAME.fmt.writ`,
// then review the diff.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

#include "compiler/fmt.h"
#include "compiler/parse/parser.h"

namespace fs = std::filesystem;

namespace writ {
namespace {

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

// Formats `text`; fails the test unless formatting succeeds.
std::string Fmt(const std::string& text) {
  SourceMap sources;
  Diagnostics diags;
  FormatResult r = FormatSource("test.writ", text, &sources, &diags);
  INFO(text);
  INFO(r.detail);
  REQUIRE(r.status == FormatStatus::kOk);
  return r.text;
}

// Formats a one-condition permit and returns the printed condition line(s).
std::string Cond(const std::string& expr) {
  std::string out = Fmt("permit (principal, action, resource) when { " + expr + " };");
  const std::string head = "permit (principal, action, resource)\n";
  REQUIRE(out.rfind(head, 0) == 0);
  return out.substr(head.size());
}

std::vector<std::string> SortedComments(const std::string& path, const std::string& text) {
  SourceMap sources;
  Diagnostics diags;
  ast::PolicyFile f = ParseFile(sources, sources.Add(path, text), &diags);
  std::vector<std::string> out;
  for (const auto& c : f.comments) out.push_back(c.text);
  std::sort(out.begin(), out.end());
  return out;
}

bool IsGolden(const fs::path& p) {
  std::string name = p.filename().string();
  return name.size() > 9 && name.compare(name.size() - 9, 9, ".fmt.writ") == 0;
}

std::vector<fs::path> Fixtures() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(WRIT_SOURCE_DIR) / "tests/fmt/fixtures")) {
    if (e.path().extension() == ".writ" && !IsGolden(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every .writ file under tests/, policies/ and examples/, found when the test runs.
std::vector<fs::path> AllPolicyFiles() {
  std::vector<fs::path> out;
  for (const char* dir : {"tests", "policies", "examples"}) {
    fs::path root = fs::path(WRIT_SOURCE_DIR) / dir;
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_regular_file() && e.path().extension() == ".writ") out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("golden fixtures") {
  auto fixtures = Fixtures();
  REQUIRE(fixtures.size() >= 5);
  for (const fs::path& in : fixtures) {
    fs::path golden = in;
    golden.replace_extension(".fmt.writ");
    INFO(in.string());
    REQUIRE(fs::exists(golden));
    std::string want = ReadAll(golden);
    CHECK(Fmt(ReadAll(in)) == want);
    CHECK(Fmt(want) == want);  // a golden file is already canonical
  }
}

TEST_CASE("every policy file: same meaning, same comments, idempotent") {
  size_t formatted = 0;
  for (const fs::path& p : AllPolicyFiles()) {
    std::string text = ReadAll(p);
    SourceMap sources;
    Diagnostics diags;
    FormatResult r = FormatSource(p.string(), text, &sources, &diags);
    if (r.status == FormatStatus::kParseError) continue;  // error fixtures of other suites
    INFO(p.string());
    INFO(r.detail);
    REQUIRE(r.status == FormatStatus::kOk);  // re-parsed AST equal (FormatSource checks it)
    CHECK(SortedComments(p.string(), r.text) == SortedComments(p.string(), text));
    CHECK(Fmt(r.text) == r.text);
    ++formatted;
  }
  CHECK(formatted >= Fixtures().size() * 2);  // at least the fixtures and their goldens
}

TEST_CASE("meaning dump ignores spans and attribute spelling only") {
  auto dump = [](const std::string& text) {
    SourceMap sources;
    Diagnostics diags;
    ast::PolicyFile f = ParseFile(sources, sources.Add("m.writ", text), &diags);
    REQUIRE_FALSE(diags.has_errors());
    return MeaningDump(f);
  };
  std::string a = dump("permit(principal,action,resource) when { args[\"x\"] == 1 };");
  CHECK(a == dump("permit (principal, action, resource)\n  when {   args.x == 1 };"));
  CHECK(a.find('[') == std::string::npos);
  CHECK(a != dump("permit(principal,action,resource) when { args.y == 1 };"));
  CHECK(a != dump("permit(principal,action,resource) when { args.x == 2 };"));
  CHECK(a != dump("forbid(principal,action,resource) when { args.x == 1 };"));
}

TEST_CASE("parentheses follow precedence") {
  CHECK(Cond("!(args.a && args.b)") == "when { !(args.a && args.b) };\n");
  CHECK(Cond("(!args.a) && args.b") == "when { !args.a && args.b };\n");
  CHECK(Cond("-(1 - 2) == 1") == "when { -(1 - 2) == 1 };\n");
  CHECK(Cond("(if args.a then args.b else args.c).x") ==
        "when { (if args.a then args.b else args.c).x };\n");
  CHECK(Cond("args.a || args.b && args.c") == "when { args.a || args.b && args.c };\n");
  CHECK(Cond("(args.a || args.b) && args.c") == "when { (args.a || args.b) && args.c };\n");
  CHECK(Cond("((args.a || args.b) || args.c)") == "when { (args.a || args.b) || args.c };\n");
  CHECK(Cond("(args.a < 1) == args.b") == "when { (args.a < 1) == args.b };\n");
  CHECK(Cond("((1 + 2) + 3) == (1 + (2 + 3))") == "when { 1 + 2 + 3 == 1 + (2 + 3) };\n");
  CHECK(Cond("(1 + 2) * 3 == 1 + 2 * 3") == "when { (1 + 2) * 3 == 1 + 2 * 3 };\n");
  CHECK(Cond("if args.a then args.b else (args.c || args.d)") ==
        "when { if args.a then args.b else args.c || args.d };\n");
  CHECK(Cond("(if args.a then args.b else args.c) || args.d") ==
        "when { (if args.a then args.b else args.c) || args.d };\n");
  CHECK(Cond("(args has x) == true") == "when { (args has x) == true };\n");
}

TEST_CASE("negative literals and negation") {
  CHECK(Cond("args.a == -5") == "when { args.a == -5 };\n");
  CHECK(Cond("args.a == -(5)") == "when { args.a == -(5) };\n");
  CHECK(Cond("args.a == - -5") == "when { args.a == --5 };\n");
  CHECK(Cond("args.a - -5 == 1") == "when { args.a - -5 == 1 };\n");
  CHECK(Cond("(-5).x == 1") == "when { (-5).x == 1 };\n");
  CHECK(Cond("args.a == -9223372036854775808") == "when { args.a == -9223372036854775808 };\n");
}

TEST_CASE("attribute names, keys and strings") {
  CHECK(Cond("args[\"amount\"] > 1") == "when { args.amount > 1 };\n");
  CHECK(Cond("args[\"if\"] == 1") == "when { args[\"if\"] == 1 };\n");
  CHECK(Cond("args.if == 1") == "when { args[\"if\"] == 1 };\n");
  CHECK(Cond("args[\"a-b\"] == 1") == "when { args[\"a-b\"] == 1 };\n");
  CHECK(Cond("args has \"x\" && args has \"then\"") ==
        "when { args has x && args has \"then\" };\n");
  CHECK(Cond("{\"a\": 1, if: 2} == args.r") == "when { {a: 1, \"if\": 2} == args.r };\n");
  CHECK(Cond("args.s == \"zoë 日本 \\u{1F600}\"") ==
        "when { args.s == \"zoë 日本 😀\" };\n");
  CHECK(Cond("args.s == \"a\\\"b\\\\c\\td\\u{7}\"") ==
        "when { args.s == \"a\\\"b\\\\c\\td\\u{7}\" };\n");
  CHECK(Cond("args.s like \"*.pdf\\*x*\"") == "when { args.s like \"*.pdf\\*x*\" };\n");
  CHECK(Cond("args.t < 1h30m") == "when { args.t < 1h30m };\n");
}

TEST_CASE("scope: tool is printed resource; long scopes break one item per line") {
  CHECK(Fmt("permit(principal,action,tool==Tool::\"x\");") ==
        "permit (principal, action, resource == Tool::\"x\");\n");
  std::string long_scope =
      "permit (principal in Group::\"" + std::string(60, 'g') +
      "\", action == Action::\"tools/call\", resource);";
  CHECK(Fmt(long_scope) == "permit (\n    principal in Group::\"" + std::string(60, 'g') +
                               "\",\n    action == Action::\"tools/call\",\n    resource\n);\n");
}

TEST_CASE("long chains break before each operator, nested broken chains get parentheses") {
  std::string a(40, 'a'), b(30, 'b'), c(30, 'c');
  std::string out = Cond("args." + a + " && (args." + b + " || args." + c + ")");
  CHECK(out == "when {\n    args." + a + "\n    && (args." + b + " || args." + c + ")\n};\n");
  out = Cond("args." + a + " && (args." + b + " || args." + c + " || args." + a + ")");
  CHECK(out == "when {\n    args." + a + "\n    && (\n        args." + b + "\n        || args." +
                   c + "\n        || args." + a + "\n    )\n};\n");
}

TEST_CASE("comments are kept in place") {
  CHECK(Fmt("// lead\npermit(principal,action,resource); // trail\n// eof\n") ==
        "// lead\npermit (principal, action, resource); // trail\n\n// eof\n");
  CHECK(Fmt("permit(principal,action,resource) when { args.a // one\n && args.b };") ==
        "permit (principal, action, resource)\nwhen {\n    args.a // one\n    && args.b\n};\n");
  CHECK(Fmt("permit(principal,\n// who\naction,resource);") ==
        "permit (\n    principal,\n    // who\n    action,\n    resource\n);\n");
  // A `//` comment never swallows a comment placed after it on the same printed line.
  std::string out = Fmt("permit(principal,action,resource) then reason(\"x\" // a\n /* b */);");
  CHECK(SortedComments("t.writ", out) == std::vector<std::string>{"/* b */", "// a"});
  CHECK(Fmt(out) == out);
  // Found by fuzzing: a `//` comment and an own-line comment inside the first operand.
  out = Fmt("permit(principal,action,resource) unless { (if // c2\n args.a then 1 else 2)\n"
            "// c1\n + 3 == 4 && args.b && args.c };");
  CHECK(out ==
        "permit (principal, action, resource)\nunless {\n    (if args.a then 1 else 2) + 3 == 4 "
        "// c2\n    // c1\n    && args.b\n    && args.c\n};\n");
  CHECK(Fmt(out) == out);
  // Found by fuzzing: a comment before the `)` of a broken nested chain stays inside it.
  std::string b(40, 'b');
  out = Fmt("permit(principal,action,resource) when { args.a && (args." + b + " || args." + b +
            " // x\n /* y */ ) && args.c };");
  CHECK(out.find("        /* y */\n    )\n") != std::string::npos);
  CHECK(Fmt(out) == out);
}

TEST_CASE("files with syntax errors are not formatted") {
  SourceMap sources;
  Diagnostics diags;
  FormatResult r =
      FormatSource("bad.writ", "permit (principal, action, resource) when { args.a = 1 };",
                   &sources, &diags);
  CHECK(r.status == FormatStatus::kParseError);
  CHECK(diags.has_errors());
}

// ---- the `writ fmt` command ----

struct Run {
  int code;
  std::string out;
};

Run Writ(const std::string& args) {
  std::string cmd = std::string(WRIT_BINARY_DIR) + "/cli/writ " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST_CASE("writ fmt --check, rewrite, stdin and exit codes") {
  fs::path dir = fs::temp_directory_path() / ("writ_fmt_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  const std::string ugly = "permit(principal,action,resource);";
  const std::string pretty = "permit (principal, action, resource);\n";
  WriteAll(dir / "good.writ", pretty);
  WriteAll(dir / "sub" / "ugly.writ", ugly);
  const std::string d = "'" + dir.string() + "'";

  CHECK(Writ("fmt --check " + d + "/good.writ").code == 0);
  Run r = Writ("fmt --check " + d);
  CHECK(r.code == 1);
  CHECK(r.out.find("ugly.writ") != std::string::npos);
  CHECK(r.out.find("good.writ") == std::string::npos);
  CHECK(ReadAll(dir / "sub" / "ugly.writ") == ugly);  // --check writes nothing

  r = Writ("fmt --diff " + d);
  CHECK(r.code == 0);
  CHECK(r.out.find("-" + ugly) != std::string::npos);
  CHECK(r.out.find("+" + pretty.substr(0, pretty.size() - 1)) != std::string::npos);
  CHECK(ReadAll(dir / "sub" / "ugly.writ") == ugly);

  CHECK(Writ("fmt " + d).code == 0);
  CHECK(ReadAll(dir / "sub" / "ugly.writ") == pretty);
  CHECK(Writ("fmt --check " + d).code == 0);

  const std::string broken = "permit (principal, action, resource) when { args.a = 1 };\n";
  WriteAll(dir / "broken.writ", broken);
  CHECK(Writ("fmt " + d).code == 1);
  CHECK(ReadAll(dir / "broken.writ") == broken);  // never rewritten

  r = Writ("fmt - < " + d + "/sub/../good.writ");
  CHECK(r.code == 0);
  CHECK(r.out == pretty);
  WriteAll(dir / "in.txt", ugly);
  r = Writ("fmt - < " + d + "/in.txt");
  CHECK(r.code == 0);
  CHECK(r.out == pretty);
  CHECK(Writ("fmt --check - < " + d + "/in.txt").code == 1);

  CHECK(Writ("fmt " + d + "/missing.writ").code == 2);
  CHECK(Writ("fmt").code == 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace writ
