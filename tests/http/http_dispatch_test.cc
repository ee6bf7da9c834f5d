// HttpServer::DispatchForTesting: the HTTP server's request dispatch without sockets (the
// entry the fuzz target fuzz/fuzz_http_dispatch.cc drives), with no upstreams and a
// permit-all bundle: sessions are created, used, resumed and deleted in process.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "compiler/compile.h"
#include "gateway/config.h"
#include "gateway/http_server.h"
#include "runtime/evaluator.h"
#include "tests/http/http_test_util.h"

using nlohmann::json;

namespace {

std::unique_ptr<writ::gateway::HttpServer> MakeServer() {
  std::string bytes, error;
  REQUIRE(writ::CompileText("t.writ", "permit (principal, action, resource);", &bytes, &error));
  writ::gateway::HttpServerOptions o;
  o.bundle = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE(o.bundle != nullptr);
  o.config.stdio_principal.uid = "User::\"t\"";
  o.config.http.allow_anonymous = true;
  o.config.http.resume_buffer_events = 4;
  return std::make_unique<writ::gateway::HttpServer>(std::move(o));
}

std::string Req(const std::string& method, const std::string& sid, const std::string& body,
                const std::string& extra = "") {
  std::string r = method + " /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Accept: application/json, text/event-stream\r\n";
  if (!sid.empty()) r += "MCP-Session-Id: " + sid + "\r\n";
  if (!body.empty()) r += "Content-Type: application/json\r\n";
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

using writ::http_test::Body;
using writ::http_test::Header;
using writ::http_test::Status;

constexpr auto kWait = std::chrono::milliseconds(2000);

}  // namespace

TEST_CASE("DispatchForTesting: a whole session without sockets") {
  auto srv = MakeServer();
  json init = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
               {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()},
                           {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}};
  std::string r = srv->DispatchForTesting(Req("POST", "", init.dump()), kWait);
  REQUIRE_MESSAGE(Status(r) == 200, r);
  std::string sid = Header(r, "MCP-Session-Id");
  REQUIRE(sid.size() == 32);
  CHECK(json::parse(Body(r))["result"]["serverInfo"]["name"] == "writ");

  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  CHECK(Status(srv->DispatchForTesting(Req("POST", sid, note.dump()), kWait)) == 202);
  json list = {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}};
  r = srv->DispatchForTesting(Req("POST", sid, list.dump()), kWait);
  REQUIRE(Status(r) == 200);
  CHECK(json::parse(Body(r))["result"]["tools"].is_array());

  // The GET stream (2025-11-25: primed with an id), then a resume with an unknown id.
  r = srv->DispatchForTesting(Req("GET", sid, "", "MCP-Protocol-Version: 2025-11-25\r\n"), kWait);
  REQUIRE(Status(r) == 200);
  CHECK(Body(r).find("id: g0\n") != std::string::npos);
  r = srv->DispatchForTesting(
      Req("GET", sid, "", "MCP-Protocol-Version: 2025-11-25\r\nLast-Event-ID: g7\r\n"), kWait);
  REQUIRE(Status(r) == 200);
  CHECK(Header(r, "Writ-Replay") == "unknown");

  // Errors: unknown session, bad version, wrong method, incomplete request.
  CHECK(Status(srv->DispatchForTesting(Req("POST", "00", list.dump()), kWait)) == 404);
  CHECK(Status(srv->DispatchForTesting(
            Req("POST", sid, list.dump(), "MCP-Protocol-Version: 1999-01-01\r\n"), kWait)) == 400);
  CHECK(Status(srv->DispatchForTesting(Req("PUT", sid, ""), kWait)) == 405);
  CHECK(srv->DispatchForTesting("POST /mcp HTTP/1.1\r\nContent-Length: 9\r\n\r\n{}", kWait)
            .empty());

  CHECK(Status(srv->DispatchForTesting(Req("DELETE", sid, ""), kWait)) == 204);
  CHECK(Status(srv->DispatchForTesting(Req("POST", sid, list.dump()), kWait)) == 404);
  srv->CloseSessionsForTesting();
}
