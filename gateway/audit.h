// audit.h -- the tamper-evident audit trail: an append-only, hash-chained JSONL file.
//
// Entry point: AuditLog::Open, then AuditLog::Append once per audited event. The file format
// is in gateway/audit_format.h (and docs/audit.md); `writ audit verify` (audit_verify.h)
// checks a file.
//
//   AuditOptions opts;
//   opts.path = "/var/lib/writ/audit.jsonl";
//   opts.key = key_bytes;                        // optional: HMAC-SHA-256 instead of SHA-256
//   opts.secrets = {upstream_token};             // scrubbed from every string
//   std::unique_ptr<AuditLog> log;
//   AuditStatus st = AuditLog::Open(opts, &log);
//   ...
//   if (!log->Append(record).ok() && opts.on_failure == AuditFailurePolicy::kDeny) deny;
//
// Thread safety: an AuditLog may be shared by any number of threads. One mutex serializes
// the numbering, chaining and writing of records, so they get one total order, each with a
// single write(2) to an O_APPEND descriptor; a record is serialized before that mutex is taken
// and only hashed and written under it. No fdatasync runs under it: with fsync kAlways the
// fdatasync is shared by all records written meanwhile (group commit); with kInterval a
// background thread of the log syncs, so no Append waits for the disk. Nothing here throws;
// errors are values.
//
// Restart and damage: Open reads the last line of an existing file and continues the chain
// from it (its seq + 1, its hash as prev). If that tail is damaged -- a torn last line (no
// trailing '\n', as after a crash mid-write), an unparsable or ill-formed record, a record
// whose hash does not match under the configured key, or a record of the other alg (key
// added or removed since) -- Open fails with kCorruptTail and the log refuses to append:
// silently continuing would either chain onto garbage or hide the damage. With
// on_corrupt_tail = kNewSegment, Open instead renames the damaged file aside to
// `<path>.damaged-<UTC time>` (kept as evidence; verify it to see what is wrong) and starts
// a new file whose first record (kind "segment_start") names that file, the problem, and
// the last good seq and hash found in it. Open checks only the tail; `writ audit verify`
// checks the whole chain.
//
// Write failures: a failed or short write is rolled back with ftruncate to the previous
// end of file and Append returns an error; the next Append tries again. If the rollback or
// an fsync fails, the file's state is unknown and the log stays failed (every Append
// returns kFailed) until reopened.
#pragma once

#include <atomic>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace writ::gateway {

// The result of an audit operation. (A value, never an exception.)
struct AuditStatus {
  enum class Code {
    kOk,
    kIoError,      // open/read/write/fsync/rename failed; message has errno text
    kCorruptTail,  // the existing file's last record is damaged (see Open)
    kFailed,       // an earlier failure left the log unusable; reopen it
    kInvalid,      // bad options or record (e.g. empty path)
  };
  Code code = Code::kOk;
  std::string message;  // lowercase, empty when ok

  bool ok() const { return code == Code::kOk; }
  static AuditStatus Ok() { return {}; }
  static AuditStatus Error(Code c, std::string m) { return {c, std::move(m)}; }
};

// When to fsync (strictly fdatasync) the log. write(2) hands each record to the kernel before
// Append returns in every mode, so a crash of the gateway process loses nothing; fsync
// matters for an OS crash or power loss.
enum class AuditFsync {
  kAlways,    // before Append returns, the record is on disk: a call is never forwarded
              // before its record is durable. Concurrent Appends share one fdatasync (group
              // commit), so N calls at once cost about two disk flushes, not N.
  kInterval,  // every fsync_interval while records were written since the last sync, by a
              // background thread of the log (never on an Append), and on Sync()/close: at
              // most about that window of records can be lost.
  kNever,     // leave it to the OS (typically ~30 s of records at risk). Tests, benchmarks.
};

// What the gateway does when Append fails. Read by the request pipeline, not by AuditLog.
enum class AuditFailurePolicy {
  kDeny,   // default: fail closed, a call that cannot be audited is not made
  kAllow,  // availability over accountability; the failure is still logged and counted
};

enum class AuditCorruptTail {
  kRefuse,      // default: Open fails with kCorruptTail; an operator looks first
  kNewSegment,  // move the damaged file aside and start a new chain (see top of file)
};

