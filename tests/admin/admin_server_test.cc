// The admin HTTP API (gateway/admin_server.h) over a real loopback socket: auth, routes,
// error statuses, events; and the built `writ approvals` / `writ kill` against it.
#include "gateway/admin_server.h"

#include <doctest/doctest.h>

#include <fstream>

#include "gateway/approvals.h"
#include "gateway/killswitch.h"
#include "tests/admin/admin_util.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

constexpr char kToken[] = "test-admin-token-0123456789abcdef";
const std::string kAuth = std::string("Bearer ") + kToken;

struct Fixture {
  explicit Fixture(const std::string& name, bool with_stores = true) : dir(name) {
    std::string err;
    AdminServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.token_sha256 = AdminTokenHash(kToken);
    if (with_stores) {
      store = ApprovalStore::Open(dir.path("state.db"), &err);
      kill = KillSwitch::Open(dir.path("state.db"), &err);
      REQUIRE_MESSAGE((store && kill), err);
      o.approvals = store;
      o.killswitch = kill;
    }
    o.on_event = [this](const AdminEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(e);
    };
    server = std::make_unique<AdminServer>(std::move(o));
    REQUIRE_MESSAGE(server->Listen(&err), err);
    server->Start();
    port = server->port();
  }
  std::string Pending(const json& args) {
    std::string err;
    auto r = store->Request({"User::\"alice\"", "fs", "fs__delete", ApprovalArgsDigest(args), "b1"},
                            {{"ops"}, "dec-9", "s-1", args.dump()}, 600'000, NowMs(), &err);
    REQUIRE(r);
    return r->id;
  }
  std::vector<AdminEvent> Events() {
    std::lock_guard<std::mutex> lock(mu);
    return events;
  }

  TempDir dir;
  std::shared_ptr<ApprovalStore> store;
  std::shared_ptr<KillSwitch> kill;
  std::unique_ptr<AdminServer> server;
  int port = 0;
  std::mutex mu;
  std::vector<AdminEvent> events;
};

}  // namespace

TEST_CASE("admin token config parses hex with or without prefix") {
  std::string raw, err;
  std::string hex = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
  REQUIRE(ParseTokenSha256(hex, &raw, &err));
  CHECK(raw.size() == 32);
  std::string raw2;
  REQUIRE(ParseTokenSha256("sha256:" + hex, &raw2, &err));
  CHECK(raw == raw2);
  CHECK_FALSE(ParseTokenSha256("abc", &raw, &err));
  CHECK_FALSE(ParseTokenSha256(std::string(64, 'g'), &raw, &err));
  CHECK(AdminTokenHash("abc").size() == 32);
}

TEST_CASE("admin API: every request needs the token") {
  Fixture f("api_auth");
  for (const char* target :
       {"/v1/approvals", "/v1/killswitch", "/nope", "/v1/approvals/x"}) {
    HttpReply r = Http(f.port, "GET", target);
    CHECK(r.status == 401);
    CHECK(r.json()["error"] == "unauthorized");
    CHECK(r.headers["www-authenticate"] == "Bearer realm=\"writ-admin\"");
    CHECK(Http(f.port, "GET", target, "", "Bearer wrong-token").status == 401);
    CHECK(Http(f.port, "GET", target, "", std::string("Basic ") + kToken).status == 401);
  }
  CHECK(Http(f.port, "GET", "/v1/approvals", "", kAuth).status == 200);
  CHECK(Http(f.port, "GET", "/v1/approvals", "", std::string("bearer ") + kToken).status == 200);
  CHECK(Http(f.port, "GET", "/v1/approvals", "", kAuth + "x").status == 401);
}

