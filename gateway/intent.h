// intent.h -- the intent classifier: what a tool does (`tool.intent`) and what one call of it
// does (`call.intent`), as one of read < write < exfiltrative < destructive, with a `why` for
// the audit record. docs/intent.md describes the rules. Entry point: class IntentClassifier.
//
//   IntentClassifier c(config.intent);
//   IntentResult t = c.ClassifyTool("db", tool_def);              // tool.intent
//   IntentResult k = c.ClassifyCall("db", tool_def, args);        // call.intent
//   request["call"]["intent"] = IntentName(k.intent);  audit["intent_why"] = k.why;
//
// Order: the strongest intent found wins. read < write < exfiltrative < destructive: both
// exfiltrative and destructive outrank write; destructive outranks exfiltrative because it is
// the one that cannot be recovered from by the data owner (and a policy that needs both can
// test `call.intent in ["exfiltrative", "destructive"]`). IntentResult::found keeps every
// intent that was detected, so nothing is lost when one outranks another.
//
// Trust: annotations (readOnlyHint, destructiveHint) are believed only from servers listed in
// IntentConfig::trusted_servers; from other servers they may raise the intent (a server that
// calls itself destructive is believed) but never lower it. Catalog overrides are the
// operator's word for the tool; the arguments of a call can still raise call.intent above an
// override (an override of `read` does not hide a DROP TABLE in the arguments).
//
// Thread safety: an IntentClassifier is immutable after construction; every method is const
// and may be called from any number of threads. Nothing throws; arguments are untrusted and
// their walk is bounded (depth, bytes).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

// Ordered: a larger value is a stronger intent.
enum class Intent : int { kRead = 0, kWrite = 1, kExfiltrative = 2, kDestructive = 3 };

// "read", "write", "exfiltrative", "destructive".
const char* IntentName(Intent i);
// The inverse of IntentName. False for anything else.
bool ParseIntent(std::string_view s, Intent* out);

struct IntentConfig {
  // "SERVER__tool" -> intent, or "SERVER__*" for every tool of a server (an exact name wins).
  std::map<std::string, Intent> overrides;
  // Servers whose readOnlyHint / destructiveHint annotations are believed.
  std::vector<std::string> trusted_servers;
  // A bulk size argument (limit, count, page_size, ...) or SQL LIMIT/TOP above this makes a
  // call exfiltrative.
  int64_t bulk_threshold = 1000;
};

struct IntentResult {
  Intent intent = Intent::kWrite;
  // Why, for the audit record: the signals that produced `intent`, e.g.
  // "args.sql: statement 2 is DROP TABLE (destructive)". Never empty.
  std::string why;
  // Bit (1 << int(Intent)) for every intent some signal pointed to.
  unsigned found = 0;
};

class IntentClassifier {
 public:
  explicit IntentClassifier(IntentConfig config = {});

  // tool.intent, from the definition alone (an MCP tool object: name, description,
  // inputSchema, annotations). `server` is the upstream's name.
  IntentResult ClassifyTool(const std::string& server, const nlohmann::json& tool) const;

  // call.intent: ClassifyTool plus the arguments (SQL statements in string arguments, bulk
  // sizes, export/dump verbs in action-like arguments, shell commands). `args` may be any
  // JSON (null when absent).
  IntentResult ClassifyCall(const std::string& server, const nlohmann::json& tool,
                            const nlohmann::json& args) const;

  const IntentConfig& config() const { return config_; }

 private:
  struct ToolVerdict;
  ToolVerdict Tool(const std::string& server, const nlohmann::json& tool) const;

  IntentConfig config_;
};

}  // namespace writ::gateway
