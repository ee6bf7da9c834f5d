// killswitch.cc -- see killswitch.h.
#include "gateway/killswitch.h"

#include <cctype>
#include <chrono>

#include "gateway/audit.h"
#include "runtime/request.h"

namespace writ::gateway {
namespace {

bool ValidServerName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  return true;
}

}  // namespace

std::string KillScope::ToString() const {
  switch (kind) {
    case Kind::kAll:
      return "all";
    case Kind::kServer:
      return "server:" + value;
    case Kind::kPrincipal:
      return "principal:" + value;
  }
  return "all";
}

bool ParseKillScope(std::string_view text, KillScope* out, std::string* error) {
  const std::string help =
      "a scope is `all`, `server:NAME` or `principal:Type::\"id\"` (e.g. "
      "principal:User::\"alice\")";
  if (text == "all") {
    *out = KillScope{};
    return true;
  }
  if (text.rfind("server:", 0) == 0) {
    std::string_view name = text.substr(7);
    if (!ValidServerName(name)) {
      *error = "`" + std::string(name) + "` is not an upstream name; " + help;
      return false;
    }
    *out = KillScope{KillScope::Kind::kServer, std::string(name)};
    return true;
  }
  if (text.rfind("principal:", 0) == 0) {
    std::string canonical;
    size_t type_len = 0;
    if (!runtime::ParseEntityUid(text.substr(10), &canonical, &type_len)) {
      *error = "`" + std::string(text.substr(10)) + "` is not an entity uid; " + help;
      return false;
    }
    *out = KillScope{KillScope::Kind::kPrincipal, canonical};
    return true;
  }
  *error = "unknown kill switch scope `" + std::string(text) + "`; " + help;
  return false;
}

std::string KillEntry::Message() const {
  return "kill switch engaged (" + scope + ")" + (reason.empty() ? "" : ": " + reason);
}

nlohmann::json KillEntry::ToJson() const {
  return {{"scope", scope},
          {"reason", reason},
          {"by", by},
          {"engaged_ms", engaged_ms},
          {"engaged", FormatAuditTime(std::chrono::system_clock::time_point(
                          std::chrono::milliseconds(engaged_ms)))}};
}

std::unique_ptr<KillSwitch> KillSwitch::Open(const std::string& path, std::string* error) {
  std::unique_ptr<StateDb> db = StateDb::Open(path, error);
  if (db == nullptr) return nullptr;
  std::unique_ptr<KillSwitch> ks(new KillSwitch(std::move(db)));
  auto snap = std::make_shared<Snapshot>();
  Stmt s(ks->db_->handle(), "SELECT scope, reason, engaged_by, engaged_ms FROM killswitch");
  if (!s.ok()) {
    *error = ks->db_->LastError();
    return nullptr;
  }
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    KillEntry e{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
    KillScope scope;
    std::string perr;
    if (!ParseKillScope(e.scope, &scope, &perr)) {
      *error = path + ": kill switch entry `" + e.scope + "` is damaged: " + perr;
      return nullptr;
    }
    if (scope.kind == KillScope::Kind::kAll)
      snap->all = e;
    else if (scope.kind == KillScope::Kind::kServer)
      snap->servers[scope.value] = e;
    else
      snap->principals[scope.value] = e;
  }
  if (rc != SQLITE_DONE) {
    *error = ks->db_->LastError();
    return nullptr;
  }
  ks->Publish(std::move(snap));
  return ks;
}

void KillSwitch::Publish(std::shared_ptr<const Snapshot> s) {
  bool any = s->all.has_value() || !s->servers.empty() || !s->principals.empty();
  std::atomic_store(&snap_, std::move(s));
  any_.store(any, std::memory_order_release);
}

bool KillSwitch::Engage(const KillScope& scope, const std::string& reason, const std::string& by,
                        int64_t now_ms, std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  KillEntry e{scope.ToString(), reason, by, now_ms};
  Stmt s(db_->handle(),
         "INSERT OR REPLACE INTO killswitch(scope, reason, engaged_by, engaged_ms) "
         "VALUES(?1,?2,?3,?4)");
  s.Bind(1, e.scope).Bind(2, reason).Bind(3, by).Bind(4, now_ms);
  if (s.Step() != SQLITE_DONE) {
    *error = db_->LastError();
    return false;
  }
  auto next = std::make_shared<Snapshot>(*std::atomic_load(&snap_));
  if (scope.kind == KillScope::Kind::kAll)
    next->all = e;
  else if (scope.kind == KillScope::Kind::kServer)
    next->servers[scope.value] = e;
  else
    next->principals[scope.value] = e;
  Publish(std::move(next));
  return true;
}

bool KillSwitch::Release(const KillScope& scope, bool* was_engaged, std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_->handle(), "DELETE FROM killswitch WHERE scope=?1");
  s.Bind(1, scope.ToString());
  if (s.Step() != SQLITE_DONE) {
    *error = db_->LastError();
    return false;
  }
  *was_engaged = sqlite3_changes(db_->handle()) > 0;
  auto next = std::make_shared<Snapshot>(*std::atomic_load(&snap_));
  if (scope.kind == KillScope::Kind::kAll)
    next->all.reset();
  else if (scope.kind == KillScope::Kind::kServer)
    next->servers.erase(scope.value);
  else
    next->principals.erase(scope.value);
  Publish(std::move(next));
  return true;
}

std::optional<KillEntry> KillSwitch::Blocks(std::string_view server,
                                            std::string_view principal_uid) const {
  if (!any_.load(std::memory_order_acquire)) return std::nullopt;
  std::shared_ptr<const Snapshot> s = std::atomic_load(&snap_);
  if (s->all) return s->all;
  if (auto it = s->servers.find(server); it != s->servers.end()) return it->second;
  if (auto it = s->principals.find(principal_uid); it != s->principals.end()) return it->second;
  return std::nullopt;
}

std::vector<KillEntry> KillSwitch::List() const {
  std::shared_ptr<const Snapshot> s = std::atomic_load(&snap_);
  std::vector<KillEntry> out;
  if (s->all) out.push_back(*s->all);
  for (const auto& [k, e] : s->servers) out.push_back(e);
  for (const auto& [k, e] : s->principals) out.push_back(e);
  return out;
}

}  // namespace writ::gateway
