// gateway/sse.h: SSE event framing and the incremental parser (WHATWG event stream
// interpretation), with every chunking of the input.
#include "gateway/sse.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using writ::gateway::SseComment;
using writ::gateway::SseEvent;
using writ::gateway::SseMessage;
using writ::gateway::SseParser;

namespace {

struct Collected {
  std::vector<SseMessage> events;
  int64_t retry = -1;
  std::string last_id;
  bool ok = true;
};

// Parses `text` fed in the given chunk sizes (cycled); `split` at one position if >= 0.
Collected Parse(const std::string& text, size_t split = std::string::npos, size_t step = 0,
                size_t max = 1 << 20) {
  Collected c;
  SseParser p([&c](const SseMessage& m) { c.events.push_back(m); }, max);
  if (step > 0) {
    for (size_t i = 0; i < text.size(); i += step) c.ok = p.Feed(text.substr(i, step)) && c.ok;
  } else if (split != std::string::npos) {
    c.ok = p.Feed(text.substr(0, split)) && c.ok;
    c.ok = p.Feed(text.substr(split)) && c.ok;
  } else {
    c.ok = p.Feed(text);
  }
  c.retry = p.retry_ms();
  c.last_id = p.last_event_id();
  return c;
}

bool Same(const Collected& a, const Collected& b) {
  if (a.events.size() != b.events.size() || a.retry != b.retry || a.last_id != b.last_id ||
      a.ok != b.ok)
    return false;
  for (size_t i = 0; i < a.events.size(); ++i)
    if (a.events[i].data != b.events[i].data || a.events[i].event != b.events[i].event ||
        a.events[i].id != b.events[i].id)
      return false;
  return true;
}

}  // namespace

TEST_CASE("SseEvent frames one message per event") {
  CHECK(SseEvent(R"({"a":1})") == "event: message\ndata: {\"a\":1}\n\n");
  CHECK(SseEvent("x", "", "") == "data: x\n\n");
  CHECK(SseEvent("l1\nl2", "message", "7") == "event: message\nid: 7\ndata: l1\ndata: l2\n\n");
  CHECK(SseEvent("a\r\nb") == "event: message\ndata: a\ndata: b\n\n");  // CR never ends early
  CHECK(SseEvent("") == "event: message\ndata: \n\n");
  CHECK(SseComment("keep\nalive") == ": keepalive\n\n");
}

TEST_CASE("SseParser follows the WHATWG interpretation") {
  // The spec's own examples.
  Collected c = Parse("data: YHOO\ndata: +2\ndata: 10\n\n");
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].data == "YHOO\n+2\n10");
  CHECK(c.events[0].event == "message");

  c = Parse(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
            "data:  third event\n\n");
  REQUIRE(c.events.size() == 3);
  CHECK(c.events[0].data == "first event");
  CHECK(c.events[0].id == "1");
  CHECK(c.events[1].data == "second event");
  CHECK(c.events[1].id == "");  // `id` with no value resets the last event id
  CHECK(c.events[2].data == " third event");  // only one space is removed

  c = Parse("data\n\ndata\ndata\n\ndata:\n");
  REQUIRE(c.events.size() == 2);  // the last one is never terminated by a blank line
  CHECK(c.events[0].data == "");
  CHECK(c.events[1].data == "\n");

  // Line ends: CRLF, CR, LF, mixed; event types; retry; unknown fields; a BOM.
  c = Parse("\xEF\xBB\xBF" "event: ping\r\ndata: a\r\rretry: 2500\nretry: 12x\nfoo: bar\n"
            "data: b\r\n\r\n");
  REQUIRE(c.events.size() == 2);
  CHECK(c.events[0].event == "ping");
  CHECK(c.events[0].data == "a");
  CHECK(c.events[1].event == "message");  // the type is reset after each dispatch
  CHECK(c.events[1].data == "b");
  CHECK(c.retry == 2500);

  // An event with no data is not dispatched, and its type does not leak into the next one.
  c = Parse("event: x\n\ndata: y\n\n");
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].event == "message");

  // An id with NUL is ignored; the last id persists across events.
  const char kNulId[] = "id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\n";
  c = Parse(std::string(kNulId, sizeof kNulId - 1));
  REQUIRE(c.events.size() == 2);
  CHECK(c.events[1].id == "5");
  CHECK(c.last_id == "5");
}

TEST_CASE("SseParser gives the same events at every chunk boundary") {
  const std::string text =
      "\xEF\xBB\xBF: hello\r\nevent: message\r\nid: 42\r\ndata: {\"jsonrpc\":\"2.0\",\r\n"
      "data: \"id\":1}\r\n\r\nretry: 10\rdata: second\r\rdata:x\ndata: y\n\n: end\n";
  Collected whole = Parse(text);
  REQUIRE(whole.events.size() == 3);
  CHECK(whole.events[0].data == "{\"jsonrpc\":\"2.0\",\n\"id\":1}");
  CHECK(whole.events[0].id == "42");
  CHECK(whole.events[2].data == "x\ny");
  CHECK(whole.retry == 10);
  for (size_t split = 0; split <= text.size(); ++split)
    CHECK_MESSAGE(Same(whole, Parse(text, split)), "split at " << split);
  for (size_t step = 1; step <= 7; ++step)
    CHECK_MESSAGE(Same(whole, Parse(text, std::string::npos, step)), "step " << step);
}

TEST_CASE("SseParser bounds an event's size and fails closed") {
  std::string big = "data: " + std::string(5000, 'a') + "\n\n";
  Collected c = Parse(big, std::string::npos, 0, 1000);
  CHECK_FALSE(c.ok);
  CHECK(c.events.empty());
  // Many data lines that together exceed the bound.
  std::string many;
  for (int i = 0; i < 100; ++i) many += "data: 0123456789\n";
  c = Parse(many + "\n", std::string::npos, 3, 500);
  CHECK_FALSE(c.ok);
  CHECK(c.events.empty());
  // Within the bound: fine.
  c = Parse("data: " + std::string(900, 'a') + "\n\n", std::string::npos, 0, 1000);
  CHECK(c.ok);
  CHECK(c.events.size() == 1);
}

TEST_CASE("SseEvent output parses back to the same data") {
  for (std::string data : {std::string("{}"), std::string("a\nb\n"), std::string(""),
                           std::string("x: y"), std::string(":not a comment")}) {
    Collected c = Parse(SseEvent(data));
    REQUIRE(c.events.size() == 1);
    CHECK(c.events[0].data == data);
  }
}
