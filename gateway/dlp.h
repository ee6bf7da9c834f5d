// dlp.h -- data loss prevention: detect PII and credentials in tool arguments and results, and
// mask them (docs/dlp.md). Entry point: DlpScanner::Create, then Scan / ScanJson /
// ScanToolResult, Classes, and RedactJson.
//
//   DlpConfig cfg;                                  // default: every built-in detector
//   std::string error;
//   auto scanner = DlpScanner::Create(cfg, &error);  // null + error on a bad custom pattern
//   DlpReport r = scanner->ScanJson(args);           // findings with JSON-pointer paths
//   std::vector<std::string> classes = DlpScanner::Classes(r);  // -> context.dlp.args
//   DlpRedaction red;
//   if (!scanner->RedactJson(&args, "args", redact_targets, &r, &red, &error)) fail closed;
//
// How a scan works: every string is appended to one buffer (separated by NUL bytes, which no
// built-in detector matches). An RE2::Set of *triggers* (cheap supersets of the detectors)
// runs over the buffer in 2 KiB chunks; a detector's precise RE2 runs only around the chunks
// where its trigger fired, each match is taken anchored within its own string, and each
// candidate goes through the detector's validator (Luhn, mod 97, SSN area rules, JWT header,
// boundaries, ...). Text without any trigger costs one DFA pass. Custom patterns have their
// own set (UTF-8) and run string by string where they occur.
//
// Limits: at most DlpConfig::max_scan_bytes of string data per call are scanned (the rest is
// not, and the report says `truncated`, which Classes() exposes as the class "truncated" so a
// policy can fail closed); at most kMaxFindings findings. JSON walks use an explicit stack:
// input depth never drives recursion.
//
// Thread safety: a DlpScanner is immutable after Create; every method is const and may be
// called from any number of threads at once. Nothing here throws.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <re2/re2.h>
#include <re2/set.h>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

// Every built-in class name, sorted: aws_access_key, aws_secret_key, bearer_token,
// credit_card, email, github_token, google_api_key, iban, jwt, phone, private_key, slack_token,
// ssn.
const std::vector<std::string>& BuiltinDlpClasses();

// Names a custom class may not take: the built-ins, `all`, `*`, `args`, `result`, `truncated`.
bool IsReservedDlpName(const std::string& name);

// A custom detector from config: `dlp.custom[i]`.
struct DlpCustomPattern {
  std::string name;     // the class name: [a-z][a-z0-9_]*, not a built-in or reserved name
  std::string pattern;  // RE2 syntax; if it has capturing groups, the first group that
                        // participates in a match is the finding's span, else the whole match
  int line = -1;        // 0-based line/col in the config, for messages (-1: unknown)
  int col = -1;
};

// `dlp:` (docs/dlp.md).
struct DlpConfig {
  // Built-in detectors to run (names from BuiltinDlpClasses()); the default is all of them.
  std::vector<std::string> detectors = BuiltinDlpClasses();
  std::vector<DlpCustomPattern> custom;
  size_t max_scan_bytes = 4 * 1024 * 1024;  // string bytes scanned per message
  bool scan_results = true;                 // scan tool results too (not only arguments)
};

struct DlpFinding {
  std::string cls;   // class name, e.g. "credit_card"
  std::string path;  // JSON pointer (RFC 6901) of the string; "" for Scan() and a root string
  size_t offset = 0;  // byte offset of the match in that string (in the key, if in_key)
  size_t length = 0;  // byte length of the match
  bool in_key = false;     // the match is in the object key at `path`, not in its value
  bool in_number = false;  // the value is a JSON integer, scanned as its decimal digits
};

struct DlpReport {
  std::vector<DlpFinding> findings;  // in document order, then by offset and class
  bool truncated = false;            // some input was not scanned (size or finding limits)
  size_t scanned_bytes = 0;
};

// What RedactJson masked (never the values themselves): one entry per masked span or value.
struct DlpRedactedItem {
  std::string path;    // JSON pointer within the document passed to RedactJson
  std::string target;  // the class name or the path target that caused it
};
struct DlpRedaction {
  std::vector<DlpRedactedItem> items;
};

class DlpScanner {
 public:
  static constexpr size_t kMaxFindings = 65536;

  // Compiles the detectors. Null with *error (lowercase, naming the detector) if a name is
  // unknown or a custom pattern is invalid; config validation (ParseDlp, config_sections.cc)
  // reports the same problems earlier with file:line.
  static std::unique_ptr<const DlpScanner> Create(const DlpConfig& config, std::string* error);
  ~DlpScanner();
  DlpScanner(const DlpScanner&) = delete;
  DlpScanner& operator=(const DlpScanner&) = delete;

