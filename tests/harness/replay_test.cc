// replay_test.cc -- traces and `writ replay`: the TraceWriter's format read back by the
// reader (gateway/trace.h), secrets scrubbed and the redact hook, corrupt traces rejected
// with FILE:LINE, the impact diff in every format, --expect, --baseline; and a real
// `writ serve --stdio` session recording a trace that `writ replay` reads.
#include "harness/replay.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
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
                     writ::harness::ReplayFormat::kMarkdown, writ::harness::ReplayFormat::kGithub})
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
    CHECK(fast[i].Request().dump() == slow[i].Request().dump());  // "1" vs "1.0": types too
    CHECK(fast[i].recorded == slow[i].recorded);
    CHECK(slow[i].request_json != nullptr);
  }
  if (writ::harness::HaveFastPath()) {       // the fast path was taken where it can be
    CHECK(fast[0].request_json != nullptr);  // an integer beyond 64 bits: nlohmann
    CHECK(fast[1].request_json != nullptr);  // a surrogate pair: nlohmann
    CHECK(fast[2].request_json == nullptr);  // spaces
    CHECK(fast[3].request_json != nullptr);  // a duplicate `type`: nlohmann
    CHECK(fast[4].request_json == nullptr);  // \u escapes of control characters
  }
  CHECK(fast[0].recorded.determining == std::vector<std::string>{"a", "b"});

  // Corrupt lines: the same error, naming the same FILE:LINE, either way.
  for (const std::string& bad :
       {decision(R"({"args":{"a":01}})"), decision(R"({"args":{"a":"\ud800"}})"),
        decision(R"([1])"),
        rec + R"("request":{},"decision":{"decision":"maybe",)"
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

namespace {

// Random trace lines for the differential below: well-formed requests with odd values --
// \u escapes (surrogate pairs, lone surrogates, controls), integers at and beyond the 64-bit
// limits, -0 and -0.0, exponents, duplicate keys, keys written with escapes, nesting beyond
// the request depth limit, wrong types at every level -- and some broken lines.
class LineGen {
 public:
  explicit LineGen(uint64_t seed) : rng_(seed) {}

  std::string Line() {
    std::string req = Request();
    std::string request_key =
        Pick({"\"request\"", "\"request\"", "\"request\"", "\"re\\u0071uest\""});
    std::vector<std::string> members = {
        R"("type":"decision")", R"("direction":"client_to_gateway")", R"("session":"s")",
        request_key + ":" + req,
        R"("decision":{"decision":")" + Pick({"allow", "deny", "require_approval"}) +
            R"(","determining":[)" + Pick({"", "\"p-amount\"", "\"f-x\",\"p-amount\""}) + "]}"};
    if (Below(10) == 0) members.push_back(R"("ts":{"request":{"x":[1,{"request":2}]}})");
    if (Below(20) == 0) members.push_back(R"("request":{})");  // a duplicate request
    std::shuffle(members.begin(), members.end(), rng_);
    std::string line = "{";
    for (size_t i = 0; i < members.size(); ++i) line += (i ? Pick({",", ", "}) : "") + members[i];
    line += "}";
    if (Below(40) == 0) line.insert(Below(line.size()), Pick({"x", "\"", "}", "\x01", " "}));
    return line;
  }

 private:
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string Pick(std::initializer_list<std::string> v) { return *(v.begin() + Below(v.size())); }

  std::string Scalar() {
    switch (Below(4)) {
      case 0:
        return Pick({"0", "-0", "1", "-1", "11", "9223372036854775807", "9223372036854775808",
                     "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
                     "18446744073709551616", "123456789012345678901234"});
      case 1:
        return Pick(
            {"1.0", "-0.0", "0.5", "1e3", "1E-2", "-2.5e+10", "11.0", "1.7976931348623157e308"});
      case 2:
        return Pick({R"("a")", R"("\u00e9")", "\"\xc3\xa9\"", R"("\ud83d\ude00")", R"("\u2028x")",
                     R"("\"q\"")", R"("\\")", R"("\/")", R"("t\tb")", R"("\u0041")", R"("\u0000")",
                     R"("")", R"("Role::\"r\"")"});
      default:
        if (Below(30) == 0) return R"("\ud800")";  // a lone surrogate: a corrupt line
        return Pick(
            {"true", "false", "null", R"({"__entity":"User::\"u\""})", R"({"__entity":"bad"})"});
    }
  }

  std::string Value(int depth) {
    if (depth <= 0 || Below(3) == 0) return Scalar();
    if (Below(2) == 0) {
      std::string s = "[";
      for (size_t i = 0, n = Below(4); i < n; ++i) s += (i ? "," : "") + Value(depth - 1);
      return s + "]";
    }
    return Object(depth);
  }

  std::string Object(int depth) {
    std::string s = "{";
    for (size_t i = 0, n = Below(5); i < n; ++i)
      s += (i ? "," : "") +
           Pick({"\"a\"", "\"x\"", "\"amount\"", "\"s\"", "\"r\"", "\"a\"", "\"\\u0061\""}) + ":" +
           Value(depth - 1);
    return s + "}";
  }

  std::string Deep(int levels) {
    std::string s;
    for (int i = 0; i < levels; ++i) s += Below(2) ? "{\"a\":" : "[";
    std::string out = s + "1";
    for (auto it = s.rbegin(); it != s.rend(); ++it)
      if (*it == '[')
        out += "]";
      else if (*it == '{')
        out += "}";
    return out;
  }

  std::string Entity(const std::string& uid) {
    switch (Below(24)) {
      case 0:
        return Scalar();
      case 1:
        return R"({"uid":5})";
      case 2:
        return R"({"uid":"nope"})";
      case 3:
        return R"({"uid":)" + uid + R"(,"attrs":[1]})";
      default:
        return R"({"uid":)" + uid + R"(,"parents":[)" +
               Pick({"", R"("Role::\"r\"")", R"("Role::\"r\"","Role::\"o\"")", "1"}) +
               R"(],"attrs":)" + Object(3) + "}";
    }
  }

  std::string Request() {
    if (Below(30) == 0) return "[" + Scalar() + "]";
    std::vector<std::string> m = {
        R"("principal":)" + Entity(Pick({R"("User::\"u1\"")", R"("User::\"u2\"")"})),
        R"("action":)" +
            Pick({R"("tools/call")", R"("tools/call")", R"("tools/list")", R"("")", "5"}),
        R"("resource":)" + Entity(R"("Tool::\"t\"")"),
        R"("args":)" + (Below(15) == 0 ? Scalar() : Object(4)),
        R"("context":)" + (Below(15) == 0 ? Deep(70) : Object(4)),
        R"("call":{"intent":)" + Scalar() + "}"};
    if (Below(8) == 0) m.push_back(R"("args":)" + Object(3));  // a duplicate key
    std::shuffle(m.begin(), m.end(), rng_);
    std::string s = "{";
    for (size_t i = 0; i < m.size(); ++i) s += (i ? "," : "") + m[i];
    return s + "}";
  }

  std::mt19937_64 rng_;
};

const char kOddPolicies[] = R"(
@id("p-amount")
permit (principal, action, resource) when { args.amount > 10 };

@id("f-x")
forbid (principal, action, resource) when { args.x == "é" || args.x == 1 };

@id("p-record")
permit (principal, action == Action::"tools/call", resource) when { context.r == {"a": 1} };

@id("f-set")
forbid (principal in Role::"r", action, resource) when { context.s.contains(1) };

@id("p-attr")
permit (principal, action, resource) when { principal.a == "a" || call.intent == "a" };
)";

// Strict equality: number types and -0.0 vs 0.0 differ.
bool Same(const json& a, const json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
      if (ia.key() != ib.key() || !Same(*ia, *ib)) return false;
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!Same(a[i], b[i])) return false;
    return true;
  }
  if (a.is_number_float())
    return a.get<double>() == b.get<double>() &&
           std::signbit(a.get<double>()) == std::signbit(b.get<double>());
  return a == b;
}

}  // namespace

