// kill_cmd.cc -- `writ kill engage SCOPE --reason R | release SCOPE | status`: the gateway's
// kill switch through its admin API (cli/admin_client.h, docs/approvals.md "Kill switch").
// SCOPE is `all`, `server:NAME` or `principal:Type::"id"`. Exit codes: 0 done, 2 usage,
// connection or token error.
#include <cstdlib>
#include <iostream>

#include "cli/admin_client.h"
#include "cli/command.h"

namespace writ::cli {
namespace {

using Json = nlohmann::json;

struct KillOptions {
  AdminClientOptions admin;
  std::string scope;
  std::string reason;
  std::string by;
};

std::string Str(const Json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int Run(const std::string& action, const KillOptions& o) {
  AdminClient client;
  std::string error;
  if (!client.Init(o.admin, &error)) {
    std::cerr << error;
    return kExitUsage;
  }
  Json out;
  int rc;
  if (action == "status") {
    rc = client.Call("GET", "/v1/killswitch", nullptr, &out);
    if (rc != kExitOk) return rc;
    if (o.admin.format == "json") {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    const Json& list = out.value("engaged", Json::array());
    if (list.empty()) std::cout << "kill switch: nothing engaged\n";
    for (const Json& e : list)
      std::cout << "engaged " << Str(e, "scope") << " since " << Str(e, "engaged") << " by "
                << Str(e, "by") << ": " << Str(e, "reason") << "\n";
    return kExitOk;
  }
  std::string by = o.by;
  if (by.empty()) {
    const char* user = std::getenv("USER");
    by = user != nullptr && *user != '\0' ? user : "cli";
  }
  Json body = {{"scope", o.scope}, {"by", by}};
  if (action == "engage") body["reason"] = o.reason;
  rc = client.Call("POST", "/v1/killswitch/" + action, &body, &out);
  if (rc != kExitOk) return rc;
  if (o.admin.format == "json") {
    std::cout << out.dump(2) << "\n";
  } else if (action == "engage") {
    std::cout << "engaged " << Str(out, "scope") << ": " << Str(out, "reason") << "\n";
  } else if (out.value("released", false)) {
    std::cout << "released " << Str(out, "scope") << "\n";
  } else {
    std::cout << Str(out, "scope") << " was not engaged\n";
  }
  return kExitOk;
}

CommandRegistrar reg(84, [](CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "kill", "Engage or release the gateway's kill switch (deny everything, a server or a "
              "principal).");
  cmd->require_subcommand(1);
  cmd->footer(
      "SCOPE: all | server:NAME | principal:'User::\"alice\"'. Engaged scopes survive a\n"
      "gateway restart. Talks to the running gateway's admin API (docs/approvals.md).\n"
      "Exit codes: 0 done, 2 usage, connection or token error.\n"
      "Examples:\n"
      "  writ kill engage all --reason 'incident 42' --config gateway.yaml\n"
      "  writ kill engage server:github --reason 'token leaked' --config gateway.yaml\n"
      "  writ kill release server:github --config gateway.yaml\n"
      "  writ kill status --config gateway.yaml");
  auto add = [&](const std::string& name, const std::string& help) {
    auto o = std::make_shared<KillOptions>();
    CLI::App* sub = cmd->add_subcommand(name, help);
    AddAdminClientOptions(sub, &o->admin);
    if (name != "status") {
      sub->add_option("scope", o->scope, "all | server:NAME | principal:Type::\"id\"")
          ->required();
      sub->add_option("--by", o->by, "Who (default: $USER)");
    }
    if (name == "engage")
      sub->add_option("--reason,-r", o->reason, "Why (shown to denied callers)")->required();
    sub->callback([o, name, exit_code] { *exit_code = Run(name, *o); });
  };
  add("engage", "Deny every call in SCOPE until released.");
  add("release", "Release SCOPE.");
  add("status", "List the engaged scopes.");
});

}  // namespace
}  // namespace writ::cli
