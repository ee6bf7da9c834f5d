// replay_test.cc -- traces and `writ replay`: the TraceWriter's format read back by the
// reader (gateway/trace.h), secrets scrubbed and the redact hook, corrupt traces rejected
// with FILE:LINE, the impact diff in every format, --expect, --baseline; and a real
// `writ serve --stdio` session recording a trace that `writ replay` reads.
#include "harness/replay.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/compile.h"
#include "gateway/trace.h"
#include "gateway/upstream.h"
#include "tests/harness/util.h"

using harness_test::Contains;
using harness_test::RunWrit;
using harness_test::Slurp;
using harness_test::TempDir;
using harness_test::Write;
using nlohmann::json;
using namespace writ::gateway;

namespace {

const char kPolicies[] = R"(
@id("support-refunds")
permit (principal in Role::"support", action == Action::"tools/call",
        resource == Tool::"stripe__refund_create")
when { args.amount <= 50000 };

@id("no-big-refunds")
forbid (principal, action, resource == Tool::"stripe__refund_create")
when { args.amount > 50000 };
)";

json Request(const std::string& user, int amount) {
  return {{"principal", {{"uid", "User::\"" + user + "\""}, {"parents", {"Role::\"support\""}}}},
          {"action", "tools/call"},
          {"resource",
           {{"uid", "Tool::\"stripe__refund_create\""}, {"parents", {"Server::\"stripe\""}}}},
          {"args", {{"amount", amount}}}};
}

json DecisionJson(const std::string& effect, std::vector<std::string> determining) {
  return {{"decision", effect},
          {"determining", determining},
          {"obligations", json::array()},
          {"errors", json::array()}};
}

