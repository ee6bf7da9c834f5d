// lock_cmd.cc -- `writ lock --config FILE [-o LOCKFILE] [--check] [--timeout MS]`
//
// Starts every configured upstream, lists its tools (gateway/tool_fetch.h) and writes the
// lockfile of their canonical hashes (gateway/tool_integrity.h, docs/integrity.md); with
// --check, compares instead and prints the drift. Poisoning findings and tool shadowing are
// printed as warnings on stderr (they do not change the exit code).
// Exit: 0 written / no drift, 1 drift (--check), 2 usage, config, I/O or upstream error.
#include <filesystem>
#include <iostream>
#include <map>

#include "cli/command.h"
#include "gateway/config.h"
#include "gateway/tool_fetch.h"
#include "gateway/tool_integrity.h"

namespace writ::cli {
namespace {

struct LockOptions {
  std::string config;
  std::string out;
  bool check = false;
  int timeout_ms = 0;  // 0: limits.upstream_timeout_ms of the config
};

int RunLock(const LockOptions& o) {
  gateway::Config config;
  std::string errors;
  if (!gateway::LoadConfig(o.config, &config, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  std::string path = o.out;
  if (path.empty() && config.lock.enabled) path = config.lock.file;
  if (path.empty()) {
    std::string dir = std::filesystem::path(o.config).parent_path().string();
    path = dir.empty() ? "writ.lock" : dir + "/writ.lock";
  }
  auto timeout = std::chrono::milliseconds(o.timeout_ms > 0 ? o.timeout_ms
                                                            : config.limits.upstream_timeout_ms);
  gateway::Lockfile live;
  std::map<std::string, std::vector<nlohmann::json>> by_server;
  int failed = 0;
  for (const auto& u : config.upstreams) {
    gateway::FetchedTools fetched;
    std::string error;
    if (!gateway::FetchUpstreamTools(u, timeout, &fetched, &error)) {
      std::cerr << "error: upstream " << u.name << ": " << error << "\n"
                << "help: check `upstreams` in " << o.config
                << " (command, args, env); the lockfile needs every upstream\n";
      ++failed;
      continue;
    }
    for (const auto& w : fetched.warnings)
      std::cerr << "warning: upstream " << u.name << ": " << w << "\n";
    for (const auto& t : fetched.tools) {
      live.Add(u.name, t);
      for (const auto& f : gateway::ScanToolDefinition(t))
        std::cerr << "warning: " << u.name << "__" << t["name"].get<std::string>() << ": " << f.kind
                  << " at " << (f.path.empty() ? "/" : f.path) << ": " << f.excerpt << "\n";
    }
    by_server[u.name] = std::move(fetched.tools);
  }
  if (failed > 0) {
    std::cerr << "writ lock: " << failed << " upstream(s) could not be listed; nothing "
              << (o.check ? "checked" : "written") << "\n";
    return kExitUsage;
  }
  for (const auto& s : gateway::FindShadowing(by_server)) {
    std::string servers;
    for (const auto& n : s.servers) servers += (servers.empty() ? "" : ", ") + n;
    std::cerr << "warning: tool shadowing (" << s.how << "): `" << s.tool << "` on " << servers
              << "\n";
  }
  if (o.check) {
    gateway::Lockfile lock;
    std::string error;
    if (!gateway::LoadLock(path, &lock, &error)) {
      std::cerr << "error: " << error;
      return kExitUsage;
    }
    std::vector<gateway::Drift> drift = gateway::CheckAgainstLock(lock, live);
    if (drift.empty()) {
      std::cout << "writ lock: ok, " << live.tools.size() << " tools match " << path << "\n";
      return kExitOk;
    }
    int counts[3] = {0, 0, 0};
    for (const auto& d : drift) ++counts[static_cast<int>(d.kind)];
    std::cout << gateway::FormatDrift(drift);
    std::cout << "writ lock: drift from " << path << ": " << counts[0] << " new, " << counts[1]
              << " changed, " << counts[2] << " removed\n"
              << "help: review the changes, then run `writ lock --config " << o.config
              << "` to accept them\n";
    return kExitFailure;
  }
  std::string error;
  if (!gateway::WriteLock(path, live, &error)) {
    std::cerr << "error: " << error << "\n";
    return kExitUsage;
  }
  std::cout << "writ lock: wrote " << live.tools.size() << " tools from " << config.upstreams.size()
            << " upstream(s) to " << path << "\n";
  return kExitOk;
}

CommandRegistrar reg(75, [](CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<LockOptions>();
  CLI::App* cmd = app.add_subcommand(
      "lock", "Pin the upstreams' tool definitions in a lockfile, or check them against it.");
  cmd->footer(
      "Exit codes: 0 written (or, with --check, no drift), 1 drift, 2 usage, config, I/O or\n"
      "upstream error. The lockfile defaults to lock.file of the config, else writ.lock beside\n"
      "it (docs/integrity.md).\n"
      "Examples:\n"
      "  writ lock --config writ.yaml\n"
      "  writ lock --config writ.yaml --check      # in CI");
  cmd->add_option("--config,-c", opts->config, "Gateway configuration (YAML)")->required();
  cmd->add_option("-o,--output", opts->out, "Lockfile to write (or read with --check)");
  cmd->add_flag("--check", opts->check,
                "Compare the live tools with the lockfile; exit 1 and print the drift");
  cmd->add_option("--timeout", opts->timeout_ms,
                  "Per-request timeout in ms (default: limits.upstream_timeout_ms)")
      ->check(CLI::Range(1, 3600000));
  cmd->callback([opts, exit_code] { *exit_code = RunLock(*opts); });
});

}  // namespace
}  // namespace writ::cli
