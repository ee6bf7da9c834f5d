// jsonrpc.h -- JSON-RPC 2.0 framing for MCP's stdio transport: newline-delimited messages,
// checked for size and nesting depth before parsing, and the error replies the gateway sends.
//
// Entry points: LineSplitter (bytes -> lines, with a size cap), ParseMessage (line -> message
// or a JSON-RPC error), ErrorReply / ResultReply (message builders).
//
// Thread safety: a LineSplitter belongs to one reader thread; the functions are pure.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace writ::gateway {

// JSON-RPC and gateway error codes (docs/gateway.md lists them with their meaning).
inline constexpr int kParseError = -32700;      // not JSON, too large, too deep
inline constexpr int kInvalidRequest = -32600;  // JSON but not a JSON-RPC 2.0 message
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;   // unknown tool/prompt/resource, bad params
inline constexpr int kInternalError = -32603;
inline constexpr int kDenied = -32001;            // policy said deny (or could not decide)
inline constexpr int kHeldForApproval = -32002;   // policy said require_approval; not forwarded
inline constexpr int kUpstreamUnavailable = -32003;  // the upstream exited or never started
inline constexpr int kUpstreamTimeout = -32004;      // the upstream did not answer in time
inline constexpr int kTooManyInFlight = -32005;      // limits.max_in_flight reached
inline constexpr int kShuttingDown = -32006;         // draining: no new requests accepted

// Output coalescing. Each LineSplitter::Feed (one read(2) worth of bytes) is a batch for the
// calling thread: a writer that supports it (the stdio downstream's stdout, cli/serve_cmd.cc)
// writes into its buffer and calls DeferFlush instead of flushing; the flushes run once when
// the batch ends. N replies produced from one read then cost one write(2), not N; a batch of
// one line (the paced, low-rate case) flushes exactly as before.
// DeferFlush: inside a batch on this thread, remembers `flush` (once per `key`) and returns
// true; otherwise returns false and the caller flushes now.
bool DeferFlush(const void* key, const std::function<void()>& flush);
// RAII: the calling thread is in a batch until the outermost FlushBatch is destroyed, which
// runs the deferred flushes.
class FlushBatch {
 public:
  FlushBatch();
  ~FlushBatch();
  FlushBatch(const FlushBatch&) = delete;
  FlushBatch& operator=(const FlushBatch&) = delete;
};

// Splits a byte stream into lines ('\n', a trailing '\r' dropped). A line longer than
// `max_line` bytes is not buffered: its bytes are discarded up to the next newline and
// `on_line` is called once with `oversized = true` and an empty line.
class LineSplitter {
 public:
  using LineFn = std::function<void(std::string_view line, bool oversized)>;
  LineSplitter(size_t max_line, LineFn on_line) : max_(max_line), on_line_(std::move(on_line)) {}
  void Feed(std::string_view bytes);
  // At EOF: delivers a final unterminated line, if any.
  void Finish();

 private:
  size_t max_;
  LineFn on_line_;
  std::string buf_;
  bool skipping_ = false;
};

// Maximum nesting depth of arrays/objects in `text`, counted without parsing (strings and
// escapes are skipped). Stops early and returns a value > `limit` once past it.
int JsonDepth(std::string_view text, int limit);

struct ParsedMessage {
  nlohmann::json msg;        // valid when error_code == 0
  int error_code = 0;        // kParseError or kInvalidRequest
  std::string error;         // human-readable
  nlohmann::json id;         // the request id when recoverable (for the error reply), else null
};

// Parses one line into a JSON-RPC 2.0 message (request, notification or response). Checks
// size and depth first; then "jsonrpc": "2.0", a string method or a result/error, and an id
// that is a string, an integer or (responses only) null. Never throws.
ParsedMessage ParseMessage(std::string_view line, size_t max_bytes, int max_depth);

inline bool IsRequest(const nlohmann::json& m) { return m.contains("method") && m.contains("id"); }
inline bool IsNotification(const nlohmann::json& m) {
  return m.contains("method") && !m.contains("id");
}
inline bool IsResponse(const nlohmann::json& m) { return !m.contains("method"); }

nlohmann::json ErrorReply(const nlohmann::json& id, int code, std::string message,
                          nlohmann::json data = nullptr);
nlohmann::json ResultReply(const nlohmann::json& id, nlohmann::json result);

// Serializes a message as one line (no embedded newline: nlohmann escapes control
// characters in strings) and replaces invalid UTF-8 instead of throwing.
std::string ToLine(const nlohmann::json& m);

}  // namespace writ::gateway