// Writes a trace: three recorded decisions as the policies above decide them, and messages.
std::string WriteTrace(const std::filesystem::path& path) {
  std::string error;
  auto w = TraceWriter::Open({path.string(), true, {"tok-SECRET-1"}, "0.1.0"}, &error);
  REQUIRE_MESSAGE(w != nullptr, error);
  TraceSession who{"s-1", Request("sam", 1)["principal"], "test-client"};
  w->Message(
      who, TraceDirection::kClientToGateway,
      {{"jsonrpc", "2.0"},
       {"id", 1},
       {"method", "tools/call"},
       {"params", {{"name", "stripe__refund_create"}, {"arguments", {{"memo", "tok-SECRET-1"}}}}}});
  w->Decision(who, "stripe", "tools/call", Request("sam", 10),
              DecisionJson("allow", {"support-refunds"}), "d1", "h", 2);
  w->Message(who, TraceDirection::kGatewayToClient,
             {{"jsonrpc", "2.0"}, {"id", 1}, {"result", {{"content", json::array()}}}});
  w->Decision(who, "stripe", "tools/call", Request("sam", 60000),
              DecisionJson("deny", {"no-big-refunds"}), "d2", "h", 2);
  w->Decision(who, "stripe", "tools/call", Request("kim", 40000),
              DecisionJson("allow", {"support-refunds"}), "d3", "h", 2);
  CHECK(w->written() == 5);
  return Slurp(path);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("trace: the writer's lines parse back; secrets scrubbed; the redact hook runs") {
  TempDir d("trace");
  std::string text = WriteTrace(d / "t.jsonl");
  CHECK_FALSE(Contains(text, "tok-SECRET-1"));
  CHECK(Contains(text, "[REDACTED]"));
  auto lines = Lines(text);
  REQUIRE(lines.size() == 6);
  TraceLineKind kind;
  json j;
  std::string error;
  REQUIRE(ParseTraceLine(lines[0], &kind, &j, &error));
  CHECK(kind == TraceLineKind::kHeader);
  CHECK(j["writ_trace"] == kTraceVersion);
  CHECK(j["writ_version"] == "0.1.0");
  REQUIRE(ParseTraceLine(lines[1], &kind, &j, &error));
  CHECK(kind == TraceLineKind::kMessage);
  CHECK(j["server"] == "stripe");
  CHECK(j["method"] == "tools/call");
  CHECK(j["client"] == "test-client");
  CHECK(j["principal"]["uid"] == "User::\"sam\"");
  REQUIRE(ParseTraceLine(lines[2], &kind, &j, &error));
  CHECK(kind == TraceLineKind::kDecision);
  CHECK(j["request"]["args"]["amount"] == 10);
  CHECK(j["decision_id"] == "d1");
  REQUIRE(ParseTraceLine(lines[3], &kind, &j, &error));
  CHECK(j["direction"] == "gateway_to_client");
  CHECK(j["method"] == "tools/call");  // the reply carries its request's method and timing
  CHECK(j["elapsed_us"].is_number_integer());
  // Lean parsing (replay) validates the same and drops what replay does not read.
  REQUIRE(ParseTraceLine(lines[1], &kind, &j, &error, /*lean=*/true));
  CHECK(j["message"] == json::object());
  CHECK_FALSE(j.contains("principal"));
  CHECK_FALSE(ParseTraceLine(
      R"({"type":"message","direction":"client_to_gateway","session":"s","message":5})", &kind, &j,
      &error, true));
  CHECK(error == "`message` must be an object");

  // The redact hook sees every record before it is written.
  std::string e2;
  auto w = TraceWriter::Open({(d / "r.jsonl").string(), false, {}, "0.1.0"}, &e2);
  REQUIRE(w != nullptr);
  w->set_redact([](json* r) { (*r)["request"]["args"] = "masked"; });
  w->Message({"s", json::object(), ""}, TraceDirection::kClientToGateway, {{"id", 1}});
  w->Decision({"s", json::object(), ""}, "x", "tools/call", Request("a", 1),
              DecisionJson("deny", {}), "d", "h", 1);
  std::string r = Slurp(d / "r.jsonl");
  CHECK(Lines(r).size() == 2);  // header + decision: messages: false
  CHECK(Contains(r, "\"args\":\"masked\""));
}

TEST_CASE("trace: corrupt lines and unknown versions are errors naming FILE:LINE") {
  TempDir d("corrupt");
  std::string good = WriteTrace(d / "t.jsonl");
  auto lines = Lines(good);
  struct Case {
    int line;  // 1-based line replaced
    std::string text, message;
  } cases[] = {
      {4, "{not json", ":4: not valid JSON"},
      {1, R"({"writ_trace": 2, "writ_version": "9"})", ":1: unknown trace format version 2"},
      {3,
       R"({"type":"decision","direction":"client_to_gateway","session":"s","decision":{"decision":"allow","determining":[]}})",
       ":3: `request` must be an object"},
      {3,
       R"({"type":"decision","direction":"client_to_gateway","session":"s","request":{},"decision":{"decision":"maybe","determining":[]}})",
       ":3: `decision.decision` must be allow, deny or require_approval"},
      {5, R"({"type":"note","direction":"client_to_gateway","session":"s"})",
       ":5: unknown record type \"note\""},
      {2, R"({"type":"message","direction":"sideways","session":"s","message":{}})",
       ":2: `direction` must be"},
      {1, R"({"type":"message","direction":"client_to_gateway","session":"s","message":{}})",
       ":1: a record before the header line"},
      {6, "", ":6: not valid JSON"},
  };
  for (const auto& c : cases) {
    auto copy = lines;
    copy[c.line - 1] = c.text;
    std::string text;
    for (const auto& l : copy) text += l + "\n";
    Write(d / "bad.jsonl", text);
    std::vector<writ::harness::ReplayRecord> recs;
    std::string error;
    CHECK_FALSE(writ::harness::ReadTrace((d / "bad.jsonl").string(), &recs, &error));
    CHECK_MESSAGE(Contains(error, (d / "bad.jsonl").string() + c.message), error);
    auto r = RunWrit({"replay", "--policies", (d / "p.writ").string(), (d / "bad.jsonl").string()});
    CHECK(r.code == 2);
    CHECK(Contains(r.err, (d / "bad.jsonl").string() + c.message));
  }
  Write(d / "empty.jsonl", "");
  auto r = RunWrit({"replay", "--policies", (d / "p.writ").string(), (d / "empty.jsonl").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, "empty file, not a trace"));
  r = RunWrit({"replay", "--policies", (d / "p.writ").string(), (d / "nope.jsonl").string()});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, "cannot read"));
}