TEST_CASE("admin API: approvals list, show, approve, deny") {
  Fixture f("api_approvals");
  std::string a = f.Pending({{"path", "/a"}});
  std::string b = f.Pending({{"path", "/b"}});

  HttpReply r = Http(f.port, "GET", "/v1/approvals?state=pending", "", kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.headers["content-type"] == "application/json");
  CHECK(r.json()["approvals"].size() == 2);

  r = Http(f.port, "GET", "/v1/approvals/" + a, "", kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["id"] == a);
  CHECK(r.json()["tool"] == "fs__delete");
  CHECK(r.json()["args_preview"] == "{\"path\":\"/a\"}");
  CHECK(r.json()["approvers"] == json::array({"ops"}));

  r = Http(f.port, "POST", "/v1/approvals/" + a + "/approve",
           R"({"by": "carol", "note": "ticket 7"})", kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["state"] == "approved");
  CHECK(r.json()["decided_by"] == "carol");
  CHECK(f.store->Get(a)->state == ApprovalState::kApproved);

  // Approving twice is a conflict, and so is denying an approved one.
  r = Http(f.port, "POST", "/v1/approvals/" + a + "/approve", R"({"by": "dave"})", kAuth);
  CHECK(r.status == 409);
  CHECK(r.json()["error"] == "not_pending");
  CHECK(r.json()["message"] == "approval " + a + " is approved, not pending");
  CHECK(Http(f.port, "POST", "/v1/approvals/" + a + "/deny", R"({"by": "dave"})", kAuth).status ==
        409);

  r = Http(f.port, "POST", "/v1/approvals/" + b + "/deny", R"({"by": "carol", "note": "no"})",
           kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["state"] == "denied");

  r = Http(f.port, "GET", "/v1/approvals?state=pending", "", kAuth);
  CHECK(r.json()["approvals"].empty());
  r = Http(f.port, "GET", "/v1/approvals", "", kAuth);
  CHECK(r.json()["approvals"].size() == 2);
  r = Http(f.port, "GET", "/v1/approvals?state=approved&limit=1", "", kAuth);
  CHECK(r.json()["approvals"].size() == 1);

  std::vector<AdminEvent> ev = f.Events();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == "approval.approved");
  CHECK(ev[0].actor == "carol");
  CHECK(ev[0].detail["id"] == a);
  CHECK(ev[0].detail["note"] == "ticket 7");
  CHECK(ev[1].kind == "approval.denied");
}

TEST_CASE("admin API: 400, 404, 405, 413 with JSON errors") {
  Fixture f("api_errors");
  std::string a = f.Pending(json::object());
  auto check = [&](const std::string& method, const std::string& target, const std::string& body,
                   int status, const std::string& code) {
    HttpReply r = Http(f.port, method, target, body, kAuth);
    CHECK_MESSAGE(r.status == status, method << " " << target << ": " << r.body);
    json j = r.json();
    REQUIRE(j.is_object());
    CHECK(j["error"] == code);
    CHECK(j["message"].get<std::string>().size() > 5);
    return r;
  };
  check("GET", "/nope", "", 404, "not_found");
  check("GET", "/v1/approvals/ap_0000000000000000", "", 404, "not_found");
  check("POST", "/v1/approvals/ap_0000000000000000/approve", R"({"by":"x"})", 404, "not_found");
  check("GET", "/v1/approvals/" + a + "/frobnicate", "", 404, "not_found");
  check("GET", "/v1/killswitch/frobnicate", "", 404, "not_found");
  HttpReply r = check("DELETE", "/v1/approvals", "", 405, "method_not_allowed");
  CHECK(r.headers["allow"] == "GET");
  r = check("GET", "/v1/approvals/" + a + "/approve", "", 405, "method_not_allowed");
  CHECK(r.headers["allow"] == "POST");
  check("POST", "/v1/killswitch", "", 405, "method_not_allowed");
  check("GET", "/v1/approvals?state=bogus", "", 400, "bad_request");
  check("GET", "/v1/approvals?limit=0", "", 400, "bad_request");
  check("POST", "/v1/approvals/" + a + "/approve", "not json", 400, "bad_request");
  check("POST", "/v1/approvals/" + a + "/approve", "[1]", 400, "bad_request");
  check("POST", "/v1/approvals/" + a + "/approve", "{}", 400, "bad_request");  // no `by`
  check("POST", "/v1/approvals/" + a + "/approve", R"({"by": 7})", 400, "bad_request");
  check("POST", "/v1/killswitch/engage", R"({"scope": "all"})", 400, "bad_request");  // no reason
  check("POST", "/v1/killswitch/engage", R"({"scope": "everything", "reason": "x"})", 400,
        "bad_request");
  check("POST", "/v1/killswitch/release", R"({})", 400, "bad_request");
  check("POST", "/v1/approvals/" + a + "/approve",
        R"({"by": "x", "note": ")" + std::string(100'000, 'n') + "\"}", 413, "too_large");
  // Still pending after all that.
  CHECK(f.store->Get(a)->state == ApprovalState::kPending);
  CHECK(f.Events().empty());
}

