// build_cmd.cc -- `writ build`, `writ eval`, `writ explain`, `writ disasm`: compile policies to
// a bundle, decide a request with it, explain the decision, and print the bytecode.
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "runtime/evaluator.h"

namespace writ::cli {
namespace {

struct BackendOptions {
  std::vector<std::string> paths;
  std::string schema, output, bundle, request, dump;
  bool list = false;
};

// Front end + back end; prints diagnostics. Returns an exit code (kExitOk on success).
int CompilePaths(const BackendOptions& o, CompileResult* out) {
  FrontEnd fe = RunFrontEnd(o.paths, o.schema);
  if (!fe.io_error.empty()) {
    std::cerr << "error: " << fe.io_error << "\n";
    return kExitUsage;
  }
  if (fe.diags.has_errors()) {
    std::cerr << Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText);
    std::cerr << "writ: " << fe.diags.error_count() << " error(s); nothing was compiled\n";
    return kExitFailure;
  }
  Diagnostics d;
  if (!Compile(fe.sources, fe.policies, CompileOptions{}, out, &d)) {
    std::cerr << Render(fe.sources, d.items(), DiagnosticFormat::kText);
    return kExitFailure;
  }
  return kExitOk;
}

int LoadBundle(const BackendOptions& o, std::shared_ptr<const runtime::Bundle>* out) {
  std::string bytes, error;
  if (!o.bundle.empty()) {
    if (!ReadFile(o.bundle, &bytes, &error)) {
      std::cerr << "error: " << error << "\n";
      return kExitUsage;
    }
  } else {
    if (o.paths.empty()) {
      std::cerr << "error: give --bundle FILE or policy PATHs\n";
      return kExitUsage;
    }
    CompileResult r;
    if (int rc = CompilePaths(o, &r); rc != kExitOk) return rc;
    bytes = std::move(r.bytes);
  }
  *out = runtime::Bundle::Load(bytes, &error);
  if (*out == nullptr) {
    std::cerr << "error: " << (o.bundle.empty() ? "compiled bundle" : o.bundle) << ": " << error
              << "\nhelp: rebuild it with `writ build -o BUNDLE POLICIES`\n";
    return kExitUsage;
  }
  return kExitOk;
}

int ReadRequest(const std::string& path, nlohmann::json* out) {
  std::string text, error;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else if (!ReadFile(path, &text, &error)) {
    std::cerr << "error: " << error << "\n";
    return kExitUsage;
  }
  *out = nlohmann::json::parse(text, nullptr, false);
  if (out->is_discarded()) {
    std::cerr << "error: " << path << " is not valid JSON\nhelp: see docs/semantics.md for the request form\n";
    return kExitUsage;
  }
  return kExitOk;
}

int RunBuild(const BackendOptions& o) {
  CompileResult r;
  if (int rc = CompilePaths(o, &r); rc != kExitOk) return rc;
  if (o.dump == "dag") std::cout << r.dag_dump;
  if (o.dump == "bytecode") {
    std::string error;
    auto b = runtime::Bundle::Load(r.bytes, &error);
    if (b == nullptr) {
      std::cerr << "internal error: the compiled bundle does not verify: " << error << "\n";
      return kExitUsage;
    }
    std::cout << runtime::Disassemble(*b);
  }
  if (!o.output.empty()) {
    std::ofstream f(o.output, std::ios::binary | std::ios::trunc);
    f.write(r.bytes.data(), static_cast<std::streamsize>(r.bytes.size()));
    f.close();
    if (!f) {
      std::cerr << "error: cannot write " << o.output << "\n";
      return kExitUsage;
    }
    std::cerr << "writ build: wrote " << o.output << " (" << r.bytes.size() << " bytes)\n";
  }
  return kExitOk;
}

int RunEval(const BackendOptions& o, bool explain) {
  std::shared_ptr<const runtime::Bundle> b;
  if (int rc = LoadBundle(o, &b); rc != kExitOk) return rc;
  nlohmann::json request;
  if (int rc = ReadRequest(o.request, &request); rc != kExitOk) return rc;
  runtime::PreparedRequest req;
  std::string error;
  if (!runtime::PrepareRequest(*b, request, &req, &error)) {
    std::cerr << "error: " << o.request << ": " << error << "\n";
    return kExitUsage;
  }
  if (explain) {
    std::cout << runtime::Explain(*b, req);
    return kExitOk;
  }
  if (o.list) {
    std::cout << nlohmann::json{{"visibility", runtime::VisibilityName(runtime::ListVisibility(*b, req))}}.dump()
              << "\n";
    return kExitOk;
  }
  runtime::Decision d = runtime::Evaluate(*b, req);
  std::cout << runtime::DecisionToJson(*b, req, d).dump(2) << "\n";
  return kExitOk;
}

void AddPolicyInputs(CLI::App* cmd, BackendOptions* o) {
  cmd->add_option("paths", o->paths, "Policy files or directories (searched for *.writ)");
  cmd->add_option("--schema,-s", o->schema, "Schema file to type check against (docs/schema.md)");
}

CommandRegistrar reg_build(30, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BackendOptions>();
  CLI::App* cmd = app.add_subcommand("build", "Compile policies to a verified bytecode bundle.");
  cmd->footer("Examples:\n  writ build -o policies.wbundle policies/\n  writ build --dump=dag policies/");
  AddPolicyInputs(cmd, o.get());
  cmd->add_option("-o,--output", o->output, "Bundle file to write");
  cmd->add_option("--dump", o->dump, "Print an intermediate form")->check(CLI::IsMember({"dag", "bytecode"}));
  cmd->callback([o, exit_code] {
    if (o->paths.empty()) {
      std::cerr << "error: no policy paths given\n";
      *exit_code = kExitUsage;
      return;
    }
    *exit_code = RunBuild(*o);
  });
});

