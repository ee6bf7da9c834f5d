// Checks the policy library under policies/ (issue 6) the way CI should: every scenario
// directory has its files, is formatted (`writ fmt --check`), type checks against its schema
// without diagnostics (`writ check --schema`), passes its unit tests with 100% statement
// coverage (`writ test --min-coverage 100`), and its recorded trace holds one decision per
// scripted call and replays to the recorded decisions (`writ replay --expect`). The index in
// policies/README.md lists every scenario. A mutated copy of one scenario must make
// `writ test` and `writ replay --expect` fail, so the tests and the trace pin the boundary
// they claim to.
// Entry point: the doctest cases below (ctest name `policies`); runs build/cli/writ.

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

struct Run {
  int code = -1;
  std::string out;  // stdout and stderr together
};

Run Writ(const std::string& args) {
  std::string cmd = std::string(WRIT_BINARY_DIR) + "/cli/writ " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  Run r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Quote(const fs::path& p) { return "'" + p.string() + "'"; }

fs::path Library() { return fs::path(WRIT_SOURCE_DIR) / "policies"; }

// Every scenario: a directory under policies/ with a schema.yaml.
std::vector<fs::path> Scenarios() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(Library())) {
    if (e.is_directory() && fs::exists(e.path() / "schema.yaml")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool HasFileEnding(const fs::path& dir, const std::string& suffix) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("the library has the twelve scenarios of issue 6, each complete and indexed") {
  const auto scenarios = Scenarios();
  CHECK(scenarios.size() >= 12);
  const std::string index = ReadAll(Library() / "README.md");
  for (const fs::path& s : scenarios) {
    const std::string name = s.filename().string();
    INFO(name);
    CHECK(HasFileEnding(s, ".writ"));
    CHECK(HasFileEnding(s, ".test.yaml"));
    CHECK(fs::exists(s / "trace.jsonl"));
    CHECK(fs::exists(s / "record.json"));
    CHECK(fs::exists(s / "README.md"));
    CHECK(index.find("](" + name + "/)") != std::string::npos);
  }
}

TEST_CASE("every scenario is formatted and checks cleanly against its schema") {
  for (const fs::path& s : Scenarios()) {
    INFO(s.string());
    Run fmt = Writ("fmt --check " + Quote(s));
    INFO(fmt.out);
    CHECK(fmt.code == 0);
    Run check = Writ("check --schema " + Quote(s / "schema.yaml") + " " + Quote(s));
    INFO(check.out);
    CHECK(check.code == 0);
    CHECK(check.out.find("warning") == std::string::npos);
    CHECK(check.out.find("writ check: ok") != std::string::npos);
  }
  // Ids are unique across the library, so it also checks as one policy set.
  Run all = Writ("check " + Quote(Library()));
  INFO(all.out);
  CHECK(all.code == 0);
}

TEST_CASE("every scenario passes its tests with full statement coverage") {
  for (const fs::path& s : Scenarios()) {
    INFO(s.string());
    Run r = Writ("test --min-coverage 100 " + Quote(s));
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find(" 0 failed") != std::string::npos);
  }
}

TEST_CASE("every recorded trace: version-1 header, one decision per call, replays unchanged") {
  for (const fs::path& s : Scenarios()) {
    INFO(s.string());
    auto plan = nlohmann::json::parse(ReadAll(s / "record.json"));
    size_t calls = 0;
    for (const auto& session : plan.at("sessions")) calls += session.at("calls").size();
    size_t headers = 0, decisions = 0;
    std::ifstream in(s / "trace.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      REQUIRE_FALSE(j.is_discarded());
      if (j.contains("writ_trace")) {
        CHECK(j["writ_trace"] == 1);
        ++headers;
      } else if (j.value("type", "") == "decision") {
        CHECK(j.contains("request"));
        CHECK(j.contains("decision"));
        ++decisions;
      }
    }
    CHECK(headers == plan.at("sessions").size());  // one gateway run per principal
    CHECK(decisions == calls);
    Run replay = Writ("replay --policies " + Quote(s) + " --schema " + Quote(s / "schema.yaml") +
                      " --expect " + Quote(s / "trace.jsonl"));
    INFO(replay.out);
    CHECK(replay.code == 0);
    CHECK(replay.out.find("no decision changes") != std::string::npos);
  }
}

TEST_CASE("a mutated scenario fails its tests and its replay (the 50,000 boundary)") {
  const fs::path tmp =
      fs::temp_directory_path() / ("writ-policies-test-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::copy(Library() / "refund-limits", tmp, fs::copy_options::recursive);
  const fs::path writ_file = tmp / "refunds.writ";
  std::string text = ReadAll(writ_file);
  const std::string from = "args.amount > 50000";
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "args.amount >= 50000");
  std::ofstream(writ_file, std::ios::binary) << text;
  Run r = Writ("test " + Quote(tmp));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("exactly 50,000 needs no approval") != std::string::npos);
  // The trace holds a refund of exactly 50,000, recorded as allowed.
  Run replay = Writ("replay --policies " + Quote(tmp) + " --expect " +
                    Quote(Library() / "refund-limits" / "trace.jsonl"));
  INFO(replay.out);
  CHECK(replay.code == 1);
  CHECK(replay.out.find("allow -> require_approval") != std::string::npos);
  fs::remove_all(tmp);
}
