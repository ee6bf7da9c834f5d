// main.cc -- the `writ` command: dispatches to the subcommands registered in cli/*_cmd.cc.
#include <algorithm>
#include <iostream>
#include <vector>

#include "cli/command.h"

namespace writ::cli {
namespace {
std::vector<std::pair<int, CommandSetup>>& Registry() {
  static std::vector<std::pair<int, CommandSetup>> r;
  return r;
}
}  // namespace

CommandRegistrar::CommandRegistrar(int order, CommandSetup setup) {
  Registry().emplace_back(order, std::move(setup));
}

void SetupCommands(CLI::App& app, int* exit_code) {
  auto& r = Registry();
  std::stable_sort(r.begin(), r.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, setup] : r) setup(app, exit_code);
}

}  // namespace writ::cli

int main(int argc, char** argv) {
  CLI::App app{
      "writ: the policy compiler and MCP gateway.\n"
      "Write policies in the Writ language, check them against a schema, and compile them.\n"
      "Docs: docs/cli.md (commands), docs/language.md (the language)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "writ 0.1.0");
  int exit_code = writ::cli::kExitOk;
  writ::cli::SetupCommands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : writ::cli::kExitUsage;
  }
  return exit_code;
}
