// tool_fetch.h -- lists the tools of one configured stdio upstream outside a session, for
// `writ lock` (docs/integrity.md). Entry point: FetchUpstreamTools.
//
// Spawns the upstream (ChildProcess), sends `initialize` and `notifications/initialized`,
// follows `tools/list` pages (nextCursor) and shuts the process down. Every request waits at
// most `timeout`; server-to-client requests are answered with -32601 (ping with {}), and
// notifications are ignored. A message nested deeper than 128 levels is dropped (the
// request it answers then times out), so nothing downstream recurses that deep.
//
// Thread safety: a free function; concurrent calls are independent.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gateway/config.h"

namespace writ::gateway {

struct FetchedTools {
  std::vector<nlohmann::json> tools;  // definitions as listed (duplicates of a name dropped)
  std::vector<std::string> warnings;  // e.g. "tool `x` listed twice; the later one dropped"
};

// False with *error ("did not answer initialize within 30000 ms", "exited with status 1",
// a JSON-RPC error, ...) if the tools could not be listed.
bool FetchUpstreamTools(const UpstreamConfig& upstream, std::chrono::milliseconds timeout,
                        FetchedTools* out, std::string* error);

}  // namespace writ::gateway
