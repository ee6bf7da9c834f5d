// Config sections approvals:, admin:, killswitch:, notify: (gateway/config.h): defaults,
// values, and errors naming key + line:col + help.
#include <doctest/doctest.h>

#include <fstream>

#include "gateway/admin_server.h"
#include "gateway/config.h"

using namespace writ::gateway;

namespace {

constexpr char kBase[] = "policies: ./p\nupstreams: [{name: fs, command: x}]\n";

bool Parse(const std::string& extra, Config* c, std::string* errors) {
  return ParseConfig(std::string(kBase) + extra, "gw.yaml", "/etc/writ", c, errors);
}

std::string Errors(const std::string& extra) {
  Config c;
  std::string errors;
  CHECK_FALSE(Parse(extra, &c, &errors));
  return errors;
}

}  // namespace

TEST_CASE("governance sections parse with their defaults") {
  Config c;
  std::string errors;
  REQUIRE_MESSAGE(Parse("", &c, &errors), errors);
  CHECK_FALSE(c.approvals.enabled);
  CHECK_FALSE(c.admin.enabled);
  CHECK_FALSE(c.notify_enabled);
  CHECK(c.KillSwitchDb().empty());

  REQUIRE_MESSAGE(Parse(R"(approvals:
  db: state.db
  wait: 45s
  default_timeout: 2h
  notify: { channel: slack, target: "#approvals" }
admin:
  listen: 127.0.0.1:0
  token_file: admin.token
notify:
  timeout: 3s
  retries: 5
  max_queue: 10
  channels:
    slack:
      url: https://hooks.slack.com/services/T/B/x
      headers: { X-Token: abc }
    pager: { url: "http://127.0.0.1:9999/hook", ca_file: ca.pem }
)",
                        &c, &errors),
                  errors);
  CHECK(c.approvals.enabled);
  CHECK(c.approvals.db == "/etc/writ/state.db");
  CHECK(c.approvals.wait_ms == 45'000);
  CHECK(c.approvals.default_timeout_ms == 2 * 3600'000);
  CHECK(c.approvals.notify_channel == "slack");
  CHECK(c.approvals.notify_target == "#approvals");
  CHECK(c.KillSwitchDb() == "/etc/writ/state.db");
  CHECK(c.admin.enabled);
  CHECK(c.admin.host == "127.0.0.1");
  CHECK(c.admin.port == 0);
  CHECK(c.admin.token_file == "/etc/writ/admin.token");
  CHECK(c.notify_enabled);
  CHECK(c.notify.timeout_ms == 3000);
  CHECK(c.notify.retries == 5);
  CHECK(c.notify.max_queue == 10);
  REQUIRE(c.notify.channels.size() == 2);
  CHECK(c.notify.channels[0].name == "slack");
  CHECK(c.notify.channels[0].headers[0] ==
        std::pair<std::string, std::string>{"X-Token", "abc"});
  CHECK(c.notify.channels[1].ca_file == "/etc/writ/ca.pem");

  REQUIRE_MESSAGE(Parse("approvals: { db: a.db }\nkillswitch: { db: /var/k.db }\nadmin: { "
                        "token_sha256: 'sha256:" +
                            std::string(64, 'a') + "' }\n",
                        &c, &errors),
                  errors);
  CHECK(c.KillSwitchDb() == "/var/k.db");
  CHECK(c.admin.port == 9090);
  CHECK(c.admin.token_sha256.size() == 32);
  CHECK(c.approvals.wait_ms == 30'000);
  CHECK(c.approvals.default_timeout_ms == 15 * 60'000);
}

TEST_CASE("governance config errors name key, line:col and help") {
  std::string e = Errors("approvals: { wait: 30s }\n");
  CHECK(e.find("gw.yaml:3:12: approvals.db: missing\nhelp: where pending approvals are kept") !=
        std::string::npos);
  e = Errors("approvals:\n  db: x.db\n  wait: forever\n");
  CHECK(e.find("gw.yaml:5:9: approvals.wait: `forever` is not a duration from 1ms to 1h") !=
        std::string::npos);
  CHECK(e.find("help: a duration such as 500ms, 30s, 15m or 24h") != std::string::npos);
  e = Errors("approvals:\n  db: x.db\n  default_timout: 5m\n");
  CHECK(e.find("approvals.default_timout: unknown key\nhelp: did you mean `default_timeout`?") !=
        std::string::npos);
  e = Errors("approvals: { db: x.db, notify: { channel: teams } }\n");
  CHECK(e.find("approvals.notify.channel: no channel `teams` under notify.channels") !=
        std::string::npos);

  e = Errors("admin: { listen: 127.0.0.1:9090 }\n");
  CHECK(e.find("admin.token_sha256: missing: the admin API needs a token") != std::string::npos);
  CHECK(e.find("help: generate a token") != std::string::npos);
  e = Errors("admin: { listen: 0.0.0.0:9090, token_file: t }\n");
  CHECK(e.find("admin.listen: `0.0.0.0` is not a loopback address") != std::string::npos);
  Config c;
  std::string errors;
  CHECK(Parse("admin: { listen: 0.0.0.0:9090, token_file: t, allow_remote: true }\n", &c, &errors));
  e = Errors("admin: { token_sha256: abc }\n");
  CHECK(e.find("gw.yaml:3:24: admin.token_sha256: expected 64 hex digits") != std::string::npos);
  e = Errors("admin: { token_sha256: '" + std::string(64, 'a') + "', token_file: t }\n");
  CHECK(e.find("`token_sha256` and `token_file` are exclusive") != std::string::npos);
  e = Errors("admin: { listen: nowhere, token_file: t }\n");
  CHECK(e.find("admin.listen: `nowhere` is not HOST:PORT") != std::string::npos);

  e = Errors("notify: { channels: { slack: { url: 'ftp://x/' } } }\n");
  CHECK(e.find("notify.channels.slack.url: `ftp` is not a supported URL scheme") !=
        std::string::npos);
  e = Errors("notify: { channels: { slack: { uri: 'https://x/' } } }\n");
  CHECK(e.find("notify.channels.slack.uri: unknown key\nhelp: did you mean `url`?") !=
        std::string::npos);
  CHECK(e.find("notify.channels.slack.url: missing") != std::string::npos);
  e = Errors("notify: { retries: 50, channels: {} }\n");
  CHECK(e.find("notify.retries: out of range") != std::string::npos);
  e = Errors("notify: { timeout: 5s }\n");
  CHECK(e.find("notify.channels: missing") != std::string::npos);
  e = Errors("killswitch: { db: [a] }\n");
  CHECK(e.find("killswitch.db: expected a string") != std::string::npos);
  e = Errors("killswitch: { file: x }\n");
  CHECK(e.find("killswitch.file: unknown key") != std::string::npos);
}

TEST_CASE("the configuration example in docs/approvals.md parses") {
  std::ifstream f(std::string(WRIT_SOURCE_DIR) + "/docs/approvals.md");
  std::string line, block;
  bool in = false, done = false;
  while (!done && std::getline(f, line)) {
    if (!in && line == "```yaml") {
      in = true;
    } else if (in && line == "```") {
      done = true;
    } else if (in) {
      block += line + "\n";
    }
  }
  REQUIRE(done);
  REQUIRE(block.find("approvals:") != std::string::npos);
  Config c;
  std::string errors;
  REQUIRE_MESSAGE(Parse(block, &c, &errors), errors);
  CHECK(c.approvals.wait_ms == 30'000);
  CHECK(c.admin.token_file == "/etc/writ/admin.token");
  CHECK(c.notify.channels.size() == 2);
  CHECK(c.approvals.notify_channel == "slack");
}
