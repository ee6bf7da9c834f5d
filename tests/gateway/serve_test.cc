// End-to-end: the built `writ serve --stdio` binary with two fake upstreams
// (tests/gateway/fake_upstream.py), driven over pipes. Every wait is bounded.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "gateway/jsonrpc.h"
#include "gateway/upstream.h"

using nlohmann::json;
using namespace writ::gateway;
namespace fs = std::filesystem;

namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `writ serve` as a child, its stdout lines queued.
class Gateway {
 public:
  explicit Gateway(const std::vector<std::string>& args)
      : child_(ChildSpec{"writ-under-test", std::string(WRIT_BINARY_DIR) + "/cli/writ", args, {}}) {
    std::string error;
    REQUIRE_MESSAGE(child_.Start(
                        [this](std::string_view line) {
                          std::lock_guard<std::mutex> lock(mu_);
                          lines_.push_back(json::parse(line, nullptr, false));
                          cv_.notify_all();
                        },
                        [this](int status) {
                          std::lock_guard<std::mutex> lock(mu_);
                          exited_ = true;
                          status_ = status;
                          cv_.notify_all();
                        },
                        &error),
                    error);
  }
  ~Gateway() { child_.Shutdown(std::chrono::milliseconds(3000)); }

  void Send(const json& m) { REQUIRE(child_.Send(m.dump())); }
  void SendRaw(const std::string& s) { REQUIRE(child_.Send(s)); }
  json Request(const json& id, const std::string& method, json params = json::object()) {
    Send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    return Wait([&](const json& m) { return m.contains("id") && m["id"] == id && !m.contains("method"); });
  }
  // The first queued message matching `pred` (removed from the queue); null on timeout.
  json Wait(const std::function<bool(const json&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    json found;
    bool ok = cv_.wait_for(lock, kTimeout, [&] {
      for (auto it = lines_.begin(); it != lines_.end(); ++it) {
        if (pred(*it)) {
          found = *it;
          lines_.erase(it);
          return true;
        }
      }
      return false;
    });
    if (!ok) FAIL_CHECK("timed out waiting for a message");
    return found;
  }
  bool WaitExit(int* status) {
    std::unique_lock<std::mutex> lock(mu_);
    bool ok = cv_.wait_for(lock, kTimeout, [&] { return exited_; });
    *status = status_;
    return ok;
  }
  void CloseStdin() { child_.Shutdown(std::chrono::milliseconds(10000)); }
  void Kill(int sig) { ::kill(child_.pid(), sig); }

 private:
  ChildProcess child_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<json> lines_;
  bool exited_ = false;
  int status_ = -1;
};

std::vector<std::string> ToolNames(const json& reply) {
  std::vector<std::string> out;
  for (auto& t : reply["result"]["tools"]) out.push_back(t["name"]);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("writ serve --stdio proxies and enforces policy") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-test-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "policies");
  fs::copy_file(std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fixtures/demo.writ", dir / "policies" / "p.writ",
                fs::copy_options::overwrite_existing);
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  fs::path rec_demo = dir / "demo.calls", rec_other = dir / "other.calls";
  std::ofstream(dir / "writ.yaml") << "policies: ./policies\n"
                                   << "stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }\n"
                                   << "upstreams:\n"
                                   << "  - name: demo\n    command: python3\n    args: [" << fake
                                   << ", --record, " << rec_demo.string() << "]\n"
                                   << "  - name: other\n    command: python3\n    args: [" << fake
                                   << ", --record, " << rec_other.string()
                                   << ", --version, 2025-03-26]\n"
                                   << "limits: { max_message_bytes: 65536 }\n";

  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});

  // initialize: merged capabilities, our serverInfo, the oldest version an upstream answered.
  json init = gw.Request(1, "initialize",
                         {{"protocolVersion", "2025-06-18"},
                          {"capabilities", {{"sampling", json::object()}}},
                          {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
  CHECK(init["result"]["serverInfo"]["name"] == "writ");
  CHECK(init["result"]["capabilities"].contains("tools"));
  CHECK(init["result"]["capabilities"].contains("logging"));
  CHECK(init["result"]["protocolVersion"] == "2025-03-26");
  gw.Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});

  // tools/list: both pages of demo, namespaced; secret hidden (forbidden), other's tools hidden
  // (no permit can match).
  json list = gw.Request(2, "tools/list");
  CHECK(ToolNames(list) == std::vector<std::string>{"demo__ask", "demo__crash", "demo__echo",
                                                    "demo__wipe", "demo__write_note"});

  // Allowed: forwarded, answered under the client's id.
  json ok = gw.Request("c-1", "tools/call", {{"name", "demo__echo"}, {"arguments", {{"msg", "hi"}}}});
  REQUIRE(ok.contains("result"));
  CHECK(ok["result"]["content"][0]["text"] == R"({"msg": "hi"})");

  // Denied at call time (depends on args): reason, decision id, determining.
  json denied = gw.Request(3, "tools/call",
                           {{"name", "demo__echo"}, {"arguments", {{"path", "/etc/passwd"}}}});
  CHECK(denied["error"]["code"] == kDenied);
  CHECK(denied["error"]["message"].get<std::string>().find("system files are off limits") !=
        std::string::npos);
  CHECK(denied["error"]["data"]["decision_id"].get<std::string>().size() == 32);
  CHECK(denied["error"]["data"]["determining"] == json::array({"no-etc"}));

  // Hidden tools are denied if called anyway.
  CHECK(gw.Request(4, "tools/call", {{"name", "demo__secret"}})["error"]["code"] == kDenied);
  CHECK(gw.Request(5, "tools/call", {{"name", "other__echo"}})["error"]["code"] == kDenied);

  // require_approval: held, not forwarded.
  json held = gw.Request(6, "tools/call", {{"name", "demo__wipe"}});
  CHECK(held["error"]["code"] == kHeldForApproval);
  CHECK(held["error"]["message"].get<std::string>().find("held for approval") != std::string::npos);

  // Server-to-client request routed to the client and the answer routed back.
  gw.Send({{"jsonrpc", "2.0"}, {"id", 7}, {"method", "tools/call"}, {"params", {{"name", "demo__ask"}}}});
  json sampling =
      gw.Wait([](const json& m) { return m.value("method", "") == "sampling/createMessage"; });
  REQUIRE(sampling.contains("id"));
  gw.Send({{"jsonrpc", "2.0"}, {"id", sampling["id"]}, {"result", {{"role", "assistant"}}}});
  json asked = gw.Wait([](const json& m) { return m.contains("id") && m["id"] == 7; });
  CHECK(asked["result"]["content"][0]["text"] == R"(client said: {"role": "assistant"})");

  // ping, malformed JSON, oversized and too deep messages: answered by the gateway.
  CHECK(gw.Request(8, "ping")["result"] == json::object());
  gw.SendRaw("{this is not json");
  json perr = gw.Wait([](const json& m) { return m.contains("error") && m["id"].is_null(); });
  CHECK(perr["error"]["code"] == kParseError);
  gw.SendRaw(std::string(70000, ' ') + "{}");
  CHECK(gw.Wait([](const json& m) { return m.contains("error") && m["id"].is_null(); })["error"]["code"] ==
        kParseError);
  gw.SendRaw(std::string(100, '[') + std::string(100, ']'));
  CHECK(gw.Wait([](const json& m) { return m.contains("error") && m["id"].is_null(); })["error"]["code"] ==
        kParseError);

  // Upstream crash: a clean error for the call, the session survives, its tools disappear.
  json crashed = gw.Request(9, "tools/call", {{"name", "demo__crash"}});
  CHECK(crashed["error"]["code"] == kUpstreamUnavailable);
  CHECK(gw.Request(10, "ping")["result"] == json::object());
  CHECK(ToolNames(gw.Request(11, "tools/list")).empty());
  CHECK(gw.Request(12, "tools/call", {{"name", "demo__echo"}})["error"]["code"] == kUpstreamUnavailable);

  // What the demo upstream actually received: never the held or denied calls.
  std::string calls = Slurp(rec_demo);
  CHECK(calls.find("\"echo\"") != std::string::npos);
  CHECK(calls.find("/etc/passwd") == std::string::npos);
  CHECK(calls.find("\"wipe\"") == std::string::npos);
  CHECK(calls.find("\"secret\"") == std::string::npos);
  CHECK(Slurp(rec_other).empty());

  // stdin EOF: the gateway shuts its upstreams down and exits 0.
  gw.CloseStdin();
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  CHECK(status == 0);
  fs::remove_all(dir);
}

