// Approval store (gateway/approvals.h), kill switch (gateway/killswitch.h) and the state file
// they share (gateway/state_db.h): binding, dedupe, approve/consume once (also under
// concurrency), expiry, restart persistence, scopes, refusal of foreign files.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "gateway/approvals.h"
#include "gateway/killswitch.h"
#include "tests/admin/admin_util.h"

using namespace writ::gateway;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

ApprovalBinding Binding(const json& args, const std::string& principal = "User::\"alice\"") {
  return {principal, "fs", "fs__delete", ApprovalArgsDigest(args), "bundle-1"};
}

ApprovalContext Context() {
  return {{"ops", "security"}, "dec-1", "sess-1", "{\"path\":\"/tmp/x\"}"};
}

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTtl = 60'000;

}  // namespace

TEST_CASE("args digest is over canonical JSON and equals the audit's") {
  CHECK(ApprovalArgsDigest(json::parse(R"({"b":1,"a":[1,2]})")) ==
        ApprovalArgsDigest(json::parse(R"({ "a" : [1,2], "b" : 1 })")));
  CHECK(ApprovalArgsDigest(json::parse(R"({"a":1})")) !=
        ApprovalArgsDigest(json::parse(R"({"a":2})")));
  // SHA-256 of the 2 bytes "{}".
  CHECK(ApprovalArgsDigest(json::object()) ==
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
}

TEST_CASE("args preview scrubs secrets and is bounded") {
  json args = {{"token", "s3cr3t-value"}, {"text", std::string(5000, 'x')}};
  std::string p = ApprovalArgsPreview(args, {"s3cr3t-value"}, 100);
  CHECK(p.size() <= 100);
  CHECK(p.find("s3cr3t") == std::string::npos);
  CHECK(p.substr(p.size() - 3) == "...");
  CHECK(ApprovalArgsPreview(json{{"a", 1}}, {}) == "{\"a\":1}");
}

TEST_CASE("request creates once per binding; a different call never matches") {
  TempDir dir("store_dedupe");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE_MESSAGE(store != nullptr, err);
  json args = {{"path", "/tmp/x"}};
  auto r1 = store->Request(Binding(args), Context(), kTtl, kT0, &err);
  REQUIRE(r1);
  CHECK(r1->created);
  CHECK(r1->state == ApprovalState::kPending);
  CHECK(r1->id.rfind("ap_", 0) == 0);
  CHECK(r1->id.size() == 19);
  auto r2 = store->Request(Binding(args), Context(), kTtl, kT0 + 10, &err);
  REQUIRE(r2);
  CHECK_FALSE(r2->created);
  CHECK(r2->id == r1->id);

  // Each field of the binding matters.
  std::vector<ApprovalBinding> others;
  others.push_back(Binding(json{{"path", "/tmp/y"}}));
  others.push_back(Binding(args, "User::\"bob\""));
  ApprovalBinding b = Binding(args);
  b.tool = "fs__delete_all";
  others.push_back(b);
  b = Binding(args);
  b.server = "fs2";
  others.push_back(b);
  b = Binding(args);
  b.bundle_hash = "bundle-2";
  others.push_back(b);
  for (const auto& o : others) {
    auto r = store->Request(o, Context(), kTtl, kT0, &err);
    REQUIRE(r);
    CHECK(r->created);
    CHECK(r->id != r1->id);
  }
  CHECK(store->List(ApprovalState::kPending).size() == 6);

  auto a = store->Get(r1->id);
  REQUIRE(a);
  CHECK(a->binding.principal == "User::\"alice\"");
  CHECK(a->context.approvers == std::vector<std::string>{"ops", "security"});
  CHECK(a->context.decision_id == "dec-1");
  CHECK(a->context.args_preview == "{\"path\":\"/tmp/x\"}");
  CHECK(a->created_ms == kT0);
  CHECK(a->expires_ms == kT0 + kTtl);
  CHECK(a->ToJson()["state"] == "pending");
  CHECK_FALSE(store->Get("ap_0000000000000000"));
}

TEST_CASE("approve once, consume once; the retry of the same call gets the approval") {
  TempDir dir("store_approve");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(store);
  json args = {{"path", "/tmp/x"}};
  auto r = store->Request(Binding(args), Context(), kTtl, kT0, &err);
  REQUIRE(r);
  // Not approved yet: nothing to consume.
  CHECK(store->Consume(r->id, kT0 + 1) == ApprovalError::kNotPending);

  Approval a;
  CHECK(store->Approve(r->id, "carol", "ticket 7", kT0 + 1000, &a) == ApprovalError::kNone);
  CHECK(a.state == ApprovalState::kApproved);
  CHECK(a.decided_by == "carol");
  CHECK(a.note == "ticket 7");
  CHECK(a.expires_ms == kT0 + 1000 + kTtl);  // the retry window restarts at approval
  CHECK(store->Approve(r->id, "dave", "", kT0 + 2000, &a) == ApprovalError::kNotPending);
  CHECK(a.state == ApprovalState::kApproved);
  CHECK(store->Deny(r->id, "dave", "", kT0 + 2000) == ApprovalError::kNotPending);

  // The identical retry finds the approved approval ...
  auto retry = store->Request(Binding(args), Context(), kTtl, kT0 + 3000, &err);
  REQUIRE(retry);
  CHECK(retry->id == r->id);
  CHECK(retry->state == ApprovalState::kApproved);
  CHECK_FALSE(retry->created);
  // ... a different call does not.
  auto other = store->Request(Binding(json{{"path", "/etc"}}), Context(), kTtl, kT0 + 3000, &err);
  REQUIRE(other);
  CHECK(other->created);
  CHECK(other->state == ApprovalState::kPending);

  CHECK(store->Consume(r->id, kT0 + 4000) == ApprovalError::kNone);
  CHECK(store->Consume(r->id, kT0 + 4001) == ApprovalError::kNotPending);
  CHECK(store->Get(r->id)->state == ApprovalState::kConsumed);
  CHECK(store->Get(r->id)->consumed_ms == kT0 + 4000);
  // A third identical call needs a new approval.
  auto again = store->Request(Binding(args), Context(), kTtl, kT0 + 5000, &err);
  REQUIRE(again);
  CHECK(again->created);
  CHECK(again->id != r->id);
  CHECK(store->Consume("ap_nope", kT0) == ApprovalError::kNotFound);
  CHECK(store->Approve("ap_nope", "x", "", kT0) == ApprovalError::kNotFound);
}

TEST_CASE("deny is final; a retry asks again") {
  TempDir dir("store_deny");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(store);
  auto r = store->Request(Binding(json::object()), Context(), kTtl, kT0, &err);
  REQUIRE(r);
  Approval a;
  CHECK(store->Deny(r->id, "carol", "no", kT0 + 1, &a) == ApprovalError::kNone);
  CHECK(a.state == ApprovalState::kDenied);
  CHECK(store->Approve(r->id, "carol", "", kT0 + 2) == ApprovalError::kNotPending);
  CHECK(store->Consume(r->id, kT0 + 3) == ApprovalError::kNotPending);
  auto retry = store->Request(Binding(json::object()), Context(), kTtl, kT0 + 4, &err);
  REQUIRE(retry);
  CHECK(retry->created);
  CHECK(store->List(ApprovalState::kDenied).size() == 1);
}

TEST_CASE("consume happens exactly once under concurrency") {
  TempDir dir("store_race");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(store);
  // A second store on the same file stands in for another process.
  auto other = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(other);
  for (int round = 0; round < 20; ++round) {
    auto r = store->Request(Binding(json{{"round", round}}), Context(), kTtl, kT0, &err);
    REQUIRE(r);
    REQUIRE(store->Approve(r->id, "carol", "", kT0 + 1) == ApprovalError::kNone);
    std::atomic<int> wins{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ApprovalStore* s = t % 2 == 0 ? store.get() : other.get();
      ts.emplace_back([&, s] {
        while (!go) std::this_thread::yield();
        if (s->Consume(r->id, kT0 + 2) == ApprovalError::kNone) ++wins;
      });
    }
    go = true;
    for (auto& t : ts) t.join();
    CHECK(wins.load() == 1);
  }
}

TEST_CASE("expiry: pending past its timeout, approved but never used") {
  TempDir dir("store_expiry");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(store);
  auto p = store->Request(Binding(json{{"n", 1}}), Context(), kTtl, kT0, &err);
  auto q = store->Request(Binding(json{{"n", 2}}), Context(), kTtl, kT0, &err);
  auto u = store->Request(Binding(json{{"n", 3}}), Context(), 10 * kTtl, kT0, &err);
  REQUIRE((p && q && u));
  REQUIRE(store->Approve(q->id, "carol", "", kT0 + 1000) == ApprovalError::kNone);
  // Approving past the expiry fails and marks it expired.
  CHECK(store->Approve(p->id, "carol", "", kT0 + kTtl) == ApprovalError::kExpired);
  CHECK(store->Get(p->id)->state == ApprovalState::kExpired);
  // An approved approval cannot be consumed after its window...
  CHECK(store->Consume(q->id, kT0 + 1000 + kTtl) == ApprovalError::kExpired);
  // ...and an identical retry then is a new request, not the stale approval.
  auto retry = store->Request(Binding(json{{"n", 2}}), Context(), kTtl, kT0 + 1000 + kTtl, &err);
  REQUIRE(retry);
  CHECK(retry->created);
  std::vector<Approval> due = store->ExpireDue(kT0 + 1000 + kTtl);
  REQUIRE(due.size() == 1);
  CHECK(due[0].id == q->id);
  CHECK(due[0].state == ApprovalState::kExpired);
  CHECK(store->Get(u->id)->state == ApprovalState::kPending);
  CHECK(store->ExpireDue(kT0 + 1000 + kTtl).empty());
  CHECK(store->ExpireDue(kT0 + 10 * kTtl).size() == 2);  // u and the retry
  CHECK(store->Get(u->id)->state == ApprovalState::kExpired);
}

TEST_CASE("pending approvals survive a restart") {
  TempDir dir("store_restart");
  std::string err, id, approved_id;
  {
    auto store = ApprovalStore::Open(dir.path("state.db"), &err);
    REQUIRE(store);
    id = store->Request(Binding(json{{"a", 1}}), Context(), kTtl, kT0, &err)->id;
    approved_id = store->Request(Binding(json{{"a", 2}}), Context(), kTtl, kT0, &err)->id;
    REQUIRE(store->Approve(approved_id, "carol", "ok", kT0 + 1) == ApprovalError::kNone);
  }
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE_MESSAGE(store, err);
  auto a = store->Get(id);
  REQUIRE(a);
  CHECK(a->state == ApprovalState::kPending);
  CHECK(a->context.approvers == std::vector<std::string>{"ops", "security"});
  auto r = store->Request(Binding(json{{"a", 1}}), Context(), kTtl, kT0 + 5, &err);
  REQUIRE(r);
  CHECK(r->id == id);
  CHECK_FALSE(r->created);
  CHECK(store->Consume(approved_id, kT0 + 10) == ApprovalError::kNone);
  CHECK(fs::status(dir.path("state.db")).permissions() ==
        (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("wait wakes on a decision and times out otherwise") {
  TempDir dir("store_wait");
  std::string err;
  auto store = ApprovalStore::Open(dir.path("state.db"), &err);
  REQUIRE(store);
  auto r = store->Request(Binding(json::object()), Context(), kTtl, NowMs(), &err);
  REQUIRE(r);
  auto start = std::chrono::steady_clock::now();
  auto w = store->Wait(r->id, NowMs() + 150);
  REQUIRE(w);
  CHECK(w->state == ApprovalState::kPending);
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(140));
  std::thread approver([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    store->Approve(r->id, "carol", "", NowMs());
  });
  w = store->Wait(r->id, NowMs() + 10'000);
  approver.join();
  REQUIRE(w);
  CHECK(w->state == ApprovalState::kApproved);
}

TEST_CASE("state file: foreign, corrupt and newer files are refused") {
  TempDir dir("store_foreign");
  std::string err;
  {
    std::ofstream(dir.path("garbage.db")) << "this is not a database, just some text padding it "
                                             "out to more than a hundred bytes ..............";
  }
  CHECK(ApprovalStore::Open(dir.path("garbage.db"), &err) == nullptr);
  CHECK(err.find("not a writ state database") != std::string::npos);

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.path("foreign.db").c_str(), &db) == SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE users(id INTEGER)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  err.clear();
  CHECK(KillSwitch::Open(dir.path("foreign.db"), &err) == nullptr);
  CHECK(err.find("belongs to another application") != std::string::npos);

  {
    auto s = ApprovalStore::Open(dir.path("newer.db"), &err);
    REQUIRE(s);
  }
  REQUIRE(sqlite3_open(dir.path("newer.db").c_str(), &db) == SQLITE_OK);
  sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema_version'", nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  err.clear();
  CHECK(ApprovalStore::Open(dir.path("newer.db"), &err) == nullptr);
  CHECK(err.find("schema version 99 is not supported") != std::string::npos);

  err.clear();
  CHECK(ApprovalStore::Open(dir.path("no/such/dir/x.db"), &err) == nullptr);
  CHECK(err.find("cannot open") != std::string::npos);
}

TEST_CASE("kill switch scopes parse and canonicalize") {
  KillScope s;
  std::string err;
  REQUIRE(ParseKillScope("all", &s, &err));
  CHECK(s.kind == KillScope::Kind::kAll);
  REQUIRE(ParseKillScope("server:github", &s, &err));
  CHECK(s.ToString() == "server:github");
  REQUIRE(ParseKillScope("principal:User::\"alice\"", &s, &err));
  CHECK(s.value == "User::\"alice\"");
  CHECK_FALSE(ParseKillScope("everything", &s, &err));
  CHECK(err.find("unknown kill switch scope") != std::string::npos);
  CHECK_FALSE(ParseKillScope("server:", &s, &err));
  CHECK_FALSE(ParseKillScope("server:a b", &s, &err));
  CHECK_FALSE(ParseKillScope("principal:alice", &s, &err));
  CHECK(err.find("not an entity uid") != std::string::npos);
}

TEST_CASE("kill switch blocks by scope and survives a restart") {
  TempDir dir("kill");
  std::string err;
  KillScope all, github, alice;
  REQUIRE(ParseKillScope("all", &all, &err));
  REQUIRE(ParseKillScope("server:github", &github, &err));
  REQUIRE(ParseKillScope("principal:User::\"alice\"", &alice, &err));
  {
    auto ks = KillSwitch::Open(dir.path("state.db"), &err);
    REQUIRE_MESSAGE(ks, err);
    CHECK_FALSE(ks->Blocks("github", "User::\"bob\""));
    REQUIRE(ks->Engage(github, "token leaked", "carol", kT0, &err));
    auto b = ks->Blocks("github", "User::\"bob\"");
    REQUIRE(b);
    CHECK(b->scope == "server:github");
    CHECK(b->Message() == "kill switch engaged (server:github): token leaked");
    CHECK_FALSE(ks->Blocks("fs", "User::\"bob\""));
    REQUIRE(ks->Engage(alice, "compromised laptop", "carol", kT0, &err));
    CHECK(ks->Blocks("fs", "User::\"alice\"")->scope == "principal:User::\"alice\"");
    CHECK_FALSE(ks->Blocks("fs", "User::\"bob\""));
    CHECK(ks->List().size() == 2);
  }
  {
    auto ks = KillSwitch::Open(dir.path("state.db"), &err);
    REQUIRE(ks);
    CHECK(ks->Blocks("github", "User::\"bob\""));
    CHECK(ks->Blocks("fs", "User::\"alice\""));
    CHECK_FALSE(ks->Blocks("fs", "User::\"bob\""));
    REQUIRE(ks->Engage(all, "incident 42", "dave", kT0 + 5, &err));
    auto b = ks->Blocks("fs", "User::\"bob\"");
    REQUIRE(b);
    CHECK(b->scope == "all");
    CHECK(b->reason == "incident 42");
    CHECK(b->by == "dave");
    bool was = false;
    REQUIRE(ks->Release(all, &was, &err));
    CHECK(was);
    REQUIRE(ks->Release(all, &was, &err));
    CHECK_FALSE(was);
    REQUIRE(ks->Release(github, &was, &err));
    CHECK_FALSE(ks->Blocks("github", "User::\"bob\""));
  }
  auto ks = KillSwitch::Open(dir.path("state.db"), &err);
  REQUIRE(ks);
  CHECK_FALSE(ks->Blocks("github", "User::\"bob\""));
  REQUIRE(ks->List().size() == 1);
  CHECK(ks->List()[0].scope == "principal:User::\"alice\"");
  // Shares the file with the approval store.
  CHECK(ApprovalStore::Open(dir.path("state.db"), &err) != nullptr);
}
