// Resumable POST SSE streams (docs/gateway.md, "Resuming a POST stream"), through
// HttpServer::DispatchForTesting (no sockets) with the fake upstream (tests/gateway/
// fake_upstream.py --progress): event ids p<k>-<n> on a POST's stream, the priming event for
// 2025-11-25 clients, a POST whose client left before the reply resumed by a GET with
// Last-Event-ID (replay after the id, then live, the reply exactly once), unknown and foreign
// ids, eviction (partial, gone, complete for an evicted stream's last id), cancelled held and
// forwarded calls releasing their POST state, and resumption off. A POST dispatched with a
// wait its reply cannot meet ends as if its client left (ask_progress waits for the client's
// answer).
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "gateway/audit.h"
#include "gateway/config.h"
#include "gateway/governance.h"
#include "gateway/guards.h"
#include "gateway/http_server.h"
#include "gateway/sse.h"
#include "runtime/evaluator.h"
#include "tests/http/http_test_util.h"

using nlohmann::json;
namespace fs = std::filesystem;
using writ::gateway::HttpServer;

namespace {

constexpr auto kWait = std::chrono::milliseconds(5000);
// Long enough for the upstream's messages before the sampling request to arrive; the reply
// never does (ask_progress waits for the client), so a POST ends as if the client left.
constexpr auto kDrop = std::chrono::milliseconds(2000);
constexpr char kNew[] = "2025-11-25";
constexpr char kOld[] = "2025-06-18";

struct Fixture {
  writ::gateway::Governance gov;  // outlives srv
  std::unique_ptr<HttpServer> srv;
  fs::path dir;

  // `events`: http.resume_buffer_events; the audit log goes to dir/audit.jsonl. `approvals`:
  // demo__echo needs approval (approvals.db in dir), so a call of it is held.
  explicit Fixture(int events, bool approvals = false) {
    dir = fs::temp_directory_path() /
          ("writ-post-resume-" + std::to_string(getpid()) + "-" + std::to_string(events) +
           (approvals ? "-a" : ""));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string bytes, error;
    std::string policy = "permit (principal, action, resource);";
    if (approvals)
      policy += "\nrule if resource == Tool::\"demo__echo\" then require_approval(approvers: "
                "\"ops\");";
    REQUIRE_MESSAGE(writ::CompileText("t.writ", policy, &bytes, &error), error);
    writ::gateway::HttpServerOptions o;
    o.bundle = writ::runtime::Bundle::Load(bytes, &error);
    REQUIRE(o.bundle != nullptr);
    o.config.stdio_principal.uid = "User::\"t\"";
    o.config.http.allow_anonymous = true;
    o.config.http.resume_buffer_events = events;
    writ::gateway::UpstreamConfig up;
    up.name = "demo";
    up.command = "python3";
    up.args = {std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py", "--progress",
               "--record", (dir / "calls.jsonl").string()};
    o.config.upstreams.push_back(up);
    writ::gateway::AuditOptions ao;
    ao.path = (dir / "audit.jsonl").string();
    std::unique_ptr<writ::gateway::AuditLog> log;
    REQUIRE(writ::gateway::AuditLog::Open(ao, &log).ok());
    o.audit = std::move(log);
    if (approvals) {
      o.config.approvals.enabled = true;
      o.config.approvals.db = (dir / "state.db").string();
      o.config.approvals.wait_ms = 60'000;  // held for the whole test
      REQUIRE_MESSAGE(writ::gateway::StartGovernance(o.config, o.audit, &gov, &error), error);
      auto guards = std::make_shared<writ::gateway::Guards>();
      REQUIRE_MESSAGE(writ::gateway::BuildGuards(o.config, {}, &gov, guards.get(), &error),
                      error);
      o.guards = guards;
    }
    srv = std::make_unique<HttpServer>(std::move(o));
  }
  ~Fixture() {
    srv->CloseSessionsForTesting();
    srv.reset();
    fs::remove_all(dir);
  }

