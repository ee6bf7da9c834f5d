// Proxy unit tests, driven in memory: names, request construction, framing, id remapping.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "gateway/approvals.h"
#include "gateway/governance.h"
#include "gateway/guards.h"
#include "gateway/jsonrpc.h"
#include "gateway/proxy.h"
#include "tests/gateway/proxy_session.h"

using namespace writ::gateway;
using nlohmann::json;

TEST_CASE("SplitName splits at the first double underscore") {
  std::string s, n;
  CHECK(SplitName("fs__read_file", &s, &n));
  CHECK(s == "fs");
  CHECK(n == "read_file");
  CHECK(SplitName("gh__a__b", &s, &n));
  CHECK(s == "gh");
  CHECK(n == "a__b");
  CHECK_FALSE(SplitName("plain", &s, &n));
  CHECK_FALSE(SplitName("__x", &s, &n));
  CHECK_FALSE(SplitName("x__", &s, &n));
}

TEST_CASE("request construction") {
  PrincipalConfig p;
  p.uid = "User::\"alice\"";
  p.attrs = {{"department", "eng"}};
  p.parents = {"Role::\"analyst\""};
  json tool = {{"name", "refund"}, {"annotations", {{"destructiveHint", true}, {"title", "Refund"},
                                                     {"weird", {{"deep", 1}}}}}};
  std::time_t t = 1700000000;  // 2023-11-14 22:13:20 UTC, a Tuesday
  json r = BuildToolRequest(p, "stripe", tool, {{"amount", 5}}, t);
  CHECK(r["action"] == "tools/call");
  CHECK(r["principal"]["uid"] == "User::\"alice\"");
  CHECK(r["principal"]["parents"][0] == "Role::\"analyst\"");
  CHECK(r["resource"]["uid"] == "Tool::\"stripe__refund\"");
  CHECK(r["resource"]["parents"] == json::array({"Server::\"stripe\""}));
  CHECK(r["resource"]["attrs"]["destructiveHint"] == true);
  CHECK(r["resource"]["attrs"]["title"] == "Refund");
  CHECK_FALSE(r["resource"]["attrs"].contains("weird"));
  CHECK(r["resource"]["attrs"]["server"] == "stripe");
  CHECK(r["args"]["amount"] == 5);
  CHECK(r["call"]["intent"] == "destructive");
  CHECK(r["context"]["time"] == json{{"hour", 22}, {"weekday", "tue"}, {"date", "2023-11-14"}});
  CHECK(IntentOf({{"annotations", {{"readOnlyHint", true}}}}) == "read");
  CHECK(IntentOf({{"name", "x"}}) == "write");
  CHECK(BuildToolRequest(p, "s", {{"name", "x"}}, nullptr, t).contains("args") == false);
  CHECK(BuildPromptRequest(p, "s", "greet", nullptr, t)["resource"]["uid"] == "Prompt::\"s__greet\"");
  CHECK(BuildResourceRequest(p, "s", "file:///a\"b", t)["resource"]["uid"] ==
        "Resource::\"file:///a\\\"b\"");
  CHECK(NewDecisionId().size() == 32);
  CHECK(NewDecisionId() != NewDecisionId());
}

TEST_CASE("decision ids: hex, distinct across the per-thread pool's refills and threads") {
  // Ids come from a per-thread pool of OpenSSL random bytes refilled every 32 ids: 1,000 ids
  // on each of two threads cross many refills; none may repeat or reuse a pool's bytes.
  std::vector<std::string> a, b;
  std::thread other([&b] {
    for (int i = 0; i < 1000; ++i) b.push_back(NewDecisionId());
  });
  for (int i = 0; i < 1000; ++i) a.push_back(NewDecisionId());
  other.join();
  std::set<std::string> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  CHECK(all.size() == 2000);
  for (const auto& id : all) {
    REQUIRE(id.size() == 32);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
}

TEST_CASE("framing: parse errors, depth, size, lines") {
  CHECK(ParseMessage("{nope", 100, 8).error_code == kParseError);
  CHECK(ParseMessage(R"({"jsonrpc":"2.0","id":1,"method":"x"})", 10, 8).error_code == kParseError);
  CHECK(ParseMessage(R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":[[[[1]]]]}})", 1000, 3)
            .error_code == kParseError);
  CHECK(ParseMessage(R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"[[[[["}})", 1000, 3)
            .error_code == 0);
  auto bad = ParseMessage(R"({"id":7,"method":"x"})", 1000, 8);
  CHECK(bad.error_code == kInvalidRequest);
  CHECK(bad.id == 7);
  CHECK(ParseMessage(R"([1])", 1000, 8).error_code == kInvalidRequest);
  CHECK(ParseMessage(R"({"jsonrpc":"2.0","id":1.5,"method":"x"})", 1000, 8).error_code ==
        kInvalidRequest);
  std::vector<std::pair<std::string, bool>> lines;
  LineSplitter sp(5, [&](std::string_view l, bool over) { lines.emplace_back(l, over); });
  sp.Feed("ab\r\ncd");
  sp.Feed("\n0123456789\nxy");
  sp.Finish();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == std::make_pair(std::string("ab"), false));
  CHECK(lines[1] == std::make_pair(std::string("cd"), false));
  CHECK(lines[2].second);
  CHECK(lines[3].first == "xy");
}

