// admin_client.cc -- see admin_client.h.
#include "cli/admin_client.h"

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "base/source.h"
#include "cli/command.h"
#include "gateway/config.h"
#include "gateway/notify.h"

namespace writ::cli {

void AddAdminClientOptions(CLI::App* cmd, AdminClientOptions* o) {
  cmd->add_option("--admin", o->admin,
                  "Admin API address (http://HOST:PORT); default: admin.listen from --config, "
                  "else http://127.0.0.1:9090");
  cmd->add_option("--config,-c", o->config,
                  "The gateway's configuration (for admin.listen and "
                  "admin.token_file)");
  cmd->add_option("--token-file", o->token_file,
                  "File holding the admin token (default: $WRIT_ADMIN_TOKEN, else "
                  "admin.token_file from --config)");
  cmd->add_option("--format", o->format, "Output: text or json")
      ->check(CLI::IsMember({"text", "json"}));
}

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool AdminClient::Init(const AdminClientOptions& o, std::string* error) {
  format_ = o.format;
  gateway::Config config;
  bool have_config = false;
  if (!o.config.empty()) {
    std::string errors;
    if (!gateway::LoadConfig(o.config, &config, &errors)) {
      *error = errors;
      return false;
    }
    have_config = true;
  }
  if (!o.admin.empty()) {
    base_ = o.admin.find("://") == std::string::npos ? "http://" + o.admin : o.admin;
    source_ = "--admin";
  } else if (have_config) {
    if (!config.admin.enabled) {
      *error = "error: " + o.config +
               " has no `admin:` section\n"
               "help: add `admin: { listen: 127.0.0.1:9090, token_file: admin.token }` and "
               "restart the gateway, or pass --admin URL\n";
      return false;
    }
    std::string host = config.admin.host == "0.0.0.0" ? "127.0.0.1"
                       : config.admin.host == "::"    ? "::1"
                                                      : config.admin.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    base_ = "http://" + host + ":" + std::to_string(config.admin.port);
    source_ = "admin.listen in " + o.config;
  } else {
    base_ = "http://127.0.0.1:9090";
    source_ = "the default address";
  }
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  gateway::HttpUrl u;
  std::string e;
  if (!gateway::ParseHttpUrl(base_ + "/", &u, &e)) {
    *error =
        "error: --admin " + o.admin + ": " + e + "\nhelp: e.g. --admin http://127.0.0.1:9090\n";
    return false;
  }
  std::string file = o.token_file;
  if (file.empty()) {
    if (const char* env = std::getenv("WRIT_ADMIN_TOKEN"); env != nullptr && *env != '\0') {
      token_ = Trim(env);
      return true;
    }
    if (have_config) file = config.admin.token_file;
  }
  if (file.empty()) {
    *error =
        "error: no admin token\nhelp: pass --token-file FILE, set WRIT_ADMIN_TOKEN, or "
        "pass --config with an admin.token_file\n";
    return false;
  }
  if (!ReadFile(file, &token_, &e)) {
    *error = "error: cannot read the admin token: " + e + "\nhelp: check --token-file\n";
    return false;
  }
  token_ = Trim(token_);
  if (token_.empty()) {
    *error = "error: the admin token file " + file + " is empty\nhelp: check --token-file\n";
    return false;
  }
  return true;
}

int AdminClient::Call(const std::string& method, const std::string& target,
                      const nlohmann::json* body, nlohmann::json* out) const {
  gateway::HttpCallResult r =
      gateway::HttpCall(method, base_ + target,
                        {{"Authorization", "Bearer " + token_}, {"Accept", "application/json"}},
                        body ? body->dump() : "", "", std::chrono::seconds(10));
  if (r.status == 0) {
    std::cerr << "error: cannot reach the admin API at " << base_ << " (" << source_
              << "): " << r.error << "\n"
              << "help: the gateway must be running (`writ serve`) with `admin:` configured; "
                 "check --admin or admin.listen\n";
    return kExitUsage;
  }
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) {
    std::cerr << "error: " << base_ << " answered HTTP " << r.status
              << " with a body that is not JSON\nhelp: is --admin the gateway's admin address?\n";
    return kExitUsage;
  }
  if (r.status >= 200 && r.status < 300) {
    *out = std::move(j);
    return kExitOk;
  }
  std::string message = j.is_object() ? j.value("message", "") : "";
  std::string help = j.is_object() ? j.value("help", "") : "";
  if (format_ == "json") {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cerr << "error: " << (message.empty() ? "HTTP " + std::to_string(r.status) : message)
              << "\n";
    if (r.status == 401)
      std::cerr << "help: the admin token was refused; check --token-file / WRIT_ADMIN_TOKEN "
                   "against admin.token_sha256 / admin.token_file\n";
    else if (!help.empty())
      std::cerr << "help: " << help << "\n";
  }
  return r.status == 404 || r.status == 409 ? kExitFailure : kExitUsage;
}

}  // namespace writ::cli