TEST_CASE("writ serve: a bad config exits 2 (HTTP and stdio)") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-cfg-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "bad.yaml") << "policies: p\nupstreams:\n  - name: x\n    comand: y\n";
  std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
  auto run = [&](const std::string& args) {
    std::string cmd = writ + " " + args + " > " + (dir / "out").string() + " 2>&1";
    int rc = std::system(cmd.c_str());
    return WEXITSTATUS(rc);
  };
  CHECK(run("serve --config " + (dir / "bad.yaml").string()) == 2);
  CHECK(Slurp(dir / "out").find("bad.yaml:4:5: upstreams[0].comand: unknown key") !=
        std::string::npos);
  CHECK(run("serve --stdio --config " + (dir / "bad.yaml").string() + " < /dev/null") == 2);
  std::string out = Slurp(dir / "out");
  CHECK(out.find("bad.yaml:4:5: upstreams[0].comand: unknown key") != std::string::npos);
  CHECK(out.find("help: did you mean `command`?") != std::string::npos);
  fs::remove_all(dir);
}

namespace {

// Runs a shell command, returns its exit status; its output goes to `out`.
int RunTo(const std::string& cmd, const fs::path& out) {
  int rc = std::system((cmd + " > " + out.string() + " 2>&1").c_str());
  return WEXITSTATUS(rc);
}

std::vector<json> ReadRecords(const fs::path& p) {
  std::vector<json> out;
  std::ifstream f(p);
  for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
  return out;
}

// A config for the audit tests: the demo fake upstream (with a credential in its env) and
// `audit_yaml` appended.
void WriteAuditConfig(const fs::path& dir, const std::string& audit_yaml) {
  fs::create_directories(dir / "policies");
  fs::copy_file(std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fixtures/demo.writ", dir / "policies" / "p.writ",
                fs::copy_options::overwrite_existing);
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n"
      << "stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }\n"
      << "upstreams:\n"
      << "  - name: demo\n    command: python3\n    args: [" << fake << ", --record, "
      << (dir / "demo.calls").string() << "]\n"
      << "    env: { DEMO_API_TOKEN: sk-live-0123456789abcdef }\n"
      << audit_yaml;
}

json Init(Gateway& gw) {
  json init = gw.Request(1, "initialize",
                         {{"protocolVersion", "2025-06-18"},
                          {"capabilities", json::object()},
                          {"clientInfo", {{"name", "audit-test-client"}, {"version", "1"}}}});
  gw.Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  return init;
}

}  // namespace