TEST_CASE("replay: fast and exact paths agree on 1,500 generated traces with odd values") {
  std::string bytes, error;
  REQUIRE_MESSAGE(writ::CompileText("odd.writ", kOddPolicies, &bytes, &error), error);
  auto bundle = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  TempDir d("replay-odd");
  const std::string header = Lines(WriteTrace(d / "w.jsonl"))[0];
  LineGen gen(20261121);
  size_t fast_records = 0, exact_records = 0, failed_traces = 0, decided = 0;
  json scratch;  // reused across every request: ConvertRequest updates it in place
  for (int t = 0; t < 1500; ++t) {
    CAPTURE(t);
    std::string text = header + "\n";
    std::vector<std::string> lines;
    for (int i = 0; i < 4; ++i) lines.push_back(gen.Line());
    for (const auto& l : lines) text += l + "\n";
    const std::string path = (d / "t.jsonl").string();
    Write(path, text);
    std::vector<writ::harness::ReplayRecord> fast, slow;
    std::string e1, e2;
    const bool ok1 = writ::harness::ReadTrace(path, &fast, &e1, 1, true);
    const bool ok2 = writ::harness::ReadTrace(path, &slow, &e2, 1, false);
    REQUIRE(ok1 == ok2);
    CHECK(e1 == e2);
    if (!ok1) {
      ++failed_traces;
      continue;
    }
    REQUIRE(fast.size() == slow.size());
    for (size_t i = 0; i < fast.size(); ++i) {
      CAPTURE(lines[fast[i].line - 2]);
      CHECK(fast[i].line == slow[i].line);
      CHECK(fast[i].recorded == slow[i].recorded);
      CHECK(Same(fast[i].Request(), slow[i].Request()));
      if (fast[i].request_json == nullptr) {
        ++fast_records;
        // The in-place conversion, into a buffer that held a different request before.
        CHECK(writ::harness::ConvertRequest(fast[i].request_text, &scratch));
        CHECK(Same(scratch, slow[i].Request()));
      } else {
        ++exact_records;
      }
      writ::harness::Verdict a = writ::harness::Decide(*bundle, fast[i]);
      writ::harness::Verdict b = writ::harness::Decide(*bundle, *slow[i].request_json);
      CHECK(a == b);
      CHECK(a.error == b.error);
      decided += a.error.empty();
    }
    for (bool once : {true, false}) {
      auto rf = writ::harness::Replay(fast, *bundle, bundle.get(), "b", 1, once);
      auto rs = writ::harness::Replay(slow, *bundle, nullptr, "b", 1, once);
      CHECK(rf.after == rs.after);
      CHECK(writ::harness::RenderReplay(rf, writ::harness::ReplayFormat::kJson, 10) ==
            writ::harness::RenderReplay(
                writ::harness::Replay(slow, *bundle, bundle.get(), "b", 1, once),
                writ::harness::ReplayFormat::kJson, 10));
    }
  }
  // The generator reaches every branch: corrupt traces, both paths, decided requests.
  CHECK(failed_traces > 100);
  CHECK(exact_records > 500);
  CHECK(decided > 500);
  if (writ::harness::HaveFastPath()) CHECK(fast_records > 500);
  MESSAGE("fast ", fast_records, " exact ", exact_records, " corrupt traces ", failed_traces,
          " decided ", decided);
}