  std::string Dispatch(const std::string& raw, std::chrono::milliseconds wait = kWait) {
    return srv->DispatchForTesting(raw, wait);
  }

  // The JSON lines of a file in dir (calls.jsonl: the tools/calls the upstream got).
  std::vector<json> Lines(const std::string& name) {
    std::vector<json> out;
    std::ifstream f(dir / name);
    for (std::string line; std::getline(f, line);)
      if (!line.empty()) out.push_back(json::parse(line));
    return out;
  }
};

std::string Req(const std::string& method, const std::string& sid, const std::string& body,
                const std::string& version, const std::string& extra = "") {
  std::string r = method + " /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Accept: application/json, text/event-stream\r\n";
  if (!sid.empty()) r += "MCP-Session-Id: " + sid + "\r\n";
  if (!version.empty()) r += "MCP-Protocol-Version: " + version + "\r\n";
  if (!body.empty()) r += "Content-Type: application/json\r\n";
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

std::string Resume(const std::string& sid, const std::string& last) {
  return Req("GET", sid, "", kNew, "Last-Event-ID: " + last + "\r\n");
}

using writ::http_test::Body;
using writ::http_test::Header;
using writ::http_test::Status;

// The SSE events of a response body: id and message (null for a priming event).
struct Event {
  std::string id;
  json msg;
};
std::vector<Event> Events(const std::string& res) {
  std::vector<Event> out;
  writ::gateway::SseParser parser([&](const writ::gateway::SseMessage& m) {
    out.push_back({m.id, m.data.empty() ? json() : json::parse(m.data)});
  });
  REQUIRE(parser.Feed(Body(res)));
  return out;
}

// Without priming events (a resume that had nothing to replay yet starts with one).
std::vector<Event> Messages(const std::vector<Event>& events) {
  std::vector<Event> out;
  for (const auto& e : events)
    if (!e.msg.is_null()) out.push_back(e);
  return out;
}

// Polls `cond` every 10 ms for up to 10 s (a signal from another thread, never a fixed sleep).
template <class F>
bool WaitUntil(F cond) {
  for (int i = 0; i < 1000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

std::vector<std::string> Ids(const std::vector<Event>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id);
  return ids;
}

json Call(const json& id, const std::string& tool, const json& token = nullptr) {
  json params = {{"name", tool}, {"arguments", json::object()}};
  if (!token.is_null()) params["_meta"] = {{"progressToken", token}};
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}};
}

std::string OpenSession(Fixture& f) {
  json init = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
               {"params", {{"protocolVersion", kNew}, {"capabilities", json::object()},
                           {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}};
  std::string r = f.Dispatch(Req("POST", "", init.dump(), ""));
  REQUIRE_MESSAGE(Status(r) == 200, r);
  std::string sid = Header(r, "MCP-Session-Id");
  REQUIRE(sid.size() == 32);
  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  REQUIRE(Status(f.Dispatch(Req("POST", sid, note.dump(), kNew))) == 202);
  return sid;
}

// POSTs ask_progress (id `id`, progress token `token`) and leaves before the reply: the
// events the client got (priming with kNew, 2 progress, a log message, the sampling request).
std::vector<Event> AskAndLeave(Fixture& f, const std::string& sid, const json& id,
                               const std::string& token = "t") {
  std::string r = f.Dispatch(
      Req("POST", sid, Call(id, "demo__ask_progress", token).dump(), kNew), kDrop);
  REQUIRE_MESSAGE(Status(r) == 200, r);
  REQUIRE(Header(r, "Content-Type") == "text/event-stream");
  return Events(r);
}

// The client's answer to the sampling request `req` (202).
void Answer(Fixture& f, const std::string& sid, const json& req, const std::string& text) {
  json answer = {{"jsonrpc", "2.0"},
                 {"id", req["id"]},
                 {"result", {{"role", "assistant"},
                             {"content", {{"type", "text"}, {"text", text}}}}}};
  REQUIRE(Status(f.Dispatch(Req("POST", sid, answer.dump(), kNew))) == 202);
}

}  // namespace

TEST_CASE("HTTP POST streams: event ids, priming, and a late resume of a delivered stream") {
  Fixture f(64);
  std::string sid = OpenSession(f);

  SUBCASE("a client before 2025-11-25: ids on every event, no priming") {
    std::string r = f.Dispatch(Req("POST", sid, Call(10, "demo__progress", "tok").dump(), kOld));
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Content-Type") == "text/event-stream");
    auto ev = Events(r);
    REQUIRE(ev.size() == 4);
    CHECK(Ids(ev) == std::vector<std::string>{"p1-1", "p1-2", "p1-3", "p1-4"});
    CHECK(ev[0].msg["params"]["progress"] == 1);
    CHECK(ev[2].msg["method"] == "notifications/message");
    CHECK(ev[3].msg["id"] == 10);
    CHECK(ev[3].msg["result"]["content"][0]["text"] == "done");

    // The stream was written completely; a resume after its last id has nothing to send.
    r = f.Dispatch(Resume(sid, "p1-4"));
    CHECK(Status(r) == 204);
    CHECK(Header(r, "Writ-Replay") == "complete");
    // A write is not a delivery: a client that lost the end resumes and gets the rest.
    r = f.Dispatch(Resume(sid, "p1-2"));
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Writ-Replay") == "replayed");
    ev = Events(r);
    REQUIRE(ev.size() == 2);
    CHECK(Ids(ev) == std::vector<std::string>{"p1-3", "p1-4"});
    CHECK(ev[1].msg["id"] == 10);
  }

  SUBCASE("2025-11-25: a quick reply stays plain JSON; a streamed one starts with priming") {
    std::string r = f.Dispatch(Req("POST", sid, Call(11, "demo__echo").dump(), kNew));
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Content-Type") == "application/json");
    CHECK(json::parse(Body(r))["id"] == 11);
    r = f.Dispatch(Req("POST", sid, Call(12, "demo__progress", "tok").dump(), kNew));
    REQUIRE(Status(r) == 200);
    auto ev = Events(r);
    REQUIRE(ev.size() == 5);
    // The JSON answer took no stream number: this is stream 1.
    CHECK(Ids(ev) == std::vector<std::string>{"p1-0", "p1-1", "p1-2", "p1-3", "p1-4"});
    CHECK(ev[0].msg.is_null());  // priming: an id, empty data
    CHECK(ev[4].msg["id"] == 12);
  }

  SUBCASE("a client that accepts only JSON gets JSON and no stream number") {
    std::string raw = Req("POST", sid, Call(13, "demo__progress", "tok").dump(), kNew);
    raw.replace(raw.find("application/json, text/event-stream"),
                std::string("application/json, text/event-stream").size(), "application/json");
    std::string r = f.Dispatch(raw);
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Content-Type") == "application/json");
    CHECK(json::parse(Body(r))["result"]["content"][0]["text"] == "done");
    r = f.Dispatch(Resume(sid, "p1-1"));
    CHECK(Header(r, "Writ-Replay") == "unknown");
  }
}

TEST_CASE("HTTP POST streams: a POST dropped before its reply is resumed with Last-Event-ID") {
  Fixture f(64);
  std::string sid = OpenSession(f);
  auto ev = AskAndLeave(f, sid, "c1");
  REQUIRE(ev.size() == 5);
  CHECK(Ids(ev) == std::vector<std::string>{"p1-0", "p1-1", "p1-2", "p1-3", "p1-4"});
  CHECK(ev[0].msg.is_null());
  CHECK(ev[1].msg["params"]["progressToken"] == "t");
  CHECK(ev[3].msg["method"] == "notifications/message");
  json sampling = ev[4].msg;
  REQUIRE(sampling["method"] == "sampling/createMessage");

  SUBCASE("replay after a given id, in order; nothing of the reply yet") {
    std::string r = f.Dispatch(Resume(sid, "p1-2"), std::chrono::milliseconds(300));
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Content-Type") == "text/event-stream");
    CHECK(Header(r, "Writ-Replay") == "replayed");
    auto again = Events(r);
    REQUIRE(again.size() == 2);
    CHECK(Ids(again) == std::vector<std::string>{"p1-3", "p1-4"});
    CHECK(again[0].msg == ev[3].msg);
    CHECK(again[1].msg == sampling);  // the same request, the same gateway id
    // From the priming id: everything.
    r = f.Dispatch(Resume(sid, "p1-0"), std::chrono::milliseconds(300));
    CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-1", "p1-2", "p1-3", "p1-4"});
    // From the last id, nothing replayed: a 2025-11-25 stream is primed with an id of its
    // own (unique in the session) that resumes like p1-4.
    r = f.Dispatch(Resume(sid, "p1-4"), std::chrono::milliseconds(300));
    REQUIRE(Status(r) == 200);
    auto primed = Events(r);
    REQUIRE(primed.size() == 1);
    CHECK(primed[0].id == "p1-4.1");
    CHECK(primed[0].msg.is_null());
    r = f.Dispatch(Resume(sid, "p1-4.1"), std::chrono::milliseconds(300));
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Writ-Replay") == "replayed");
    primed = Events(r);
    REQUIRE(primed.size() == 1);
    CHECK(primed[0].id == "p1-4.2");
    CHECK(primed[0].msg.is_null());
    // From p1-3.1 (a priming id of p1-3's position): p1-4 again.
    r = f.Dispatch(Resume(sid, "p1-3.1"), std::chrono::milliseconds(300));
    CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-4"});
    // A priming number this stream never gave is unknown.
    r = f.Dispatch(Resume(sid, "p1-4.3"), std::chrono::milliseconds(300));
    CHECK(Status(r) == 410);
    CHECK(Header(r, "Writ-Replay") == "unknown");
  }

  SUBCASE("the resumed stream delivers the reply live, exactly once, and ends") {
    // The client answers the sampling request once the resumed stream has attached, and the
    // reply had not come then: the resume got it live, not from the buffer.
    std::string r;
    std::thread resume([&] { r = f.Dispatch(Resume(sid, "p1-4"), std::chrono::seconds(10)); });
    bool attached = WaitUntil([&] { return f.srv->PostStateForTesting(sid).attaches == 1; });
    CHECK(attached);
    CHECK(f.srv->PostStateForTesting(sid).replied == 0);
    CHECK(f.srv->PostStateForTesting(sid).live == 1);
    Answer(f, sid, sampling, "resumed");
    resume.join();
    REQUIRE(Status(r) == 200);
    CHECK(Header(r, "Writ-Replay") == "replayed");
    auto messages = Messages(Events(r));
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].id == "p1-5");
    CHECK(messages[0].msg["id"] == "c1");  // the client's own id
    CHECK(messages[0].msg["result"]["content"][0]["text"].get<std::string>().find("resumed") !=
          std::string::npos);
    // Nothing after it: the stream is complete.
    r = f.Dispatch(Resume(sid, "p1-5"));
    CHECK(Status(r) == 204);
    CHECK(Header(r, "Writ-Replay") == "complete");
    // The call was forwarded once, never cancelled, and audited as usual (decision+outcome).
    auto calls = f.Lines("calls.jsonl");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0]["name"] == "ask_progress");
    int decisions = 0, outcomes = 0;
    for (const auto& rec : f.Lines("audit.jsonl")) {
      if (rec.value("tool", "") != "ask_progress") continue;
      if (rec["kind"] == "decision") ++decisions;
      if (rec["kind"] == "outcome") {
        ++outcomes;
        CHECK(rec["upstream"]["outcome"] == "ok");
      }
    }
    CHECK(decisions == 1);
    CHECK(outcomes == 1);
  }

  SUBCASE("the reply comes while no connection writes the stream: kept until the resume") {
    Answer(f, sid, sampling, "kept");
    // The reply is in flight from the upstream; a resume waits for it if it is not kept yet.
    std::string r = f.Dispatch(Resume(sid, "p1-3"));
    REQUIRE(Status(r) == 200);
    auto got = Events(r);
    REQUIRE(got.size() == 2);
    CHECK(Ids(got) == std::vector<std::string>{"p1-4", "p1-5"});
    CHECK(got[1].msg["id"] == "c1");
    // The id is in flight no more: a new request may use it.
    r = f.Dispatch(Req("POST", sid, Call("c1", "demo__echo").dump(), kNew));
    CHECK(Status(r) == 200);
  }

  SUBCASE("a second resume takes the stream over; the first ends without the reply") {
    // Each step waits for the previous one to have attached (a signal, not a sleep).
    std::string first, second;
    std::thread a([&] { first = f.Dispatch(Resume(sid, "p1-3"), std::chrono::seconds(10)); });
    REQUIRE(WaitUntil([&] { return f.srv->PostStateForTesting(sid).attaches == 1; }));
    std::thread b([&] { second = f.Dispatch(Resume(sid, "p1-4"), std::chrono::seconds(10)); });
    bool attached = WaitUntil([&] { return f.srv->PostStateForTesting(sid).attaches == 2; });
    CHECK(attached);
    a.join();  // taken over: ends at once, without waiting for the reply
    Answer(f, sid, sampling, "second");
    b.join();
    REQUIRE(Status(first) == 200);
    REQUIRE(Status(second) == 200);
    // Exactly one connection got the reply: the last one to attach.
    int replies = 0;
    for (const auto& r : {first, second})
      for (const auto& e : Messages(Events(r))) replies += e.msg.contains("result");
    CHECK(replies == 1);
    // The first got its replay and ended without the reply.
    CHECK(Ids(Events(first)) == std::vector<std::string>{"p1-4"});
    auto messages = Messages(Events(second));
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].id == "p1-5");
    CHECK(messages[0].msg["id"] == "c1");
  }

  SUBCASE("while the call is in flight its id stays taken (the call was not abandoned)") {
    std::string r = f.Dispatch(Req("POST", sid, Call("c1", "demo__echo").dump(), kNew));
    CHECK(Status(r) == 400);
    CHECK(Body(r).find("already in flight") != std::string::npos);
  }

  SUBCASE("well-formed unknown ids get 410 (never a GET stream); malformed ones a GET stream") {
    for (const char* unknown : {"p9-1", "p2-0", "p1-99", "p1-5", "p1-2.1"}) {
      std::string r = f.Dispatch(Resume(sid, unknown), std::chrono::milliseconds(100));
      CHECK_MESSAGE(Status(r) == 410, unknown);
      CHECK_MESSAGE(Header(r, "Writ-Replay") == "unknown", unknown);
      CHECK(Header(r, "Content-Type") == "application/json");
      CHECK(json::parse(Body(r))["error"]["message"].get<std::string>().find(
                "names no event of this session's POST streams") != std::string::npos);
    }
    for (const char* bad : {"p", "p1", "p1-", "p01-1", "p1-01", "p0-0", "p1-1x", "p-1",
                            "p18446744073709551616-1", "p1-1.", "p1-1.0", "p1.1-1", "p1-1.x"}) {
      std::string r = f.Dispatch(Resume(sid, bad), std::chrono::milliseconds(100));
      REQUIRE(Status(r) == 200);
      CHECK_MESSAGE(Header(r, "Writ-Replay") == "unknown", bad);
      for (const auto& e : Events(r)) CHECK(e.id.rfind("g", 0) == 0);  // the GET stream's
    }
  }

  SUBCASE("two sessions' POST streams 1 do not mix") {
    std::string other = OpenSession(f);
    auto oev = AskAndLeave(f, other, "o1", "u");
    REQUIRE(oev.size() == 5);
    CHECK(oev[0].id == "p1-0");
    std::string mine = f.Dispatch(Resume(sid, "p1-0"), std::chrono::milliseconds(300));
    std::string theirs = f.Dispatch(Resume(other, "p1-0"), std::chrono::milliseconds(300));
    REQUIRE(Status(mine) == 200);
    REQUIRE(Status(theirs) == 200);
    auto a = Messages(Events(mine)), b = Messages(Events(theirs));
    REQUIRE(a.size() == 4);
    REQUIRE(b.size() == 4);
    for (int i : {0, 1}) {
      CHECK(a[i].msg["params"]["progressToken"] == "t");
      CHECK(b[i].msg["params"]["progressToken"] == "u");
    }
    CHECK(a[3].msg == sampling);
    CHECK(b[3].msg == oev[4].msg);
    // Ids beyond the other session's stream are unknown there.
    std::string r = f.Dispatch(Resume(other, "p2-0"), std::chrono::milliseconds(100));
    CHECK(Status(r) == 410);
    CHECK(Header(r, "Writ-Replay") == "unknown");
  }
}

