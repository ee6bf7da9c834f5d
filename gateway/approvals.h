// approvals.h -- human approval of held calls (`require_approval`, docs/approvals.md):
// a persistent store of approvals, each bound to one exact call. Entry point:
// ApprovalStore::Open; the request pipeline calls Request / Wait / Consume, approvers act
// through the admin API (gateway/admin_server.h) which calls Approve / Deny.
//
// A binding is (principal uid, server, tool, args digest, bundle hash): approving one call
// never approves a different one, and a policy change (new bundle hash) needs a new approval.
// States:
//
//   pending --Approve--> approved --Consume--> consumed    (the approved call runs ONCE)
//      |  \--Deny-----> denied
//      \----ExpireDue--> expired  <--ExpireDue-- approved (never used in time)
//
// `expires_ms` bounds the pending window (created + ttl); approving restarts it (decided +
// ttl), bounding how long the agent has to retry the approved call. Denied, expired and
// consumed are final. Request() returns the live (pending or approved, not past expiry)
// approval of an identical binding instead of creating another; otherwise it creates one.
//
// Persistence: SQLite (gateway/state_db.h), WAL, synchronous=FULL: pending approvals survive
// a restart. Times are milliseconds since the Unix epoch; every method takes `now_ms` so
// tests and replays control the clock (NowMs() gives the system clock).
//
// Thread safety: all methods may be called from any thread. One mutex serializes the
// store's use of its connection; Consume is one conditional UPDATE, so an approval is
// consumed exactly once even across processes sharing the file. Nothing throws; errors are
// values (false / nullopt with *error).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/state_db.h"

namespace writ::gateway {

class DlpScanner;
struct DlpReport;
class SecretScrubber;

enum class ApprovalState { kPending, kApproved, kDenied, kExpired, kConsumed };

// "pending", "approved", "denied", "expired", "consumed".
std::string_view ApprovalStateName(ApprovalState s);
std::optional<ApprovalState> ParseApprovalState(std::string_view s);

// Lowercase hex SHA-256 of the canonical JSON of `args` (keys sorted, no whitespace; the
// same bytes and digest as the audit trail's `args_digest`, docs/audit.md).
std::string ApprovalArgsDigest(const nlohmann::json& args);

// A preview of `args` for the approver: compact JSON with every string of `secrets` replaced
// by [REDACTED], cut to at most `max_bytes` (then ending in "..."). Applies no `redact`
// obligation: for a held call use MaskedApprovalArgsPreview.
std::string ApprovalArgsPreview(const nlohmann::json& args, const std::vector<std::string>& secrets,
                                size_t max_bytes = 2048);

// Everything that masks a held call's arguments before an approver sees them
// (MaskedApprovalArgsPreview; docs/approvals.md, "What approvers see").
struct ApprovalPreviewMask {
  std::vector<std::string> redact;    // the decision's `redact` targets (classes, `*`, paths)
  const DlpScanner* dlp = nullptr;    // the gateway's scanner; null with `redact`: withheld
  const DlpReport* report = nullptr;  // a scan of the arguments as given; null: scan here
  const SecretScrubber* scrubber = nullptr;  // upstream secrets (`secrets:`); null: none
  std::vector<std::string> secrets;          // exact strings, as AuditOptions::secrets
};

// What an approver sees instead of arguments that could not be masked (fail closed).
inline constexpr char kApprovalPreviewWithheld[] =
    "[withheld: the arguments could not be masked as the policy requires]";

// The preview stored with an approval (and so shown by `writ approvals`, the admin API and
// the approval.requested webhook): `args` with the decision's `redact` targets applied exactly
// as for the arguments forwarded upstream (DlpScanner::RedactJson, root "args"), then the
// upstream secrets scrubbed, then ApprovalArgsPreview. Fail closed: returns
// kApprovalPreviewWithheld (and sets *why when non-null) when there are redact targets but no
// scanner, a target cannot be applied, or the scan behind a class target did not cover all
// of `args` (DlpReport::truncated). Never throws.
std::string MaskedApprovalArgsPreview(const nlohmann::json& args, const ApprovalPreviewMask& mask,
                                      std::string* why = nullptr, size_t max_bytes = 2048);

// Milliseconds since the Unix epoch, system clock.
int64_t NowMs();

// The exact call an approval is for. All five fields must match for a retry to use it.
struct ApprovalBinding {
  std::string principal;    // canonical uid, e.g. User::"alice"
  std::string server;       // upstream name
  std::string tool;         // the namespaced name the client called, e.g. fs__delete
  std::string args_digest;  // ApprovalArgsDigest(args)
  std::string bundle_hash;  // the policy bundle that required the approval
};

// Context stored with a new approval (not part of the binding).
struct ApprovalContext {
  std::vector<std::string> approvers;  // from the obligation, e.g. ["finance-leads"]
  std::string decision_id;             // the decision that required it
  std::string session;                 // the gateway session (for the audit trail)
  std::string args_preview;            // MaskedApprovalArgsPreview(...)
};

struct Approval {
  std::string id;  // "ap_" + 16 hex digits
  ApprovalState state = ApprovalState::kPending;
  ApprovalBinding binding;
  ApprovalContext context;
  int64_t ttl_ms = 0;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t decided_ms = 0;   // 0: not decided
  std::string decided_by;   // who approved/denied ("" for expiry)
  std::string note;
  int64_t consumed_ms = 0;  // 0: not consumed