TEST_CASE("writ replay: --expect, --baseline and the diff in every format") {
  TempDir d("replay");
  WriteTrace(d / "t.jsonl");
  Write(d / "old/p.writ", kPolicies);
  std::string looser = kPolicies;
  looser.replace(looser.find("args.amount > 50000"), 19, "args.amount > 30000");
  Write(d / "new/p.writ", looser);
  const std::string trace = (d / "t.jsonl").string();

  // The recording policies: nothing changes.
  auto r = RunWrit({"replay", "--policies", (d / "old").string(), "--expect", trace});
  CHECK(r.code == 0);
  CHECK(Contains(r.out, "writ replay: 3 recorded requests in 1 trace(s), no decision changes"));

  // The new policies deny kim's 40,000 refund.
  r = RunWrit({"replay", "--policies", (d / "new").string(), trace});
  CHECK(r.code == 0);  // a report, not a failure
  CHECK(Contains(r.out, "1 change (the policies vs the recorded decisions)"));
  CHECK(Contains(r.out, "by decision:\n  allow -> deny"));
  CHECK(Contains(r.out, "  + no-big-refunds                  1  now determining\n"));
  CHECK(Contains(r.out, "  - support-refunds                 1  no longer determining\n"));
  CHECK(Contains(r.out, "by tool:\n  Tool::\"stripe__refund_create\""));
  CHECK(Contains(r.out, "by principal:\n  User::\"kim\""));
  CHECK(Contains(r.out, trace + ":6: User::\"kim\" tools/call Tool::\"stripe__refund_create\": "
                                "allow [support-refunds] -> deny [no-big-refunds]"));
  r = RunWrit({"replay", "--policies", (d / "new").string(), "--expect", trace});
  CHECK(r.code == 1);
  CHECK(Contains(r.err, "1 of 3 request(s) are decided differently than recorded"));

  // --baseline: against other policies instead of the recording.
  r = RunWrit({"replay", "--policies", (d / "new").string(), "--baseline", (d / "old").string(),
               "--format", "json", trace});
  CHECK(r.code == 0);
  json j = json::parse(r.out);
  CHECK(j["requests"] == 3);
  CHECK(j["changed"] == 1);
  CHECK(j["baseline"] == "the baseline " + (d / "old").string());
  CHECK(j["transitions"] == json::parse(R"([{"from":"allow","to":"deny","count":1}])"));
  CHECK(j["statements"] == json::parse(R"([{"id":"no-big-refunds","appears":1,"disappears":0},
                                          {"id":"support-refunds","appears":0,"disappears":1}])"));
  CHECK(j["principals"] == json::parse(R"([{"uid":"User::\"kim\"","count":1}])"));
  CHECK(j["changes"][0]["line"] == 6);
  CHECK(j["changes"][0]["after"]["determining"] == json::array({"no-big-refunds"}));
  // Baseline == policies: no changes even though... both agree with the recording too.
  r = RunWrit({"replay", "--policies", (d / "old").string(), "--baseline", (d / "new").string(),
               "--format", "markdown", trace});
  CHECK(Contains(r.out, "### Policy impact: 1 of 3 recorded requests change\n"));
  CHECK(Contains(r.out, "| deny -> allow | 1 |"));
  CHECK(Contains(r.out, "| `support-refunds` | 1 | 0 |"));
  CHECK(Contains(r.out, "| `User::\"kim\"` | 1 |"));
  CHECK(Contains(r.out, "<details><summary>Changed requests (1 of 1)</summary>"));
  CHECK(Contains(r.out, "| `deny [no-big-refunds]` | `allow [support-refunds]` |"));

  r = RunWrit({"replay", "--policies", (d / "new").string(), "--format", "github", trace});
  CHECK(
      Contains(r.out, "::warning file=" + trace + ",line=6,title=writ replay::decision changes: "));

  // A bundle works where policies do; usage errors exit 2.
  CHECK(RunWrit({"build", "-o", (d / "new.wbundle").string(), (d / "new").string()}).code == 0);
  r = RunWrit({"replay", "--bundle", (d / "new.wbundle").string(), "--baseline",
               (d / "old").string(), "--format", "json", trace});
  CHECK(r.code == 0);
  CHECK(json::parse(r.out)["changed"] == 1);
  CHECK(RunWrit({"replay", trace}).code == 2);
  CHECK(RunWrit({"replay", "--policies", (d / "new").string(), "--bundle", "x", trace}).code == 2);
  Write(d / "broken/p.writ", "permit (");
  r = RunWrit({"replay", "--policies", (d / "broken").string(), trace});
  CHECK(r.code == 2);
  CHECK(Contains(r.err, "p.writ:1:"));
}

