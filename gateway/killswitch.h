// killswitch.h -- the kill switch (docs/approvals.md, "Kill switch"): deny everything, or
// everything for one upstream server or one principal, at once, until released. Engaged
// scopes persist in the gateway's state file (gateway/state_db.h) and survive restarts.
// Entry points: KillSwitch::Open; the request pipeline calls Blocks() before deciding; the
// admin API (gateway/admin_server.h) calls Engage/Release/List.
//
// Scopes (text form, as in the API and CLI):
//   all                      every call
//   server:NAME              calls to upstream NAME
//   principal:Type::"id"     calls by that principal (the uid is canonicalized)
//
// Thread safety: all methods may be called from any thread. Blocks() never touches the
// database: it reads an immutable snapshot published with an atomic shared_ptr swap (and a
// single relaxed load when nothing is engaged), so it is cheap on the request path.
// Engage/Release write the database first and publish the new snapshot only if that
// succeeded. Nothing throws.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/state_db.h"

namespace writ::gateway {

struct KillScope {
  enum class Kind { kAll, kServer, kPrincipal };
  Kind kind = Kind::kAll;
  std::string value;  // server name or canonical principal uid; empty for kAll

  // "all", "server:NAME", "principal:Type::\"id\"".
  std::string ToString() const;
};

// Parses the text form. False with *error (lowercase, says what is expected).
bool ParseKillScope(std::string_view text, KillScope* out, std::string* error);

struct KillEntry {
  std::string scope;  // KillScope::ToString()
  std::string reason;
  std::string by;
  int64_t engaged_ms = 0;

  // "kill switch engaged (server:fs): <reason>": what a denied caller is told.
  std::string Message() const;
  nlohmann::json ToJson() const;
};

class KillSwitch {
 public:
  // Opens the state file and loads the engaged scopes. Null with *error.
  static std::unique_ptr<KillSwitch> Open(const std::string& path, std::string* error);

  // Engages (or re-engages, replacing reason/by/time) `scope`. False with *error when the
  // database write failed (nothing changes then).
  bool Engage(const KillScope& scope, const std::string& reason, const std::string& by,
              int64_t now_ms, std::string* error);
  // Releases `scope`. *was_engaged tells whether it was engaged. False with *error on a
  // database failure.
  bool Release(const KillScope& scope, bool* was_engaged, std::string* error);

  // The entry that blocks a call to `server` by `principal_uid` (canonical uid), if any:
  // `all` first, then the server, then the principal. Cheap; see the file comment.
  std::optional<KillEntry> Blocks(std::string_view server, std::string_view principal_uid) const;

  // Every engaged scope: `all` first, then servers, then principals, each sorted.
  std::vector<KillEntry> List() const;

 private:
  struct Snapshot {
    std::optional<KillEntry> all;
    std::map<std::string, KillEntry, std::less<>> servers;     // by server name
    std::map<std::string, KillEntry, std::less<>> principals;  // by canonical uid
  };
  explicit KillSwitch(std::unique_ptr<StateDb> db) : db_(std::move(db)) {}
  void Publish(std::shared_ptr<const Snapshot> s);

  std::mutex mu_;  // serializes writers
  std::unique_ptr<StateDb> db_;
  std::atomic<bool> any_{false};
  std::shared_ptr<const Snapshot> snap_;  // accessed with std::atomic_load/atomic_store
};

}  // namespace writ::gateway
