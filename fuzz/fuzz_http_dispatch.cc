// fuzz_http_dispatch.cc -- libFuzzer target for the session dispatch of `writ serve`'s
// Streamable HTTP server, without sockets (HttpServer::DispatchForTesting): every input
// opens a session (a fixed initialize + notifications/initialized), then runs a sequence of
// fuzzed HTTP requests against it: the input split at "\n@@\n", each piece one raw request
// in which "@SID@" stands for the session's MCP-Session-Id. Requests reach everything after
// the Beast parser: Host/Origin checks, MCP-Protocol-Version, POST (JSON-RPC requests,
// notifications, responses, batches, initialize again), GET streams with Last-Event-ID
// (resumption, the replay buffer), DELETE, unknown sessions and methods. The gateway has no
// upstreams (no processes) and a permit-all bundle; sessions are closed after each input.
// Invariants: nothing crashes, throws or hangs; every answer is "" (not a complete request)
// or an HTTP/1.x response with a status the server is documented to send.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "compiler/compile.h"
#include "gateway/http_server.h"
#include "gateway/log.h"
#include "runtime/evaluator.h"

namespace {

constexpr std::string_view kSeparator = "\n@@\n";
constexpr int kMaxRequests = 16;
constexpr auto kWait = std::chrono::milliseconds(20);

writ::gateway::HttpServer& Server() {
  static writ::gateway::HttpServer* server = [] {
    std::string bytes, error;
    if (!writ::CompileText("fuzz.writ", "permit (principal, action, resource);", &bytes, &error))
      __builtin_trap();
    writ::gateway::HttpServerOptions o;
    o.bundle = writ::runtime::Bundle::Load(bytes, &error);
    if (o.bundle == nullptr) __builtin_trap();
    o.config.stdio_principal.uid = "User::\"fuzz\"";
    o.config.http.allow_anonymous = true;
    o.config.http.max_sessions = 8;
    o.config.http.resume_buffer_events = 4;  // small: eviction paths too
    o.config.http.resume_buffer_bytes = 2048;
    o.config.limits.max_message_bytes = 1 << 16;
    return new writ::gateway::HttpServer(std::move(o));  // lives for the process
  }();
  return *server;
}

std::string Post(const std::string& sid, const std::string& body) {
  std::string r =
      "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
      "Content-Type: application/json\r\n";
  if (!sid.empty()) r += "MCP-Session-Id: " + sid + "\r\n";
  return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string HeaderValue(const std::string& res, std::string_view name) {
  size_t p = res.find(std::string("\r\n") + std::string(name) + ": ");
  if (p == std::string::npos) return "";
  p += name.size() + 4;
  size_t e = res.find("\r\n", p);
  return e == std::string::npos ? "" : res.substr(p, e - p);
}

void Check(const std::string& res) {
  if (res.empty()) return;
  if (res.rfind("HTTP/1.1 ", 0) != 0 && res.rfind("HTTP/1.0 ", 0) != 0) __builtin_trap();
  int status = std::stoi(res.substr(9, 3));
  switch (status) {
    case 200: case 202: case 204: case 400: case 401: case 403: case 404: case 405:
    case 406: case 413: case 415: case 503:
      return;
    default:
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  writ::gateway::ConfigureLog("text", "error");  // no "session opened" lines per input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& srv = Server();
  std::string res = srv.DispatchForTesting(
      Post("", R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{)"
               R"("protocolVersion":"2025-11-25","capabilities":{},)"
               R"("clientInfo":{"name":"fuzz","version":"1"}}})"),
      kWait);
  std::string sid = HeaderValue(res, "MCP-Session-Id");
  if (sid.empty()) __builtin_trap();  // a fresh server always opens the session
  Check(srv.DispatchForTesting(
      Post(sid, R"({"jsonrpc":"2.0","method":"notifications/initialized"})"), kWait));
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < kMaxRequests && !rest.empty(); ++i) {
    size_t cut = rest.find(kSeparator);
    std::string piece(rest.substr(0, cut));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + kSeparator.size());
    for (size_t p = piece.find("@SID@"); p != std::string::npos; p = piece.find("@SID@", p))
      piece.replace(p, 5, sid);
    Check(srv.DispatchForTesting(piece, kWait));
  }
  srv.CloseSessionsForTesting();
  return 0;
}
