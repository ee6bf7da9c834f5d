// audit_verify.h -- checks an audit log (format: audit_format.h) and names the first bad
// record. Entry points: VerifyAuditFile (used by `writ audit verify`) and VerifyAuditStream.
//
// Every line must be a JSON object of format version 1 whose seq is 1 for the first line and
// one more than the previous line's after that, whose prev is the previous line's hash
// (kAuditGenesisHash for seq 1), whose alg matches the key given (hmac-sha256 with a key,
// sha256 without), and whose hash recomputes. The last line must end in '\n'.
//
// What this cannot see on its own: a log cut off at a record boundary, or (unkeyed) a log
// rewritten from some record on with every later hash recomputed. Compare `last_hash` with
// an externally anchored value to catch the first; use a key to stop the second.
//
// Thread safety: free functions with no shared state.
#pragma once

#include <cstdint>
#include <istream>
#include <string>

namespace writ::gateway {

struct AuditVerifyResult {
  enum class Kind {
    kOk,       // every record checks
    kBad,      // line/seq/message name the first bad record
    kIoError,  // the file could not be read; message says why
  };
  Kind kind = Kind::kOk;
  uint64_t records = 0;   // good records before the first bad one (all, when ok)
  std::string last_hash;  // hash of the last good record (genesis hash if none)
  uint64_t line = 0;      // 1-based line of the first bad record
  uint64_t seq = 0;       // its seq as written, or the expected seq if unreadable
  bool torn = false;      // the bad record is a torn last line
  std::string message;    // lowercase, what is wrong

  // `ok: N records, last hash H`, or `PATH:LINE: record SEQ: MESSAGE`, or `PATH: MESSAGE`.
  std::string Format(const std::string& path) const;
};

// `key` null: the log must be unkeyed (alg sha256). Non-null: keyed (hmac-sha256) under it.
AuditVerifyResult VerifyAuditStream(std::istream& in, const std::string* key);
AuditVerifyResult VerifyAuditFile(const std::string& path, const std::string* key);

}  // namespace writ::gateway