TEST_CASE("writ serve writes a verifiable audit trail") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-audit-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteAuditConfig(dir, "audit:\n  path: audit.jsonl\n  fsync: never\n  record_args: true\n");
  std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
  std::string echo_id, denied_id, held_id;
  {
    Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
    REQUIRE(Init(gw).contains("result"));
    // The credential sent as an argument must not reach the audit (record_args is on).
    json ok = gw.Request(2, "tools/call",
                         {{"name", "demo__echo"},
                          {"arguments", {{"msg", "token sk-live-0123456789abcdef"}}}});
    REQUIRE(ok.contains("result"));
    json denied = gw.Request(3, "tools/call",
                             {{"name", "demo__echo"}, {"arguments", {{"path", "/etc/passwd"}}}});
    CHECK(denied["error"]["code"] == kDenied);
    denied_id = denied["error"]["data"]["decision_id"];
    json held = gw.Request(4, "tools/call", {{"name", "demo__wipe"}});
    CHECK(held["error"]["code"] == kHeldForApproval);
    held_id = held["error"]["data"]["decision_id"];
    gw.CloseStdin();
    int status = -1;
    REQUIRE(gw.WaitExit(&status));
    CHECK(status == 0);
  }
  fs::path log = dir / "audit.jsonl";
  CHECK(RunTo(writ + " audit verify " + log.string(), dir / "verify.out") == 0);
  CHECK(Slurp(dir / "verify.out").find("ok: 4 records") != std::string::npos);

  std::vector<json> recs = ReadRecords(log);
  REQUIRE(recs.size() == 4);
  // 1: the allowed echo, before it was forwarded; 2: its outcome.
  CHECK(recs[0]["kind"] == "decision");
  CHECK(recs[0]["decision"] == "allow");
  CHECK(recs[0]["method"] == "tools/call");
  CHECK(recs[0]["server"] == "demo");
  CHECK(recs[0]["tool"] == "echo");
  CHECK(recs[0]["principal"] == "User::\"alice\"");
  CHECK(recs[0]["client"] == "audit-test-client");
  CHECK(recs[0]["determining"] == json::array({"analysts-demo"}));
  CHECK(recs[0]["args_digest"].get<std::string>().size() == 64);
  CHECK(recs[0]["args"]["msg"] == "token [REDACTED]");
  CHECK(recs[0]["bundle_hash"].get<std::string>().size() == 64);
  CHECK(!recs[0]["session"].get<std::string>().empty());
  echo_id = recs[0]["decision_id"];
  CHECK(recs[1]["kind"] == "outcome");
  CHECK(recs[1]["decision_id"] == echo_id);
  CHECK(recs[1]["upstream"]["outcome"] == "ok");
  // 3: the denial, with its reason; 4: the hold. Neither has an outcome (not forwarded).
  CHECK(recs[2]["decision"] == "deny");
  CHECK(recs[2]["decision_id"] == denied_id);
  CHECK(recs[2]["determining"] == json::array({"no-etc"}));
  CHECK(recs[2].dump().find("system files are off limits") != std::string::npos);
  CHECK(recs[3]["decision"] == "require_approval");
  CHECK(recs[3]["decision_id"] == held_id);
  CHECK(recs[3]["tool"] == "wipe");
  CHECK(Slurp(log).find("sk-live-0123456789abcdef") == std::string::npos);

  // Tampering with one byte is caught and the record named.
  std::string text = Slurp(log);
  size_t at = text.find("\"tool\":\"wipe\"");
  REQUIRE(at != std::string::npos);
  text[at + 9] = 'W';
  std::ofstream(dir / "tampered.jsonl") << text;
  CHECK(RunTo(writ + " audit verify " + (dir / "tampered.jsonl").string(), dir / "verify.out") ==
        1);
  CHECK(Slurp(dir / "verify.out").find("tampered.jsonl:4: record 4: hash mismatch") !=
        std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("writ serve fails closed when the audit log cannot be written") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-audit-fail-" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";

  SUBCASE("an audit path that cannot be opened: exit 2 with the reason") {
    WriteAuditConfig(dir, "audit: { path: " + dir.string() + " }\n");
    CHECK(RunTo(writ + " serve --stdio --config " + (dir / "writ.yaml").string() + " < /dev/null",
                dir / "out") == 2);
    CHECK(Slurp(dir / "out").find("cannot open the audit log") != std::string::npos);
  }

  SUBCASE("a config error in audit: located, with did-you-mean") {
    WriteAuditConfig(dir, "audit:\n  path: a.jsonl\n  fsync: alway\n  on_failur: deny\n");
    CHECK(RunTo(writ + " serve --stdio --config " + (dir / "writ.yaml").string() + " < /dev/null",
                dir / "out") == 2);
    std::string out = Slurp(dir / "out");
    CHECK(out.find("writ.yaml:10:10: audit.fsync: `alway` is not one of always | interval | never") !=
          std::string::npos);
    CHECK(out.find("did you mean `always`?") != std::string::npos);
    CHECK(out.find("audit.on_failur: unknown key") != std::string::npos);
  }

  SUBCASE("writes fail (/dev/full): allowed calls are denied, nothing forwarded") {
    WriteAuditConfig(dir, "audit: { path: /dev/full, fsync: never }\n");
    Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
    REQUIRE(Init(gw).contains("result"));
    json r = gw.Request(2, "tools/call", {{"name", "demo__echo"}, {"arguments", {{"msg", "hi"}}}});
    CHECK(r["error"]["code"] == kDenied);
    CHECK(r["error"]["message"].get<std::string>().find(
              "audit trail unavailable; denied (fail closed)") != std::string::npos);
    CHECK(r["error"]["data"]["decision_id"].get<std::string>().size() == 32);
    // A policy denial still says why.
    json d = gw.Request(3, "tools/call",
                        {{"name", "demo__echo"}, {"arguments", {{"path", "/etc/passwd"}}}});
    CHECK(d["error"]["message"].get<std::string>().find("system files") != std::string::npos);
    gw.CloseStdin();
    int status = -1;
    REQUIRE(gw.WaitExit(&status));
    CHECK(Slurp(dir / "demo.calls").find("echo") == std::string::npos);
  }
  fs::remove_all(dir);
}

