// state_db.h -- the gateway's persistent state file (SQLite): pending/decided approvals
// (gateway/approvals.h) and the kill switch (gateway/killswitch.h). Entry point: OpenStateDb.
//
// One schema for the whole file, versioned in a `meta` table (application = "writ-state",
// schema_version = kStateSchemaVersion) and stamped with PRAGMA application_id, so a foreign
// SQLite file, a non-database file or a file from a newer writ is refused at start with a
// clear message instead of being modified. Journal mode WAL, synchronous=FULL (a decision is
// on disk before it is acknowledged), busy_timeout 5 s (two processes may share the file).
//
// Thread safety: a StateDb wraps one connection opened with SQLITE_OPEN_FULLMUTEX; callers
// still serialize multi-statement transactions themselves (ApprovalStore, KillSwitch each
// hold a mutex around their use).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

namespace writ::gateway {

inline constexpr int kStateSchemaVersion = 1;
inline constexpr char kStateApplication[] = "writ-state";
// PRAGMA application_id: "WRIT" in ASCII.
inline constexpr int32_t kStateApplicationId = 0x57524954;

class StateDb {
 public:
  // Opens (creating with mode 0600 and the schema if absent) the state file at `path`.
  // Null with *error ("<path>: <what is wrong>") when the file cannot be opened, is not a
  // SQLite database, belongs to another application, or has an unknown schema version.
  static std::unique_ptr<StateDb> Open(const std::string& path, std::string* error);
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs one or more statements without results. False with *error on failure.
  bool Exec(const char* sql, std::string* error);
  // "<path>: <sqlite message>" for the last error on this connection.
  std::string LastError() const;

 private:
  StateDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Stmt& Bind(int i, const std::string& v);
  Stmt& Bind(int i, int64_t v);
  Stmt& BindNull(int i);
  // sqlite3_step: SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step();
  std::string Text(int col) const;
  int64_t Int(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace writ::gateway
