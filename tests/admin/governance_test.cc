// Governance (gateway/governance.h): the held-call flow (Hold) the proxy uses, with the
// approval decided through the admin API while the call waits; notification and audit of
// new approvals; expiry by the background thread.
#include "gateway/governance.h"

#include <doctest/doctest.h>

#include <fstream>
#include <thread>

#include "tests/admin/admin_util.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

constexpr char kToken[] = "governance-token-0123456789abcdef";

HeldCall Call(const json& args) {
  HeldCall c;
  c.binding = {"User::\"alice\"", "billing", "billing__refund", ApprovalArgsDigest(args), "b1"};
  c.context = {{"finance-leads"}, "dec-1", "sess-1", ApprovalArgsPreview(args, {})};
  c.timeout_ms = 600'000;
  return c;
}

std::vector<json> AuditRecords(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("Hold without approvals configured fails closed") {
  Governance g;
  Config c;
  std::string err;
  REQUIRE(StartGovernance(c, nullptr, &g, &err));
  ApprovalVerdict v = g.Hold(Call(json::object()), nullptr, nullptr);
  CHECK(v.kind == ApprovalVerdict::Kind::kUnavailable);
  CHECK(v.message.find("not configured") != std::string::npos);
}

TEST_CASE("Hold: wait, approve through the admin API, run once; notified and audited") {
  TempDir dir("governance");
  WebhookServer hook({200});
  Config c;
  c.approvals.enabled = true;
  c.approvals.db = dir.path("state.db");
  c.approvals.wait_ms = 1300;
  c.approvals.notify_channel = "slack";
  c.approvals.notify_target = "#approvals";
  c.notify_enabled = true;
  c.notify.channels.push_back(
      {"slack", "http://127.0.0.1:" + std::to_string(hook.port()) + "/h", {}, ""});
  c.admin.enabled = true;
  c.admin.port = 0;
  c.admin.token_sha256 = AdminTokenHash(kToken);
  AuditOptions ao;
  ao.path = dir.path("audit.jsonl");
  ao.fsync = AuditFsync::kNever;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(ao, &log).ok());
  std::shared_ptr<AuditLog> audit = std::move(log);
  Governance g;
  std::string err;
  REQUIRE_MESSAGE(StartGovernance(c, audit, &g, &err), err);
  REQUIRE(g.admin);
  REQUIRE(g.killswitch);  // approvals.db doubles as the kill switch's file
  int port = g.admin->port();
  std::string auth = std::string("Bearer ") + kToken;

  // 1. No decision within approvals.wait: pending, with the id; progress was reported.
  int progress_calls = 0;
  ApprovalVerdict v = g.Hold(
      Call({{"amount", 900}}), [&](int64_t) { ++progress_calls; }, nullptr);
  CHECK(v.kind == ApprovalVerdict::Kind::kPending);
  REQUIRE(v.approval_id.rfind("ap_", 0) == 0);
  CHECK(v.message == "held for approval (approval " + v.approval_id +
                         "); retry the identical call once it is approved");
  CHECK(progress_calls >= 1);
  std::string id = v.approval_id;
  REQUIRE(hook.WaitFor(1, 5000));
  json event = json::parse(hook.received()[0].body);
  CHECK(event["event"] == "approval.requested");
  CHECK(event["target"] == "#approvals");
  CHECK(event["approval"]["id"] == id);
  CHECK(event["text"].get<std::string>().find("User::\"alice\" -> billing__refund") !=
        std::string::npos);

  // 2. The identical retry waits on the same approval; an approver approves meanwhile.
  std::thread approver([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Http(port, "POST", "/v1/approvals/" + id + "/approve", R"({"by": "carol"})", auth);
  });
  v = g.Hold(Call({{"amount", 900}}), nullptr, nullptr);
  approver.join();
  CHECK(v.kind == ApprovalVerdict::Kind::kProceed);
  CHECK(v.approval_id == id);
  CHECK(g.approvals->Get(id)->state == ApprovalState::kConsumed);
  CHECK(hook.received().size() == 1);  // no second notification for the same approval

  // 3. Once used, the identical call needs a new approval; a different call never matches.
  v = g.Hold(Call({{"amount", 900}}), nullptr, [] { return true; });
  CHECK(v.kind == ApprovalVerdict::Kind::kPending);
  CHECK(v.approval_id != id);
  std::string second = v.approval_id;
  v = g.Hold(Call({{"amount", 901}}), nullptr, [] { return true; });
  CHECK(v.approval_id != second);

  // 4. A denial reaches the waiting call with the approver's note.
  std::thread denier([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Http(port, "POST", "/v1/approvals/" + second + "/deny",
         R"({"by": "dave", "note": "no ticket"})", auth);
  });
  v = g.Hold(Call({{"amount", 900}}), nullptr, nullptr);
  denier.join();
  CHECK(v.kind == ApprovalVerdict::Kind::kDenied);
  CHECK(v.message == "denied by approver dave: no ticket (approval " + second + ")");

  // notify(channel, target) obligations go through the same notifier.
  CHECK(g.NotifyObligation("slack", "#alerts", "refund held", {{"decision_id", "dec-1"}}));
  // Received so far: approval.requested for id, second and the 901 call, then this one.
  REQUIRE(hook.WaitFor(4, 5000));
  auto got = hook.received();
  REQUIRE(got.size() == 4);
  json ob = json::parse(got[3].body);
  CHECK(ob["event"] == "policy.notify");
  CHECK(ob["decision"]["decision_id"] == "dec-1");
  CHECK_FALSE(g.NotifyObligation("teams", "#x", "t", json::object()));

  g.Stop();
  audit->Sync();
  int requested = 0, approved = 0, denied = 0;
  for (const json& r : AuditRecords(dir.path("audit.jsonl"))) {
    if (r["kind"] != "approval") continue;
    std::string e = r["detail"]["event"];
    if (e == "approval.requested") {
      ++requested;
      CHECK(r["decision_id"] == "dec-1");
      CHECK(r["principal"] == "User::\"alice\"");
    }
    approved += e == "approval.approved";
    denied += e == "approval.denied";
  }
  CHECK(requested == 3);
  CHECK(approved == 1);
  CHECK(denied == 1);
}

TEST_CASE("the background thread expires due approvals and audits it") {
  TempDir dir("governance_expiry");
  Config c;
  c.approvals.enabled = true;
  c.approvals.db = dir.path("state.db");
  AuditOptions ao;
  ao.path = dir.path("audit.jsonl");
  ao.fsync = AuditFsync::kNever;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(ao, &log).ok());
  std::shared_ptr<AuditLog> audit = std::move(log);
  Governance g;
  std::string err;
  REQUIRE_MESSAGE(StartGovernance(c, audit, &g, &err), err);
  auto r = g.approvals->Request(Call(json::object()).binding, {}, 200, NowMs(), &err);
  REQUIRE(r);
  for (int i = 0; i < 50 && g.approvals->Get(r->id)->state == ApprovalState::kPending; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(g.approvals->Get(r->id)->state == ApprovalState::kExpired);
  g.Stop();
  bool found = false;
  for (const json& rec : AuditRecords(dir.path("audit.jsonl")))
    found = found || (rec["kind"] == "approval" && rec["detail"]["event"] == "approval.expired" &&
                      rec["detail"]["approval"]["id"] == r->id);
  CHECK(found);
}
