// Config validation: every error names the key path and line:col, with a help line.
#include <doctest/doctest.h>

#include "gateway/config.h"

using writ::gateway::Config;
using writ::gateway::ParseConfig;

namespace {

std::string Errors(const std::string& yaml) {
  Config c;
  std::string errors;
  CHECK_FALSE(ParseConfig(yaml, "config.yaml", "", &c, &errors));
  return errors;
}

}  // namespace

TEST_CASE("a full config parses") {
  Config c;
  std::string errors;
  bool ok = ParseConfig(R"(policies: ./policies
schema: ./schema.yaml
stdio_principal: { uid: 'User::"alice"', attrs: { department: eng, level: 3, mfa: true, code: "7" }, parents: ['Role::"analyst"'] }
upstreams:
  - name: fs
    command: npx
    args: [-y, "@modelcontextprotocol/server-filesystem", /tmp/demo]
    env: { KEY: value }
limits: { max_message_bytes: 4194304, max_depth: 64, max_in_flight: 8 }
)",
                        "config.yaml", "/etc/writ", &c, &errors);
  INFO(errors);
  REQUIRE(ok);
  CHECK(c.policies == std::vector<std::string>{"/etc/writ/policies"});
  CHECK(c.schema == "/etc/writ/schema.yaml");
  CHECK(c.stdio_principal.uid == "User::\"alice\"");
  CHECK(c.stdio_principal.attrs["department"] == "eng");
  CHECK(c.stdio_principal.attrs["level"] == 3);
  CHECK(c.stdio_principal.attrs["mfa"] == true);
  CHECK(c.stdio_principal.attrs["code"] == "7");  // quoted: stays a string
  CHECK(c.stdio_principal.parents == std::vector<std::string>{"Role::\"analyst\""});
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0].name == "fs");
  CHECK(c.upstreams[0].args.size() == 3);
  CHECK(c.upstreams[0].env[0].first == "KEY");
  CHECK(c.limits.max_in_flight == 8);
}

TEST_CASE("a wrong type names the key and its line:col") {
  std::string e = Errors(R"(policies: ./p
upstreams:
  - name: a
    command: x
  - name: b
    command: [x, y]
)");
  CHECK(e.find("config.yaml:6:14: upstreams[1].command: expected a string\n") != std::string::npos);
  CHECK(e.find("help: the program to run") != std::string::npos);
}

TEST_CASE("unknown keys are errors with did-you-mean") {
  std::string e = Errors(R"(policies: ./p
upstreams:
  - name: a
    comand: x
limts: {}
)");
  CHECK(e.find("config.yaml:4:5: upstreams[0].comand: unknown key\nhelp: did you mean `command`?") !=
        std::string::npos);
  CHECK(e.find("config.yaml:5:1: limts: unknown key\nhelp: did you mean `limits`?") !=
        std::string::npos);
  CHECK(e.find("upstreams[0].command: missing") != std::string::npos);
}

TEST_CASE("several errors are reported at once") {
  std::string e = Errors(R"(bundle: b.wbundle
policies: p
stdio_principal: { uid: alice }
upstreams:
  - { name: "a__b", command: x }
  - { name: ok, command: x }
  - { name: ok, command: x }
limits: { max_depth: lots }
)");
  CHECK(e.find("config.yaml:1:9: bundle: `policies` and `bundle` are exclusive") != std::string::npos);
  CHECK(e.find("config.yaml:3:25: stdio_principal.uid: `alice` is not an entity uid") !=
        std::string::npos);
  CHECK(e.find("upstreams[0].name: `a__b` is not a valid upstream name") != std::string::npos);
  CHECK(e.find("upstreams[2].name: duplicate upstream name `ok`") != std::string::npos);
  CHECK(e.find("config.yaml:8:22: limits.max_depth: expected an integer, found `lots`") !=
        std::string::npos);
}

