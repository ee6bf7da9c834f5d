// http_test_util.h -- helpers shared by the HTTP server's tests (tests/http/*_test.cc): reading
// a raw HTTP/1.1 response as DispatchForTesting returns it, and parsing a YAML example from
// docs/gateway.md (marked with an HTML comment) as the `http:` part of a gateway config.
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "gateway/config.h"

namespace writ::http_test {

// The status code of a raw response; 0 if it is not one.
inline int Status(const std::string& res) {
  return res.size() > 12 && res.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(res.substr(9, 3)) : 0;
}

// A header's value ("" if absent).
inline std::string Header(const std::string& res, const std::string& name) {
  size_t p = res.find("\r\n" + name + ": ");
  if (p == std::string::npos) return "";
  p += name.size() + 4;
  return res.substr(p, res.find("\r\n", p) - p);
}

inline std::string Body(const std::string& res) {
  size_t p = res.find("\r\n\r\n");
  return p == std::string::npos ? "" : res.substr(p + 4);
}

// docs/gateway.md as text.
inline std::string GatewayDoc() {
  std::ifstream f(std::string(WRIT_SOURCE_DIR) + "/docs/gateway.md");
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Parses the first ```yaml block after `marker` in docs/gateway.md as a gateway config (with a
// minimal policies/upstreams prefix). REQUIREs that the marker and the block exist and parse.
inline writ::gateway::Config ParseDocsYaml(const std::string& marker) {
  std::string doc = GatewayDoc();
  size_t at = doc.find(marker);
  REQUIRE_MESSAGE(at != std::string::npos, marker);
  size_t start = doc.find("```yaml\n", at);
  REQUIRE(start != std::string::npos);
  start += 8;
  size_t end = doc.find("```", start);
  writ::gateway::Config c;
  std::string errors;
  REQUIRE_MESSAGE(writ::gateway::ParseConfig("policies: p\nupstreams: []\n" +
                                                 doc.substr(start, end - start),
                                             "gateway.md", "", &c, &errors),
                  errors);
  return c;
}

}  // namespace writ::http_test
