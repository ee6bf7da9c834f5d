// fuzz_sse.cc -- libFuzzer target for gateway/sse.h, the SSE parser that reads the answers of
// Streamable HTTP upstreams (untrusted bytes). Invariants (a violation traps): nothing
// crashes; feeding the input whole, byte by byte, or split at any point (chosen by the first
// byte) gives the same events, last event id and retry; no event exceeds the size bound; an
// event written by SseEvent parses back to its data (CRs removed).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/sse.h"

namespace {

constexpr size_t kMax = 1 << 14;

struct Run {
  std::vector<std::string> events;  // event type + '\0' + id + '\0' + data
  std::string last_id;
  int64_t retry = -1;
  bool ok = true;
};

Run Parse(std::string_view text, size_t step) {
  Run r;
  writ::gateway::SseParser p(
      [&r](const writ::gateway::SseMessage& m) {
        if (m.data.size() > kMax) __builtin_trap();
        r.events.push_back(m.event + '\0' + m.id + '\0' + m.data);
      },
      kMax);
  for (size_t i = 0; i < text.size(); i += step) r.ok = p.Feed(text.substr(i, step)) && r.ok;
  r.last_id = p.last_event_id();
  r.retry = p.retry_ms();
  return r;
}

bool Same(const Run& a, const Run& b) {
  if (a.ok != b.ok) return false;
  if (!a.ok) return true;  // after a failure the stream is dropped; what came before may differ
  return a.events == b.events && a.last_id == b.last_id && a.retry == b.retry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  Run whole = Parse(text, text.size() + 1);
  if (!Same(whole, Parse(text, 1))) __builtin_trap();
  if (!Same(whole, Parse(text, 1 + data[0] % 13))) __builtin_trap();
  // Round trip through the writer.
  std::string expected;
  for (char c : text)
    if (c != '\r') expected += c;
  Run back = Parse(writ::gateway::SseEvent(text), 4096);
  if (expected.size() + 64 < kMax && (back.events.size() != 1 ||
                                      back.events[0] != "message" + std::string(1, '\0') +
                                                            std::string(1, '\0') + expected))
    __builtin_trap();
  return 0;
}