TEST_CASE("FlushBatch: flushes deferred inside one Feed run once, at its end") {
  int flushes = 0;
  std::vector<int> flushes_seen_by_line;  // how many flushes had run when each line arrived
  const int key = 0;
  std::function<void()> flush = [&] { ++flushes; };
  // Outside a batch nothing is deferred: the caller flushes itself.
  CHECK_FALSE(DeferFlush(&key, flush));
  LineSplitter sp(100, [&](std::string_view, bool) {
    flushes_seen_by_line.push_back(flushes);
    CHECK(DeferFlush(&key, flush));  // a writer inside the batch defers
  });
  sp.Feed("a\nb\nc\n");  // one read with three lines: one flush after all three
  CHECK(flushes == 1);
  CHECK(flushes_seen_by_line == std::vector<int>{0, 0, 0});
  sp.Feed("d\n");  // the next read: its own flush
  CHECK(flushes == 2);
  CHECK_FALSE(DeferFlush(&key, flush));
  {
    FlushBatch outer;
    sp.Feed("e\n");  // nested in an outer batch: flushed when the outer one ends
    CHECK(flushes == 2);
  }
  CHECK(flushes == 3);
}

namespace {

constexpr char kTestPolicy[] = R"(
@id("all") permit (principal, action, resource);
@id("no-rm") forbid (principal, action, resource == Tool::"a__rm") then reason("no rm");
)";

std::shared_ptr<const writ::runtime::Bundle> TestBundle(const char* policy = kTestPolicy) {
  std::string bytes, error;
  REQUIRE_MESSAGE(writ::CompileText("t.writ", policy, &bytes, &error), error);
  auto b = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE(b != nullptr);
  return b;
}

// One in-memory session: what the proxy wrote to the client and to each upstream.
struct Harness {
  std::vector<json> client, up_a, up_b;
  std::unique_ptr<Proxy> proxy;
  explicit Harness(const char* policy = kTestPolicy, ProxyOptions opts = {}) {
    proxy = std::make_unique<Proxy>(std::move(opts), TestBundle(policy),
                                    [this](const std::string& l) { client.push_back(json::parse(l)); });
    proxy->AddUpstream("a", [this](const std::string& l) {
      up_a.push_back(json::parse(l));
      return true;
    });
    proxy->AddUpstream("b", [this](const std::string& l) {
      up_b.push_back(json::parse(l));
      return true;
    });
  }
  void Client(const json& m) { proxy->OnClientLine(m.dump()); }
  void Up(size_t i, const json& m) { proxy->OnUpstreamLine(i, m.dump()); }
  // `visible`: the tools/list the client must get.
  void Init(const json& visible = json::array({"a__run", "b__rm", "b__run"})) {
    Client({{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"},
            {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()}}}});
    for (size_t i = 0; i < 2; ++i) {
      json req = (i == 0 ? up_a : up_b).back();
      Up(i, {{"jsonrpc", "2.0"}, {"id", req["id"]},
             {"result", {{"protocolVersion", "2025-06-18"}, {"capabilities", {{"tools", json::object()}}}}}});
    }
    REQUIRE(client.back()["result"]["serverInfo"]["name"] == "writ");
    // Tool catalogs.
    Client({{"jsonrpc", "2.0"}, {"id", "list"}, {"method", "tools/list"}});
    for (size_t i = 0; i < 2; ++i) {
      json req = (i == 0 ? up_a : up_b).back();
      REQUIRE(req["method"] == "tools/list");
      Up(i, {{"jsonrpc", "2.0"}, {"id", req["id"]},
             {"result", {{"tools", json::array({{{"name", "run"}}, {{"name", "rm"}}})}}}});
    }
    json names = json::array();
    for (auto& t : client.back()["result"]["tools"]) names.push_back(t["name"]);
    REQUIRE(names == visible);  // by default a__rm is hidden by policy
  }
};

}  // namespace

