// tool_integrity.h -- pinning upstream tool definitions and looking for poisoned ones:
// a canonical hash of each definition, the lockfile (`writ.lock`) that records them,
// drift detection against it (new / changed = rug pull / removed), a scanner for prompt
// injection hidden in descriptions and schemas, and tool shadowing across servers.
// docs/integrity.md is the user-facing description and the lockfile format.
//
// Entry points:
//   ToolHash(def)                        SHA-256 (hex) of CanonicalToolJson(def)
//   Lockfile / SerializeLock / ParseLock / LoadLock / WriteLock
//   CheckAgainstLock(lock, live)         every drift between two lockfiles
//   Lockfile::Check(full_name, def)      one tool at request time: kLocked / kNew / kChanged
//   ScanToolDefinition(def)              poisoning findings {kind, path, excerpt}
//   FindShadowing(tools_by_server)       the same tool name on two servers
//
// Thread safety: free functions are pure (the scanner's regexes are compiled once, thread
// safely); a Lockfile is a value, safe to read from many threads once built. Nothing throws.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

// ---- Canonical form and hash ----------------------------------------------------------

// The fields of a tool definition that are pinned: name, title, description, inputSchema,
// outputSchema, annotations (absent fields stay absent; `_meta` and anything else is
// ignored). Object keys are sorted at every depth; arrays keep their order.
nlohmann::json CanonicalToolDefinition(const nlohmann::json& tool);
// CanonicalToolDefinition serialized: no whitespace, keys sorted by byte, strings as UTF-8
// with JSON escapes only where JSON requires them, integers in decimal.
std::string CanonicalToolJson(const nlohmann::json& tool);
// Lower-case hex SHA-256 of CanonicalToolJson (OpenSSL EVP).
std::string ToolHash(const nlohmann::json& tool);

// ---- Lockfile -------------------------------------------------------------------------

inline constexpr int kLockVersion = 1;

struct LockEntry {
  std::string sha256;         // ToolHash(definition)
  nlohmann::json definition;  // CanonicalToolDefinition, for reviewing diffs
};

enum class LockStatus {
  kLocked,   // in the lockfile with the same hash
  kNew,      // not in the lockfile
  kChanged,  // in the lockfile with another hash (a rug pull, or an upgrade to review)
};
const char* LockStatusName(LockStatus s);  // "locked", "new", "changed"

struct Lockfile {
  // "SERVER__tool" -> entry, sorted.
  std::map<std::string, LockEntry> tools;

  // Adds (or replaces) the definition of `tool` of `server`.
  void Add(const std::string& server, const nlohmann::json& tool);
  // The status of a live definition; `full_name` is SERVER__tool.
  LockStatus Check(const std::string& full_name, const nlohmann::json& tool) const;
};

// The lockfile as JSON text (2-space indent, sorted keys, trailing newline):
//   {"version": 1, "tools": {"SERVER__tool": {"sha256": "...", "definition": {...}}}}
std::string SerializeLock(const Lockfile& lock);
// Parses and validates a lockfile (version, each sha256 = ToolHash(definition)). False with
// a located, lowercase *error (and a `help:` line) otherwise. `name` is used in messages.
bool ParseLock(const std::string& text, const std::string& name, Lockfile* out, std::string* error);
bool LoadLock(const std::string& path, Lockfile* out, std::string* error);
// Writes atomically (a temporary file renamed over `path`).
bool WriteLock(const std::string& path, const Lockfile& lock, std::string* error);

enum class DriftKind { kNew, kChanged, kRemoved };
const char* DriftKindName(DriftKind k);  // "new", "changed", "removed"

struct Drift {
  DriftKind kind = DriftKind::kNew;
  std::string tool;                        // SERVER__tool
  std::string locked_sha256, live_sha256;  // empty where absent
  // For a change: one line per difference, e.g.
  //   ~ /description: "Adds two numbers." -> "Adds two numbers. <IMPORTANT>..."
  //   + /inputSchema/properties/notes: {"type":"string"}
  //   - /annotations/readOnlyHint: true
  std::vector<std::string> diff;
};
// Every difference between the pinned `lock` and the `live` definitions, sorted by tool.
std::vector<Drift> CheckAgainstLock(const Lockfile& lock, const Lockfile& live);
// Human-readable report: one block per drift ("changed fs__read: ..." + the diff lines).
std::string FormatDrift(const std::vector<Drift>& drift);

// ---- Poisoning scanner ----------------------------------------------------------------

// Finding kinds (stable strings, for policy and audit).
inline constexpr char kHiddenInstruction[] = "hidden_instruction";  // "ignore previous ..."
inline constexpr char kSensitiveFile[] = "sensitive_file";    // "read ~/.ssh/id_rsa and pass..."
inline constexpr char kInstructionTag[] = "instruction_tag";  // <IMPORTANT>, <SYSTEM>, [INST]
inline constexpr char kInvisibleChar[] = "invisible_char";    // zero-width, tag characters
inline constexpr char kBidiControl[] = "bidi_control";        // U+202A..U+202E, U+2066..U+2069
inline constexpr char kEncodedBlob[] = "encoded_blob";        // long base64 / hex runs
inline constexpr char kUnscannable[] = "unscannable";         // past the depth or size bounds

struct PoisonFinding {
  std::string kind;  // one of the constants above
  std::string path;  // JSON pointer into the definition, e.g. /inputSchema/properties/a/description
  std::string excerpt;  // the match +-40 bytes (a long match cut at 80); invisibles as \u{XXXX}
};

// Scans every string of the definition (and every object key of its schemas). At most
// `max_findings` are returned (the first ones in document order). Bounded: strings beyond
// 1 MiB in total and values nested deeper than 64 levels are not scanned; each such limit
// yields one finding of kind kUnscannable (fail closed: reported, not silently skipped).
std::vector<PoisonFinding> ScanToolDefinition(const nlohmann::json& tool, size_t max_findings = 32);
// The distinct kinds of `findings`, sorted: the set policy sees as `tool.poisoning`.
std::vector<std::string> FindingKinds(const std::vector<PoisonFinding>& findings);

// ---- Shadowing ------------------------------------------------------------------------

struct Shadowing {
  std::string tool;                  // the original (un-namespaced) name as the first server has it
  std::vector<std::string> servers;  // sorted, at least two
  // "same name", "similar name" (equal after lower-casing and dropping `_ - .` and spaces),
  // or "namespaced name" (a tool of one server named like another server's SERVER__tool).
  std::string how;
};
// Tools of different servers that an agent could confuse. `tools_by_server`: server ->
// its tools/list definitions (only `name` is read).
std::vector<Shadowing> FindShadowing(
    const std::map<std::string, std::vector<nlohmann::json>>& tools_by_server);

}  // namespace writ::gateway
