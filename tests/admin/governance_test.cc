// Governance (gateway/governance.h) on the path the proxy really uses for a held call
// (Proxy::Hold: ApprovalStore::Request, Governance::ApprovalRequested, then the store polled
// on Tick), with approvers deciding through the admin API while the call waits: notification
// and audit of new approvals, fail closed without approvals; expiry by the background thread.
#include "gateway/governance.h"

#include <doctest/doctest.h>

#include <fstream>
#include <thread>

#include "compiler/compile.h"
#include "gateway/guards.h"
#include "gateway/jsonrpc.h"
#include "gateway/proxy.h"
#include "tests/admin/admin_util.h"
#include "tests/gateway/proxy_session.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

constexpr char kToken[] = "governance-token-0123456789abcdef";

ApprovalBinding Binding(const json& args) {
  return {"User::\"alice\"", "billing", "billing__refund", ApprovalArgsDigest(args), "b1"};
}

std::vector<json> AuditRecords(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
  return out;
}

constexpr char kRefundPolicy[] = R"(
@id("all") permit (principal, action, resource);
@id("refund-needs-approval")
rule if resource == Tool::"billing__refund" then require_approval(approvers: "finance-leads");
)";

// One in-memory MCP session (upstream "billing" with tool `refund`) whose Proxy uses `gov` as
// `writ serve` wires it: the Guards built by BuildGuards from the same config.
struct Session : writ::gateway_test::ProxySession {
  Session(const Config& config, Governance* gov)
      : ProxySession(kRefundPolicy, Options(config, gov), "billing") {
    Initialize();
    REQUIRE(ListTools(json::array({{{"name", "refund"}}}))["result"]["tools"].size() == 1);
  }
  static ProxyOptions Options(const Config& config, Governance* gov) {
    std::string error;
    auto guards = std::make_shared<Guards>();
    REQUIRE_MESSAGE(BuildGuards(config, {}, gov, guards.get(), &error), error);
    REQUIRE(guards->governance == gov);
    ProxyOptions opts;
    opts.principal.uid = "User::\"alice\"";
    opts.guards = guards;
    return opts;
  }
  void Refund(int id, int amount) {
    Client({{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"},
            {"params", {{"name", "billing__refund"}, {"arguments", {{"amount", amount}}}}}});
  }
  // The client's answer to request `id` (null: none yet).
  json Answer(int id) const {
    for (const auto& m : client)
      if (m.contains("id") && m["id"] == id && !m.contains("method")) return m;
    return nullptr;
  }
  // Ticks until request `id` is answered (at most ~5 s); its answer.
  json TickUntilAnswered(int id) {
    for (int i = 0; i < 100 && Answer(id).is_null(); ++i) {
      proxy->Tick();
      if (Answer(id).is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Answer(id);
  }
};

}  // namespace

TEST_CASE("a held call without approvals configured is not forwarded (fail closed)") {
  Governance g;
  Config c;
  std::string err;
  REQUIRE(StartGovernance(c, nullptr, &g, &err));
  CHECK(g.approvals == nullptr);
  Session s(c, &g);
  s.Refund(1, 900);
  json r = s.Answer(1);
  REQUIRE(r.is_object());
  CHECK(r["error"]["code"] == kHeldForApproval);
  CHECK(r["error"]["data"]["help"].get<std::string>().find("configure `approvals:`") !=
        std::string::npos);
  CHECK(s.Forwarded() == 0);
}

TEST_CASE("held calls: approved and denied through the admin API; notified and audited once") {
  TempDir dir("governance");
  WebhookServer hook({200});
  Config c;
  c.approvals.enabled = true;
  c.approvals.db = dir.path("state.db");
  c.approvals.wait_ms = 60'000;  // the calls here are decided long before
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
  REQUIRE(g.approvals);
  REQUIRE(g.killswitch);  // approvals.db doubles as the kill switch's file
  int port = g.admin->port();
  std::string auth = std::string("Bearer ") + kToken;
  Session s(c, &g);

  // 1. The call is held: one pending approval, the approvers notified, nothing forwarded.
  s.Refund(1, 900);
  CHECK(s.Answer(1).is_null());  // waiting (approvals.wait)
  std::vector<Approval> pending = g.approvals->List(ApprovalState::kPending);
  REQUIRE(pending.size() == 1);
  std::string id = pending[0].id;
  CHECK(id.rfind("ap_", 0) == 0);
  CHECK(pending[0].binding.principal == "User::\"alice\"");
  CHECK(pending[0].binding.tool == "billing__refund");
  CHECK(pending[0].binding.args_digest == ApprovalArgsDigest({{"amount", 900}}));
  CHECK(pending[0].context.approvers == std::vector<std::string>{"finance-leads"});
  REQUIRE(hook.WaitFor(1, 5000));
  json event = json::parse(hook.received()[0].body);
  CHECK(event["event"] == "approval.requested");
  CHECK(event["target"] == "#approvals");
  CHECK(event["approval"]["id"] == id);
  CHECK(event["text"].get<std::string>().find("User::\"alice\" -> billing__refund") !=
        std::string::npos);

  // 2. The identical call while it is pending waits on the same approval (not notified again).
  s.Refund(2, 900);
  CHECK(g.approvals->List(ApprovalState::kPending).size() == 1);

  // 3. An approver approves through the admin API: one held call runs, exactly once (the
  // approval is used up); the other identical call finds it consumed and is denied.
  HttpReply r = Http(port, "POST", "/v1/approvals/" + id + "/approve", R"({"by": "carol"})", auth);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  for (int i = 0; i < 100 && s.Forwarded() == 0; ++i) {
    s.proxy->Tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(s.Forwarded() == 1);
  CHECK(s.up.back()["params"]["arguments"]["amount"] == 900);
  CHECK(g.approvals->Get(id)->state == ApprovalState::kConsumed);
  s.Up({{"jsonrpc", "2.0"}, {"id", s.up.back()["id"]}, {"result", {{"content", json::array()}}}});
  int ran = s.Answer(1).contains("result") ? 1 : 2, other = ran == 1 ? 2 : 1;
  CHECK(s.Answer(ran).contains("result"));
  json consumed = s.TickUntilAnswered(other);
  REQUIRE(consumed.is_object());
  CHECK(consumed["error"]["code"] == kDenied);
  CHECK(consumed["error"]["message"].get<std::string>().find("approval " + id + " is consumed") !=
        std::string::npos);
  CHECK(s.Forwarded() == 1);  // exactly once

  // 4. A different call never matches; its approval is denied with a note: the call is denied.
  s.Refund(3, 901);
  std::string second;
  for (const Approval& a : g.approvals->List(ApprovalState::kPending))
    if (a.binding.args_digest == ApprovalArgsDigest({{"amount", 901}})) second = a.id;
  REQUIRE_FALSE(second.empty());
  CHECK(second != id);
  r = Http(port, "POST", "/v1/approvals/" + second + "/deny",
           R"({"by": "dave", "note": "no ticket"})", auth);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  json denied = s.TickUntilAnswered(3);
  REQUIRE(denied.is_object());
  CHECK(denied["error"]["code"] == kDenied);
  CHECK(denied["error"]["message"].get<std::string>().find("denied by dave: no ticket") !=
        std::string::npos);
  CHECK(s.Forwarded() == 1);

  // notify(channel, target) obligations go through the same notifier.
  CHECK(g.NotifyObligation("slack", "#alerts", "refund held", {{"decision_id", "dec-1"}}));
  // Received: approval.requested for `id` (once, though two calls waited on it), for
  // `second`, then the obligation.
  REQUIRE(hook.WaitFor(3, 5000));
  auto got = hook.received();
  REQUIRE(got.size() == 3);
  CHECK(json::parse(got[1].body)["approval"]["id"] == second);
  json ob = json::parse(got[2].body);
  CHECK(ob["event"] == "policy.notify");
  CHECK(ob["decision"]["decision_id"] == "dec-1");
  CHECK_FALSE(g.NotifyObligation("teams", "#x", "t", json::object()));

  s.proxy.reset();
  g.Stop();
  audit->Sync();
  int requested = 0, approved = 0, denials = 0;
  for (const json& rec : AuditRecords(dir.path("audit.jsonl"))) {
    if (rec["kind"] != "approval") continue;
    std::string e = rec["detail"]["event"];
    if (e == "approval.requested") {
      ++requested;
      CHECK(rec["decision_id"].get<std::string>().size() == 32);  // the held call's decision
      CHECK(rec["principal"] == "User::\"alice\"");
      CHECK(rec["tool"] == "billing__refund");
    }
    approved += e == "approval.approved";
    denials += e == "approval.denied";
  }
  CHECK(requested == 2);
  CHECK(approved == 1);
  CHECK(denials == 1);
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
  auto r = g.approvals->Request(Binding(json::object()), {}, 200, NowMs(), &err);
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
