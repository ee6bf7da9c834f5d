// state_db.cc -- see state_db.h. Not on the request path except through the statements the
// stores prepare; nothing here throws.
#include "gateway/state_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace writ::gateway {
namespace {

// Version 1. Times are milliseconds since the Unix epoch (UTC).
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE approvals(
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  principal TEXT NOT NULL,
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  args_digest TEXT NOT NULL,
  bundle_hash TEXT NOT NULL,
  approvers TEXT NOT NULL,
  decision_id TEXT NOT NULL,
  session TEXT NOT NULL,
  args_preview TEXT NOT NULL,
  ttl_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  decided_ms INTEGER,
  decided_by TEXT,
  note TEXT,
  consumed_ms INTEGER);
CREATE INDEX approvals_by_binding ON approvals(principal, tool, args_digest, bundle_hash);
CREATE INDEX approvals_by_state ON approvals(state, expires_ms);
CREATE TABLE killswitch(
  scope TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  engaged_by TEXT NOT NULL,
  engaged_ms INTEGER NOT NULL);
)sql";

}  // namespace

Stmt::Stmt(sqlite3* db, const char* sql) {
  if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
}
Stmt::~Stmt() { sqlite3_finalize(stmt_); }
Stmt& Stmt::Bind(int i, const std::string& v) {
  if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::Bind(int i, int64_t v) {
  if (stmt_) sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  if (stmt_) sqlite3_bind_null(stmt_, i);
  return *this;
}
int Stmt::Step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_MISUSE; }
std::string Stmt::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}
int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

StateDb::~StateDb() { sqlite3_close_v2(db_); }

bool StateDb::Exec(const char* sql, std::string* error) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
  *error = path_ + ": " + (msg ? msg : sqlite3_errmsg(db_));
  sqlite3_free(msg);
  return false;
}

std::string StateDb::LastError() const { return path_ + ": " + sqlite3_errmsg(db_); }

std::unique_ptr<StateDb> StateDb::Open(const std::string& path, std::string* error) {
  // Create the file 0600 ourselves (SQLite would use 0644); its -wal/-shm follow its mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  ::close(fd);
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::unique_ptr<StateDb> db(new StateDb(raw, path));
  if (rc != SQLITE_OK) {
    *error = path + ": cannot open: " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    return nullptr;
  }
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);

  // Identify the file before changing anything in it.
  int64_t app_id = 0, tables = 0;
  {
    Stmt s(raw, "PRAGMA application_id");
    int step = s.Step();
    if (!s.ok() || step != SQLITE_ROW) {
      *error = path + ": not a writ state database (" + sqlite3_errmsg(raw) + ")";
      return nullptr;
    }
    app_id = s.Int(0);
  }
  {
    Stmt s(raw, "SELECT count(*) FROM sqlite_master");
    if (!s.ok() || s.Step() != SQLITE_ROW) {
      *error = path + ": not a writ state database (" + sqlite3_errmsg(raw) + ")";
      return nullptr;
    }
    tables = s.Int(0);
  }
  if (app_id == 0 && tables == 0) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kSchemaV1 +
                      "INSERT INTO meta VALUES('application','" + kStateApplication +
                      "'),('schema_version','" + std::to_string(kStateSchemaVersion) +
                      "');PRAGMA application_id=" + std::to_string(kStateApplicationId) +
                      ";COMMIT;";
    if (!db->Exec(sql.c_str(), error)) {
      db->Exec("ROLLBACK", error);
      *error = path + ": cannot create the schema: " + sqlite3_errmsg(raw);
      return nullptr;
    }
  } else if (app_id != kStateApplicationId) {
    *error = path + ": not a writ state database (it belongs to another application: " +
             std::to_string(tables) + " tables, application_id " + std::to_string(app_id) + ")";
    return nullptr;
  } else {
    Stmt s(raw, "SELECT value FROM meta WHERE key='schema_version'");
    if (!s.ok() || s.Step() != SQLITE_ROW) {
      *error = path + ": damaged writ state database (no schema_version in table meta)";
      return nullptr;
    }
    std::string v = s.Text(0);
    if (v != std::to_string(kStateSchemaVersion)) {
      *error = path + ": schema version " + v + " is not supported (this writ reads version " +
               std::to_string(kStateSchemaVersion) + "; was it written by a newer writ?)";
      return nullptr;
    }
  }
  std::string e;
  if (!db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", &e)) {
    *error = e;
    return nullptr;
  }
  return db;
}

}  // namespace writ::gateway