TEST_CASE("admin API: an approval past its expiry cannot be approved") {
  Fixture f("api_expired");
  std::string err;
  auto r = f.store->Request({"User::\"a\"", "fs", "fs__x", ApprovalArgsDigest({}), "b"}, {}, 1,
                            NowMs() - 10, &err);
  REQUIRE(r);
  HttpReply h = Http(f.port, "POST", "/v1/approvals/" + r->id + "/approve", R"({"by":"c"})", kAuth);
  CHECK(h.status == 409);
  CHECK(h.json()["error"] == "expired");
  CHECK(f.store->Get(r->id)->state == ApprovalState::kExpired);
}

TEST_CASE("admin API: kill switch engage, status, release") {
  Fixture f("api_kill");
  HttpReply r =
      Http(f.port, "POST", "/v1/killswitch/engage",
           R"({"scope": "server:github", "reason": "token leaked", "by": "carol"})", kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["scope"] == "server:github");
  CHECK(f.kill->Blocks("github", "User::\"x\""));
  r = Http(f.port, "POST", "/v1/killswitch/engage",
           R"({"scope": "principal:User::\"mallory\"", "reason": "stolen key"})", kAuth);
  REQUIRE(r.status == 200);
  CHECK(f.kill->Blocks("fs", "User::\"mallory\"")->by == "admin");
  r = Http(f.port, "GET", "/v1/killswitch", "", kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["engaged"].size() == 2);
  r = Http(f.port, "POST", "/v1/killswitch/release", R"({"scope": "server:github", "by": "carol"})",
           kAuth);
  REQUIRE(r.status == 200);
  CHECK(r.json()["released"] == true);
  CHECK_FALSE(f.kill->Blocks("github", "User::\"x\""));
  r = Http(f.port, "POST", "/v1/killswitch/release", R"({"scope": "server:github"})", kAuth);
  CHECK(r.json()["released"] == false);
  std::vector<AdminEvent> ev = f.Events();
  REQUIRE(ev.size() == 3);  // a release of nothing is not an event
  CHECK(ev[0].kind == "killswitch.engaged");
  CHECK(ev[0].actor == "carol");
  CHECK(ev[0].detail["reason"] == "token leaked");
  CHECK(ev[2].kind == "killswitch.released");
}

TEST_CASE("admin API: without stores the routes answer 503") {
  Fixture f("api_unconfigured", false);
  HttpReply r = Http(f.port, "GET", "/v1/approvals", "", kAuth);
  CHECK(r.status == 503);
  CHECK(r.json()["error"] == "not_configured");
  CHECK(Http(f.port, "GET", "/v1/killswitch", "", kAuth).status == 503);
}

TEST_CASE("admin API: mounted routes, with and without auth") {
  Fixture f("api_routes");
  f.server->AddRoute("GET", "/metrics", [](const AdminRequest&) {
    AdminResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = "writ_up 1\n";
    return r;
  });
  f.server->AddRoute(
      "GET", "/healthz",
      [](const AdminRequest&) {
        return AdminResponse::Json(200, {{"ok", true}});
      },
      AdminServer::Auth::kNone);
  f.server->AddRoute("GET", "/boom", [](const AdminRequest&) -> AdminResponse {
    throw std::runtime_error("kaput");
  });
  HttpReply r = Http(f.port, "GET", "/metrics", "", kAuth);
  CHECK(r.status == 200);
  CHECK(r.body == "writ_up 1\n");
  CHECK(r.headers["content-type"] == "text/plain; version=0.0.4");
  CHECK(Http(f.port, "GET", "/metrics").status == 401);
  CHECK(Http(f.port, "GET", "/healthz").status == 200);
  r = Http(f.port, "POST", "/metrics", "", kAuth);
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "GET");
  r = Http(f.port, "GET", "/boom", "", kAuth);
  CHECK(r.status == 500);
  CHECK(r.json()["message"] == "handler failed: kaput");
}

TEST_CASE("admin server: listen errors") {
  AdminServerOptions o;
  o.port = 0;
  std::string err;
  AdminServer no_token(o);
  CHECK_FALSE(no_token.Listen(&err));
  CHECK(err.find("no admin token") != std::string::npos);
  o.token_sha256 = AdminTokenHash(kToken);
  AdminServer first(o);
  REQUIRE(first.Listen(&err));
  o.port = first.port();
  AdminServer second(o);
  CHECK_FALSE(second.Listen(&err));
  CHECK(err.find("cannot listen on 127.0.0.1:" + std::to_string(o.port)) != std::string::npos);
}

