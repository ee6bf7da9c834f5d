// admin_client.h -- what `writ approvals` and `writ kill` share: finding the gateway's admin
// API (--admin URL, else admin.listen from --config, else http://127.0.0.1:9090), the admin
// token (--token-file, else $WRIT_ADMIN_TOKEN, else admin.token_file from --config), one
// request to it, and the exit code for its answer. docs/cli.md, docs/approvals.md.
//
// Exit codes: 0 done; 1 the gateway refused (no such approval, not pending, expired);
// 2 usage, configuration, connection or authentication error, or a server error.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace writ::cli {

struct AdminClientOptions {
  std::string admin;       // URL or HOST:PORT
  std::string config;      // gateway.yaml
  std::string token_file;  // file holding the token
  std::string format = "text";  // text | json
};

// Adds --admin, --config, --token-file and --format to `cmd`.
void AddAdminClientOptions(CLI::App* cmd, AdminClientOptions* o);

class AdminClient {
 public:
  // Resolves the address and token. False with *error (printable, ends with a help: line).
  bool Init(const AdminClientOptions& o, std::string* error);

  // Sends one request; `body` null for none. Prints errors itself and returns the exit code:
  // kExitOk with *out set to the answer on 2xx.
  int Call(const std::string& method, const std::string& target, const nlohmann::json* body,
           nlohmann::json* out) const;

  const std::string& base_url() const { return base_; }

 private:
  std::string base_;   // http://host:port
  std::string token_;
  std::string format_;
  std::string source_;  // where the address came from, for messages
};

}  // namespace writ::cli
