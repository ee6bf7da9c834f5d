// governance.h -- the approval store, kill switch, notifier and admin API of one `writ serve`
// process, built from the config (`approvals:`, `killswitch:`, `notify:`, `admin:`) and
// started/stopped together. Entry point: StartGovernance; serve_cmd.cc owns the Governance
// and hands its pointers to the request pipeline (docs/approvals.md).
//
// Besides building the parts it:
//   - writes every approval decision, expiry and kill-switch change to the audit trail
//     (kind "approval" / "killswitch"), when `audit:` is configured;
//   - expires due approvals once a second (a background thread);
//   - tells approvals.notify's channel about each new approval (ApprovalRequested).
//
// The held-call flow itself (ApprovalStore::Request, ApprovalRequested for a new approval,
// then the store polled until a decision or approvals.wait) is the Proxy's (Proxy::Hold and
// Proxy::CheckHeld in gateway/proxy_call.cc), so a held call never blocks a thread.
//
// Thread safety: after StartGovernance returns, the members may be used from any thread
// (each is thread-safe); Stop is idempotent and must not race with StartGovernance.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/admin_server.h"
#include "gateway/approvals.h"
#include "gateway/audit.h"
#include "gateway/config.h"
#include "gateway/killswitch.h"
#include "gateway/notify.h"

namespace writ::gateway {

class Governance {
 public:
  Governance() = default;
  ~Governance();  // Stop()
  Governance(const Governance&) = delete;
  Governance& operator=(const Governance&) = delete;

  std::shared_ptr<ApprovalStore> approvals;  // null unless `approvals:`
  std::shared_ptr<KillSwitch> killswitch;    // null unless killswitch.db or approvals.db
  std::shared_ptr<Notifier> notifier;        // null unless `notify:`
  std::unique_ptr<AdminServer> admin;        // null unless `admin:`; listening once started
  ApprovalsConfig approvals_config;

  // Records a new approval `a`: one log line, an "approval.requested" audit record (kind
  // "approval") and the "approval.requested" event to approvals.notify's channel, if
  // configured. Call it when ApprovalStore::Request returned created == true.
  void ApprovalRequested(const Approval& a);

  // Sends a "policy.notify" event for a `notify(channel, target)` obligation; `decision` is
  // what the receiver gets under "decision" (e.g. decision id, effect, principal, tool,
  // determining ids; no raw arguments), `text` one line for humans. False (logged) when
  // `notify:` is not configured, the channel is unknown or the queue is full. Never blocks.
  bool NotifyObligation(const std::string& channel, const std::string& target,
                        const std::string& text, const nlohmann::json& decision);

  // Stops the admin listener, the expiry thread and the notifier (2 s to drain).
  void Stop();

 private:
  friend bool StartGovernance(const Config&, std::shared_ptr<AuditLog>, Governance*,
                              std::string*);
  void Audit(const std::string& kind, const AdminEvent& e);
  void ExpiryLoop();

  std::shared_ptr<AuditLog> audit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread expiry_;
};

// Opens the state file(s), builds the notifier, reads the admin token and starts the admin
// listener and the expiry thread, per `config`. `audit` may be null. False with *error (one
// or more lines, the last a `help:` line) when something cannot be opened or bound; nothing
// is left running then.
bool StartGovernance(const Config& config, std::shared_ptr<AuditLog> audit, Governance* out,
                     std::string* error);

// One line for humans about an approval event, e.g.
// "writ: approval ap_1f.. requested: User::"alice" -> fs__delete (approvers: ops)".
std::string DescribeApproval(const std::string& event, const Approval& a);

}  // namespace writ::gateway