// ---- operations: restart, reload, drain ----

namespace {

// policies/p.writ from demo.writ plus `extra`; the demo fake upstream with `upstream_extra`
// lines under it; `tail` appended at the top level.
void WriteOpsConfig(const fs::path& dir, const std::string& upstream_extra, const std::string& tail,
                    const std::string& extra_policy = "") {
  fs::create_directories(dir / "policies");
  std::ofstream(dir / "policies" / "p.writ")
      << Slurp(std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fixtures/demo.writ") << extra_policy;
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n"
      << "stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }\n"
      << "upstreams:\n"
      << "  - name: demo\n    command: python3\n    args: [" << fake << ", --record, "
      << (dir / "demo.calls").string() << "]\n"
      << upstream_extra << tail;
}

json Call(Gateway& gw, const json& id, const std::string& tool, json args = json::object()) {
  return gw.Request(id, "tools/call", {{"name", tool}, {"arguments", args}});
}

bool IsListChanged(const json& m) {
  return m.value("method", "") == "notifications/tools/list_changed";
}

}  // namespace

TEST_CASE("writ serve --stdio restarts a crashed upstream; later calls work") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-restart-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "    restart: { initial_backoff: 50ms, max_restarts: 1, window: 60s }\n", "");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  REQUIRE(gw.Request(2, "tools/list")["result"]["tools"].size() == 5);

  // The call that crashes it gets a clean JSON-RPC error under its own id.
  json crash = Call(gw, "c1", "demo__crash");
  CHECK(crash["error"]["code"] == kUpstreamUnavailable);
  CHECK(crash["error"]["data"]["upstream"] == "demo");
  CHECK(crash["error"]["message"].get<std::string>().find("exited with status 3") !=
        std::string::npos);
  // Tools gone (list_changed), then back after the restart (list_changed again).
  CHECK(!gw.Wait(IsListChanged).is_null());
  CHECK(!gw.Wait(IsListChanged).is_null());
  json ok = Call(gw, "c2", "demo__echo", {{"msg", "after"}});
  REQUIRE(ok.contains("result"));
  CHECK(ok["result"]["content"][0]["text"] == "{\"msg\": \"after\"}");
  CHECK(ToolNames(gw.Request(3, "tools/list")).size() == 5);
  // Both calls reached a demo process (the second one the restarted process).
  std::string calls = Slurp(dir / "demo.calls");
  CHECK(calls.find("\"crash\"") != std::string::npos);
  CHECK(calls.find("\"after\"") != std::string::npos);

  // max_restarts: 1 -- a second crash leaves it down; the session goes on.
  Call(gw, "c3", "demo__crash");
  CHECK(!gw.Wait(IsListChanged).is_null());
  json down = Call(gw, "c4", "demo__echo");
  CHECK(down["error"]["code"] == kUpstreamUnavailable);
  CHECK(gw.Request(5, "ping")["result"] == json::object());
  gw.CloseStdin();
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  CHECK(status == 0);
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio: SIGHUP reloads the policies; a bad policy keeps the old bundle") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-reload-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "",
                 "reload: { watch: false }\naudit: { path: " + (dir / "audit.jsonl").string() +
                     ", fsync: never }\n");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  gw.Request(2, "tools/list");
  REQUIRE(Call(gw, 3, "demo__echo", {{"msg", "one"}}).contains("result"));

  auto reloads = [&] {
    int n = 0;
    for (auto& r : ReadRecords(dir / "audit.jsonl")) n += r["kind"] == "reload";
    return n;
  };
  auto wait_reloads = [&](int n) {
    for (int i = 0; i < 200 && reloads() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return reloads() == n;
  };
  std::string base = Slurp(dir / "policies" / "p.writ");
  std::ofstream(dir / "policies" / "p.writ")
      << base << "\n@id(\"echo-off\")\nforbid (principal, action, resource == Tool::\"demo__echo\")"
      << " then reason(\"echo is off\");\n";
  gw.Kill(SIGHUP);
  REQUIRE(wait_reloads(1));
  json denied = Call(gw, 4, "demo__echo", {{"msg", "two"}});
  CHECK(denied["error"]["code"] == kDenied);
  CHECK(denied["error"]["message"].get<std::string>().find("echo is off") != std::string::npos);

  // A policy that does not compile: the previous bundle stays.
  std::ofstream(dir / "policies" / "p.writ") << "permit (principal,\n";
  gw.Kill(SIGHUP);
  REQUIRE(wait_reloads(2));
  CHECK(Call(gw, 5, "demo__echo")["error"]["code"] == kDenied);
  CHECK(Call(gw, 6, "demo__write_note").contains("result"));

  gw.CloseStdin();
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  std::vector<json> recs = ReadRecords(dir / "audit.jsonl");
  std::vector<json> rl;
  for (auto& r : recs)
    if (r["kind"] == "reload") rl.push_back(r);
  REQUIRE(rl.size() == 2);
  CHECK(rl[0]["reload"]["trigger"] == "sighup");
  CHECK(rl[0]["reload"]["result"] == "ok");
  CHECK(rl[0]["reload"]["old_bundle_hash"] != rl[0]["reload"]["new_bundle_hash"]);
  CHECK(rl[1]["reload"]["result"] == "failed");
  CHECK(rl[1]["reload"]["old_bundle_hash"] == rl[0]["reload"]["new_bundle_hash"]);
  CHECK(rl[1]["reload"]["error"].get<std::string>().find("p.writ") != std::string::npos);
  // Decisions name the bundle that made them.
  for (auto& r : recs)
    if (r["kind"] == "decision" && r["decision"] == "deny")
      CHECK(r["bundle_hash"] == rl[0]["reload"]["new_bundle_hash"]);
  std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
  CHECK(RunTo(writ + " audit verify " + (dir / "audit.jsonl").string(), dir / "verify.out") == 0);
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio: a changed policy file is reloaded without a signal") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-watch-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "", "reload: { poll_interval: 50ms, debounce: 100ms }\n");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  gw.Request(2, "tools/list");
  REQUIRE(Call(gw, 3, "demo__write_note").contains("result"));
  std::ofstream(dir / "policies" / "p.writ", std::ios::app)
      << "\n@id(\"notes-off\")\n"
      << "forbid (principal, action, resource == Tool::\"demo__write_note\");\n";
  bool denied = false;
  for (int i = 0; i < 100 && !denied; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    denied = Call(gw, 10 + i, "demo__write_note").contains("error");
  }
  CHECK(denied);
  gw.CloseStdin();
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio: SIGTERM refuses new requests and finishes in-flight calls") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-drain-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "", "shutdown: { drain_timeout: 20s }\n");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  gw.Request(2, "tools/list");
  // demo__ask stays in flight until the client answers the upstream's sampling request.
  gw.Send({{"jsonrpc", "2.0"}, {"id", "slow"}, {"method", "tools/call"},
           {"params", {{"name", "demo__ask"}, {"arguments", json::object()}}}});
  json sampling = gw.Wait([](const json& m) { return m.value("method", "") == "sampling/createMessage"; });
  REQUIRE(!sampling.is_null());
  gw.Kill(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  json late = Call(gw, "late", "demo__echo");
  CHECK(late["error"]["code"] == kShuttingDown);
  // The client's answer still reaches the upstream; the in-flight call completes.
  gw.Send({{"jsonrpc", "2.0"}, {"id", sampling["id"]}, {"result", {{"role", "assistant"}}}});
  json slow = gw.Wait([](const json& m) { return m.contains("id") && m["id"] == "slow"; });
  REQUIRE(slow.contains("result"));
  CHECK(slow["result"]["content"][0]["text"].get<std::string>().find("assistant") !=
        std::string::npos);
  // Nothing in flight: the gateway exits by itself, stdin still open.
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio: the drain timeout bounds a stuck call") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-drain2-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "", "shutdown: { drain_timeout: 300ms }\n");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  gw.Request(2, "tools/list");
  gw.Send({{"jsonrpc", "2.0"}, {"id", "stuck"}, {"method", "tools/call"},
           {"params", {{"name", "demo__ask"}, {"arguments", json::object()}}}});
  REQUIRE(!gw.Wait([](const json& m) { return m.value("method", "") == "sampling/createMessage"; })
               .is_null());
  auto t0 = std::chrono::steady_clock::now();
  gw.Kill(SIGTERM);
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(8));
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio with log.format json: every stderr line is one JSON object") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-jsonlog-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "    restart: { max_restarts: 0 }\n", "log: { format: json }\n");
  std::ofstream(dir / "in.jsonl")
      << json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
              {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()}}}}
             .dump()
      << "\n"
      << json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
              {"params", {{"name", "demo__crash"}}}}
             .dump()
      << "\n";
  std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
  // stdin stays open 3 s after the messages, so the calls are answered before EOF.
  std::string cmd = "(cat " + (dir / "in.jsonl").string() + "; sleep 3) | timeout 20 " + writ +
                    " serve --stdio --config " + (dir / "writ.yaml").string() + " > " +
                    (dir / "out").string() + " 2> " + (dir / "err").string();
  REQUIRE(WEXITSTATUS(std::system(cmd.c_str())) == 0);
  std::istringstream err(Slurp(dir / "err"));
  int lines = 0;
  bool saw_decision = false, saw_upstream_stderr = false, saw_budget = false;
  for (std::string line; std::getline(err, line);) {
    ++lines;
    json j = json::parse(line, nullptr, false);
    REQUIRE_MESSAGE(j.is_object(), line);
    CHECK(j["ts"].is_string());
    CHECK(j["level"].is_string());
    CHECK(j["msg"].is_string());
    if (j.value("effect", "") == "allow" && j.value("tool", "") == "demo__crash")
      saw_decision = true;
    if (j.value("stream", "") == "stderr" && j.value("upstream", "") == "demo" &&
        j["msg"] == "crashing as asked")
      saw_upstream_stderr = true;
    if (j["msg"].get<std::string>().find("restart budget") != std::string::npos) saw_budget = true;
  }
  CHECK(lines >= 5);
  CHECK(saw_decision);
  CHECK(saw_upstream_stderr);
  CHECK(saw_budget);  // max_restarts: 0 -- stays down, and says so
  CHECK(Slurp(dir / "out").find("\"code\":-32003") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio: a second SIGTERM stops without waiting for the drain") {
  fs::path dir = fs::temp_directory_path() / ("writ-serve-drain3-" + std::to_string(getpid()));
  fs::remove_all(dir);
  WriteOpsConfig(dir, "", "shutdown: { drain_timeout: 60s }\n");
  Gateway gw({"serve", "--stdio", "--config", (dir / "writ.yaml").string()});
  Init(gw);
  gw.Request(2, "tools/list");
  gw.Send({{"jsonrpc", "2.0"}, {"id", "stuck"}, {"method", "tools/call"},
           {"params", {{"name", "demo__ask"}, {"arguments", json::object()}}}});
  REQUIRE(!gw.Wait([](const json& m) { return m.value("method", "") == "sampling/createMessage"; })
               .is_null());
  auto t0 = std::chrono::steady_clock::now();
  gw.Kill(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  gw.Kill(SIGTERM);
  int status = -1;
  REQUIRE(gw.WaitExit(&status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  fs::remove_all(dir);
}
