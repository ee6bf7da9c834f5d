// fuzz_http.cc -- libFuzzer target for the HTTP entry point of `writ serve`: arbitrary bytes,
// split into arbitrary chunks, go through Boost.Beast's request parser with the limits the
// server sets (64 KiB of headers, limits.max_message_bytes of body), then through the checks
// the server runs on a parsed request before any session is touched: Host and Origin
// validation (HostAllowed, OriginAllowed, default and configured lists) and the JSON-RPC
// body (ParseMessage). Invariants: nothing crashes or throws; a parsed body either is one
// JSON-RPC message or has an error code. (The dispatch after these checks needs sessions and
// upstream processes and is covered by tests/http.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "gateway/config.h"
#include "gateway/http_server.h"
#include "gateway/jsonrpc.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 61;
  http::request_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(1 << 16);
  parser.eager(true);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  boost::beast::error_code ec;
  std::string pending;
  while (!rest.empty() && !parser.is_done()) {
    size_t n = std::min(chunk, rest.size());
    pending.append(rest.substr(0, n));
    rest.remove_prefix(n);
    size_t used = parser.put(boost::asio::buffer(pending), ec);
    if (ec == http::error::need_more) {
      ec = {};
      pending.erase(0, used);
      continue;
    }
    if (ec) return 0;
    pending.erase(0, used);
  }
  if (!parser.is_header_done()) return 0;
  const auto& req = parser.get();
  writ::gateway::HttpConfig defaults, configured;
  configured.allowed_hosts = {"mcp.example.com", "*.bad", "[::1]:9"};
  configured.allowed_origins = {"https://app.example.com"};
  auto host = req[http::field::host];
  auto origin = req[http::field::origin];
  std::string_view h(host.data(), host.size()), o(origin.data(), origin.size());
  (void)writ::gateway::HostAllowed(defaults, h);
  (void)writ::gateway::HostAllowed(configured, h);
  (void)writ::gateway::OriginAllowed(defaults, o);
  (void)writ::gateway::OriginAllowed(configured, o);
  if (!parser.is_done()) return 0;
  writ::gateway::ParsedMessage m = writ::gateway::ParseMessage(req.body(), 1 << 16, 64);
  if (m.error_code == 0 && !m.msg.is_object()) __builtin_trap();
  return 0;
}