TEST_CASE("HTTP POST streams: eviction is reported, never silent") {
  Fixture f(3);  // three kept POST messages per session
  std::string sid = OpenSession(f);
  auto ev = AskAndLeave(f, sid, "a");
  REQUIRE(ev.size() == 5);  // all four went out live; p1-1 is no longer kept
  json sampling = ev[4].msg;

  std::string r = f.Dispatch(Resume(sid, "p1-0"), std::chrono::milliseconds(300));
  REQUIRE(Status(r) == 200);
  CHECK(Header(r, "Writ-Replay") == "partial");
  CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-2", "p1-3", "p1-4"});
  // From p1-1 nothing is missing.
  r = f.Dispatch(Resume(sid, "p1-1"), std::chrono::milliseconds(300));
  CHECK(Header(r, "Writ-Replay") == "replayed");
  CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-2", "p1-3", "p1-4"});

  // The reply is kept (p1-5); then another stream's four messages evict all of stream 1.
  Answer(f, sid, sampling, "x");
  r = f.Dispatch(Resume(sid, "p1-4"));
  REQUIRE(Ids(Messages(Events(r))) == std::vector<std::string>{"p1-5"});
  ev = AskAndLeave(f, sid, "b");
  CHECK(Ids(ev) == std::vector<std::string>{"p2-0", "p2-1", "p2-2", "p2-3", "p2-4"});
  CHECK(f.srv->PostStateForTesting(sid).streams == 1);  // stream 1 is forgotten
  r = f.Dispatch(Resume(sid, "p1-4"));
  CHECK(Status(r) == 410);
  CHECK(Header(r, "Writ-Replay") == "gone");
  CHECK(Body(r).find("no longer kept") != std::string::npos);
  // The reply's own id: the client had everything (e.g. an error reply, after which the SDK
  // still resumes); 204, not 410.
  r = f.Dispatch(Resume(sid, "p1-5"));
  CHECK(Status(r) == 204);
  CHECK(Header(r, "Writ-Replay") == "complete");
  r = f.Dispatch(Resume(sid, "p1-6"));
  CHECK(Status(r) == 410);
  CHECK(Header(r, "Writ-Replay") == "unknown");
  r = f.Dispatch(Resume(sid, "p2-0"), std::chrono::milliseconds(300));
  CHECK(Header(r, "Writ-Replay") == "partial");
  CHECK(Ids(Events(r)) == std::vector<std::string>{"p2-2", "p2-3", "p2-4"});

  // The record of forgotten streams is bounded (resume_buffer_events streams, oldest first):
  // once three more streams are forgotten, stream 1's reply id is "gone" too.
  Answer(f, sid, sampling = ev[4].msg, "y");
  r = f.Dispatch(Resume(sid, "p2-4"));
  REQUIRE(Ids(Messages(Events(r))) == std::vector<std::string>{"p2-5"});
  for (int i = 0; i < 3; ++i) {
    r = f.Dispatch(Req("POST", sid, Call(100 + i, "demo__progress", "tok").dump(), kOld));
    REQUIRE(Ids(Events(r)).back() == "p" + std::to_string(3 + i) + "-4");
  }
  r = f.Dispatch(Resume(sid, "p2-5"));
  CHECK(Status(r) == 204);  // stream 2 is still recorded
  r = f.Dispatch(Resume(sid, "p1-5"));
  CHECK(Status(r) == 410);
  CHECK(Header(r, "Writ-Replay") == "gone");
}

