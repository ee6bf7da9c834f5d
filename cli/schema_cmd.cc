// schema_cmd.cc -- `writ schema import --server NAME FILE [-o OUT] [--format yaml|json]`
//
// Turns a captured MCP `tools/list` result into a schema fragment with one `tools:` entry per
// tool (args typed from its inputSchema; mapping in docs/schema.md). Exit: 0 written (warnings
// about degraded JSON-Schema constructs go to stderr), 1 input is not a tools/list result,
// 2 usage or I/O error.
#include <fstream>
#include <iostream>

#include "base/source.h"
#include "cli/command.h"
#include "compiler/schema.h"

namespace writ::cli {
namespace {

struct ImportOptions {
  std::string server;
  std::string input;
  std::string output;
  std::string format;  // yaml | json; default from the output extension, else yaml
};

int RunImport(const ImportOptions& o) {
  if (o.server.empty() || o.server.find("__") != std::string::npos) {
    std::cerr << "error: --server must be a non-empty name without `__`\n";
    return kExitUsage;
  }
  std::string text, err;
  if (!ReadFile(o.input, &text, &err)) {
    std::cerr << "error: " << err << "\n";
    return kExitUsage;
  }
  bool as_json = o.format == "json" ||
                 (o.format.empty() && o.output.size() > 5 &&
                  o.output.compare(o.output.size() - 5, 5, ".json") == 0);
  ToolsImport r = ImportToolsList(text, o.server, as_json);
  for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
  if (!r.error.empty()) {
    std::cerr << "error: " << o.input << ": " << r.error << "\n";
    return kExitFailure;
  }
  if (o.output.empty() || o.output == "-") {
    std::cout << r.text;
  } else {
    std::ofstream f(o.output, std::ios::binary);
    f << r.text;
    if (!f) {
      std::cerr << "error: cannot write " << o.output << "\n";
      return kExitUsage;
    }
  }
  std::cerr << "writ schema import: " << r.tools << " tool" << (r.tools == 1 ? "" : "s")
            << " from server `" << o.server << "`\n";
  return kExitOk;
}

CommandRegistrar reg(15, [](CLI::App& app, int* exit_code) {
  CLI::App* schema = app.add_subcommand("schema", "Work with schemas (see docs/schema.md).");
  schema->require_subcommand(1);
  auto opts = std::make_shared<ImportOptions>();
  CLI::App* imp = schema->add_subcommand(
      "import", "Turn a captured MCP tools/list result into a schema `tools:` fragment.");
  imp->footer(
      "Exit codes: 0 written, 1 input is not a tools/list result, 2 usage or I/O error.\n"
      "Example:\n"
      "  writ schema import --server stripe stripe-tools.json -o schema/stripe.yaml");
  imp->add_option("--server", opts->server, "Server name; tools become SERVER__tool")
      ->required();
  imp->add_option("file", opts->input, "JSON file: {\"tools\":[...]} or a JSON-RPC response")
      ->required();
  imp->add_option("-o,--output", opts->output, "Output file (default: stdout)");
  imp->add_option("--format", opts->format, "Output format (default: from -o extension, else yaml)")
      ->check(CLI::IsMember({"yaml", "json"}));
  imp->callback([opts, exit_code] { *exit_code = RunImport(*opts); });
});

}  // namespace
}  // namespace writ::cli
