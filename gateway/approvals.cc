// approvals.cc -- see approvals.h.
#include "gateway/approvals.h"

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>

#include "gateway/audit.h"
#include "gateway/audit_format.h"
#include "gateway/dlp.h"
#include "gateway/secrets.h"

namespace writ::gateway {
namespace {

using Json = nlohmann::json;

constexpr char kColumns[] =
    "id, state, principal, server, tool, args_digest, bundle_hash, approvers, decision_id, "
    "session, args_preview, ttl_ms, created_ms, expires_ms, decided_ms, decided_by, note, "
    "consumed_ms";

std::string NewApprovalId() {
  unsigned char b[8];
  if (RAND_bytes(b, sizeof b) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string s = "ap_";
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

Approval FromRow(const Stmt& s) {
  Approval a;
  a.id = s.Text(0);
  a.state = ParseApprovalState(s.Text(1)).value_or(ApprovalState::kExpired);
  a.binding = {s.Text(2), s.Text(3), s.Text(4), s.Text(5), s.Text(6)};
  Json approvers = Json::parse(s.Text(7), nullptr, false);
  if (approvers.is_array())
    for (const auto& x : approvers)
      if (x.is_string()) a.context.approvers.push_back(x.get<std::string>());
  a.context.decision_id = s.Text(8);
  a.context.session = s.Text(9);
  a.context.args_preview = s.Text(10);
  a.ttl_ms = s.Int(11);
  a.created_ms = s.Int(12);
  a.expires_ms = s.Int(13);
  a.decided_ms = s.IsNull(14) ? 0 : s.Int(14);
  a.decided_by = s.Text(15);
  a.note = s.Text(16);
  a.consumed_ms = s.IsNull(17) ? 0 : s.Int(17);
  return a;
}

std::string Rfc3339(int64_t ms) {
  return FormatAuditTime(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

// Rolls back unless committed.
class Txn {
 public:
  explicit Txn(StateDb* db) : db_(db) {
    std::string e;
    ok_ = db_->Exec("BEGIN IMMEDIATE", &e);
  }
  ~Txn() {
    std::string e;
    if (ok_ && !done_) db_->Exec("ROLLBACK", &e);
  }
  bool ok() const { return ok_; }
  bool Commit() {
    std::string e;
    done_ = true;
    if (db_->Exec("COMMIT", &e)) return true;
    db_->Exec("ROLLBACK", &e);
    return false;
  }

 private:
  StateDb* db_;
  bool ok_ = false;
  bool done_ = false;
};

}  // namespace

std::string_view ApprovalStateName(ApprovalState s) {
  switch (s) {
    case ApprovalState::kPending:
      return "pending";
    case ApprovalState::kApproved:
      return "approved";
    case ApprovalState::kDenied:
      return "denied";
    case ApprovalState::kExpired:
      return "expired";
    case ApprovalState::kConsumed:
      return "consumed";
  }
  return "expired";
}

std::optional<ApprovalState> ParseApprovalState(std::string_view s) {
  for (auto st : {ApprovalState::kPending, ApprovalState::kApproved, ApprovalState::kDenied,
                  ApprovalState::kExpired, ApprovalState::kConsumed})
    if (ApprovalStateName(st) == s) return st;
  return std::nullopt;
}

std::string ApprovalArgsDigest(const Json& args) { return Sha256Hex(AuditCanonicalBytes(args)); }

std::string ApprovalArgsPreview(const Json& args, const std::vector<std::string>& secrets,
                                size_t max_bytes) {
  Json copy = args;
  ScrubSecrets(&copy, secrets);
  std::string s = AuditCanonicalBytes(copy);
  if (s.size() <= max_bytes) return s;
  size_t cut = max_bytes > 3 ? max_bytes - 3 : 0;
  // Do not split a UTF-8 sequence.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string MaskedApprovalArgsPreview(const Json& args, const ApprovalPreviewMask& mask,
                                      std::string* why, size_t max_bytes) {
  auto withhold = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return std::string(kApprovalPreviewWithheld);
  };
  try {
    Json copy = args;
    if (!mask.redact.empty()) {
      if (mask.dlp == nullptr) return withhold("the policy asks to redact, but no dlp scanner");
      DlpReport local;
      const DlpReport* report = mask.report;
      if (report == nullptr) {
        local = mask.dlp->ScanJson(copy);
        report = &local;
      }
      // A class target masks only what the scan saw; a truncated scan may have missed some.
      bool by_class = std::any_of(mask.redact.begin(), mask.redact.end(), [](const std::string& t) {
        return !DlpScanner::IsPathTarget(t);
      });
      if (by_class && report->truncated)
        return withhold("the dlp scan of the arguments was truncated (dlp.max_scan_bytes)");
      DlpRedaction redaction;
      std::string error;
      if (!mask.dlp->RedactJson(&copy, "args", mask.redact, report, &redaction, &error))
        return withhold(error);
    }
    if (mask.scrubber != nullptr) mask.scrubber->ScrubJson(&copy);
    return ApprovalArgsPreview(copy, mask.secrets, max_bytes);
  } catch (const std::exception& e) {
    // Not expected (RedactJson catches, serialization replaces invalid UTF-8), but nothing
    // escapes the request path, and an unmasked preview is never the fallback.
    return withhold(std::string("masking failed: ") + e.what());
  }
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json Approval::ToJson() const {
  Json j = {{"id", id},
            {"state", std::string(ApprovalStateName(state))},
            {"principal", binding.principal},
            {"server", binding.server},
            {"tool", binding.tool},
            {"args_digest", binding.args_digest},
            {"bundle_hash", binding.bundle_hash},
            {"approvers", context.approvers},
            {"decision_id", context.decision_id},
            {"session", context.session},
            {"args_preview", context.args_preview},
            {"ttl_ms", ttl_ms},
            {"created", Rfc3339(created_ms)},
            {"created_ms", created_ms},
            {"expires", Rfc3339(expires_ms)},
            {"expires_ms", expires_ms}};
  if (decided_ms != 0) {
    j["decided"] = Rfc3339(decided_ms);
    j["decided_ms"] = decided_ms;
    j["decided_by"] = decided_by;
    j["note"] = note;
  }
  if (consumed_ms != 0) {
    j["consumed"] = Rfc3339(consumed_ms);
    j["consumed_ms"] = consumed_ms;
  }
  return j;
}

std::unique_ptr<ApprovalStore> ApprovalStore::Open(const std::string& path, std::string* error) {
  std::unique_ptr<StateDb> db = StateDb::Open(path, error);
  if (db == nullptr) return nullptr;
  return std::unique_ptr<ApprovalStore>(new ApprovalStore(std::move(db)));
}

std::optional<ApprovalRequestResult> ApprovalStore::Request(const ApprovalBinding& b,
                                                            const ApprovalContext& ctx,
                                                            int64_t ttl_ms, int64_t now_ms,
                                                            std::string* error) {
  if (ttl_ms <= 0) {
    *error = "approval ttl must be positive";
    return std::nullopt;
  }
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3* h = db_->handle();
  Txn txn(db_.get());
  if (!txn.ok()) {
    *error = db_->LastError();
    return std::nullopt;
  }
  {
    Stmt s(h,
           "SELECT id, state, expires_ms FROM approvals WHERE principal=?1 AND server=?2 AND "
           "tool=?3 AND args_digest=?4 AND bundle_hash=?5 AND state IN ('pending','approved') "
           "AND expires_ms>?6 ORDER BY state='approved' DESC, created_ms DESC LIMIT 1");
    s.Bind(1, b.principal).Bind(2, b.server).Bind(3, b.tool).Bind(4, b.args_digest);
    s.Bind(5, b.bundle_hash).Bind(6, now_ms);
    int rc = s.Step();
    if (rc == SQLITE_ROW) {
      ApprovalRequestResult r;
      r.id = s.Text(0);
      r.state = ParseApprovalState(s.Text(1)).value_or(ApprovalState::kPending);
      r.expires_ms = s.Int(2);
      return r;
    }
    if (rc != SQLITE_DONE) {
      *error = db_->LastError();
      return std::nullopt;
    }
  }
  ApprovalRequestResult r;
  r.id = NewApprovalId();
  r.created = true;
  r.expires_ms = now_ms + ttl_ms;
  if (r.id.empty()) {
    *error = "no randomness for an approval id";
    return std::nullopt;
  }
  Stmt ins(h,
           "INSERT INTO approvals(id, state, principal, server, tool, args_digest, bundle_hash, "
           "approvers, decision_id, session, args_preview, ttl_ms, created_ms, expires_ms) "
           "VALUES(?1,'pending',?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)");
  ins.Bind(1, r.id).Bind(2, b.principal).Bind(3, b.server).Bind(4, b.tool);
  ins.Bind(5, b.args_digest).Bind(6, b.bundle_hash).Bind(7, Json(ctx.approvers).dump());
  ins.Bind(8, ctx.decision_id).Bind(9, ctx.session).Bind(10, ctx.args_preview);
  ins.Bind(11, ttl_ms).Bind(12, now_ms).Bind(13, r.expires_ms);
  if (ins.Step() != SQLITE_DONE || !txn.Commit()) {
    *error = db_->LastError();
    return std::nullopt;
  }
  return r;
}

std::optional<Approval> ApprovalStore::GetLocked(const std::string& id) {
  Stmt s(db_->handle(),
         (std::string("SELECT ") + kColumns + " FROM approvals WHERE id=?1").c_str());
  s.Bind(1, id);
  if (s.Step() != SQLITE_ROW) return std::nullopt;
  return FromRow(s);
}

std::optional<Approval> ApprovalStore::Get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return GetLocked(id);
}

ApprovalError ApprovalStore::Decide(const std::string& id, ApprovalState to, const std::string& by,
                                    const std::string& note, int64_t now_ms, Approval* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_.get());
  if (!txn.ok()) return ApprovalError::kStorage;
  std::optional<Approval> a = GetLocked(id);
  if (!a) return ApprovalError::kNotFound;
  if (a->state != ApprovalState::kPending) {
    if (out) *out = *a;
    return ApprovalError::kNotPending;
  }
  sqlite3* h = db_->handle();
  if (a->expires_ms <= now_ms) {
    Stmt s(h, "UPDATE approvals SET state='expired' WHERE id=?1");
    s.Bind(1, id);
    if (s.Step() != SQLITE_DONE || !txn.Commit()) return ApprovalError::kStorage;
    a->state = ApprovalState::kExpired;
    if (out) *out = *a;
    changed_.notify_all();
    return ApprovalError::kExpired;
  }
  // Approving restarts the window: the agent has ttl_ms from now to retry the call.
  int64_t expires = to == ApprovalState::kApproved ? now_ms + a->ttl_ms : a->expires_ms;
  Stmt s(h,
         "UPDATE approvals SET state=?2, decided_ms=?3, decided_by=?4, note=?5, expires_ms=?6 "
         "WHERE id=?1 AND state='pending'");
  s.Bind(1, id).Bind(2, std::string(ApprovalStateName(to))).Bind(3, now_ms).Bind(4, by);
  s.Bind(5, note).Bind(6, expires);
  if (s.Step() != SQLITE_DONE || !txn.Commit()) return ApprovalError::kStorage;
  a->state = to;
  a->decided_ms = now_ms;
  a->decided_by = by;
  a->note = note;
  a->expires_ms = expires;
  if (out) *out = *a;
  changed_.notify_all();
  return ApprovalError::kNone;
}

ApprovalError ApprovalStore::Approve(const std::string& id, const std::string& by,
                                     const std::string& note, int64_t now_ms, Approval* out) {
  return Decide(id, ApprovalState::kApproved, by, note, now_ms, out);
}

ApprovalError ApprovalStore::Deny(const std::string& id, const std::string& by,
                                  const std::string& note, int64_t now_ms, Approval* out) {
  return Decide(id, ApprovalState::kDenied, by, note, now_ms, out);
}

ApprovalError ApprovalStore::Consume(const std::string& id, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3* h = db_->handle();
  // One conditional UPDATE: atomic in SQLite, so exactly one caller (thread or process) wins.
  Stmt s(h,
         "UPDATE approvals SET state='consumed', consumed_ms=?2 "
         "WHERE id=?1 AND state='approved' AND expires_ms>?2");
  s.Bind(1, id).Bind(2, now_ms);
  if (s.Step() != SQLITE_DONE) return ApprovalError::kStorage;
  if (sqlite3_changes(h) == 1) {
    changed_.notify_all();
    return ApprovalError::kNone;
  }
  std::optional<Approval> a = GetLocked(id);
  if (!a) return ApprovalError::kNotFound;
  if (a->state == ApprovalState::kApproved) return ApprovalError::kExpired;
  return ApprovalError::kNotPending;
}

std::vector<Approval> ApprovalStore::List(std::optional<ApprovalState> state, size_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = std::string("SELECT ") + kColumns + " FROM approvals";
  if (state) sql += " WHERE state=?1";
  sql += " ORDER BY created_ms DESC, id LIMIT ?2";
  Stmt s(db_->handle(), sql.c_str());
  if (state) s.Bind(1, std::string(ApprovalStateName(*state)));
  s.Bind(2, static_cast<int64_t>(limit));
  std::vector<Approval> out;
  while (s.Step() == SQLITE_ROW) out.push_back(FromRow(s));
  return out;
}

std::vector<Approval> ApprovalStore::ExpireDue(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Approval> due;
  Txn txn(db_.get());
  if (!txn.ok()) return due;
  {
    Stmt s(db_->handle(), (std::string("SELECT ") + kColumns +
                           " FROM approvals WHERE state IN ('pending','approved') AND "
                           "expires_ms<=?1 ORDER BY created_ms")
                              .c_str());
    s.Bind(1, now_ms);
    while (s.Step() == SQLITE_ROW) due.push_back(FromRow(s));
  }
  if (due.empty()) return due;
  Stmt u(db_->handle(),
         "UPDATE approvals SET state='expired' WHERE state IN ('pending','approved') AND "
         "expires_ms<=?1");
  u.Bind(1, now_ms);
  if (u.Step() != SQLITE_DONE || !txn.Commit()) return {};
  for (auto& a : due) a.state = ApprovalState::kExpired;
  changed_.notify_all();
  return due;
}

std::optional<Approval> ApprovalStore::Wait(const std::string& id, int64_t deadline_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    std::optional<Approval> a = GetLocked(id);
    int64_t now = NowMs();
    if (!a || a->state != ApprovalState::kPending || now >= deadline_ms) return a;
    changed_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(500, deadline_ms - now)));
  }
}

std::string DescribeApprovalError(ApprovalError e, const std::string& id) {
  switch (e) {
    case ApprovalError::kNone:
      return "ok";
    case ApprovalError::kNotFound:
      return "no approval " + id;
    case ApprovalError::kNotPending:
      return "approval " + id + " is not pending";
    case ApprovalError::kExpired:
      return "approval " + id + " has expired";
    case ApprovalError::kStorage:
      return "approval " + id + ": the state database failed";
  }
  return "error";
}

}  // namespace writ::gateway