TEST_CASE("HTTP POST streams: a cancelled request's stream state is released") {
  Fixture f(64, true);
  std::string sid = OpenSession(f);
  auto cancel = [&](const json& id) {
    json note = {{"jsonrpc", "2.0"},
                 {"method", "notifications/cancelled"},
                 {"params", {{"requestId", id}, {"reason", "user"}}}};
    REQUIRE(Status(f.Dispatch(Req("POST", sid, note.dump(), kNew))) == 202);
  };

  SUBCASE("a call held for approval") {
    // Held: no reply; the POST is primed (as after 1 s) and its client leaves.
    std::string r = f.Dispatch(Req("POST", sid, Call("h1", "demo__echo", "ht").dump(), kNew),
                               std::chrono::milliseconds(300));
    REQUIRE(Status(r) == 200);
    // The priming event and the "waiting for approval" progress notification.
    auto ev = Events(r);
    REQUIRE(ev.size() == 2);
    CHECK(Ids(ev) == std::vector<std::string>{"p1-0", "p1-1"});
    CHECK(ev[1].msg["params"]["progressToken"] == "ht");
    auto before = f.srv->PostStateForTesting(sid);
    CHECK(before.streams == 1);
    CHECK(before.waiters == 1);
    CHECK(before.progress == 1);
    cancel("h1");
    auto after = f.srv->PostStateForTesting(sid);
    CHECK(after.streams == 1);  // what was sent stays kept until evicted
    CHECK(after.kept == 1);
    CHECK(after.waiters == 0);
    CHECK(after.progress == 0);
    // A resume replays what was kept and ends at once (no reply will come), or is complete.
    r = f.Dispatch(Resume(sid, "p1-0"));
    REQUIRE(Status(r) == 200);
    CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-1"});
    CHECK(Status(f.Dispatch(Resume(sid, "p1-1"))) == 204);
    CHECK(f.srv->PostStateForTesting(sid).live == 0);
    // The id is free again.
    r = f.Dispatch(Req("POST", sid, Call("h1", "demo__progress", "tok").dump(), kNew));
    REQUIRE(Status(r) == 200);
    CHECK(Messages(Events(r)).back().msg["id"] == "h1");
    // A cancellation of an unknown id changes nothing.
    cancel("nope");
    CHECK(f.srv->PostStateForTesting(sid).waiters == 0);
  }

  SUBCASE("a forwarded call: the upstream's later reply is swallowed, then the id is free") {
    auto ev = AskAndLeave(f, sid, "c1");
    REQUIRE(ev.size() == 5);
    json sampling = ev[4].msg;
    CHECK(f.srv->PostStateForTesting(sid).streams == 1);
    cancel("c1");
    auto after = f.srv->PostStateForTesting(sid);
    CHECK(after.streams == 1);  // its kept messages stay until evicted...
    CHECK(after.progress == 0);
    CHECK(after.live == 0);
    // ...and resume without waiting for a reply that will not come.
    std::string r = f.Dispatch(Resume(sid, "p1-2"));
    REQUIRE(Status(r) == 200);
    CHECK(Ids(Events(r)) == std::vector<std::string>{"p1-3", "p1-4"});
    CHECK(Status(f.Dispatch(Resume(sid, "p1-4"))) == 204);
    // The upstream has not answered yet: the id stays taken until it does.
    r = f.Dispatch(Req("POST", sid, Call("c1", "demo__echo").dump(), kNew));
    CHECK(Status(r) == 400);
    Answer(f, sid, sampling, "late");
    bool released = WaitUntil([&] { return f.srv->PostStateForTesting(sid).waiters == 0; });
    CHECK(released);
    auto end = f.srv->PostStateForTesting(sid);
    CHECK(end.replied == 0);  // the late reply was not kept...
    CHECK(end.kept == 4);
    CHECK(Status(f.Dispatch(Resume(sid, "p1-4"))) == 204);  // ...nor resumed
    r = f.Dispatch(Req("POST", sid, Call("c1", "demo__progress", "tok").dump(), kNew));
    REQUIRE(Status(r) == 200);
    CHECK(Messages(Events(r)).back().msg["id"] == "c1");
  }

  SUBCASE("a cancelled stream is forgotten once evicted; its last id still resumes as 204") {
    auto ev = AskAndLeave(f, sid, "c2");
    REQUIRE(ev.size() == 5);
    cancel("c2");
    // Many more streams evict it (the buffer holds 64 POST messages).
    for (int i = 0; i < 17; ++i)
      REQUIRE(Status(f.Dispatch(
                  Req("POST", sid, Call(200 + i, "demo__progress", "tok").dump(), kOld))) == 200);
    CHECK(f.srv->PostStateForTesting(sid).streams == 16);
    CHECK(Status(f.Dispatch(Resume(sid, "p1-4"))) == 204);
    CHECK(Status(f.Dispatch(Resume(sid, "p1-3"))) == 410);
  }
}