  // Plain text (at most max_scan_bytes of it). Findings have an empty path.
  DlpReport Scan(std::string_view text) const;
  // Every string value and object key of `doc`, plus integers of 10+ digits (as decimals).
  DlpReport ScanJson(const nlohmann::json& doc) const;
  // A tools/call result: like ScanJson over the whole result (content[].text,
  // content[].resource.text, structuredContent, _meta, ...) except base64 payloads
  // (content[].data of image/audio items and content[].resource.blob).
  DlpReport ScanToolResult(const nlohmann::json& result) const;

  // The sorted, unique class names of the findings, plus "truncated" if the report is: the
  // value of `context.dlp.args` for policies.
  static std::vector<std::string> Classes(const DlpReport& report);

  // For the audit record: {"classes": [...], "truncated": bool, "findings": [{"class",
  // "path", "offset", "length"} (+ "in_key": true)]}, never the matched text; at most
  // `max_items` findings are listed ("findings_omitted": N for the rest).
  static nlohmann::json FindingsJson(const DlpReport& report, size_t max_items = 100);

  // Masks `doc` according to redact-obligation `targets` (docs/dlp.md, "Redaction targets"):
  //   - a class name (built-in or custom): each finding of that class becomes
  //     "[REDACTED:<class>]" inside its string (a whole integer value becomes that string);
  //   - "*" or "all": every finding of every class;
  //   - a path rooted at `root` ("args" or "result"), e.g. args.card.number,
  //     result.structuredContent.ssn, args.items[0].email, args.items[*].email,
  //     args["odd.key"]: the whole value there becomes "[REDACTED]" (absent paths are skipped);
  //     paths with the other root are ignored (they apply to the other side).
  // `report` is a scan of `doc` as it is now (REQUIRES: unchanged since), or null to scan here.
  // Returns false with *error, leaving `doc` untouched, if a target is neither a known class,
  // `*`/`all`, nor a well-formed path: the caller should fail closed (deny).
  bool RedactJson(nlohmann::json* doc, std::string_view root,
                  const std::vector<std::string>& targets, const DlpReport* report,
                  DlpRedaction* out, std::string* error) const;

  // Whether `target` names a path (args..., result...) rather than a class or `*`/`all`; says
  // nothing about whether the path is well formed (ValidTarget does).
  static bool IsPathTarget(std::string_view target);

  // Whether `target` is valid for RedactJson (a class of this scanner, `*`/`all`, or a path
  // rooted at args/result). For checking a bundle's redact obligations at load.
  bool ValidTarget(std::string_view target, std::string* error) const;

  const DlpConfig& config() const { return config_; }

 private:
  struct Detector;
  struct Hit {
    size_t detector, begin, end;  // a validated span of the scan buffer
  };
  DlpScanner();
  // Trigger windows: chunk size, how far a trigger can reach past its chunk, and how far a
  // precise match can start before / need to reach past the triggered range.
  static constexpr size_t kChunk = 2048, kTriggerSpan = 256, kLookBehind = 128,
                          kLookAhead = 512;
  // Finds every validated span in `buf`; strings start at `seg_starts` (ascending) and are
  // separated by NUL bytes; no match crosses from one string to the next. Sets *truncated
  // when kMaxFindings is reached.
  void ScanBuffer(std::string_view buf, const std::vector<size_t>& seg_starts,
                  std::vector<Hit>* hits, bool* truncated) const;
  // Matches detector `di` anchored at buffer offset `at` within the string [ss, se),
  // validates and records it. *next: the buffer offset to search on from.
  bool AcceptMatch(size_t di, std::string_view buf, size_t ss, size_t se, size_t at,
                   std::vector<Hit>* hits, bool* truncated, size_t* next) const;
  DlpReport ScanJsonImpl(const nlohmann::json& doc, bool tool_result) const;

  DlpConfig config_;
  std::vector<std::unique_ptr<Detector>> detectors_;
  size_t num_builtin_ = 0;  // detectors_[0, num_builtin_) are built-in, the rest custom
  std::unique_ptr<re2::RE2::Set> set_;  // built-in triggers; i belongs to set_owner_[i]
  std::vector<size_t> set_owner_;
  std::unique_ptr<re2::RE2::Set> custom_set_;  // custom pattern i is detectors_[num_builtin_+i]
};

}  // namespace writ::gateway
