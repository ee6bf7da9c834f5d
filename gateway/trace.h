// trace.h -- the versioned JSONL trace format (docs/replay.md): the gateway writes it
// (`record:` in gateway.yaml, class TraceWriter) and `writ replay` reads it
// (ParseTraceLine). This header is the one definition of the format for both sides.
//
//   std::string error;
//   auto trace = TraceWriter::Open({.path = "traces/s.jsonl", .secrets = env_values}, &error);
//   trace->Message(who, TraceDirection::kClientToGateway, msg);
//   trace->Decision(who, "stripe", "tools/call", request, decision_json, id, hash, eval_us);
//
// Thread safety: a TraceWriter may be shared by any number of threads (every session of a
// gateway writes to one). One mutex guards the pending-request timers; each record is one
// write(2) of a whole line to an O_APPEND descriptor. Nothing here throws out of a public
// method; a record that cannot be written is reported on stderr and dropped (recording never
// blocks or denies a request).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

// The format version written in every header line (`writ_trace`). A reader refuses others.
inline constexpr int kTraceVersion = 1;
// Longest trace line a reader accepts (a limit on untrusted input).
inline constexpr size_t kMaxTraceLine = 16 * 1024 * 1024;

enum class TraceDirection { kClientToGateway, kGatewayToClient };
const char* TraceDirectionName(TraceDirection d);  // "client_to_gateway" "gateway_to_client"

struct TraceOptions {
  std::string path;
  bool messages = true;  // false: only `decision` records
  // Scrubbed from every string of every record (as AuditOptions::secrets).
  std::vector<std::string> secrets;
  std::string writ_version = "0.1.0";
};

// Who a record is about: one gateway session.
struct TraceSession {
  std::string session;
  nlohmann::json principal;  // the full entity {uid, attrs, parents}
  std::string client;        // clientInfo.name, or empty
};

class TraceWriter {
 public:
  // Further redaction applied to each record (a JSON object) just before it is written, after
  // the secrets are scrubbed. E.g. the gateway's DLP masking.
  using RedactFn = std::function<void(nlohmann::json* record)>;

  // Opens (creating with mode 0600, or appending) and writes a header line. Null with *error.
  static std::shared_ptr<TraceWriter> Open(TraceOptions opts, std::string* error);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // REQUIRES: called before the writer is shared with sessions.
  void set_redact(RedactFn fn) { redact_ = std::move(fn); }
  const TraceOptions& options() const { return opts_; }

  // A message between the client and the gateway (dropped when options().messages is false).
  // A client request starts a timer under (session, id); the gateway's reply with that id
  // gets `elapsed_us` and the request's method.
  void Message(const TraceSession& who, TraceDirection dir, const nlohmann::json& msg);
  // A decided request: the exact policy request and the decision (DecisionToJson form).
  void Decision(const TraceSession& who, const std::string& server, const std::string& method,
                const nlohmann::json& request, const nlohmann::json& decision,
                const std::string& decision_id, const std::string& bundle_hash, int64_t eval_us);

  // Records written and records dropped (write failures), for tests and shutdown messages.
  uint64_t written() const;
  uint64_t dropped() const;

 private:
  TraceWriter(TraceOptions opts, int fd);
  void Write(nlohmann::json record);

  TraceOptions opts_;
  int fd_ = -1;
  RedactFn redact_;
  mutable std::mutex mu_;
  struct Started {
    std::string method;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Started> pending_;  // session + '\0' + id.dump() -> request
  uint64_t written_ = 0, dropped_ = 0;
};

// The three kinds of trace line.
enum class TraceLineKind { kHeader, kMessage, kDecision };

// Parses and validates one line (without its '\n') against format version kTraceVersion:
// a header must carry `writ_trace` == kTraceVersion; a `decision` record must have `request`
// (object), `decision` (object with a valid `decision` and a `determining` list of strings),
// `session` and `direction`; a `message` record must have `message` (object) and a valid
// `direction`. Returns false with *error (what is wrong, without file:line) otherwise.
// With `lean` (replay), only what replay reads is kept: the header, `type`, `direction`,
// `session`, `request` and `decision` without its obligations; a message record's `message`
// is checked to be an object and kept as {}. Fewer allocations, the same validation.
bool ParseTraceLine(std::string_view line, TraceLineKind* kind, nlohmann::json* out,
                    std::string* error, bool lean = false);

}  // namespace writ::gateway