TEST_CASE("writ serve --stdio records a trace that writ replay reads") {
  TempDir d("serve");
  const std::string src = WRIT_SOURCE_DIR;
  Write(d / "policies/p.writ", Slurp(src + "/tests/gateway/fixtures/demo.writ"));
  std::ostringstream cfg;
  cfg << "policies: ./policies\n"
      << "stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }\n"
      << "upstreams:\n  - name: demo\n    command: python3\n    args: [" << src
      << "/tests/gateway/fake_upstream.py]\n    env: { DEMO_TOKEN: tok-XYZZY-42 }\n"
      << "record: { path: traces/session.jsonl }\n";
  Write(d / "writ.yaml", cfg.str());
  std::filesystem::create_directories(d / "traces");
  // The client's session: initialize, list, an allowed call, a denied call, a held call.
  std::string session;
  for (const json& m :
       {json{{"jsonrpc", "2.0"},
             {"id", 1},
             {"method", "initialize"},
             {"params",
              {{"protocolVersion", "2025-06-18"},
               {"capabilities", json::object()},
               {"clientInfo", {{"name", "replay-test"}, {"version", "1"}}}}}},
        json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}},
        json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}},
        json{{"jsonrpc", "2.0"},
             {"id", 3},
             {"method", "tools/call"},
             {"params", {{"name", "demo__echo"}, {"arguments", {{"msg", "tok-XYZZY-42"}}}}}},
        json{{"jsonrpc", "2.0"},
             {"id", 4},
             {"method", "tools/call"},
             {"params", {{"name", "demo__echo"}, {"arguments", {{"path", "/etc/passwd"}}}}}},
        json{{"jsonrpc", "2.0"},
             {"id", 5},
             {"method", "tools/call"},
             {"params", {{"name", "demo__wipe"}}}}})
    session += m.dump() + "\n";
  Write(d / "session.jsonl", session);
  // stdin is the session, then EOF: the gateway answers what it can and exits.
  std::string cmd = "cd " + harness_test::Quote(d.path.string()) +
                    " && (cat session.jsonl; sleep 3) | timeout 30 " +
                    harness_test::Quote(std::string(WRIT_BINARY_DIR) + "/cli/writ") +
                    " serve --stdio --config writ.yaml > out.jsonl 2> err.txt";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::string out = Slurp(d / "out.jsonl");
  CHECK(Contains(out, "\"id\":4"));
  std::string trace = Slurp(d / "traces/session.jsonl");
  CHECK_FALSE(Contains(trace, "tok-XYZZY-42"));  // the upstream's env value is a secret
  CHECK(Contains(trace, "\"client\":\"replay-test\""));
  CHECK(Contains(trace, "\"writ_trace\":1"));
  size_t decisions = 0;
  for (size_t p = 0; (p = trace.find("\"type\":\"decision\"", p)) != std::string::npos; ++p)
    ++decisions;
  CHECK(decisions == 3);

  auto r = RunWrit({"replay", "--policies", (d / "policies").string(), "--expect",
                    (d / "traces/session.jsonl").string()});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(Contains(r.out, "3 recorded requests in 1 trace(s), no decision changes"));
  // Without the no-etc forbid, the /etc/passwd call would be allowed.
  std::string looser = Slurp(d / "policies/p.writ");
  looser.replace(looser.find("args.path like \"/etc/*\""), 23, "args.path like \"/nowhere/*\"");
  Write(d / "looser/p.writ", looser);
  r = RunWrit({"replay", "--policies", (d / "looser").string(), "--expect",
               (d / "traces/session.jsonl").string()});
  CHECK_MESSAGE(r.code == 1, r.err);
  CHECK(Contains(r.out, "deny -> allow"));
  CHECK(Contains(r.out, "  - no-etc"));
}

