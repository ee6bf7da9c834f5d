// command.h -- how a `writ` subcommand plugs into the CLI: each cli/*_cmd.cc defines one
// static CommandRegistrar, so adding a command never edits main.cc.
//
// Exit codes shared by every command: 0 success, 1 policy/test failures, 2 usage or I/O error.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace writ::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// `setup` adds the subcommand to `app` and arranges (via a callback) that running it stores
// the command's exit code in *exit_code.
using CommandSetup = std::function<void(CLI::App& app, int* exit_code)>;

struct CommandRegistrar {
  // `order` sorts commands in `writ --help`.
  CommandRegistrar(int order, CommandSetup setup);
};

// Runs every registered setup in order. Used by main().
void SetupCommands(CLI::App& app, int* exit_code);

}  // namespace writ::cli