  // The admin API's representation (docs/approvals.md): times as RFC 3339 UTC and ms.
  nlohmann::json ToJson() const;
};

struct ApprovalRequestResult {
  std::string id;
  ApprovalState state = ApprovalState::kPending;  // kPending or kApproved
  bool created = false;  // a new approval (notify the approvers); false: an existing one
  int64_t expires_ms = 0;
};

// Why Approve/Deny/Consume did nothing.
enum class ApprovalError { kNone, kNotFound, kNotPending, kExpired, kStorage };

class ApprovalStore {
 public:
  // Opens the state file (gateway/state_db.h). Null with *error.
  static std::unique_ptr<ApprovalStore> Open(const std::string& path, std::string* error);

  // The live approval of an identical binding, else a new pending one expiring at
  // now_ms + ttl_ms. REQUIRES: ttl_ms > 0. Nullopt with *error on a storage failure (the
  // caller fails closed).
  std::optional<ApprovalRequestResult> Request(const ApprovalBinding& binding,
                                               const ApprovalContext& context, int64_t ttl_ms,
                                               int64_t now_ms, std::string* error);

  // pending (and not past expiry) -> approved / denied. The approval's new state is returned
  // through *out when non-null. kNotPending for any other state; kExpired when past expiry
  // (the approval is marked expired).
  ApprovalError Approve(const std::string& id, const std::string& by, const std::string& note,
                        int64_t now_ms, Approval* out = nullptr);
  ApprovalError Deny(const std::string& id, const std::string& by, const std::string& note,
                     int64_t now_ms, Approval* out = nullptr);

  // approved (and not past expiry) -> consumed, atomically: of any number of concurrent
  // callers exactly one gets kNone. The caller forwards the call only on kNone.
  ApprovalError Consume(const std::string& id, int64_t now_ms);

  std::optional<Approval> Get(const std::string& id);
  // Newest first; `state` null for all. At most `limit` entries.
  std::vector<Approval> List(std::optional<ApprovalState> state, size_t limit = 1000);
  // Marks every pending or approved approval whose expiry is <= now_ms expired and returns
  // them (for the audit trail and for waiting callers).
  std::vector<Approval> ExpireDue(int64_t now_ms);

  // Blocks until approval `id` is no longer pending or the system clock passes
  // deadline_ms (wakes on Approve/Deny/ExpireDue in this process; polls the file every
  // 500 ms for changes by another process). Returns the approval as last seen (nullopt if
  // unknown).
  std::optional<Approval> Wait(const std::string& id, int64_t deadline_ms);

  const std::string& path() const { return db_->path(); }

 private:
  explicit ApprovalStore(std::unique_ptr<StateDb> db) : db_(std::move(db)) {}
  ApprovalError Decide(const std::string& id, ApprovalState to, const std::string& by,
                       const std::string& note, int64_t now_ms, Approval* out);
  std::optional<Approval> GetLocked(const std::string& id);  // REQUIRES: mu_ held

  std::mutex mu_;
  std::condition_variable changed_;  // notified on every state change
  std::unique_ptr<StateDb> db_;
};

// "no approval ap_x", "approval ap_x is denied, not pending", ... for messages.
std::string DescribeApprovalError(ApprovalError e, const std::string& id);

}  // namespace writ::gateway