TEST_CASE("writ approvals / writ kill against a running admin API") {
  Fixture f("cli");
  { std::ofstream(f.dir.path("token")) << kToken << "\n"; }
  std::string a = f.Pending({{"path", "/tmp/report.csv"}});
  std::string b = f.Pending({{"path", "/tmp/other"}});
  std::string common =
      "--admin http://127.0.0.1:" + std::to_string(f.port) + " --token-file " + f.dir.path("token");
  std::string out, err;

  REQUIRE(RunWrit("approvals list " + common, &out, &err) == 0);
  CHECK(out.find(a) != std::string::npos);
  CHECK(out.find("fs__delete") != std::string::npos);
  CHECK(out.find("pending") != std::string::npos);

  REQUIRE(RunWrit("approvals show " + a + " " + common, &out, &err) == 0);
  CHECK(out.find("/tmp/report.csv") != std::string::npos);
  CHECK(out.find("approvers   ops") != std::string::npos);

  REQUIRE(RunWrit("approvals approve " + a + " --note 'looks fine' --by carol " + common, &out,
                  &err) == 0);
  CHECK(out == "approved " + a + " (User::\"alice\" -> fs__delete) by carol\n");
  CHECK(f.store->Get(a)->note == "looks fine");

  // Refused: exit 1 with the server's message.
  CHECK(RunWrit("approvals approve " + a + " " + common, &out, &err) == 1);
  CHECK(err.find("is approved, not pending") != std::string::npos);
  CHECK(RunWrit("approvals show ap_ffffffffffffffff " + common, &out, &err) == 1);
  CHECK(err.find("no approval ap_ffffffffffffffff") != std::string::npos);

  // JSON output, token from the environment.
  REQUIRE(
      RunWrit("approvals deny " + b + " --format json --admin 127.0.0.1:" + std::to_string(f.port),
              &out, &err, {{"WRIT_ADMIN_TOKEN", kToken}}) == 0);
  json j = json::parse(out, nullptr, false);
  REQUIRE(j.is_object());
  CHECK(j["state"] == "denied");
  CHECK(f.store->Get(b)->state == ApprovalState::kDenied);
  REQUIRE(RunWrit("approvals list --state all --format json " + common, &out, &err) == 0);
  CHECK(json::parse(out)["approvals"].size() == 2);
  REQUIRE(RunWrit("approvals list " + common, &out, &err) == 0);
  CHECK(out == "no pending approvals\n");

  // Kill switch.
  REQUIRE(RunWrit("kill engage server:github --reason 'token leaked' " + common, &out, &err) == 0);
  CHECK(out == "engaged server:github: token leaked\n");
  CHECK(f.kill->Blocks("github", "User::\"x\""));
  REQUIRE(RunWrit("kill status " + common, &out, &err) == 0);
  CHECK(out.find("engaged server:github since ") != std::string::npos);
  REQUIRE(RunWrit("kill release server:github " + common, &out, &err) == 0);
  CHECK(out == "released server:github\n");
  REQUIRE(RunWrit("kill status " + common, &out, &err) == 0);
  CHECK(out == "kill switch: nothing engaged\n");
  CHECK(RunWrit("kill engage bogus --reason x " + common, &out, &err) == 2);
  CHECK(err.find("unknown kill switch scope `bogus`") != std::string::npos);

  // Wrong token: exit 2 with a hint.
  CHECK(RunWrit("kill status --admin 127.0.0.1:" + std::to_string(f.port), &out, &err,
                {{"WRIT_ADMIN_TOKEN", "nope"}}) == 2);
  CHECK(err.find("the admin token was refused") != std::string::npos);
}

TEST_CASE("writ approvals: connection refused and missing token are usage errors") {
  TempDir dir("cli_refused");
  std::string out, err;
  // A port nothing listens on: bind one, note it, close it.
  int port;
  {
    AdminServerOptions o;
    o.port = 0;
    o.token_sha256 = AdminTokenHash(kToken);
    AdminServer s(o);
    std::string e;
    REQUIRE(s.Listen(&e));
    port = s.port();
  }
  CHECK(RunWrit("approvals list --admin http://127.0.0.1:" + std::to_string(port), &out, &err,
                {{"WRIT_ADMIN_TOKEN", "x"}}) == 2);
  CHECK(err.find("cannot reach the admin API at http://127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
  CHECK(err.find("must be running") != std::string::npos);
  CHECK(RunWrit("kill status --admin 127.0.0.1:1", &out, &err) == 2);
  CHECK(err.find("no admin token") != std::string::npos);
}
