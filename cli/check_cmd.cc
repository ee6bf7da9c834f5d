// check_cmd.cc -- `writ check [--schema S] [--format text|json|github] [--dump=ast] PATH...`
//
// Parses and type checks policies. Exit: 0 no errors, 1 policy errors, 2 usage or I/O error.
#include <iostream>

#include "cli/command.h"
#include "compiler/ast_dump.h"
#include "compiler/frontend.h"

namespace writ::cli {
namespace {

struct CheckOptions {
  std::vector<std::string> paths;
  std::string schema;
  std::string format = "text";
  std::string dump;
};

int RunCheck(const CheckOptions& o) {
  FrontEnd fe = RunFrontEnd(o.paths, o.schema);
  if (!fe.io_error.empty()) {
    std::cerr << "error: " << fe.io_error << "\n";
    return kExitUsage;
  }
  DiagnosticFormat fmt = o.format == "json"     ? DiagnosticFormat::kJson
                         : o.format == "github" ? DiagnosticFormat::kGithub
                                                : DiagnosticFormat::kText;
  if (o.dump == "ast") std::cout << ast::DumpPolicySet(fe.policies);
  std::string rendered = Render(fe.sources, fe.diags.items(), fmt);
  if (fmt == DiagnosticFormat::kText) {
    std::cerr << rendered;
    size_t errors = fe.diags.error_count();
    size_t statements = fe.policies.AllStatements().size();
    if (errors > 0) {
      std::cerr << "writ check: " << errors << " error" << (errors == 1 ? "" : "s") << " in "
                << fe.sources.files().size() << " file(s)\n";
    } else {
      std::cerr << "writ check: ok, " << statements << " statement" << (statements == 1 ? "" : "s")
                << " in " << fe.sources.files().size() << " file(s)\n";
    }
  } else {
    std::cout << rendered;
  }
  return fe.diags.has_errors() ? kExitFailure : kExitOk;
}

CommandRegistrar reg(10, [](CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<CheckOptions>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Parse and type check policies; report every error with a fix hint.");
  cmd->footer(
      "Exit codes: 0 no errors, 1 policy errors, 2 usage or I/O error.\n"
      "Examples:\n"
      "  writ check policies/\n"
      "  writ check --schema policies/schema.yaml --format github policies/");
  cmd->add_option("paths", opts->paths, "Policy files or directories (searched for *.writ)")
      ->required();
  cmd->add_option("--schema,-s", opts->schema, "Schema file (YAML or JSON), see docs/schema.md");
  cmd->add_option("--format,-f", opts->format, "Diagnostic format")
      ->check(CLI::IsMember({"text", "json", "github"}));
  cmd->add_option("--dump", opts->dump, "Print an intermediate form to stdout")
      ->check(CLI::IsMember({"ast"}));
  cmd->callback([opts, exit_code] { *exit_code = RunCheck(*opts); });
});

}  // namespace
}  // namespace writ::cli