TEST_CASE("replay: ConvertRequest reuses its buffer across shapes and stays exact") {
  const std::vector<std::string> texts = {
      R"({"args":{"a":"a long string value that is not short","b":[1,2,3]},"x":1})",
      R"({"args":{"a":"short","b":[4]},"x":-7})",                   // same keys
      R"({"args":{"b":[4,{"k":null}],"a":"s","c":1.5},"x":true})",  // a new key
      R"({"args":{"a":"s","a":"dup"},"x":[]})",                     // a duplicate key
      R"({"args":{"a":"\u00e9\ud83d\ude00"},"x":{"y":-0}})",        // -0: nlohmann
      R"({"args":{"a":18446744073709551615,"b":-9223372036854775808}})",
      R"({"args":{"a":"a long string value that is not short","b":[1,2,3]},"x":1})"};
  json scratch = json::object();
  for (const auto& t : texts) {
    CAPTURE(t);
    REQUIRE(writ::harness::ConvertRequest(t, &scratch));
    CHECK(Same(scratch, json::parse(t)));
  }
  CHECK_FALSE(writ::harness::ConvertRequest(R"({"a":)", &scratch));
  CHECK(writ::harness::ConvertRequest(R"({"a":1})", &scratch));
  CHECK(Same(scratch, json::parse(R"({"a":1})")));
}
