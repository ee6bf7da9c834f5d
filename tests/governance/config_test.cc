// The `intent:`, `lock:` and `breaker:` config sections (gateway/config.h), and every
// ```yaml block of docs/intent.md, docs/integrity.md and docs/limits.md parsed as a config.
#include "gateway/config.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace writ::gateway;
namespace fs = std::filesystem;

namespace {

const char* kBase = R"(policies: ./p
upstreams:
  - name: fs
    command: x
  - name: db
    command: x
  - name: github
    command: x
)";

bool Parse(const std::string& extra, Config* c, std::string* errors) {
  return ParseConfig(std::string(kBase) + extra, "writ.yaml", "/etc/writ", c, errors);
}

std::string Errors(const std::string& extra) {
  Config c;
  std::string e;
  CHECK_FALSE(Parse(extra, &c, &e));
  return e;
}

}  // namespace

TEST_CASE("intent: section parses") {
  Config c;
  std::string e;
  REQUIRE_MESSAGE(Parse(R"(intent:
  trusted_servers: [fs]
  bulk_threshold: 250
  overrides:
    db__run_query: read
    github__*: write
)",
                        &c, &e),
                  e);
  CHECK(c.intent.trusted_servers == std::vector<std::string>{"fs"});
  CHECK(c.intent.bulk_threshold == 250);
  CHECK(c.intent.overrides.at("db__run_query") == Intent::kRead);
  CHECK(c.intent.overrides.at("github__*") == Intent::kWrite);
  Config d;
  REQUIRE(Parse("", &d, &e));
  CHECK(d.intent.bulk_threshold == 1000);
  CHECK(d.intent.trusted_servers.empty());
  CHECK_FALSE(d.lock.enabled);
}

TEST_CASE("intent: errors name key, line and help") {
  std::string e = Errors("intent:\n  trusted_servers: [fss]\n");
  CHECK(e.find("writ.yaml:10:21: intent.trusted_servers[0]: `fss` is not a configured upstream\n"
               "help: did you mean `fs`?") != std::string::npos);
  e = Errors("intent:\n  overrides:\n    db_run_query: read\n");
  CHECK(
      e.find("writ.yaml:11:5: intent.overrides.db_run_query: `db_run_query` is not SERVER__tool") !=
      std::string::npos);
  e = Errors("intent:\n  overrides:\n    db__run_query: reed\n");
  CHECK(e.find("intent.overrides.db__run_query: `reed` is not one of read | write | exfiltrative | "
               "destructive\nhelp: did you mean `read`?") != std::string::npos);
  e = Errors("intent:\n  overrides:\n    nope__x: read\n");
  CHECK(e.find("`nope` is not a configured upstream") != std::string::npos);
  e = Errors("intent:\n  bulk_treshold: 5\n");
  CHECK(e.find("intent.bulk_treshold: unknown key\nhelp: did you mean `bulk_threshold`?") !=
        std::string::npos);
  e = Errors("intent:\n  bulk_threshold: 0\n");
  CHECK(e.find("intent.bulk_threshold: out of range") != std::string::npos);
}

TEST_CASE("lock: section parses with defaults; errors") {
  Config c;
  std::string e;
  REQUIRE_MESSAGE(Parse("lock:\n", &c, &e), e);
  CHECK(c.lock.enabled);
  CHECK(c.lock.file == "/etc/writ/writ.lock");
  CHECK(c.lock.on_drift == LockAction::kHide);
  CHECK(c.lock.on_new == LockAction::kHide);
  REQUIRE_MESSAGE(
      Parse("lock: { file: locks/tools.lock, on_drift: deny, on_new: allow }\n", &c, &e), e);
  CHECK(c.lock.file == "/etc/writ/locks/tools.lock");
  CHECK(c.lock.on_drift == LockAction::kDeny);
  CHECK(c.lock.on_new == LockAction::kAllow);
  e = Errors("lock: { on_drift: hid }\n");
  CHECK(e.find(
            "lock.on_drift: `hid` is not one of hide | deny | allow\nhelp: did you mean `hide`?") !=
        std::string::npos);
  e = Errors("lock: { fil: x }\n");
  CHECK(e.find("lock.fil: unknown key") != std::string::npos);
}

TEST_CASE("breaker: defaults, top-level section and per-upstream overrides") {
  Config c;
  std::string e;
  REQUIRE(Parse("", &c, &e));
  CHECK(c.upstreams[0].breaker.failure_threshold == 5);
  CHECK(c.upstreams[0].breaker.cool_down_ms == 30000);
  REQUIRE_MESSAGE(ParseConfig(R"(policies: ./p
breaker: { failure_threshold: 3, cool_down: 10s, half_open_probes: 2 }
upstreams:
  - name: fs
    command: x
  - name: db
    command: x
    breaker: { cool_down: 500ms, enabled: false }
)",
                              "writ.yaml", "", &c, &e),
                  e);
  CHECK(c.breaker.failure_threshold == 3);
  CHECK(c.upstreams[0].breaker.failure_threshold == 3);
  CHECK(c.upstreams[0].breaker.cool_down_ms == 10000);
  CHECK(c.upstreams[0].breaker.half_open_probes == 2);
  CHECK(c.upstreams[1].breaker.failure_threshold == 3);  // inherited
  CHECK(c.upstreams[1].breaker.cool_down_ms == 500);     // overridden
  CHECK_FALSE(c.upstreams[1].breaker.enabled);
  std::string err = Errors("breaker: { failure_threshold: 0 }\n");
  CHECK(err.find("breaker.failure_threshold: out of range\nhelp: an integer from 1 to 1000") !=
        std::string::npos);
  Config d;
  CHECK_FALSE(
      ParseConfig("policies: ./p\nupstreams:\n  - name: fs\n    command: x\n"
                  "    breaker: { cooldown: 1s }\n",
                  "writ.yaml", "", &d, &err));
  CHECK(err.find("writ.yaml:5:16: upstreams[0].breaker.cooldown: unknown key\n"
                 "help: did you mean `cool_down`?") != std::string::npos);
}

TEST_CASE("docs: every yaml block of the governance pages is a valid config") {
  int blocks = 0;
  for (const char* page : {"docs/intent.md", "docs/integrity.md", "docs/limits.md"}) {
    std::ifstream f(fs::path(WRIT_SOURCE_DIR) / page);
    REQUIRE_MESSAGE(f.good(), std::string(page));
    std::string line, block;
    bool in = false;
    int start = 0, n = 0;
    while (std::getline(f, line)) {
      ++n;
      if (!in && line == "```yaml") {
        in = true;
        block.clear();
        start = n;
      } else if (in && line == "```") {
        in = false;
        ++blocks;
        std::string text = block;
        if (text.find("upstreams:") == std::string::npos) text = std::string(kBase) + text;
        if (text.find("policies:") == std::string::npos) text = "policies: ./p\n" + text;
        Config c;
        std::string e;
        INFO(page << ":" << start << "\n" << text);
        CHECK_MESSAGE(ParseConfig(text, page, "", &c, &e), e);
      } else if (in) {
        block += line + "\n";
      }
    }
  }
  CHECK(blocks >= 3);
}
