// governance.cc -- see governance.h.
#include "gateway/governance.h"

#include <iostream>

#include "base/source.h"

namespace writ::gateway {

std::string DescribeApproval(const std::string& event, const Approval& a) {
  std::string approvers;
  for (const auto& x : a.context.approvers) approvers += (approvers.empty() ? "" : ", ") + x;
  std::string s =
      "writ: approval " + a.id + " " + event + ": " + a.binding.principal + " -> " + a.binding.tool;
  if (!approvers.empty()) s += " (approvers: " + approvers + ")";
  if (!a.decided_by.empty()) s += " by " + a.decided_by;
  if (!a.note.empty()) s += ": " + a.note;
  return s;
}

Governance::~Governance() { Stop(); }

void Governance::ApprovalRequested(const Approval& a) {
  std::cerr << DescribeApproval("requested", a) + "\n";
  Audit("approval", AdminEvent{"approval.requested", "", a.ToJson()});
  if (notifier == nullptr || approvals_config.notify_channel.empty()) return;
  notifier->Send(approvals_config.notify_channel, approvals_config.notify_target,
                 "approval.requested", DescribeApproval("requested", a),
                 {{"approval", a.ToJson()}});
}

bool Governance::NotifyObligation(const std::string& channel, const std::string& target,
                                  const std::string& text, const nlohmann::json& decision) {
  if (notifier == nullptr) {
    std::cerr << "writ: notify: `" + channel +
                     "` requested by policy, but `notify:` is not configured; dropped\n";
    return false;
  }
  return notifier->Send(channel, target, "policy.notify", text, {{"decision", decision}});
}

void Governance::Audit(const std::string& kind, const AdminEvent& e) {
  if (audit_ == nullptr) return;
  AuditRecord r;
  r.kind = kind;
  const nlohmann::json& d = e.detail;
  auto str = [&d](const char* k) {
    auto it = d.find(k);
    return it != d.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (kind == "approval") {
    r.decision_id = str("decision_id");
    r.principal = str("principal");
    r.session = str("session");
    r.server = str("server");
    r.tool = str("tool");
    r.bundle_hash = str("bundle_hash");
  }
  r.detail = {{"event", e.kind}, {"by", e.actor}, {kind, d}};
  AuditStatus st = audit_->Append(r);
  if (!st.ok()) std::cerr << "writ: audit: cannot record " + e.kind + ": " + st.message + "\n";
}

void Governance::ExpiryLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    lock.unlock();
    for (const Approval& a : approvals->ExpireDue(NowMs())) {
      std::cerr << DescribeApproval("expired", a) + "\n";
      Audit("approval", AdminEvent{"approval.expired", "", a.ToJson()});
    }
    lock.lock();
  }
}

void Governance::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (admin) admin->Stop();
  if (expiry_.joinable()) expiry_.join();
  if (notifier) notifier->Stop(std::chrono::milliseconds(2000));
}

bool StartGovernance(const Config& config, std::shared_ptr<AuditLog> audit, Governance* g,
                     std::string* error) {
  // On failure nothing is left running (the notifier's worker, a bound listener).
  struct StopOnFailure {
    Governance* g;
    bool ok = false;
    ~StopOnFailure() {
      if (!ok) g->Stop();
    }
  } guard{g};
  g->audit_ = audit;
  g->approvals_config = config.approvals;
  if (config.approvals.enabled) {
    std::string e;
    std::unique_ptr<ApprovalStore> s = ApprovalStore::Open(config.approvals.db, &e);
    if (s == nullptr) {
      *error = "error: approvals.db: " + e +
               "\nhelp: point approvals.db at a writ state file, or at a new path to create one\n";
      return false;
    }
    g->approvals = std::move(s);
  }
  if (std::string db = config.KillSwitchDb(); !db.empty()) {
    std::string e;
    std::unique_ptr<KillSwitch> k = KillSwitch::Open(db, &e);
    if (k == nullptr) {
      *error = "error: killswitch: " + e +
               "\nhelp: point killswitch.db (or approvals.db) at a writ state file\n";
      return false;
    }
    g->killswitch = std::move(k);
  }
  if (config.notify_enabled) g->notifier = std::make_shared<Notifier>(config.notify);
  if (config.admin.enabled) {
    AdminServerOptions ao;
    ao.host = config.admin.host;
    ao.port = config.admin.port;
    ao.token_sha256 = config.admin.token_sha256;
    if (!config.admin.token_file.empty()) {
      std::string token, e;
      if (!ReadFile(config.admin.token_file, &token, &e)) {
        *error = "error: admin.token_file: " + e + "\nhelp: create it: openssl rand -hex 32 > " +
                 config.admin.token_file + "\n";
        return false;
      }
      while (!token.empty() &&
             (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
        token.pop_back();
      if (token.size() < 16) {
        *error = "error: admin.token_file: " + config.admin.token_file +
                 ": the token is shorter than 16 characters\nhelp: openssl rand -hex 32 > " +
                 config.admin.token_file + "\n";
        return false;
      }
      ao.token_sha256 = AdminTokenHash(token);
    }
    ao.approvals = g->approvals;
    ao.killswitch = g->killswitch;
    Governance* self = g;
    ao.on_event = [self](const AdminEvent& e) {
      std::string kind = e.kind.rfind("approval.", 0) == 0 ? "approval" : "killswitch";
      std::cerr << "writ: admin: " + e.kind + " by " + e.actor + ": " +
                       (kind == "approval" ? e.detail.value("id", "")
                                           : e.detail.value("scope", "")) +
                       "\n";
      self->Audit(kind, e);
    };
    g->admin = std::make_unique<AdminServer>(std::move(ao));
    std::string e;
    if (!g->admin->Listen(&e)) {
      g->admin.reset();
      *error = "error: " + e + "\nhelp: change admin.listen (port 0 picks a free port)\n";
      return false;
    }
    g->admin->Start();
  }
  if (g->approvals != nullptr) g->expiry_ = std::thread([g] { g->ExpiryLoop(); });
  guard.ok = true;
  return true;
}

}  // namespace writ::gateway
