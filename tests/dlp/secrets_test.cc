// secrets_test.cc -- credentials: ${secret:NAME} references, the secrets file (permissions,
// format, reload), resolution errors with lines, and the SecretScrubber.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gateway/config.h"
#include "gateway/secrets.h"

using nlohmann::json;
using writ::gateway::Config;
using writ::gateway::FindSecretRefs;
using writ::gateway::ParseConfig;
using writ::gateway::ResolvedUpstreams;
using writ::gateway::ResolveUpstreamSecrets;
using writ::gateway::SecretScrubber;
using writ::gateway::SecretsConfig;
using writ::gateway::SecretStore;

namespace {

namespace fs = std::filesystem;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// A fresh temp directory per test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("writ_secrets_test_" + std::to_string(getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string Write(const std::string& name, const std::string& text, mode_t mode) {
    fs::path p = path / name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p.string();
  }
};

Config MustParse(const std::string& yaml, const std::string& dir) {
  Config c;
  std::string errors;
  bool ok = ParseConfig(yaml, "writ.yaml", dir, &c, &errors);
  INFO(errors);
  REQUIRE(ok);
  return c;
}

}  // namespace

TEST_CASE("secret references: syntax") {
  std::vector<std::string> names;
  std::string error;
  CHECK(FindSecretRefs("Bearer ${secret:GH_TOKEN} and ${secret:_x1}", &names, &error));
  CHECK(names == std::vector<std::string>{"GH_TOKEN", "_x1"});
  CHECK(FindSecretRefs("plain ${HOME} $secret", &names, &error));
  CHECK(names.size() == 2);
  CHECK_FALSE(FindSecretRefs("${secret:}", &names, &error));
  CHECK_FALSE(FindSecretRefs("${secret:1X}", &names, &error));
  CHECK_FALSE(FindSecretRefs("${secret:A-B}", &names, &error));
  CHECK_FALSE(FindSecretRefs("${secret:OPEN", &names, &error));
  CHECK(error.find("closing") != std::string::npos);
}

TEST_CASE("config: references are located; a reference without a source is an error") {
  Config c;
  std::string errors;
  CHECK_FALSE(ParseConfig(R"(policies: p
upstreams:
  - name: gh
    command: server
    env:
      TOKEN: ${secret:GH_TOKEN}
      BAD: ${secret:A-B}
)",
                          "writ.yaml", "", &c, &errors));
  CHECK(errors.find("writ.yaml:6:14: upstreams[0].env.TOKEN: `${secret:GH_TOKEN}` but no "
                    "`secrets:` source is configured") != std::string::npos);
  CHECK(errors.find("help: add `secrets: {file: secrets.yaml}`") != std::string::npos);
  CHECK(errors.find("writ.yaml:7:12: upstreams[0].env.BAD: `${secret:A-B}` is not a valid "
                    "reference") != std::string::npos);

  CHECK_FALSE(ParseConfig("policies: p\nupstreams: []\nsecrets: {file: 3x, env: maybe, fil: x}\n",
                          "writ.yaml", "", &c, &errors));
  CHECK(errors.find("secrets.env: `maybe` is not one of false | true") != std::string::npos);
  CHECK(errors.find("secrets.fil: unknown key\nhelp: did you mean `file`?") != std::string::npos);
}

TEST_CASE("the secrets file must not be readable by others") {
  TempDir d;
  SecretsConfig sc;
  sc.file = d.Write("secrets.yaml", "GH_TOKEN: ghp_abc\n", 0644);
  std::string error;
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("mode 0644") != std::string::npos);
  CHECK(error.find("help: chmod 600") != std::string::npos);
  chmod(sc.file.c_str(), 0620);  // group-writable
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  chmod(sc.file.c_str(), 0640);
  CHECK(SecretStore::Open(sc, &error) != nullptr);
  chmod(sc.file.c_str(), 0600);
  auto store = SecretStore::Open(sc, &error);
  REQUIRE(store != nullptr);
  std::string v;
  CHECK(store->Lookup("GH_TOKEN", &v));
  CHECK(v == "ghp_abc");

  sc.file = (d.path / "missing.yaml").string();
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("cannot read") != std::string::npos);
  sc.file = d.path.string();
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("not a regular file") != std::string::npos);
}

TEST_CASE("the secrets file must be a map of names to scalars") {
  TempDir d;
  SecretsConfig sc;
  std::string error;
  sc.file = d.Write("a.yaml", "- x\n", 0600);
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("must be a YAML mapping") != std::string::npos);
  sc.file = d.Write("b.yaml", "OK: 1\nnot-a-name: x\n", 0600);
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("b.yaml:2:1: `not-a-name` is not a secret name") != std::string::npos);
  sc.file = d.Write("c.yaml", "K: [1, 2]\n", 0600);
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("expected a string value") != std::string::npos);
  sc.file = d.Write("d.yaml", "K: [unclosed\n", 0600);
  CHECK(SecretStore::Open(sc, &error) == nullptr);
  CHECK(error.find("invalid YAML") != std::string::npos);
  sc.file = d.Write("e.yaml", "", 0600);
  CHECK(SecretStore::Open(sc, &error) != nullptr);
}

