// serve_cmd.cc -- `writ serve --config FILE`: the MCP gateway over Streamable HTTP
// (gateway/http_server.h), or with --stdio one session over stdin/stdout. Loads and
// validates the config, compiles the policies (or loads a bundle), starts the upstream
// servers, proxies newline-delimited JSON-RPC between stdin/stdout and them until stdin
// closes, then shuts the upstreams down. stdout carries protocol messages only; logs go to
// stderr.
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "compiler/compile.h"
#include "compiler/frontend.h"
#include "gateway/audit.h"
#include "gateway/audit_format.h"
#include "gateway/config.h"
#include "gateway/governance.h"
#include "gateway/guards.h"
#include "gateway/http_server.h"
#include "gateway/http_upstream.h"
#include "gateway/identity.h"
#include "gateway/jsonrpc.h"
#include "gateway/proxy.h"
#include "gateway/trace.h"
#include "gateway/upstream.h"
#include "runtime/evaluator.h"

namespace writ::cli {
namespace {

constexpr char kVersion[] = "0.1.0";

struct ServeOptions {
  std::string config;
  bool stdio = false;
};

// The compiled bundle for the config, or null (diagnostics printed).
std::shared_ptr<const runtime::Bundle> LoadPolicies(const gateway::Config& c) {
  std::string bytes, error;
  if (!c.bundle.empty()) {
    if (!ReadFile(c.bundle, &bytes, &error)) {
      std::cerr << "error: " << error << "\n";
      return nullptr;
    }
  } else {
    FrontEnd fe = RunFrontEnd(c.policies, c.schema);
    if (!fe.io_error.empty()) {
      std::cerr << "error: " << fe.io_error << "\n";
      return nullptr;
    }
    if (fe.diags.has_errors()) {
      std::cerr << Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText);
      std::cerr << "writ serve: " << fe.diags.error_count() << " policy error(s); not starting\n";
      return nullptr;
    }
    Diagnostics d;
    CompileResult r;
    if (!Compile(fe.sources, fe.policies, CompileOptions{}, &r, &d)) {
      std::cerr << Render(fe.sources, d.items(), DiagnosticFormat::kText);
      return nullptr;
    }
    bytes = std::move(r.bytes);
  }
  auto b = runtime::Bundle::Load(bytes, &error);
  if (b == nullptr) std::cerr << "error: bundle: " << error << "\n";
  return b;
}

// Opens the audit log when configured. False (reason printed) when it cannot be opened.
bool OpenAudit(const gateway::Config& config, std::shared_ptr<gateway::AuditLog>* out) {
  std::shared_ptr<gateway::AuditLog>& audit = *out;
  if (config.audit.enabled) {
    gateway::AuditOptions aopts = config.audit.options;
    std::string error;
    if (!config.audit.key_file.empty() &&
        !gateway::ReadAuditKeyFile(config.audit.key_file, &aopts.key, &error)) {
      std::cerr << "error: audit.key_file: " << error << "\n";
      return false;
    }
    std::unique_ptr<gateway::AuditLog> log;
    gateway::AuditStatus st = gateway::AuditLog::Open(aopts, &log);
    if (!st.ok()) {
      std::cerr << "error: cannot open the audit log " << aopts.path << ": " << st.message << "\n"
                << "help: fix audit.path (a writable file), or run `writ audit verify "
                << aopts.path << "` if its tail is damaged\n";
      return false;
    }
    if (!log->damaged_path().empty())
      std::cerr << "writ: audit: damaged log moved to " << log->damaged_path()
                << "; a new segment was started\n";
    std::cerr << "writ: audit log " << aopts.path << " (record " << log->last_seq() + 1
              << " next)\n";
    audit = std::move(log);
  }
  return true;
}

void FinishAudit(const std::shared_ptr<gateway::AuditLog>& audit) {
  if (audit == nullptr) return;
  gateway::AuditStatus st = audit->Sync();
  if (!st.ok()) std::cerr << "writ: audit: final sync failed: " << st.message << "\n";
  std::cerr << "writ: audit: " << audit->last_seq() << " records, last hash "
            << audit->last_hash() << "\n";
}

// Starts approvals, kill switch, notifier and the admin API when configured
// (gateway/governance.h). False (reason printed) when one cannot start.
bool StartGovernance(const gateway::Config& config,
                     const std::shared_ptr<gateway::AuditLog>& audit, gateway::Governance* gov) {
  std::string error;
  if (!gateway::StartGovernance(config, audit, gov, &error)) {
    std::cerr << error;
    return false;
  }
  if (gov->admin != nullptr) {
    std::string host = config.admin.host.find(':') != std::string::npos
                           ? "[" + config.admin.host + "]"
                           : config.admin.host;
    std::cerr << "writ: admin API on " << host << ":" << gov->admin->port() << std::endl;
  }
  return true;
}

// Builds the shared tools/call protections (gateway/guards.h). Null (reason printed) on error.
std::shared_ptr<const gateway::Guards> MakeGuards(
    const gateway::Config& config, const std::vector<std::pair<std::string, std::string>>& secrets,
    gateway::Governance* gov) {
  auto guards = std::make_shared<gateway::Guards>();
  std::string error;
  if (!gateway::BuildGuards(config, secrets, gov, guards.get(), &error)) {
    std::cerr << error;
    return nullptr;
  }
  return guards;
}

// Opens the trace when `record:` is configured. False (reason printed) when it cannot be.
bool OpenTrace(const gateway::Config& config, std::shared_ptr<gateway::TraceWriter>* out) {
  if (!config.record.enabled) return true;
  gateway::TraceOptions topts;
  topts.path = config.record.path;
  topts.messages = config.record.messages;
  topts.secrets = config.audit.options.secrets;  // traces hold no secrets either
  topts.writ_version = kVersion;
  std::string error;
  *out = gateway::TraceWriter::Open(topts, &error);
  if (*out == nullptr) {
    std::cerr << "error: record.path: " << error
              << "\nhelp: fix record.path (a writable file) or remove `record:`\n";
    return false;
  }
  std::cerr << "writ: recording a trace to " << topts.path << "\n";
  return true;
}

// `writ serve` without --stdio: Streamable HTTP (gateway/http_server.h) until SIGINT/SIGTERM.
int RunServeHttp(const ServeOptions& o) {
  gateway::Config config;
  std::string errors;
  if (!gateway::LoadConfig(o.config, &config, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  std::shared_ptr<const gateway::Authenticator> auth;
  if (!config.identity.is_null()) {
    std::string error;
    std::string dir = std::filesystem::path(o.config).parent_path().string();
    auth = gateway::Authenticator::Create(config.identity, dir, &error);
    if (auth == nullptr) {
      std::cerr << "error: " << error << "\n";
      return kExitUsage;
    }
  } else if (!config.http.allow_anonymous) {
    std::cerr << "error: " << o.config
              << ": the HTTP transport needs `identity:` (who may call) and none is configured\n"
                 "help: configure `identity:` (docs/identity.md), or set `http: { "
                 "allow_anonymous: true }` to serve every caller as stdio_principal (local "
                 "use only)\n";
    return kExitUsage;
  }
  std::shared_ptr<const runtime::Bundle> bundle = LoadPolicies(config);
  if (bundle == nullptr) return kExitFailure;
  std::vector<std::pair<std::string, std::string>> secrets;
  if (!gateway::ResolveSecrets(&config, &secrets, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  std::shared_ptr<gateway::AuditLog> audit;
  if (!OpenAudit(config, &audit)) return kExitUsage;
  gateway::Governance gov;
  if (!StartGovernance(config, audit, &gov)) return kExitUsage;
  std::shared_ptr<const gateway::Guards> guards = MakeGuards(config, secrets, &gov);
  if (guards == nullptr) return kExitUsage;
  std::shared_ptr<gateway::TraceWriter> trace;
  if (!OpenTrace(config, &trace)) return kExitUsage;

  gateway::HttpServerOptions hopts;
  hopts.config = config;
  hopts.bundle = bundle;
  hopts.audit = audit;
  hopts.guards = guards;
  hopts.auth = auth;
  hopts.version = kVersion;
  hopts.trace = trace;
  gateway::HttpServer server(std::move(hopts));
  std::string error;
  if (!server.Listen(&error)) {
    std::cerr << "error: " << error << "\n";
    return kExitFailure;
  }
  std::string host = config.http.host.find(':') != std::string::npos
                         ? "[" + config.http.host + "]"
                         : config.http.host;
  std::cerr << "writ: listening on " << host << ":" << server.port() << " (path "
            << config.http.path << (auth == nullptr ? ", anonymous" : "") << ")" << std::endl;

  boost::asio::io_context sig_ioc;
  boost::asio::signal_set signals(sig_ioc, SIGINT, SIGTERM);
  signals.async_wait([&server](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    std::cerr << "writ: signal " << sig << "; shutting down\n";
    server.Stop();
  });
  std::thread sig_thread([&sig_ioc] { sig_ioc.run(); });
  server.Run();
  sig_ioc.stop();
  sig_thread.join();
  gov.Stop();
  FinishAudit(audit);
  std::cerr << "writ: stopped\n";
  return kExitOk;
}

int RunServeStdio(const ServeOptions& o) {
  gateway::Config config;
  std::string errors;
  if (!gateway::LoadConfig(o.config, &config, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  std::shared_ptr<const runtime::Bundle> bundle = LoadPolicies(config);
  if (bundle == nullptr) return kExitFailure;

  // The audit log is opened before any upstream starts: a gateway that cannot audit does not
  // serve (exit 2 with the reason).
  std::vector<std::pair<std::string, std::string>> secrets;
  if (!gateway::ResolveSecrets(&config, &secrets, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  std::shared_ptr<gateway::AuditLog> audit;
  if (!OpenAudit(config, &audit)) return kExitUsage;
  gateway::Governance gov;
  if (!StartGovernance(config, audit, &gov)) return kExitUsage;
  std::shared_ptr<const gateway::Guards> guards = MakeGuards(config, secrets, &gov);
  if (guards == nullptr) return kExitUsage;
  std::shared_ptr<gateway::TraceWriter> trace;
  if (!OpenTrace(config, &trace)) return kExitUsage;

  std::mutex out_mu;
  auto write_client = [&out_mu](const std::string& line) {
    std::lock_guard<std::mutex> lock(out_mu);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };
  gateway::ProxyOptions popts;
  popts.principal = config.stdio_principal;
  popts.identity = {{"auth", "stdio"}};
  popts.limits = config.limits;
  popts.version = kVersion;
  popts.audit = audit;
  popts.guards = guards;
  popts.trace = trace;
  gateway::Proxy proxy(popts, bundle, write_client);

  std::vector<std::unique_ptr<gateway::ChildProcess>> children;
  std::vector<std::unique_ptr<gateway::HttpUpstream>> remotes;  // upstreams with `url:`
  for (const auto& u : config.upstreams) {
    if (!u.url.empty()) {
      remotes.push_back(std::make_unique<gateway::HttpUpstream>(
          gateway::HttpUpstreamSpecFor(u, config.limits)));
      gateway::HttpUpstream* raw = remotes.back().get();
      proxy.AddUpstream(u.name, [raw](const std::string& line) { return raw->Send(line); });
      children.push_back(nullptr);
      continue;
    }
    gateway::ChildSpec spec{u.name, u.command, u.args, u.env, config.limits.max_message_bytes};
    auto child = std::make_unique<gateway::ChildProcess>(spec);
    gateway::ChildProcess* raw = child.get();
    proxy.AddUpstream(u.name, [raw](const std::string& line) { return raw->Send(line); });
    children.push_back(std::move(child));
  }
  for (size_t i = 0, r = 0; i < children.size(); ++i) {
    gateway::ChildProcess* raw = children[i].get();
    std::string error;
    if (raw == nullptr) {
      auto on_line = [&proxy, i](std::string_view line) { proxy.OnUpstreamLine(i, line); };
      auto on_exit = [&proxy, i](const std::string& why) { proxy.OnUpstreamExit(i, why); };
      if (!remotes[r++]->Start(on_line, on_exit, &error)) {
        std::cerr << "writ: upstream " << config.upstreams[i].name << ": " << error << "\n";
        proxy.OnUpstreamExit(i, "could not be started (" + error + ")");
      }
      continue;
    }
    bool ok = raw->Start([&proxy, i](std::string_view line) { proxy.OnUpstreamLine(i, line); },
                         [&proxy, i](int status) {
                           proxy.OnUpstreamExit(i, gateway::DescribeExit(status));
                         },
                         &error);
    if (!ok) {
      std::cerr << "writ: upstream " << config.upstreams[i].name << ": " << error << "\n";
      proxy.OnUpstreamExit(i, "could not be started (" + error + ")");
    } else {
      std::cerr << "writ: started upstream " << config.upstreams[i].name << " (pid " << raw->pid()
                << ")\n";
    }
  }

  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    auto last_sync = std::chrono::steady_clock::now();
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      proxy.Tick();
      // audit.fsync: interval syncs on a timer too, so a quiet period leaves nothing unsynced.
      if (audit != nullptr && audit->options().fsync == gateway::AuditFsync::kInterval &&
          std::chrono::steady_clock::now() - last_sync >= audit->options().fsync_interval) {
        audit->Sync();
        last_sync = std::chrono::steady_clock::now();
      }
    }
  });

  gateway::LineSplitter splitter(config.limits.max_message_bytes,
                                 [&](std::string_view line, bool oversized) {
                                   proxy.OnClientLine(line, oversized);
                                 });
  char buf[65536];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    splitter.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  splitter.Finish();
  std::cerr << "writ: stdin closed; shutting down upstreams\n";
  for (auto& c : children)
    if (c != nullptr) c->Shutdown(std::chrono::milliseconds(2000));
  for (auto& r : remotes) r->Shutdown();
  stop = true;
  ticker.join();
  gov.Stop();
  FinishAudit(audit);
  return kExitOk;
}

CommandRegistrar reg_serve(60, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Run the MCP gateway (Streamable HTTP, or --stdio).");
  cmd->footer(
      "The configuration is described in docs/gateway.md.\n"
      "Examples:\n  writ serve --config writ.yaml          # HTTP on http.listen\n"
      "  writ serve --stdio --config writ.yaml  # one session on stdin/stdout");
  cmd->add_option("--config,-c", o->config, "Gateway configuration (YAML)")->required();
  cmd->add_flag("--stdio", o->stdio, "Serve one MCP session on stdin/stdout");
  cmd->callback([o, exit_code] {
    *exit_code = o->stdio ? RunServeStdio(*o) : RunServeHttp(*o);
  });
});

}  // namespace
}  // namespace writ::cli