TEST_CASE("ids are remapped both ways and concurrent calls never collide") {
  Harness h;
  h.Init();
  // The same client id on two upstreams in flight at once; upstreams see distinct gateway ids.
  h.Client({{"jsonrpc", "2.0"}, {"id", 5}, {"method", "tools/call"},
            {"params", {{"name", "a__run"}, {"arguments", {{"x", 1}}}}}});
  h.Client({{"jsonrpc", "2.0"}, {"id", "5"}, {"method", "tools/call"},
            {"params", {{"name", "b__run"}}}});
  json ra = h.up_a.back(), rb = h.up_b.back();
  CHECK(ra["params"]["name"] == "run");
  CHECK(ra["params"]["arguments"]["x"] == 1);
  CHECK(ra["id"] != rb["id"]);
  CHECK(h.proxy->InFlight() == 2);
  // Cancellation is translated to the gateway id.
  h.Client({{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", "5"}}}});
  CHECK(h.up_b.back()["params"]["requestId"] == rb["id"]);
  // A reply from the wrong upstream with a's id is ignored.
  size_t before = h.client.size();
  h.Up(1, {{"jsonrpc", "2.0"}, {"id", ra["id"]}, {"result", {{"forged", true}}}});
  CHECK(h.client.size() == before);
  h.Up(0, {{"jsonrpc", "2.0"}, {"id", ra["id"]}, {"result", {{"ok", "a"}}}});
  CHECK(h.client.back()["id"] == 5);
  CHECK(h.client.back()["result"]["ok"] == "a");
  // Server-to-client request: gateway id downstream, the server's id restored on the answer.
  h.Up(1, {{"jsonrpc", "2.0"}, {"id", 5}, {"method", "sampling/createMessage"},
           {"params", {{"_meta", {{"progressToken", 5}}}}}});
  json s2c = h.client.back();
  CHECK(s2c["id"].is_string());
  CHECK(s2c["params"]["_meta"]["progressToken"] == s2c["id"]);
  h.Client({{"jsonrpc", "2.0"}, {"method", "notifications/progress"},
            {"params", {{"progressToken", s2c["id"]}, {"progress", 1}}}});
  CHECK(h.up_b.back()["params"]["progressToken"] == 5);
  h.Client({{"jsonrpc", "2.0"}, {"id", s2c["id"]}, {"result", {{"role", "assistant"}}}});
  CHECK(h.up_b.back()["id"] == 5);
  CHECK(h.up_b.back()["result"]["role"] == "assistant");
  // b's call still pending; b exits: the client gets a clean error under its own id.
  h.proxy->OnUpstreamExit(1, "exited with status 1");
  bool saw = false;
  for (auto& m : h.client)
    if (m.contains("id") && m["id"] == "5") saw = m["error"]["code"] == kUpstreamUnavailable;
  CHECK(saw);
  CHECK(h.proxy->InFlight() == 0);
}

TEST_CASE("denials, unknown tools, ping and parse errors are answered by the gateway") {
  Harness h;
  h.Init();
  size_t sent_a = h.up_a.size();
  h.Client({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", {{"name", "a__rm"}}}});
  json e = h.client.back();
  CHECK(e["error"]["code"] == kDenied);
  CHECK(e["error"]["message"].get<std::string>().find("no rm") != std::string::npos);
  CHECK(e["error"]["data"]["determining"] == json::array({"no-rm"}));
  CHECK(e["error"]["data"]["decision_id"].get<std::string>().size() == 32);
  CHECK(h.up_a.size() == sent_a);
  h.Client({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", "zz__rm"}}}});
  CHECK(h.client.back()["error"]["code"] == kInvalidParams);
  h.Client({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}});
  CHECK(h.client.back() == json{{"jsonrpc", "2.0"}, {"id", 3}, {"result", json::object()}});
  h.proxy->OnClientLine("{\"jsonrpc\":");
  CHECK(h.client.back()["error"]["code"] == kParseError);
  CHECK(h.client.back()["id"].is_null());
  h.proxy->OnClientLine("", /*oversized=*/true);
  CHECK(h.client.back()["error"]["code"] == kParseError);
}

TEST_CASE("CountRecords: structuredContent, JSON text, errors") {
  CHECK(CountRecords({{"structuredContent", {{"rows", json::array({1, 2, 3})}, {"n", 3}}}}) == 3);
  CHECK(CountRecords({{"structuredContent", json::array({1, 2})}}) == 2);
  CHECK(CountRecords({{"structuredContent", {{"id", 7}}}}) == 1);
  CHECK(CountRecords({{"content", json::array({{{"type", "text"}, {"text", "[1,2,3,4]"}},
                                               {{"type", "text"}, {"text", "plain words"}},
                                               {{"type", "image"}, {"data", "x"}}})}}) == 6);
  CHECK(CountRecords({{"content", json::array({{{"type", "text"},
                                                {"text", R"({"customers":[{},{}],"tags":[1]})"}}})}}) ==
        2);
  CHECK(CountRecords({{"isError", true}, {"content", json::array({{{"type", "text"}, {"text", "[1]"}}})}}) ==
        0);
  CHECK(CountRecords(json::array()) == 0);
  // Leading whitespace before JSON is still parsed; text that is not an object or array (a
  // number, a string, words that start like JSON) counts as one record.
  auto text = [](const char* t) {
    return json{{"content", json::array({{{"type", "text"}, {"text", t}}})}};
  };
  CHECK(CountRecords(text(" \n\t[1,2,3]")) == 3);
  CHECK(CountRecords(text("\r\n {\"rows\":[1,2]}")) == 2);
  CHECK(CountRecords(text("[1,2")) == 1);
  CHECK(CountRecords(text("42")) == 1);
  CHECK(CountRecords(text("\"[1,2]\"")) == 1);
  CHECK(CountRecords(text("")) == 1);
  CHECK(CountRecords(text("   ")) == 1);
}

TEST_CASE("context.session counts calls and records; context.identity reaches policies") {
  ProxyOptions opts;
  opts.identity = {{"auth", "api_key"}, {"client", "ci"}};
  Harness h(R"(
@id("all") permit (principal, action, resource) when { context.identity.client == "ci" };
@id("budget") forbid (principal, action, resource)
  when { context.session.records > 3 } then reason("record budget spent");
@id("calls") forbid (principal, action, resource == Tool::"b__run")
  when { context.session.calls > 2 } then reason("call budget spent");
)",
            opts);
  h.Init(json::array({"a__rm", "a__run", "b__rm", "b__run"}));
  h.Client({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", {{"name", "a__run"}}}});
  json req = h.up_a.back();
  REQUIRE(req["method"] == "tools/call");
  h.Up(0, {{"jsonrpc", "2.0"}, {"id", req["id"]},
           {"result", {{"content", json::array()}, {"structuredContent", {{"rows", {1, 2, 3, 4}}}}}}});
  CHECK(h.client.back()["result"]["structuredContent"]["rows"].size() == 4);
  // 4 records returned so far: the budget forbid now matches, for any tool.
  h.Client({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", "b__run"}}}});
  CHECK(h.client.back()["error"]["code"] == kDenied);
  CHECK(h.client.back()["error"]["data"]["determining"] == json::array({"budget"}));
  // The third call in the session also trips the call budget on b__run.
  h.Client({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"}, {"params", {{"name", "b__run"}}}});
  CHECK(h.client.back()["error"]["data"]["determining"] == json::array({"budget", "calls"}));
}

TEST_CASE("context.identity: a session of another client is denied by default") {
  ProxyOptions opts;
  opts.identity = {{"auth", "jwt"}, {"client", "cursor"}};
  Harness h(R"(@id("ci-only") permit (principal, action, resource) when { context.identity.client == "ci" };)",
            opts);
  h.Init(json::array());  // nothing is visible, but initialize and list work
  h.Client({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", {{"name", "a__run"}}}});
  CHECK(h.client.back()["error"]["code"] == kDenied);
}

namespace {

// Guards with a controllable clock, an approval store in a temporary file, and breakers that
// open after one failure.
struct GuardedHarness {
  int64_t now = 1'000'000;
  std::string db = "/tmp/writ-proxy-test-" + NewDecisionId() + ".db";
  Governance gov;
  std::shared_ptr<Guards> guards = std::make_shared<Guards>();
  std::unique_ptr<Harness> h;
  explicit GuardedHarness(const char* policy, int call_timeout_ms = 0) {
    std::string error;
    std::unique_ptr<ApprovalStore> store = ApprovalStore::Open(db, &error);
    REQUIRE_MESSAGE(store != nullptr, error);
    gov.approvals = std::move(store);
    guards->intent = std::make_shared<const IntentClassifier>();
    guards->dlp = DlpScanner::Create(DlpConfig{}, &error);
    guards->rate = std::make_shared<RateLimiter>();
    BreakerOptions b;
    b.failure_threshold = 1;
    guards->breakers = std::make_shared<BreakerRegistry>(b);
    guards->governance = &gov;
    guards->approval_wait_ms = 5000;
    guards->now_ms = [this] { return now; };
    ProxyOptions opts;
    opts.guards = guards;
    opts.limits.call_timeout_ms = call_timeout_ms;
    h = std::make_unique<Harness>(policy, opts);
  }
  ~GuardedHarness() {
    h.reset();
    gov.Stop();
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((db + suffix).c_str());
  }
  json CallRm(int id, int x, bool progress) {
    json params = {{"name", "a__rm"}, {"arguments", {{"x", x}}}};
    if (progress) params["_meta"] = {{"progressToken", "tok-" + std::to_string(id)}};
    h->Client({{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}});
    return h->client.back();
  }
};

constexpr char kApprovalPolicy[] = R"(
@id("all") permit (principal, action, resource);
@id("rm-needs-approval") rule if resource == Tool::"a__rm" then require_approval(approvers: "ops", timeout: 10m);
)";

}  // namespace

TEST_CASE("approval: held with progress, approved once, the identical retry passes once") {
  GuardedHarness g(kApprovalPolicy);
  Harness& h = *g.h;
  h.Init(json::array({"a__rm", "a__run", "b__rm", "b__run"}));
  size_t sent = h.up_a.size();
  json progress = g.CallRm(1, 7, /*progress=*/true);
  CHECK(progress["method"] == "notifications/progress");
  CHECK(progress["params"]["progressToken"] == "tok-1");
  std::string message = progress["params"]["message"];
  REQUIRE(message.rfind("waiting for approval ap_", 0) == 0);
  std::string id = message.substr(std::string("waiting for approval ").size());
  CHECK(h.up_a.size() == sent);  // held: nothing forwarded
  // Past the wait: -32002 with the approval id; still nothing forwarded.
  g.now += 6000;
  h.proxy->Tick();
  CHECK(h.client.back()["error"]["code"] == kHeldForApproval);
  CHECK(h.client.back()["error"]["data"]["approval_id"] == id);
  CHECK(h.up_a.size() == sent);
  // Approved; the identical retry is forwarded at once, a different call is not.
  REQUIRE(g.gov.approvals->Approve(id, "carol", "ok", g.now) == ApprovalError::kNone);
  g.CallRm(2, 8, false);  // other args: a new approval, held
  CHECK(h.up_a.size() == sent);
  g.CallRm(3, 7, false);
  REQUIRE(h.up_a.size() == sent + 1);
  CHECK(h.up_a.back()["params"]["name"] == "rm");
  h.Up(0, {{"jsonrpc", "2.0"}, {"id", h.up_a.back()["id"]}, {"result", {{"content", json::array()}}}});
  CHECK(h.client.back()["id"] == 3);
  CHECK(h.client.back().contains("result"));
  // Consumed: the same call again waits for a new approval.
  g.CallRm(4, 7, false);
  CHECK(h.up_a.size() == sent + 1);
  // Cancelled while held: dropped without an answer.
  h.Client({{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", 4}}}});
  size_t answers = h.client.size();
  g.now += 6000;
  h.proxy->Tick();  // call 2 times out (answered), call 4 was cancelled (not answered)
  REQUIRE(h.client.size() == answers + 1);
  CHECK(h.client.back()["id"] == 2);
}

TEST_CASE("approval: a denied approval denies the held call") {
  GuardedHarness g(kApprovalPolicy);
  Harness& h = *g.h;
  h.Init(json::array({"a__rm", "a__run", "b__rm", "b__run"}));
  g.CallRm(1, 1, true);
  std::vector<Approval> pending = g.gov.approvals->List(ApprovalState::kPending);
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].binding.tool == "a__rm");
  CHECK(pending[0].context.approvers == std::vector<std::string>{"ops"});
  REQUIRE(g.gov.approvals->Deny(pending[0].id, "carol", "no ticket", g.now) == ApprovalError::kNone);
  h.proxy->Tick();
  CHECK(h.client.back()["id"] == 1);
  CHECK(h.client.back()["error"]["code"] == kDenied);
  CHECK(h.client.back()["error"]["message"].get<std::string>().find("no ticket") != std::string::npos);
}

TEST_CASE("call timeout: the call fails with -32004, the upstream is told, the breaker opens") {
  GuardedHarness g(R"(@id("all") permit (principal, action, resource);)", /*call_timeout_ms=*/1);
  Harness& h = *g.h;
  h.Init(json::array({"a__rm", "a__run", "b__rm", "b__run"}));
  h.Client({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", {{"name", "a__run"}}}});
  json forwarded = h.up_a.back();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  h.proxy->Tick();
  CHECK(h.client.back()["id"] == 1);
  CHECK(h.client.back()["error"]["code"] == kUpstreamTimeout);
  CHECK(h.up_a.back()["method"] == "notifications/cancelled");
  CHECK(h.up_a.back()["params"]["requestId"] == forwarded["id"]);
  // One failure opens the breaker (threshold 1): the next call is refused without forwarding.
  size_t sent = h.up_a.size();
  h.Client({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", "a__run"}}}});
  CHECK(h.client.back()["error"]["code"] == kUpstreamUnavailable);
  CHECK(h.client.back()["error"]["data"]["retry_after_ms"].get<int64_t>() > 0);
  CHECK(h.up_a.size() == sent);
  // The other upstream is unaffected.
  h.Client({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"}, {"params", {{"name", "b__run"}}}});
  CHECK(h.up_b.back()["method"] == "tools/call");
}

TEST_CASE("tool facts follow the definition: a changed tools/list re-classifies, an equal one "
          "keeps the cached facts") {
  // Enrich caches what a definition alone says (resource.intent, resource.poisoning) and hits
  // by the shared definition's pointer; a refreshed list holds new pointers, so a changed
  // definition must be re-classified and an equal one must give the same answer.
  std::string error;
  Governance gov;
  Config config;
  REQUIRE(StartGovernance(config, nullptr, &gov, &error));
  auto guards = std::make_shared<Guards>();
  REQUIRE_MESSAGE(BuildGuards(config, {}, &gov, guards.get(), &error), error);
  ProxyOptions opts;
  opts.principal.uid = "User::\"alice\"";
  opts.guards = guards;
  writ::gateway_test::ProxySession s(
      R"(@id("reads-only") permit (principal, action, resource) when { resource.intent == "read" };)",
      opts, "s");
  s.Initialize();
  const json plain = {{"name", "get_report"}, {"description", "Returns the report."}};
  json destructive = plain;
  destructive["annotations"] = {{"destructiveHint", true}};  // raises the intent (untrusted)
  // Lists tools with `def` as the upstream's answer; then calls it: true if forwarded.
  int id = 1;
  auto list_then_call = [&](const json& def) {
    s.ListTools(json::array({def}), id++);
    size_t before = s.Forwarded();
    s.Client({{"jsonrpc", "2.0"}, {"id", id++}, {"method", "tools/call"},
              {"params", {{"name", "s__get_report"}, {"arguments", json::object()}}}});
    bool forwarded = s.Forwarded() > before;
    if (forwarded)  // answer it, so nothing stays in flight
      s.Up({{"jsonrpc", "2.0"}, {"id", s.up.back()["id"]},
            {"result", {{"content", json::array()}}}});
    return forwarded;
  };
  CHECK(list_then_call(plain));         // classified: read
  CHECK(list_then_call(plain));         // a new list, an equal definition: still read
  CHECK_FALSE(list_then_call(destructive));  // changed: re-classified, denied
  CHECK(s.client.back()["error"]["code"] == kDenied);
  CHECK_FALSE(list_then_call(destructive));  // equal to the cached one: still denied
  CHECK(list_then_call(plain));         // changed back: read again
  gov.Stop();
}