TEST_CASE("replay: deciding identical requests once gives the same result as deciding each") {
  std::string bytes, error;
  REQUIRE_MESSAGE(writ::CompileText("p.writ", kPolicies, &bytes, &error), error);
  auto bundle = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  std::string looser = kPolicies;
  looser.replace(looser.find("args.amount > 50000"), 19, "args.amount > 30000");
  REQUIRE_MESSAGE(writ::CompileText("q.writ", looser, &bytes, &error), error);
  auto other = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(other != nullptr, error);

  // 600 recorded calls over 3 users x 5 amounts, plus the same amounts as floats (40000 and
  // 40000.0 are different JSON and must not share a decision). The recorded decisions differ
  // between identical requests (allow / deny alternate), so `before` stays per record.
  TempDir d("replay-once");
  const std::string trace = (d / "t.jsonl").string();
  {
    auto w = TraceWriter::Open({trace, false, {}, "0.1.0"}, &error);
    REQUIRE_MESSAGE(w != nullptr, error);
    const char* users[] = {"sam", "kim", "lee"};
    const int amounts[] = {10, 30000, 40000, 50000, 60000};
    for (int i = 0; i < 600; ++i) {
      json req = Request(users[i % 3], amounts[(i / 3) % 5]);
      if (i % 7 == 0) req["args"]["amount"] = static_cast<double>(amounts[(i / 3) % 5]);
      TraceSession who{"s-1", req["principal"], "test-client"};
      w->Decision(who, "stripe", "tools/call", req,
                  i % 2 ? DecisionJson("allow", {"support-refunds"})
                        : DecisionJson("deny", {"no-big-refunds"}),
                  "d" + std::to_string(i), "h", 2);
    }
  }
  std::vector<writ::harness::ReplayRecord> records;
  REQUIRE_MESSAGE(writ::harness::ReadTrace(trace, &records, &error), error);
  REQUIRE(records.size() == 600);

  for (const auto* baseline : {static_cast<const writ::runtime::Bundle*>(nullptr), other.get()}) {
    for (int jobs : {1, 4}) {
      auto once = writ::harness::Replay(records, *bundle, baseline, "b", jobs, true);
      auto each = writ::harness::Replay(records, *bundle, baseline, "b", jobs, false);
      CHECK(each.distinct_requests == 600);
      CHECK(once.distinct_requests == 30);  // 15 integer requests + the same 15 as floats
      CHECK(once.changed == each.changed);
      CHECK(once.differs_from_recorded == each.differs_from_recorded);
      CHECK_FALSE(once.changed.empty());
      for (size_t i = 0; i < records.size(); ++i) {
        CHECK(once.after[i] == each.after[i]);
        CHECK(once.after[i].error == each.after[i].error);
        CHECK(once.before[i] == each.before[i]);
      }
      for (auto f : {writ::harness::ReplayFormat::kText, writ::harness::ReplayFormat::kJson,
                     writ::harness::ReplayFormat::kMarkdown,
                     writ::harness::ReplayFormat::kGithub})
        CHECK(writ::harness::RenderReplay(once, f, 1000) ==
              writ::harness::RenderReplay(each, f, 1000));
    }
  }
}

