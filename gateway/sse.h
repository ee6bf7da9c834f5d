// sse.h -- Server-Sent Events (text/event-stream) framing for MCP's Streamable HTTP transport:
// writing events (the downstream's POST and GET streams) and an incremental parser (the
// responses of Streamable HTTP upstreams). Entry points: SseEvent, class SseParser.
//
// Neither Boost.Beast nor a Debian package offers SSE, and both halves are small: writing is
// "field: value" lines ended by a blank line; the parser follows the WHATWG HTML "event
// stream interpretation" algorithm
// (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// lines end in CRLF, LF or CR (a CRLF split across two chunks is one line end); a leading
// UTF-8 BOM is skipped; a line starting with ':' is a comment; "field:value" with one optional
// space after the colon; `data` lines are joined with '\n'; `id` sets the last event id unless
// it contains NUL; `retry` takes ASCII digits only; unknown fields are ignored; a blank line
// dispatches the event unless its data buffer is empty (the data buffer is then reset and the
// event type too, as the spec says).
//
// Thread safety: SseParser is not thread-safe (one per stream); the functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace writ::gateway {

// One SSE event: `event: EVENT` (omitted when empty), `id: ID` (omitted when empty), one
// `data:` line per line of `data` (split at LF; CR characters are dropped, since a bare CR
// would end the line early), then a blank line.
std::string SseEvent(std::string_view data, std::string_view event = "message",
                     std::string_view id = "");
// A comment line (": text\n\n"); clients ignore it. Used as a keep-alive.
std::string SseComment(std::string_view text);

struct SseMessage {
  std::string event;  // "message" when the stream gave none
  std::string data;   // lines joined with '\n', without the final '\n'
  std::string id;     // the last event id in force when this event was dispatched
};

class SseParser {
 public:
  using EventFn = std::function<void(const SseMessage& m)>;

  // `max_event_bytes` bounds one event's data plus a pending line; beyond it the parser
  // fails (the stream must be dropped): untrusted input never grows memory unboundedly.
  explicit SseParser(EventFn on_event, size_t max_event_bytes = 4 * 1024 * 1024);

  // Feeds the next bytes of the stream. False once the limit was exceeded (then and after).
  bool Feed(std::string_view bytes);

  bool failed() const { return failed_; }
  const std::string& last_event_id() const { return last_id_; }
  // The last valid `retry` value in milliseconds, or -1.
  int64_t retry_ms() const { return retry_ms_; }

 private:
  void Line(std::string_view line);

  EventFn on_event_;
  size_t max_;
  std::string line_;        // the current, unterminated line
  bool bom_checked_ = false;
  bool after_cr_ = false;   // the last byte was CR: a following LF belongs to it
  bool failed_ = false;
  std::string data_, event_, last_id_;
  bool has_data_ = false;
  int64_t retry_ms_ = -1;
};

}  // namespace writ::gateway
