// audit_format.h -- the audit trail's file format, written down once for both the writer
// (gateway/audit.h, AuditLog) and the reader (gateway/audit_verify.h, `writ audit verify`).
// The prose version with an example is docs/audit.md; keep the two in step.
//
// A log file is UTF-8 JSON Lines: one record per line, each line ending in '\n'. Every
// record is a JSON object that carries, besides its payload:
//
//   "v":    kAuditFormatVersion (integer)
//   "alg":  "sha256" (unkeyed) or "hmac-sha256" (keyed); part of the hashed bytes, so it
//           cannot be flipped without breaking the hash
//   "seq":  1 for the first record of a file, then +1 per record, no gaps
//   "prev": the "hash" of the previous record; kGenesisHash for seq 1
//   "hash": lowercase hex of SHA-256 (alg sha256) or HMAC-SHA-256 under the configured key
//           (alg hmac-sha256) over CanonicalBytes(record without "hash")
//
// Canonical form: nlohmann::json::dump() with no indentation, i.e. object keys sorted by
// byte order (nlohmann::json keeps objects in a std::map), no insignificant whitespace, UTF-8
// output (ensure_ascii off), invalid UTF-8 replaced by U+FFFD. The writer normalizes a record
// by one parse(dump()) round trip before hashing, so the bytes the verifier recomputes from
// the parsed line are the bytes that were hashed (e.g. a NaN becomes null on both sides).
// The writer emits each line in canonical form too (the record plus "hash"), but the
// verifier does not require that: it hashes the parsed content, not the line's bytes.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace writ::gateway {

inline constexpr int kAuditFormatVersion = 1;
inline constexpr std::string_view kAuditAlgSha256 = "sha256";
inline constexpr std::string_view kAuditAlgHmacSha256 = "hmac-sha256";
// "prev" of the first record of a file: 64 zeros.
inline constexpr std::string_view kAuditGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";
// Longest line either side accepts, newline excluded. The writer drops "args" (keeping
// "args_digest", setting "args_truncated") from a record that would be longer.
inline constexpr size_t kAuditMaxRecordBytes = 1 << 20;
// Deepest JSON nesting the verifier accepts in a line (the writer's args come from the
// gateway, which bounds depth where requests enter).
inline constexpr int kAuditMaxDepth = 128;

// dump() as described above. Never throws.
std::string AuditCanonicalBytes(const nlohmann::json& j);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Lowercase hex HMAC-SHA-256 of `data` under `key`.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// The "hash" a record must carry: over the canonical bytes of `record` with any "hash"
// member removed. `key` null or empty means alg sha256, else hmac-sha256.
std::string AuditRecordHash(const nlohmann::json& record, const std::string* key);

// True for a 64-character lowercase hex string.
bool IsAuditHashHex(std::string_view s);

// Reads an HMAC key file: its bytes, with one trailing "\n" or "\r\n" removed (editors add
// one). Fails for an unreadable file or a key shorter than 16 bytes (use 32 random bytes,
// e.g. `head -c 32 /dev/urandom > audit.key`).
bool ReadAuditKeyFile(const std::string& path, std::string* key, std::string* error);

}  // namespace writ::gateway
