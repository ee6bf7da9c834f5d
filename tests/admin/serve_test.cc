// `writ serve --stdio` with approvals:, admin: and audit: configured: the admin API comes up
// on the printed port, decisions and kill-switch changes reach the audit trail, the kill
// switch survives a restart of the process, a bad state file stops the start (exit 2), and
// a held call's arguments preview is masked by its redact obligation everywhere it is shown.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "gateway/approvals.h"
#include "tests/admin/admin_util.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

constexpr char kToken[] = "serve-test-token-0123456789abcdef";

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `writ serve --stdio --config FILE`, stdin a pipe we hold, stderr to a file.
class Gateway {
 public:
  Gateway(const std::string& config, const std::string& log) : log_(log) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[0], 0);
      close(fds[1]);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
      execl(writ.c_str(), writ.c_str(), "serve", "--stdio", "--config", config.c_str(),
            (char*)nullptr);
      _exit(127);
    }
    close(fds[0]);
    stdin_ = fds[1];
    std::regex re("admin API on 127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 200 && port_ == 0 && !exited_; ++i) {
      std::smatch m;
      std::string text = Slurp(log);
      if (std::regex_search(text, m, re)) {
        port_ = std::stoi(m[1]);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
          exited_ = true;
          status_ = st;
        }
      }
    }
  }
  ~Gateway() { Stop(); }
  // Closes stdin (a clean shutdown); the exit status, SIGKILL after 10 s.
  int Stop() {
    if (exited_) return status_;
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
    for (int i = 0; i < 200; ++i) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exited_ = true;
        status_ = st;
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    exited_ = true;
    return -1;
  }
  int port() const { return port_; }
  std::string log() const { return Slurp(log_); }
  // One JSON-RPC message to the gateway's stdin (its answers go to /dev/null).
  void Send(const json& m) {
    std::string line = m.dump() + "\n";
    REQUIRE(write(stdin_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int status_ = -1;
};

std::string Config(const TempDir& dir) {
  std::string src = WRIT_SOURCE_DIR;
  std::ofstream(dir.path("admin.token")) << kToken << "\n";
  std::ofstream(dir.path("gw.yaml"))
      << "policies: " << src << "/tests/gateway/fixtures/demo.writ\n"
      << "upstreams:\n  - name: demo\n    command: python3\n    args: [" << src
      << "/tests/gateway/fake_upstream.py]\n"
      << "audit: { path: audit.jsonl, fsync: never }\n"
      << "approvals: { db: state.db, wait: 1s }\n"
      << "admin: { listen: 127.0.0.1:0, token_file: admin.token }\n";
  return dir.path("gw.yaml");
}

}  // namespace

TEST_CASE("writ serve starts the admin API; decisions and kill switch are audited and persist") {
  TempDir dir("serve");
  std::string config = Config(dir);
  std::string auth = std::string("Bearer ") + kToken;
  std::string id;
  {
    Gateway gw(config, dir.path("serve1.log"));
    REQUIRE_MESSAGE(gw.port() != 0, gw.log());
    // A pending approval, as the proxy would create it (another connection to the state file).
    std::string err;
    auto store = ApprovalStore::Open(dir.path("state.db"), &err);
    REQUIRE_MESSAGE(store, err);
    id = store->Request({"User::\"stdio\"", "demo", "demo__delete", ApprovalArgsDigest({}), "b1"},
                        {{"ops"}, "dec-1", "s", "{}"}, 600'000, NowMs(), &err)
             ->id;
    HttpReply r = Http(gw.port(), "GET", "/v1/approvals?state=pending", "", auth);
    REQUIRE(r.status == 200);
    REQUIRE(r.json()["approvals"].size() == 1);
    r = Http(gw.port(), "POST", "/v1/approvals/" + id + "/approve", R"({"by": "carol"})", auth);
    CHECK(r.status == 200);
    r = Http(gw.port(), "POST", "/v1/killswitch/engage",
             R"({"scope": "server:demo", "reason": "drill", "by": "carol"})", auth);
    CHECK(r.status == 200);
    CHECK(gw.Stop() == 0);
    std::string log = gw.log();
    CHECK(log.find("writ: admin: approval.approved by carol: " + id) != std::string::npos);
  }
  // Both changes are in the audit trail.
  std::ifstream f(dir.path("audit.jsonl"));
  std::vector<json> recs;
  for (std::string line; std::getline(f, line);) recs.push_back(json::parse(line));
  bool approval = false, kill = false;
  for (const json& r : recs) {
    if (r["kind"] == "approval" && r["detail"]["event"] == "approval.approved") {
      approval = true;
      CHECK(r["detail"]["by"] == "carol");
      CHECK(r["tool"] == "demo__delete");
      CHECK(r["decision_id"] == "dec-1");
      CHECK(r["detail"]["approval"]["id"] == id);
    }
    if (r["kind"] == "killswitch" && r["detail"]["event"] == "killswitch.engaged") {
      kill = true;
      CHECK(r["detail"]["killswitch"]["scope"] == "server:demo");
    }
  }
  CHECK(approval);
  CHECK(kill);
  std::string out, err;
  CHECK(RunWrit("audit verify " + dir.path("audit.jsonl"), &out, &err) == 0);

  // After a restart the kill switch is still engaged, and the CLI finds the gateway from the
  // config alone.
  Gateway gw(config, dir.path("serve2.log"));
  REQUIRE_MESSAGE(gw.port() != 0, gw.log());
  HttpReply r = Http(gw.port(), "GET", "/v1/killswitch", "", auth);
  REQUIRE(r.status == 200);
  REQUIRE(r.json()["engaged"].size() == 1);
  CHECK(r.json()["engaged"][0]["reason"] == "drill");
  // admin.listen is port 0 here, so point the CLI at the real port; the token comes from
  // the config's admin.token_file.
  CHECK(RunWrit("kill status --config " + config + " --admin 127.0.0.1:" +
                    std::to_string(gw.port()),
                &out, &err) == 0);
  CHECK(out.find("engaged server:demo") != std::string::npos);
  CHECK(gw.Stop() == 0);
}

TEST_CASE("writ serve refuses a foreign state file (exit 2)") {
  TempDir dir("serve_bad_db");
  std::string config = Config(dir);
  std::ofstream(dir.path("state.db")) << std::string(200, 'x');
  std::string out, err;
  CHECK(RunWrit("serve --stdio --config " + config, &out, &err) == 2);
  CHECK(err.find("error: approvals.db: " + dir.path("state.db") + ": not a writ state database") !=
        std::string::npos);
  CHECK(err.find("help: ") != std::string::npos);
}

TEST_CASE("writ serve: the approval preview is masked by the call's redact obligation") {
  // The policy holds demo__wipe for approval AND redacts a card number and a path; an
  // upstream env value is a configured secret. The approver must see none of them: not in the
  // state file, the admin API, `writ approvals show`, or the webhook.
  TempDir dir("serve_preview");
  WebhookServer hook({200});
  std::string src = WRIT_SOURCE_DIR;
  std::ofstream(dir.path("admin.token")) << kToken << "\n";
  std::ofstream(dir.path("p.writ"))
      << "@id(\"all\") permit (principal, action, resource);\n"
      << "@id(\"wipe\") rule if resource == Tool::\"demo__wipe\"\n"
      << "then require_approval(approvers: \"ops\"), redact(\"credit_card\", \"args.api_token\");\n";
  std::ofstream(dir.path("gw.yaml"))
      << "policies: p.writ\n"
      << "upstreams:\n  - name: demo\n    command: python3\n    args: [" << src
      << "/tests/gateway/fake_upstream.py]\n"
      << "    env: { FAKE_KEY: env-secret-value-42 }\n"
      << "audit: { path: audit.jsonl, fsync: never }\n"
      << "approvals: { db: state.db, wait: 1s, notify: { channel: hook } }\n"
      << "notify: { channels: { hook: { url: 'http://127.0.0.1:" << hook.port() << "/h' } } }\n"
      << "admin: { listen: 127.0.0.1:0, token_file: admin.token }\n";
  const std::string card = "4111 1111 1111 1111", token = "tok-very-secret-123";
  const std::string expected =
      R"({"api_token":"[REDACTED]","card":"[REDACTED:credit_card]","note":"key [REDACTED]"})";

  Gateway gw(dir.path("gw.yaml"), dir.path("serve.log"));
  REQUIRE_MESSAGE(gw.port() != 0, gw.log());
  gw.Send({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
           {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()},
                       {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}});
  gw.Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  gw.Send({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
           {"params", {{"name", "demo__wipe"},
                       {"arguments", {{"card", card}, {"api_token", token},
                                      {"note", "key env-secret-value-42"}}}}}});
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE_MESSAGE(store, err);
  std::vector<Approval> pending;
  for (int i = 0; i < 200 && pending.empty(); ++i) {
    pending = store->List(ApprovalState::kPending);
    if (pending.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE_MESSAGE(pending.size() == 1, gw.log());
  const std::string id = pending[0].id;
  CHECK(pending[0].context.args_preview == expected);
  // The binding still covers the real arguments (the audit's args_digest).
  CHECK(pending[0].binding.args_digest ==
        ApprovalArgsDigest({{"card", card}, {"api_token", token},
                            {"note", "key env-secret-value-42"}}));

  std::string auth = std::string("Bearer ") + kToken;
  HttpReply r = Http(gw.port(), "GET", "/v1/approvals/" + id, "", auth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["args_preview"] == expected);
  std::string out;
  CHECK(RunWrit("approvals show " + id + " --config " + dir.path("gw.yaml") +
                    " --admin 127.0.0.1:" + std::to_string(gw.port()),
                &out, &err) == 0);
  CHECK(out.find("arguments   " + expected) != std::string::npos);
  REQUIRE(hook.WaitFor(1, 10000));
  json event = json::parse(hook.received()[0].body);
  CHECK(event["event"] == "approval.requested");
  CHECK(event["approval"]["args_preview"] == expected);
  CHECK(gw.Stop() == 0);

  // The new approval is in the audit trail too, with the masked preview.
  bool audited = false;
  std::istringstream audit_lines(Slurp(dir.path("audit.jsonl")));
  for (std::string line; std::getline(audit_lines, line);) {
    json rec = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_object() && rec.value("kind", "") == "approval" &&
        rec.dump().find("approval.requested") != std::string::npos) {
      audited = true;
      CHECK(rec.dump().find(id) != std::string::npos);
    }
  }
  CHECK_MESSAGE(audited, Slurp(dir.path("audit.jsonl")));

  // Nothing of the masked values anywhere in what was persisted or sent.
  std::string persisted = Slurp(dir.path("state.db")) + Slurp(dir.path("state.db-wal")) +
                          Slurp(dir.path("audit.jsonl")) + hook.received()[0].body + r.body + out;
  for (const std::string& secret : {card, token, std::string("env-secret-value-42")})
    CHECK_MESSAGE(persisted.find(secret) == std::string::npos, secret);
}
