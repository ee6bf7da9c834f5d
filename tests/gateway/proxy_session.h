// proxy_session.h -- one in-memory MCP session through a gateway::Proxy with a single upstream,
// for tests that drive the proxy's real request path without processes or sockets (tests in
// tests/gateway/ and tests/admin/). It records what the proxy wrote to the client and to the
// upstream; the test plays both peers.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "gateway/proxy.h"
#include "runtime/evaluator.h"

namespace writ::gateway_test {

using nlohmann::json;

// The bundle compiled from `policy` (REQUIREs that it compiles and loads).
inline std::shared_ptr<const writ::runtime::Bundle> CompileBundle(const std::string& policy) {
  std::string bytes, error;
  REQUIRE_MESSAGE(writ::CompileText("t.writ", policy, &bytes, &error), error);
  auto bundle = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  return bundle;
}

struct ProxySession {
  std::vector<json> client, up;  // every message the proxy wrote to each peer, parsed
  std::unique_ptr<writ::gateway::Proxy> proxy;

  ProxySession(const std::string& policy, writ::gateway::ProxyOptions opts,
               const std::string& upstream) {
    proxy = std::make_unique<writ::gateway::Proxy>(
        std::move(opts), CompileBundle(policy),
        [this](const std::string& l) { client.push_back(json::parse(l)); });
    proxy->AddUpstream(upstream, [this](const std::string& l) {
      up.push_back(json::parse(l));
      return true;
    });
  }
  void Client(const json& m) { proxy->OnClientLine(m.dump()); }
  void Up(const json& m) { proxy->OnUpstreamLine(0, m.dump()); }
  // The initialize handshake, the upstream offering tools.
  void Initialize() {
    Client({{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"},
            {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()}}}});
    Up({{"jsonrpc", "2.0"}, {"id", up.back()["id"]},
        {"result",
         {{"protocolVersion", "2025-06-18"}, {"capabilities", {{"tools", json::object()}}}}}});
    REQUIRE(client.back()["result"]["serverInfo"]["name"] == "writ");
  }
  // The client lists tools (request id `id`); the upstream answers with `defs`. Returns the
  // client's answer.
  json ListTools(const json& defs, const json& id = "list") {
    Client({{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/list"}});
    REQUIRE(up.back()["method"] == "tools/list");
    Up({{"jsonrpc", "2.0"}, {"id", up.back()["id"]}, {"result", {{"tools", defs}}}});
    return client.back();
  }
  // How many tools/call requests reached the upstream.
  size_t Forwarded() const {
    size_t n = 0;
    for (const auto& m : up) n += m.value("method", "") == "tools/call";
    return n;
  }
};

}  // namespace writ::gateway_test