struct AuditOptions {
  std::string path;
  // HMAC key (raw bytes, see ReadAuditKeyFile). Empty: plain SHA-256, which detects
  // accidental damage and edits by anyone who does not rewrite every later record too;
  // a key also stops someone with write access but not the key from re-chaining.
  std::string key;
  AuditFsync fsync = AuditFsync::kAlways;
  std::chrono::milliseconds fsync_interval{1000};
  AuditFailurePolicy on_failure = AuditFailurePolicy::kDeny;
  AuditCorruptTail on_corrupt_tail = AuditCorruptTail::kRefuse;
  // Store call arguments in records (still subject to AuditRecord::redact_args and the
  // scrubber). Default off: only args_digest.
  bool record_args = false;
  // Exact strings (upstream tokens, API keys, ...) replaced by "[REDACTED]" wherever they
  // occur in any string of a record, keys included. Empty strings are ignored.
  std::vector<std::string> secrets;
};

// The upstream result of a forwarded call.
struct AuditUpstream {
  std::string outcome;     // "ok" | "error" | "timeout" | "not_forwarded" | ...
  int64_t latency_us = 0;  // from forward to response
  std::string error;       // short description when outcome != ok
};

// One audited event. Kinds written by the gateway: "decision" (before forwarding a call),
// "outcome" (after its response, same decision_id). AuditLog itself writes "segment_start".
struct AuditRecord {
  std::string kind = "decision";
  // Zero means "now" (filled by Append).
  std::chrono::system_clock::time_point time{};
  std::string decision_id;
  std::string principal;
  std::string on_behalf_of;
  std::string session;
  std::string client;
  std::string method;  // MCP method, e.g. tools/call
  std::string server;
  std::string tool;
  // Arguments of the call. args_digest is written whenever this is set; the args themselves
  // only when AuditOptions::record_args and not redact_args.
  std::optional<nlohmann::json> args;
  bool redact_args = false;              // set by the policy's redact obligation
  std::string decision;                  // "allow" | "deny" | "require_approval"
  std::vector<std::string> determining;  // ids of the determining statements
  std::string bundle_hash;
  std::optional<AuditUpstream> upstream;
  nlohmann::json detail;  // optional extra object (reason, obligations...); omitted if null
};

// A policy reload attempt: a record of kind "reload" (docs/audit.md), written by the
// gateway's PolicyReloader (gateway/reload.h) whether the reload succeeded or not.
struct AuditReload {
  std::chrono::system_clock::time_point time{};  // zero: now
  std::string trigger;          // "sighup", "file_change", ...
  std::string result;           // "ok" | "failed"
  std::string old_bundle_hash;  // the bundle current before the attempt
  std::string new_bundle_hash;  // the bundle loaded ("" when it failed)
  std::string error;            // the diagnostics when it failed (truncated to 4 KiB)
};

// {"kind":"reload","time":...,"bundle_hash":<current after the attempt>,"reload":{...}}.
nlohmann::json AuditReloadToJson(const AuditReload& r);

// The record's payload as written (before seq/prev/alg/v/hash are added and before
// scrubbing). Exposed for tests and docs.
nlohmann::json AuditRecordToJson(const AuditRecord& r, bool store_args);

// RFC 3339 UTC with microseconds: 2025-06-01T12:00:00.123456Z
std::string FormatAuditTime(std::chrono::system_clock::time_point t);

// Replaces every occurrence of each secret in every string of `j` (object keys too) with
// "[REDACTED]". Iterative (explicit stack), so depth is not a recursion hazard.
void ScrubSecrets(nlohmann::json* j, const std::vector<std::string>& secrets);

class AuditLog {
 public:
  // Opens (creating with mode 0600 if absent) and recovers the chain; see the file comment.
  // On success *out is set; on failure it is left null.
  static AuditStatus Open(const AuditOptions& options, std::unique_ptr<AuditLog>* out);
  ~AuditLog();  // syncs (unless kNever) and closes
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Scrubs, numbers, chains, hashes and writes one record, then fsyncs per policy.
  AuditStatus Append(const AuditRecord& record);
  // Scrubs, numbers, chains, hashes and writes a `reload` record, like Append.
  AuditStatus AppendReload(const AuditReload& reload);
  // Adds exact strings to scrub from every later record, next to AuditOptions::secrets
  // (credential rotation: the new values of rotated secrets). Any thread.
  void AddSecrets(const std::vector<std::string>& secrets);
  // fdatasync now (shutdown; kInterval also syncs on its own timer). Does not hold the lock
  // Append needs while the disk flushes.
  AuditStatus Sync();