TEST_CASE("resolution substitutes references, reports each unresolved one with its line") {
  TempDir d;
  d.Write("secrets.yaml", "GH_TOKEN: ghp_file_value_123\nDB_PASS: hunter2-but-longer\n", 0600);
  Config c = MustParse(R"(policies: p
secrets: { file: secrets.yaml }
upstreams:
  - name: gh
    command: server
    env:
      GITHUB_TOKEN: ${secret:GH_TOKEN}
      AUTH: "Bearer ${secret:GH_TOKEN}; db=${secret:DB_PASS}"
      LOG_LEVEL: debug
  - name: db
    command: server
    env: { PASS: "${secret:NOPE}" }
)",
                       d.path.string());
  CHECK(c.secrets.file == (d.path / "secrets.yaml").string());
  REQUIRE(c.secrets.refs.size() == 4);
  CHECK(c.secrets.refs[3].key == "upstreams[1].env.PASS");

  std::string error;
  auto store = SecretStore::Open(c.secrets, &error);
  REQUIRE_MESSAGE(store != nullptr, error);
  ResolvedUpstreams r;
  std::string errors;
  CHECK_FALSE(ResolveUpstreamSecrets(c, *store, &r, &errors));
  CHECK(errors ==
        "writ.yaml:12:18: upstreams[1].env.PASS: secret `NOPE` is not defined\n"
        "help: add `NOPE: ...` to " + (d.path / "secrets.yaml").string() +
        " (or allow the environment with `secrets: {env: true}`)\n");

  // With the environment allowed, NOPE comes from there and is scrubbed too.
  c.secrets.env = true;
  setenv("NOPE", "from-the-environment", 1);
  store = SecretStore::Open(c.secrets, &error);
  REQUIRE(store != nullptr);
  REQUIRE(ResolveUpstreamSecrets(c, *store, &r, &errors));
  unsetenv("NOPE");
  CHECK(r.upstreams[0].env[0].second == "ghp_file_value_123");
  CHECK(r.upstreams[0].env[1].second == "Bearer ghp_file_value_123; db=hunter2-but-longer");
  CHECK(r.upstreams[0].env[2].second == "debug");
  CHECK(r.upstreams[1].env[0].second == "from-the-environment");
  CHECK(c.upstreams[0].env[0].second == "${secret:GH_TOKEN}");  // the config is unchanged
  std::vector<std::pair<std::string, std::string>> want = {
      {"DB_PASS", "hunter2-but-longer"},
      {"GH_TOKEN", "ghp_file_value_123"},
      {"NOPE", "from-the-environment"}};
  CHECK(r.secrets == want);
}

TEST_CASE("rotation: Reload re-reads the file and keeps the old values on error") {
  TempDir d;
  SecretsConfig sc;
  sc.file = d.Write("s.yaml", "K: first-value\n", 0600);
  std::string error, v;
  auto store = SecretStore::Open(sc, &error);
  REQUIRE(store != nullptr);
  d.Write("s.yaml", "K: second-value\n", 0600);
  REQUIRE(store->Reload(&error));
  CHECK(store->Lookup("K", &v));
  CHECK(v == "second-value");
  d.Write("s.yaml", "K: third-value\n", 0644);
  CHECK_FALSE(store->Reload(&error));
  CHECK(error.find("mode 0644") != std::string::npos);
  CHECK(store->Lookup("K", &v));
  CHECK(v == "second-value");
}

TEST_CASE("SecretScrubber: exact values, longest first, keys too, short values skipped") {
  SecretScrubber s({{"GH", "ghp_0123456789abcdef"},
                    {"GH_LONG", "ghp_0123456789abcdef_suffix"},
                    {"PIN", "1234"},
                    {"DUP", "ghp_0123456789abcdef"},
                    {"DOTS", "a.b*c+d?(x)"}});
  CHECK(s.skipped() == std::vector<std::string>{"PIN"});
  CHECK(s.size() == 3);
  std::string t = "x ghp_0123456789abcdef_suffix y ghp_0123456789abcdef z 1234 a.b*c+d?(x)";
  CHECK(s.ScrubString(&t) == 3);
  CHECK(t == "x [REDACTED:secret:GH_LONG] y [REDACTED:secret:GH] z 1234 "
             "[REDACTED:secret:DOTS]");
  json j = {{"env", {{"TOKEN", "ghp_0123456789abcdef"}, {"ghp_0123456789abcdef", {1, "a.b*c+d?(x)"}}}},
            {"n", 5}};
  CHECK(s.ScrubJson(&j) == 3);
  CHECK(j == json{{"env",
                   {{"TOKEN", "[REDACTED:secret:GH]"},
                    {"[REDACTED:secret:GH]", {1, "[REDACTED:secret:DOTS]"}}}},
                  {"n", 5}});
  // Bytes, not characters: a value with non-ASCII bytes matches exactly.
  SecretScrubber u(Pairs{{"U", "p\xC3\xA4ssw\xC3\xB6rd-long"}});
  std::string w = "<p\xC3\xA4ssw\xC3\xB6rd-long>";
  CHECK(u.ScrubString(&w) == 1);
  CHECK(w == "<[REDACTED:secret:U]>");
  SecretScrubber none(Pairs{});
  std::string x = "nothing";
  CHECK(none.ScrubString(&x) == 0);
}

TEST_CASE("SecretScrubber handles many secrets in one pass") {
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 2000; ++i)
    many.emplace_back(std::string("S").append(std::to_string(i)),
                      std::string("secret-value-").append(std::to_string(i * 7919)));
  SecretScrubber s(many);
  CHECK(s.size() == 2000);
  std::string t = "a secret-value-" + std::to_string(1999 * 7919) + " b secret-value-0 c";
  CHECK(s.ScrubString(&t) == 2);
  CHECK(t == "a [REDACTED:secret:S1999] b [REDACTED:secret:S0] c");
}
