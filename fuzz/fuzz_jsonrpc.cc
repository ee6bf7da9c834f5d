// fuzz_jsonrpc.cc -- libFuzzer target for the gateway's JSON-RPC framing: arbitrary bytes,
// split into arbitrary chunks, go through LineSplitter and ParseMessage exactly as they do on
// a stdio transport. Invariants (a violation traps): nothing throws or crashes; every message
// that parses survives a round trip (ToLine, then ParseMessage again, equal JSON); every
// error reply serializes to one line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "gateway/jsonrpc.h"

namespace {
constexpr size_t kMaxLine = 1 << 16;
constexpr int kMaxDepth = 64;

void OnLine(std::string_view line, bool oversized) {
  using namespace writ::gateway;
  if (oversized) return;
  ParsedMessage p = ParseMessage(line, kMaxLine, kMaxDepth);
  if (p.error_code != 0) {
    std::string reply = ToLine(ErrorReply(p.id, p.error_code, p.error));
    if (reply.find('\n') != std::string::npos) __builtin_trap();
    return;
  }
  std::string again = ToLine(p.msg);
  if (again.find('\n') != std::string::npos) __builtin_trap();
  ParsedMessage q = ParseMessage(again, kMaxLine * 4, kMaxDepth);
  if (q.error_code != 0 || q.msg != p.msg) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so line boundaries fall anywhere in a read.
  const size_t chunk = 1 + data[0] % 97;
  writ::gateway::LineSplitter splitter(kMaxLine, OnLine);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  while (!rest.empty()) {
    size_t n = std::min(chunk, rest.size());
    splitter.Feed(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  splitter.Finish();
  return 0;
}
