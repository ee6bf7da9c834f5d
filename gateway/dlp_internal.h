// dlp_internal.h -- what the DLP files share (dlp.h is the public API): the table of built-in
// detectors, the character helpers their validators use, and DlpScanner::Detector. Internal:
// only gateway/dlp*.cc include it. Entry point: Builtins().
//
// Where each part lives:
//   dlp_detectors.cc  the detector table (triggers, precise patterns, validators): the one
//                     place that says what each built-in class matches
//   dlp.cc            DlpScanner::Create and the scan (Scan, ScanJson, ScanToolResult), Classes,
//                     FindingsJson
//   dlp_redact.cc     redaction targets: ValidTarget, RedactJson
#pragma once

#include <re2/re2.h>

#include <cctype>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/dlp.h"

namespace writ::gateway {
namespace dlp_internal {

// A validator sees the whole scan buffer and the candidate span [*b, *e); it may narrow the
// span (e.g. to the card number inside a longer run of digit groups). False: not a finding.
using Validator = std::function<bool(std::string_view buf, size_t* b, size_t* e)>;

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
inline char At(std::string_view s, size_t i) { return i < s.size() ? s[i] : '\0'; }
inline char Before(std::string_view s, size_t i) {
  return i > 0 && i <= s.size() ? s[i - 1] : '\0';
}

struct Builtin {
  const char* name;
  std::vector<const char*> triggers;  // each a superset of what `pattern` can match
  const char* pattern;
  Validator validate;  // may be empty
  // After a rejected candidate, search again from its second byte rather than its end: for
  // short numeric detectors whose greedy match can swallow a neighbour ("8 234-56-7890 1
  // 378282246310005"). Only for detectors whose matches are short (the cost is per byte).
  bool retry_inside = false;
};

// Every built-in detector, one entry per class (BuiltinDlpClasses() lists the names sorted).
// No pattern here can match a NUL byte (the segment separator).
const std::vector<Builtin>& Builtins();

// `s` as one JSON pointer (RFC 6901) reference token: ~ -> ~0, / -> ~1. Defined in dlp.cc.
std::string EscapePointerToken(const std::string& s);

// RE2 options shared by every detector: no logging, a 64 MiB program budget.
RE2::Options DetectorOptions();

}  // namespace dlp_internal

// One compiled detector (built-in or custom). Immutable after DlpScanner::Create.
struct DlpScanner::Detector {
  std::string name;
  std::unique_ptr<RE2> re;
  dlp_internal::Validator validate;
  bool retry_inside = false;
};

}  // namespace writ::gateway
