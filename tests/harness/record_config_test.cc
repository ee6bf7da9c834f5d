// record_config_test.cc -- the gateway's `record:` key (gateway/config.h, docs/replay.md):
// values, defaults, and errors naming the key and line like every other section.
#include <doctest/doctest.h>

#include "gateway/config.h"

using writ::gateway::Config;
using writ::gateway::ParseConfig;

namespace {

const char kBase[] = "policies: p\nupstreams:\n  - {name: a, command: x}\n";

bool Parse(const std::string& extra, Config* c, std::string* errors) {
  return ParseConfig(std::string(kBase) + extra, "gw.yaml", "/etc/writ", c, errors);
}

}  // namespace

TEST_CASE("config: record") {
  Config c;
  std::string e;
  REQUIRE(Parse("", &c, &e));
  CHECK_FALSE(c.record.enabled);
  REQUIRE(Parse("record: {path: traces/s.jsonl}\n", &c, &e));
  CHECK(c.record.enabled);
  CHECK(c.record.path == "/etc/writ/traces/s.jsonl");
  CHECK(c.record.messages);
  REQUIRE(Parse("record:\n  path: /var/t.jsonl\n  messages: false\n", &c, &e));
  CHECK(c.record.path == "/var/t.jsonl");
  CHECK_FALSE(c.record.messages);

  CHECK_FALSE(Parse("record:\n  pth: x\n", &c, &e));
  CHECK(e.find("gw.yaml:5:3: record.pth: unknown key\nhelp: did you mean `path`?") !=
        std::string::npos);
  CHECK(e.find("record.path: missing") != std::string::npos);
  CHECK_FALSE(Parse("record:\n  path: x\n  messages: sometimes\n", &c, &e));
  CHECK(e.find("gw.yaml:6:13: record.messages: `sometimes` is not one of false | true") !=
        std::string::npos);
  CHECK_FALSE(Parse("record: yes\n", &c, &e));
  CHECK(e.find("gw.yaml:4:9: record: expected a mapping") != std::string::npos);
  CHECK_FALSE(Parse("recrod: {path: x}\n", &c, &e));
  CHECK(e.find("did you mean `record`?") != std::string::npos);
}