TEST_CASE("HTTP POST streams: resume_buffer_events 0 turns it off (no ids, as before)") {
  Fixture f(0);
  std::string sid = OpenSession(f);
  std::string r = f.Dispatch(Req("POST", sid, Call(10, "demo__progress", "tok").dump(), kNew));
  REQUIRE(Status(r) == 200);
  auto ev = Events(r);
  REQUIRE(ev.size() == 4);
  for (const auto& e : ev) CHECK(e.id.empty());
  CHECK(Body(r).find("id: ") == std::string::npos);
  CHECK(ev[3].msg["id"] == 10);
  r = f.Dispatch(Resume(sid, "p1-1"), std::chrono::milliseconds(100));
  REQUIRE(Status(r) == 200);
  CHECK(Header(r, "Writ-Replay").empty());
  // A POST whose client leaves is forgotten as before: its id is free again at once...
  r = f.Dispatch(Req("POST", sid, Call("z", "demo__ask_progress", "t").dump(), kNew), kDrop);
  REQUIRE(Status(r) == 200);
  CHECK(Body(r).find("id: ") == std::string::npos);
  r = f.Dispatch(Req("POST", sid, Call("z", "demo__echo").dump(), kNew));
  CHECK(Status(r) == 200);
}

TEST_CASE("docs/gateway.md: the POST resumption config example parses") {
  writ::gateway::Config c = writ::http_test::ParseDocsYaml("<!-- example: http-post-resume-config");
  const std::string doc = writ::http_test::GatewayDoc();
  CHECK(c.http.resume_buffer_events == 1000);
  CHECK(c.http.resume_buffer_bytes == 8388608u);
  // The documented exchange names the ids this gateway gives (p<k>-<n>, priming p<k>-0).
  size_t ex = doc.find("<!-- example: http-post-resume -->");
  REQUIRE(ex != std::string::npos);
  std::string exchange = doc.substr(ex, doc.find("```\n", doc.find("```http", ex) + 7) - ex);
  for (const char* id : {"id: p1-0\n", "id: p1-1\n", "Last-Event-ID: p1-1\n", "id: p1-2\n",
                         "id: p1-4\n", "Writ-Replay: replayed\n"})
    CHECK_MESSAGE(exchange.find(id) != std::string::npos, id);
}