  const AuditOptions& options() const { return options_; }
  // The seq and hash of the last record written (0 and the genesis hash for an empty
  // file): what an operator anchors externally to detect truncation.
  uint64_t last_seq() const;
  std::string last_hash() const;
  // Set when Open started a new segment: the path the damaged file was moved to.
  const std::string& damaged_path() const { return damaged_path_; }

 private:
  explicit AuditLog(AuditOptions options);
  // Builds the record with `build`, scrubs it, appends it and, for fsync: always, waits until
  // it is durable. Never throws (a throwing `build` is an error status).
  AuditStatus AppendBody(const std::function<nlohmann::json()>& build);
  AuditStatus AppendJsonLocked(nlohmann::json body);  // REQUIRES: mu_ held
  // The direct path of Append (see audit.cc, "Direct serialization"): the record's canonical
  // bytes are written without building a JSON object. False: the record needs the general
  // path (non-ASCII text, secrets inside key names, oversized args). Runs without mu_.
  struct RecordParts;
  bool BuildParts(const AuditRecord& record, RecordParts* parts) const;
  AuditStatus AppendParts(const RecordParts& parts);
  // Writes `line` (which ends in '\n') and makes `hash` the chain's last. REQUIRES: mu_ held.
  AuditStatus WriteLineLocked(const std::string& line, std::string hash);
  // The single-serialization path of AppendJsonLocked (see audit.cc); false: use the general
  // one. REQUIRES: mu_ held.
  bool FastLine(nlohmann::json* body, std::string* line, std::string* hash);
  // audit.fsync: always. Returns once record `seq` is fdatasynced, sharing one fdatasync with
  // every concurrent Append (group commit, see audit.cc). REQUIRES: mu_ not held.
  AuditStatus WaitDurable(uint64_t seq);
  // After record `seq` is written: with fsync: always, WaitDurable(seq); otherwise ok (the
  // interval thread or nobody syncs). REQUIRES: mu_ not held.
  AuditStatus AfterAppend(uint64_t seq);
  AuditStatus SyncLocked();                           // REQUIRES: mu_ held
  // fdatasync if anything was written since the last sync, without holding mu_ meanwhile.
  // REQUIRES: mu_ not held.
  AuditStatus SyncUnlocked();
  void IntervalLoop();  // kInterval: the background sync thread's body
  // kInterval: starts IntervalLoop. Called by Open once the log is set up (not yet shared).
  void StartIntervalSync();

  const AuditOptions options_;
  // AddSecrets: the values added since Open (null: none); swapped whole, read lock-free.
  std::atomic<std::shared_ptr<const std::vector<std::string>>> extra_secrets_;
  std::string damaged_path_;
  std::string placeholder_;  // 64 random hex digits: the hash member's stand-in (FastLine)
  std::vector<std::string> secrets_sorted_;  // options_.secrets, non-empty, longest first
  mutable std::mutex mu_;
  int fd_ = -1;                                      // guarded by mu_
  uint64_t size_ = 0;                                // guarded by mu_: end of file, for rollback
  uint64_t seq_ = 0;                                 // guarded by mu_
  std::string hash_;                                 // guarded by mu_
  bool failed_ = false;                              // guarded by mu_
  bool dirty_ = false;                               // guarded by mu_: written since last sync
  std::chrono::steady_clock::time_point last_sync_;  // guarded by mu_
  // Group commit state (kAlways). sync_mu_ and mu_ are never held together.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool syncing_ = false;       // guarded by sync_mu_: a leader is in fdatasync
  uint64_t durable_seq_ = 0;   // guarded by sync_mu_: records up to this seq are on disk
  bool sync_failed_ = false;   // guarded by sync_mu_
  std::string sync_error_;     // guarded by sync_mu_
  // kInterval: the background sync thread and its stop flag.
  std::mutex fsync_mu_;  // serializes SyncUnlocked (so a Sync returns after any running one)
  std::mutex interval_mu_;
  std::condition_variable interval_cv_;
  bool interval_stop_ = false;  // guarded by interval_mu_
  std::thread interval_thread_;
};

}  // namespace writ::gateway