CommandRegistrar reg_eval(31, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BackendOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Decide one request (JSON) and print the decision as JSON.");
  cmd->footer(
      "The request form and the decision form are in docs/semantics.md.\n"
      "Examples:\n  writ eval --bundle policies.wbundle --request req.json\n"
      "  writ eval policies/ --request req.json --list   # list-time visibility");
  AddPolicyInputs(cmd, o.get());
  cmd->add_option("--bundle,-b", o->bundle, "A bundle from `writ build` (instead of PATHs)");
  cmd->add_option("--request,-r", o->request, "Request JSON file, or - for stdin")->required();
  cmd->add_flag("--list", o->list, "Print list-time visibility (args unknown) instead");
  cmd->callback([o, exit_code] { *exit_code = RunEval(*o, false); });
});

CommandRegistrar reg_explain(32, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BackendOptions>();
  CLI::App* cmd = app.add_subcommand("explain", "Explain a decision: the DAG path and the statements that decided it.");
  AddPolicyInputs(cmd, o.get());
  cmd->add_option("--bundle,-b", o->bundle, "A bundle from `writ build` (instead of PATHs)");
  cmd->add_option("--request,-r", o->request, "Request JSON file, or - for stdin")->required();
  cmd->callback([o, exit_code] { *exit_code = RunEval(*o, true); });
});

CommandRegistrar reg_disasm(33, [](CLI::App& app, int* exit_code) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("disasm", "Verify a bundle and print its tables and bytecode.");
  cmd->add_option("bundle", *path, "Bundle file")->required();
  cmd->callback([path, exit_code] {
    std::string bytes, error;
    if (!ReadFile(*path, &bytes, &error)) {
      std::cerr << "error: " << error << "\n";
      *exit_code = kExitUsage;
      return;
    }
    auto b = runtime::Bundle::Load(bytes, &error);
    if (b == nullptr) {
      std::cerr << "error: " << *path << ": " << error << "\n";
      *exit_code = kExitFailure;
      return;
    }
    std::cout << runtime::Disassemble(*b);
    *exit_code = kExitOk;
  });
});

}  // namespace
}  // namespace writ::cli
