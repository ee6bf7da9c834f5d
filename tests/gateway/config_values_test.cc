// The configuration's shared value helpers (gateway/config_yaml.cc): durations (short: ms and
// s up to 1 h; long: also m and h, up to a per-key maximum) and required file paths, checked
// through ParseConfig with their exact messages and help lines.
#include <doctest/doctest.h>

#include <string>

#include "gateway/config.h"

using writ::gateway::Config;
using writ::gateway::ParseConfig;

namespace {

constexpr char kBase[] = "policies: p.writ\nupstreams: [{ name: fs, command: npx }]\n";

// Parses kBase + `extra` with base directory /etc/writ; *errors gets the messages.
bool Parse(const std::string& extra, Config* c, std::string* errors) {
  return ParseConfig(std::string(kBase) + extra, "gw.yaml", "/etc/writ", c, errors);
}

// The errors of kBase + `extra` (which must fail).
std::string Errors(const std::string& extra) {
  Config c;
  std::string errors;
  CHECK_FALSE(Parse(extra, &c, &errors));
  return errors;
}

constexpr char kShortHelp[] =
    "help: a duration such as 500ms or 1s (a plain integer is milliseconds)\n";
constexpr char kLongHelp[] =
    "help: a duration such as 500ms, 30s, 15m or 24h (a plain integer is ms)\n";

}  // namespace

TEST_CASE("short durations: ms and s, from 1 ms to 1 h") {
  for (const auto& [text, ms] : {std::pair<const char*, int>{"7", 7},
                                 {"250ms", 250},
                                 {"2s", 2000},
                                 {"3600s", 3600000},
                                 {"3600000", 3600000}}) {
    Config c;
    std::string errors;
    INFO(text);
    REQUIRE_MESSAGE(
        Parse(std::string("http: { session_idle_timeout: ") + text + " }\n", &c, &errors), errors);
    CHECK(c.http.session_idle_timeout_ms == ms);
  }
  for (const char* bad :
       {"0", "3601s", "5m", "1h", "s", "ms", "-1s", "1.5s", "99999999999999999s"}) {
    INFO(bad);
    CHECK(Errors(std::string("http: { session_idle_timeout: '") + bad + "' }\n") ==
          std::string("gw.yaml:3:31: http.session_idle_timeout: `") + bad +
              "` is not a duration from 1ms to 1h\n" + kShortHelp);
  }
  CHECK(Errors("http: { session_idle_timeout: [1] }\n") ==
        std::string("gw.yaml:3:31: http.session_idle_timeout: expected a duration\n") + kShortHelp);
}

TEST_CASE("long durations: ms, s, m, h up to the key's maximum") {
  Config c;
  std::string errors;
  REQUIRE_MESSAGE(Parse("approvals: { db: s.db, wait: 15m, default_timeout: 168h }\n", &c, &errors),
                  errors);
  CHECK(c.approvals.wait_ms == 15 * 60000);
  CHECK(c.approvals.default_timeout_ms == 168LL * 3600000);
  REQUIRE_MESSAGE(Parse("approvals: { db: s.db, wait: 90s, default_timeout: 1500 }\n", &c, &errors),
                  errors);
  CHECK(c.approvals.wait_ms == 90000);
  CHECK(c.approvals.default_timeout_ms == 1500);
  CHECK(Errors("approvals: { db: s.db, wait: 61m }\n") ==
        std::string("gw.yaml:3:30: approvals.wait: `61m` is not a duration from 1ms to 1h\n") +
            kLongHelp);
  CHECK(Errors("approvals: { db: s.db, default_timeout: 169h }\n") ==
        std::string("gw.yaml:3:41: approvals.default_timeout: `169h` is not a duration from 1ms "
                    "to 168h\n") +
            kLongHelp);
  CHECK(Errors("approvals: { db: s.db, wait: 2d }\n") ==
        std::string("gw.yaml:3:30: approvals.wait: `2d` is not a duration from 1ms to 1h\n") +
            kLongHelp);
}

TEST_CASE("required paths: missing, empty, not a string; resolved against the config's dir") {
  Config c;
  std::string errors;
  REQUIRE_MESSAGE(Parse("audit: { path: a.jsonl }\nrecord: { path: /t/r.jsonl }\n"
                        "approvals: { db: ../s.db }\n",
                        &c, &errors),
                  errors);
  CHECK(c.audit.options.path == "/etc/writ/a.jsonl");
  CHECK(c.record.path == "/t/r.jsonl");
  CHECK(c.approvals.db == "/etc/s.db");
  CHECK(Errors("audit: { fsync: never }\n") ==
        "gw.yaml:3:8: audit.path: missing\nhelp: where the audit log is written, e.g. "
        "`path: /var/lib/writ/audit.jsonl`\n");
  CHECK(Errors("record: { path: '' }\n") ==
        "gw.yaml:3:17: record.path: empty\nhelp: a file path, e.g. traces/session.jsonl\n");
  CHECK(Errors("approvals: { db: [a] }\n") ==
        "gw.yaml:3:18: approvals.db: expected a string\nhelp: a file path\n");
  CHECK(Errors("approvals: { wait: 1s }\n") ==
        "gw.yaml:3:12: approvals.db: missing\nhelp: where pending approvals are kept (SQLite), "
        "e.g. `db: /var/lib/writ/state.db`\n");
}
