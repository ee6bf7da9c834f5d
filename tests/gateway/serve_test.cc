// End-to-end: the built `writ serve --stdio` binary with two fake upstreams
// (tests/gateway/fake_upstream.py), driven over pipes. Every wait is bounded.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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
      : child_(ChildSpec{"writ-under-test", std::string(WRIT_BINARY_DIR) + "/cli/writ", args}) {
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
  std::ofstream(dir / "policies" / "p.writ") << R"(
@id("analysts-demo")
permit (principal in Role::"analyst", action == Action::"tools/call", resource in Server::"demo");

@id("no-secret")
forbid (principal, action, resource == Tool::"demo__secret")
then reason("secret is off limits");

@id("no-etc")
forbid (principal, action == Action::"tools/call", resource == Tool::"demo__echo")
when { args has path && args.path like "/etc/*" }
then reason("system files are off limits");

@id("destructive-needs-approval")
rule if call.intent == "destructive" then require_approval(approvers: "ops");
)";
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
  json sampling = gw.Wait([](const json& m) { return m.value("method", "") == "sampling/createMessage"; });
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

TEST_CASE("writ serve without --stdio is not yet supported; bad config exits 2") {
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
  CHECK(Slurp(dir / "out").find("not implemented yet") != std::string::npos);
  CHECK(run("serve --stdio --config " + (dir / "bad.yaml").string() + " < /dev/null") == 2);
  std::string out = Slurp(dir / "out");
  CHECK(out.find("bad.yaml:4:5: upstreams[0].comand: unknown key") != std::string::npos);
  CHECK(out.find("help: did you mean `command`?") != std::string::npos);
  fs::remove_all(dir);
}