TEST_CASE("replay: the fast trace parser reads every line as the nlohmann path does") {
  TempDir d("replay-fast");
  const std::string header = Lines(WriteTrace(d / "w.jsonl"))[0];
  const std::string rec = R"({"type":"decision","direction":"client_to_gateway","session":"s",)";
  auto decision = [&](const std::string& request, const std::string& extra = "") {
    return rec + extra + R"("request":)" + request +
           R"(,"decision":{"decision":"allow","determining":["b","a"],"obligations":[1]}})";
  };
  // Numbers of every kind, escapes, duplicate keys inside the request, nesting, whitespace,
  // and lines the fast path must hand over (a duplicate `type`, "-0", a surrogate pair).
  std::vector<std::string> good = {
      WriteTrace(d / "w2.jsonl"),
      decision(R"({"args":{"a":1,"b":-2,"c":1.0,"d":1e3,"e":18446744073709551615,)"
               R"("f":-9223372036854775808,"g":0.1,"h":-0,"i":-0.0,)"
               R"("j":123456789012345678901234}})"),
      decision(R"({"principal":{"uid":"User::\"\u00e9\ud83d\ude00\n\t\"","attrs":{"x":null,)"
               R"("y":[true,false,[[]],{}]}},"args":{"k":1,"k":2}})"),
      decision(R"({"args": {"a" : [1, 2]}})", R"("server":"x","ts":{"q":[1,{"r":2}]},)"),
      decision(R"({"args":{}})", R"("type":"decision",)"),
      R"({"type":"message","direction":"gateway_to_client","session":"s","message":{"id":1}})",
      decision(R"({"args":{"s":"\u0000\u001f\\\/"}})"),
  };
  std::string text = header + "\n";
  for (size_t i = 1; i < good.size(); ++i) text += good[i] + "\n";
  text += Lines(good[0])[1] + "\n" + Lines(good[0])[2] + "\n";
  Write(d / "t.jsonl", text);
  std::vector<writ::harness::ReplayRecord> fast, slow;
  std::string e1, e2;
  REQUIRE_MESSAGE(writ::harness::ReadTrace((d / "t.jsonl").string(), &fast, &e1, 1, true), e1);
  REQUIRE_MESSAGE(writ::harness::ReadTrace((d / "t.jsonl").string(), &slow, &e2, 1, false), e2);
  REQUIRE(fast.size() == slow.size());
  CHECK(fast.size() == 6);
  for (size_t i = 0; i < fast.size(); ++i) {
    CAPTURE(i);
    CHECK(fast[i].line == slow[i].line);
    CHECK(fast[i].request.dump() == slow[i].request.dump());  // "1" vs "1.0": types too
    CHECK(fast[i].recorded == slow[i].recorded);
  }
  CHECK(fast[0].recorded.determining == std::vector<std::string>{"a", "b"});

  // Corrupt lines: the same error, naming the same FILE:LINE, either way.
  for (const std::string& bad :
       {decision(R"({"args":{"a":01}})"), decision(R"({"args":{"a":"\ud800"}})"),
        decision(R"([1])"), rec + R"("request":{},"decision":{"decision":"maybe",)"
                                  R"("determining":[]}})",
        decision(R"({"args":{}})", R"("type":"other",)"), decision("{\"s\":\"a\x01\"}"),
        decision(R"({"a":1})") + "x", decision("{\"s\":\"\xff\"}"),
        std::string(R"({"type":"message","direction":"gateway_to_client","session":"s",)") +
            R"("message":[]})"}) {
    CAPTURE(bad);
    Write(d / "bad.jsonl", header + "\n" + decision("{}") + "\n" + bad + "\n");
    fast.clear();
    slow.clear();
    e1.clear();
    e2.clear();
    CHECK_FALSE(writ::harness::ReadTrace((d / "bad.jsonl").string(), &fast, &e1, 1, true));
    CHECK_FALSE(writ::harness::ReadTrace((d / "bad.jsonl").string(), &slow, &e2, 1, false));
    CHECK(e1 == e2);
    CHECK(Contains(e1, "bad.jsonl:3: "));
  }
}
