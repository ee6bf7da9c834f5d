// replay.h -- `writ replay` (docs/replay.md): reads recorded traces (gateway/trace.h),
// re-decides every recorded request with new policies, compares with a baseline (another
// policy set or bundle) or with the recorded decisions, and renders the impact diff grouped
// by decision transition, statement, tool and principal (text, JSON, Markdown, GitHub).
// Entry points: ReadTrace, Replay, RenderReplay.
//
// Work is spread over threads (ParallelFor); the bundles are immutable and shared.
// Traces are outside input: a corrupt line, a missing field or an unknown format version is
// an error naming FILE:LINE, never skipped. Thread safety: plain functions over values.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/evaluator.h"

namespace writ::harness {

// A decision the policies gave (or were recorded giving) to one request.
struct Verdict {
  std::string decision;                  // allow | deny | require_approval
  std::vector<std::string> determining;  // sorted
  std::string error;                     // the request was rejected (decided deny)
  bool operator==(const Verdict& o) const {
    return decision == o.decision && determining == o.determining;
  }
};

// The bytes of one trace file, read whole (in large blocks) and kept while its records are
// replayed: a record refers to its request's text instead of holding a parsed copy.
struct TraceText {
  std::string path;
  std::string bytes;  // the file, then zero bytes of padding (kTracePadding) for simdjson
};
inline constexpr size_t kTracePadding = 64;

// One decided request of a trace. The request is either `request_text` (the exact JSON text
// of the recorded `request` object, inside trace->bytes: lines the fast parser read) or
// `request_json` (parsed by the nlohmann path). Copying a record is cheap (shared pointers).
struct ReplayRecord {
  std::shared_ptr<const TraceText> trace;
  size_t line = 0;                // 1-based
  std::string_view request_text;  // empty when request_json is set
  std::shared_ptr<const nlohmann::json> request_json;
  Verdict recorded;

  const std::string& file() const { return trace->path; }
  // The request as JSON (docs/semantics.md), parsed for reports; not on the replay path.
  nlohmann::json Request() const;
};

// Appends the `decision` records of one trace file. False with *error: `FILE:LINE: message`
// for a corrupt line, or `cannot read FILE: ...`. (Both are exit 2 for `writ replay`.)
// `jobs` threads parse lines (0: one per core, at most 16). `use_fast`: well-formed lines are
// parsed with simdjson when writ is built with it (WRIT_HAVE_SIMDJSON); any line it is not
// sure of, and every corrupt line, takes the nlohmann path (gateway::ParseTraceLine). The
// result does not depend on it (false is kept for tests and benchmarks). The file is held in
// memory (its size, in one buffer) for as long as records refer to it.
bool ReadTrace(const std::string& path, std::vector<ReplayRecord>* out, std::string* error,
               int jobs = 0, bool use_fast = true);

// The fast conversion of a request's JSON text into nlohmann-json, as `writ replay` decides
// with it: simdjson parses `text` and *out is updated in place, reusing its nodes and string
// buffers where the shapes agree (no heap allocation when consecutive requests have the same
// keys and fitting strings). Anything it is not sure of (a negative zero, or no simdjson at
// build time) is parsed by nlohmann instead. False if `text` is not valid JSON. The result
// equals nlohmann::json::parse(text), number types included (tests/harness compare them).
bool ConvertRequest(std::string_view text, nlohmann::json* out);

// True if writ was built with simdjson (the fast paths above exist).
bool HaveFastPath();

// Decides one request. A request the bundle rejects is a deny with Verdict::error set.
Verdict Decide(const runtime::Bundle& bundle, const nlohmann::json& request);
// The same for a record (its text is converted with ConvertRequest into a per-thread buffer).
Verdict Decide(const runtime::Bundle& bundle, const ReplayRecord& record);
// The same verdict as Decide(plan.bundle(), request), as Replay decides: the determining
// statements come from the plan (runtime::StatementPlan, each shared atom run once), and the
// prepared request and scratch are per-thread buffers reused by the next call.
Verdict Decide(const runtime::StatementPlan& plan, const nlohmann::json& request);

struct ReplayResult {
  std::vector<ReplayRecord> records;
  std::vector<Verdict> after;        // the new policies' verdicts, one per record
  std::vector<Verdict> before;       // the baseline's, or the recorded ones
  std::vector<size_t> changed;       // indices where before != after
  size_t differs_from_recorded = 0;  // after != recorded (what --expect checks)
  std::string baseline_label;        // e.g. "the recorded decisions" or "baseline main/"
  size_t distinct_requests = 0;      // requests actually decided (identical ones once)
  size_t traces = 0;
};

// Re-decides `records` with `bundle`; `baseline` (may be null) gives `before`, else the
// recorded verdicts do.
// `jobs` threads decide (0: one per core, at most 16); the result does not depend on it.
// `decide_once`: requests with identical text (fast-path records), or identical JSON (same
// structure, keys, values and number types; nlohmann-path records), are decided once and the
// verdict reused; the result does not depend on it either (decide_once=false is kept for
// tests and benchmarks). Costs one hash of the request text per record.
ReplayResult Replay(std::vector<ReplayRecord> records, const runtime::Bundle& bundle,
                    const runtime::Bundle* baseline, std::string baseline_label, int jobs = 0,
                    bool decide_once = true);

// Runs fn(0..n-1) on `jobs` threads (0: one per core, at most 16) in contiguous chunks.
// fn must be safe to call concurrently for distinct indices.
void ParallelFor(size_t n, int jobs, const std::function<void(size_t)>& fn);

enum class ReplayFormat { kText, kJson, kMarkdown, kGithub };

// The report; `show` bounds the changed requests listed (text, Markdown, GitHub; JSON lists
// every one).
std::string RenderReplay(const ReplayResult& r, ReplayFormat format, size_t show);

}  // namespace writ::harness