TEST_CASE("YAML syntax errors are located") {
  std::string e = Errors("policies: [a\nupstreams: x\n");
  CHECK(e.find("config.yaml:") == 0);
  CHECK(e.find("invalid YAML") != std::string::npos);
  CHECK(Errors("- a\n").find("must be a YAML mapping") != std::string::npos);
  CHECK(Errors("upstreams: []\n").find("policies: missing") != std::string::npos);
}

TEST_CASE("DidYouMean") {
  using writ::gateway::DidYouMean;
  CHECK(DidYouMean("upstream", {"upstreams", "limits"}) == "upstreams");
  CHECK(DidYouMean("zzz", {"upstreams", "limits"}).empty());
}

TEST_CASE("audit: maps onto AuditOptions; upstream env values become secrets") {
  Config c;
  std::string errors;
  bool ok = ParseConfig(R"(policies: p
upstreams:
  - name: stripe
    command: node
    env: { STRIPE_KEY: sk_live_123, EMPTY: "" }
audit:
  path: logs/audit.jsonl
  key_file: audit.key
  fsync: interval
  fsync_interval: 250ms
  record_args: true
  on_failure: allow
  on_corrupt_tail: new_segment
)",
                        "config.yaml", "/etc/writ", &c, &errors);
  INFO(errors);
  REQUIRE(ok);
  CHECK(c.audit.enabled);
  CHECK(c.audit.options.path == "/etc/writ/logs/audit.jsonl");
  CHECK(c.audit.key_file == "/etc/writ/audit.key");
  CHECK(c.audit.options.fsync == writ::gateway::AuditFsync::kInterval);
  CHECK(c.audit.options.fsync_interval == std::chrono::milliseconds(250));
  CHECK(c.audit.options.record_args);
  CHECK(c.audit.options.on_failure == writ::gateway::AuditFailurePolicy::kAllow);
  CHECK(c.audit.options.on_corrupt_tail == writ::gateway::AuditCorruptTail::kNewSegment);
  CHECK(c.audit.options.secrets == std::vector<std::string>{"sk_live_123"});

  Config d;
  REQUIRE(ParseConfig("policies: p\nupstreams: []\naudit: { path: /a }\n", "c.yaml", "", &d,
                      &errors));
  CHECK(d.audit.options.fsync == writ::gateway::AuditFsync::kAlways);
  CHECK(d.audit.options.on_failure == writ::gateway::AuditFailurePolicy::kDeny);
  CHECK(d.audit.options.on_corrupt_tail == writ::gateway::AuditCorruptTail::kRefuse);
  CHECK_FALSE(d.audit.options.record_args);
  Config e;
  REQUIRE(ParseConfig("policies: p\nupstreams: []\n", "c.yaml", "", &e, &errors));
  CHECK_FALSE(e.audit.enabled);
}

TEST_CASE("audit: errors are located, with did-you-mean") {
  std::string e = Errors("policies: p\nupstreams: []\naudit:\n  fsync: sometimes\n  on_failure: deni\n  record_args: maybe\n  keyfile: k\n");
  CHECK(e.find("config.yaml:4:3: audit.path: missing") != std::string::npos);
  CHECK(e.find("config.yaml:4:10: audit.fsync: `sometimes` is not one of always | interval | never") !=
        std::string::npos);
  CHECK(e.find("config.yaml:5:15: audit.on_failure: `deni` is not one of deny | allow") !=
        std::string::npos);
  CHECK(e.find("help: did you mean `deny`?") != std::string::npos);
  CHECK(e.find("config.yaml:6:16: audit.record_args:") != std::string::npos);
  CHECK(e.find("config.yaml:7:3: audit.keyfile: unknown key") != std::string::npos);
  CHECK(e.find("did you mean `key_file`?") != std::string::npos);
  CHECK(Errors("policies: p\nupstreams: []\naudit: /var/log/a\n").find("audit: expected a mapping") !=
        std::string::npos);
}
