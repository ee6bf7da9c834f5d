// approvals_cmd.cc -- `writ approvals list|show ID|approve ID|deny ID`: the approver's side of
// `require_approval`, through the running gateway's admin API (cli/admin_client.h,
// docs/approvals.md). Exit codes: 0 done, 1 refused (no such approval, not pending,
// expired), 2 usage/connection/auth error.
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/admin_client.h"
#include "cli/command.h"

namespace writ::cli {
namespace {

using Json = nlohmann::json;

struct ApprovalsOptions {
  AdminClientOptions admin;
  std::string state;
  std::string id;
  std::string by;
  std::string note;
};

std::string PathEscape(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Str(const Json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void PrintApproval(const Json& a) {
  std::string approvers;
  for (const auto& x : a.value("approvers", Json::array()))
    if (x.is_string()) approvers += (approvers.empty() ? "" : ", ") + x.get<std::string>();
  std::cout << "approval    " << Str(a, "id") << "\n"
            << "state       " << Str(a, "state") << "\n"
            << "principal   " << Str(a, "principal") << "\n"
            << "tool        " << Str(a, "tool") << " (server " << Str(a, "server") << ")\n"
            << "arguments   " << Str(a, "args_preview") << "\n"
            << "args digest " << Str(a, "args_digest") << "\n"
            << "approvers   " << (approvers.empty() ? "-" : approvers) << "\n"
            << "created     " << Str(a, "created") << "\n"
            << "expires     " << Str(a, "expires") << "\n"
            << "decision    " << Str(a, "decision_id") << "\n"
            << "bundle      " << Str(a, "bundle_hash") << "\n";
  if (a.contains("decided"))
    std::cout << "decided     " << Str(a, "decided") << " by " << Str(a, "decided_by")
              << (Str(a, "note").empty() ? "" : ": " + Str(a, "note")) << "\n";
  if (a.contains("consumed")) std::cout << "consumed    " << Str(a, "consumed") << "\n";
}

int Run(const std::string& action, const ApprovalsOptions& o) {
  AdminClient client;
  std::string error;
  if (!client.Init(o.admin, &error)) {
    std::cerr << error;
    return kExitUsage;
  }
  Json out;
  int rc;
  if (action == "list") {
    std::string target = "/v1/approvals";
    if (!o.state.empty() && o.state != "all") target += "?state=" + PathEscape(o.state);
    rc = client.Call("GET", target, nullptr, &out);
    if (rc != kExitOk) return rc;
    if (o.admin.format == "json") {
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    const Json& list = out.value("approvals", Json::array());
    if (list.empty()) {
      std::cout << "no " << (o.state.empty() || o.state == "all" ? "" : o.state + " ")
                << "approvals\n";
      return kExitOk;
    }
    std::cout << std::left << std::setw(20) << "ID" << std::setw(10) << "STATE" << std::setw(24)
              << "PRINCIPAL" << std::setw(24) << "TOOL" << "EXPIRES\n";
    for (const Json& a : list)
      std::cout << std::setw(20) << Str(a, "id") << std::setw(10) << Str(a, "state")
                << std::setw(24) << Str(a, "principal") << std::setw(24) << Str(a, "tool")
                << Str(a, "expires") << "\n";
    return kExitOk;
  }
  std::string target = "/v1/approvals/" + PathEscape(o.id);
  if (action == "show") {
    rc = client.Call("GET", target, nullptr, &out);
  } else {
    std::string by = o.by;
    if (by.empty()) {
      const char* user = std::getenv("USER");
      by = user != nullptr && *user != '\0' ? user : "cli";
    }
    Json body = {{"by", by}, {"note", o.note}};
    rc = client.Call("POST", target + "/" + action, &body, &out);
  }
  if (rc != kExitOk) return rc;
  if (o.admin.format == "json") {
    std::cout << out.dump(2) << "\n";
  } else if (action == "show") {
    PrintApproval(out);
  } else {
    std::cout << Str(out, "state") << " " << Str(out, "id") << " (" << Str(out, "principal")
              << " -> " << Str(out, "tool") << ") by " << Str(out, "decided_by") << "\n";
  }
  return kExitOk;
}

CommandRegistrar reg(82, [](CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "approvals", "List, show, approve or deny calls held by require_approval.");
  cmd->require_subcommand(1);
  cmd->footer(
      "Talks to the running gateway's admin API (docs/approvals.md).\n"
      "Exit codes: 0 done, 1 refused (unknown id, not pending, expired), 2 usage, connection\n"
      "or token error.\n"
      "Examples:\n"
      "  writ approvals list --config gateway.yaml\n"
      "  writ approvals show ap_3f2a9c01d4e5b6a7 --config gateway.yaml\n"
      "  WRIT_ADMIN_TOKEN=... writ approvals approve ap_3f2a9c01d4e5b6a7 --note 'ticket 42'");
  auto add = [&](const std::string& name, const std::string& help) {
    auto o = std::make_shared<ApprovalsOptions>();
    CLI::App* sub = cmd->add_subcommand(name, help);
    AddAdminClientOptions(sub, &o->admin);
    if (name == "list") {
      o->state = "pending";
      sub->add_option("--state", o->state,
                      "pending (default), approved, denied, expired, consumed or all")
          ->check(CLI::IsMember({"pending", "approved", "denied", "expired", "consumed", "all"}));
    } else {
      sub->add_option("id", o->id, "Approval id (ap_...)")->required();
    }
    if (name == "approve" || name == "deny") {
      sub->add_option("--note", o->note, "Why (kept in the audit trail)");
      sub->add_option("--by", o->by, "Who decides (default: $USER)");
    }
    sub->callback([o, name, exit_code] { *exit_code = Run(name, *o); });
  };
  add("list", "List approvals (pending by default).");
  add("show", "Show one approval: who, which tool, the arguments, when it expires.");
  add("approve", "Approve a pending call: its identical retry then runs once.");
  add("deny", "Deny a pending call.");
});

}  // namespace
}  // namespace writ::cli
