// rotation_test.cc -- credential rotation (gateway/rotation.h): SecretRotator re-resolves the
// upstreams' references, reports what changed and widens the scrubber to old and new values;
// a bad file changes nothing. UpstreamSupervisor::RestartWithEnv replaces the process with one
// that has the new environment. End to end: tests/e2e/rotation_test.mjs.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "gateway/rotation.h"
#include "gateway/supervisor.h"

using namespace writ::gateway;
namespace fs = std::filesystem;

namespace {

constexpr char kOld[] = "old-credential-0123456789";
constexpr char kNew[] = "new-credential-9876543210";

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("writ-rot-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void WriteSecrets(const fs::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
}

std::string Scrubbed(const ScrubberHolder& h, std::string s) {
  h.ScrubString(&s);
  return s;
}

}  // namespace

TEST_CASE("secret rotation: new values resolved, old and new scrubbed, a bad file changes nothing") {
  fs::path dir = TempDir("rotator");
  fs::path file = dir / "secrets.yaml";
  WriteSecrets(file, std::string("TOK: ") + kOld + "\nOTHER: unchanged-value-123\n", 0600);
  Config raw;
  raw.secrets.file = file.string();
  raw.secrets.config_name = "gateway.yaml";
  UpstreamConfig a;
  a.name = "a";
  a.command = "true";
  a.env = {{"TOKEN", "${secret:TOK}"}};
  UpstreamConfig b = a;
  b.name = "b";
  b.env = {{"X", "${secret:OTHER}"}};
  raw.upstreams = {a, b};

  std::string error;
  auto store = SecretStore::Open(raw.secrets, &error);
  REQUIRE_MESSAGE(store != nullptr, error);
  ResolvedUpstreams start;
  REQUIRE(ResolveUpstreamSecrets(raw, *store, &start, &error));
  auto holder = std::make_shared<ScrubberHolder>(std::make_shared<const SecretScrubber>(start.secrets));
  SecretRotator rot(raw, start.upstreams, start.secrets, holder, nullptr);
  CHECK(rot.enabled());

  // Nothing changed yet.
  RotationResult r = rot.Rotate("test");
  CHECK(r.ok);
  CHECK(r.changed_secrets.empty());
  CHECK(r.changed_upstreams.empty());

  // A bad mode is refused; the scrubber and the values stay.
  WriteSecrets(file, std::string("TOK: ") + kNew + "\nOTHER: unchanged-value-123\n", 0644);
  r = rot.Rotate("test");
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("0644") != std::string::npos);
  CHECK(Scrubbed(*holder, kNew) == kNew);
  CHECK(Scrubbed(*holder, kOld) == "[REDACTED:secret:TOK]");

  // The good file: TOK changed, only upstream a is affected; both values are scrubbed.
  ::chmod(file.c_str(), 0600);
  r = rot.Rotate("test");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.changed_secrets == std::vector<std::string>{"TOK"});
  CHECK(r.changed_upstreams == std::vector<size_t>{0});
  REQUIRE(r.upstreams.size() == 2);
  CHECK(r.upstreams[0].env == std::vector<std::pair<std::string, std::string>>{{"TOKEN", kNew}});
  CHECK(Scrubbed(*holder, std::string(kOld) + " " + kNew) ==
        "[REDACTED:secret:TOK] [REDACTED:secret:TOK]");

  // A reference that is no longer defined fails and keeps the current values.
  WriteSecrets(file, "OTHER: unchanged-value-123\n", 0600);
  r = rot.Rotate("test");
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("TOK") != std::string::npos);
  WriteSecrets(file, std::string("TOK: ") + kNew + "\nOTHER: unchanged-value-123\n", 0600);
  r = rot.Rotate("test");
  CHECK(r.ok);
  CHECK(r.changed_upstreams.empty());  // compared with the last successful rotation
  fs::remove_all(dir);
}

TEST_CASE("RestartWithEnv replaces the process with one that has the new environment") {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> lines;
  int restarted = 0;
  UpstreamSupervisor::Hooks hooks;
  hooks.on_line = [&](std::string_view l) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(l);
    cv.notify_all();
  };
  hooks.on_restart = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++restarted;
    cv.notify_all();
  };
  ChildSpec spec{"sh", "sh", {"-c", "echo \"tok=$TOK\"; exec cat"}, {{"TOK", "first"}}, 1 << 20};
  RestartConfig rc;
  rc.max_restarts = 0;  // a crash would not be restarted: only the rotation restarts it
  UpstreamSupervisor sup(spec, rc, hooks);
  std::string error;
  REQUIRE_MESSAGE(sup.Start(&error), error);
  auto wait_for = [&](auto pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), pred);
  };
  REQUIRE(wait_for([&] { return !lines.empty(); }));
  CHECK(lines[0] == "tok=first");
  pid_t pid0 = sup.pid();
  REQUIRE(sup.RestartWithEnv({{"TOK", "second"}}, std::chrono::milliseconds(200)));
  REQUIRE(wait_for([&] { return restarted == 1 && lines.size() >= 2; }));
  CHECK(lines[1] == "tok=second");
  CHECK(sup.pid() != pid0);
  CHECK(sup.pid() > 0);
  CHECK(sup.Send("ping"));
  REQUIRE(wait_for([&] { return lines.size() >= 3; }));
  CHECK(lines[2] == "ping");
  sup.Shutdown(std::chrono::milliseconds(200));
  CHECK_FALSE(sup.RestartWithEnv({{"TOK", "third"}}));
}
