// serve_secrets_test.cc -- `writ serve` resolves ${secret:NAME} before starting upstreams:
// the upstream's environment gets the value, an unresolved reference or a world-readable
// secrets file stops the gateway with exit 2 and a located message. Runs build/cli/writ.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `writ serve --stdio` on `dir/writ.yaml` with stdin closed; returns the exit code.
int Serve(const fs::path& dir) {
  std::string cmd = "cd '" + dir.string() + "' && timeout 20 '" WRIT_BINARY_DIR
                    "/cli/writ' serve --stdio --config writ.yaml < /dev/null > out 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct Dir {
  fs::path path = fs::temp_directory_path() / ("writ_serve_secrets_" + std::to_string(getpid()));
  Dir() {
    fs::remove_all(path);
    fs::create_directories(path / "p");
    std::ofstream(path / "p" / "a.writ") << "permit (principal, action, resource);\n";
  }
  ~Dir() { fs::remove_all(path); }
};

const char* kConfig = R"(policies: ./p
secrets: { file: secrets.yaml }
upstreams:
  - name: envdump
    command: sh
    args: [-c, 'printf %s "$TOKEN" > token.txt']
    env:
      TOKEN: "Bearer ${secret:GH_TOKEN}"
)";

}  // namespace

TEST_CASE("writ serve passes the resolved secret to the upstream") {
  if (!fs::exists(WRIT_BINARY_DIR "/cli/writ")) {
    MESSAGE("build the writ target first");
    return;
  }
  Dir d;
  std::ofstream(d.path / "writ.yaml") << kConfig;
  std::ofstream(d.path / "secrets.yaml") << "GH_TOKEN: ghp_0123456789abcdefghij\n";
  chmod((d.path / "secrets.yaml").c_str(), 0600);
  CHECK(Serve(d.path) == 0);
  INFO(Slurp(d.path / "out"));
  // The upstream may still be finishing its write when the gateway exits; wait briefly.
  for (int i = 0; i < 50 && Slurp(d.path / "token.txt").empty(); ++i) usleep(100 * 1000);
  CHECK(Slurp(d.path / "token.txt") == "Bearer ghp_0123456789abcdefghij");
}

TEST_CASE("writ serve refuses an unresolved secret and a readable secrets file") {
  if (!fs::exists(WRIT_BINARY_DIR "/cli/writ")) return;
  Dir d;
  std::ofstream(d.path / "writ.yaml") << kConfig;
  std::ofstream(d.path / "secrets.yaml") << "OTHER: x\n";
  chmod((d.path / "secrets.yaml").c_str(), 0600);
  CHECK(Serve(d.path) == 2);
  std::string out = Slurp(d.path / "out");
  CHECK(out.find("writ.yaml:8:14: upstreams[0].env.TOKEN: secret `GH_TOKEN` is not defined") !=
        std::string::npos);
  CHECK(out.find("help: add `GH_TOKEN: ...`") != std::string::npos);
  CHECK(out.find("started upstream") == std::string::npos);
  CHECK_FALSE(fs::exists(d.path / "token.txt"));

  std::ofstream(d.path / "secrets.yaml") << "GH_TOKEN: ghp_0123456789abcdefghij\n";
  chmod((d.path / "secrets.yaml").c_str(), 0644);
  CHECK(Serve(d.path) == 2);
  out = Slurp(d.path / "out");
  CHECK(out.find("has mode 0644") != std::string::npos);
  CHECK(out.find("help: chmod 600") != std::string::npos);
  CHECK_FALSE(fs::exists(d.path / "token.txt"));
}
