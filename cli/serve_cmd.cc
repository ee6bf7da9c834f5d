// serve_cmd.cc -- `writ serve --config FILE`: the MCP gateway over Streamable HTTP
// (gateway/http_server.h), or with --stdio one session over stdin/stdout. Loads and
// validates the config, compiles the policies (or loads a bundle), starts the upstream
// servers, proxies newline-delimited JSON-RPC between stdin/stdout and them until stdin
// closes, then shuts the upstreams down. stdout carries protocol messages only; logs go to
// stderr.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
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
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/trace.h"
#include "gateway/reload.h"
#include "gateway/rotation.h"
#include "gateway/supervisor.h"
#include "gateway/upstream.h"
#include "runtime/evaluator.h"

namespace writ::cli {
namespace {

constexpr char kVersion[] = "0.1.0";

struct ServeOptions {
  std::string config;
  bool stdio = false;
};

// The compiled (or read) and verified bundle for the config, or null with the rendered
// diagnostics in *diags. Used at start and by every reload (gateway/reload.h).
std::shared_ptr<const runtime::Bundle> BuildBundle(const gateway::Config& c, std::string* diags) {
  std::string bytes, error;
  if (!c.bundle.empty()) {
    if (!ReadFile(c.bundle, &bytes, &error)) {
      *diags = "error: " + error + "\n";
      return nullptr;
    }
  } else {
    FrontEnd fe = RunFrontEnd(c.policies, c.schema);
    if (!fe.io_error.empty()) {
      *diags = "error: " + fe.io_error + "\n";
      return nullptr;
    }
    if (fe.diags.has_errors()) {
      *diags = Render(fe.sources, fe.diags.items(), DiagnosticFormat::kText) +
               std::to_string(fe.diags.error_count()) + " policy error(s)\n";
      return nullptr;
    }
    Diagnostics d;
    CompileResult r;
    if (!Compile(fe.sources, fe.policies, CompileOptions{}, &r, &d)) {
      *diags = Render(fe.sources, d.items(), DiagnosticFormat::kText);
      return nullptr;
    }
    bytes = std::move(r.bytes);
  }
  auto b = runtime::Bundle::Load(bytes, &error);
  if (b == nullptr) *diags = "error: bundle: " + error + "\n";
  return b;
}

// The bundle at start, or null (diagnostics printed).
std::shared_ptr<const runtime::Bundle> LoadPolicies(const gateway::Config& c) {
  std::string diags;
  auto b = BuildBundle(c, &diags);
  if (b == nullptr) std::cerr << diags << "writ serve: the policies did not load; not starting\n";
  return b;
}

// The reloader for `config` (SIGHUP and, with reload.watch, file changes), started.
std::unique_ptr<gateway::PolicyReloader> StartReloader(
    const gateway::Config& config, std::shared_ptr<gateway::BundleHolder> holder,
    std::shared_ptr<gateway::AuditLog> audit) {
  std::vector<std::string> watched = config.policies;
  if (!config.bundle.empty()) watched = {config.bundle};
  if (!config.schema.empty()) watched.push_back(config.schema);
  auto r = std::make_unique<gateway::PolicyReloader>(
      std::move(holder), [config](std::string* diags) { return BuildBundle(config, diags); },
      std::move(watched), config.reload, std::move(audit));
  r->Start();
  return r;
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
      gateway::LogWarn("audit: damaged log moved to " + log->damaged_path() +
                       "; a new segment was started");
    gateway::LogInfo("audit log " + aopts.path + " (record " +
                     std::to_string(log->last_seq() + 1) + " next)");
    audit = std::move(log);
  }
  return true;
}

void FinishAudit(const std::shared_ptr<gateway::AuditLog>& audit) {
  if (audit == nullptr) return;
  gateway::AuditStatus st = audit->Sync();
  if (!st.ok()) gateway::LogError("audit: final sync failed: " + st.message);
  gateway::LogInfo("audit: " + std::to_string(audit->last_seq()) + " records, last hash " +
                       audit->last_hash(),
                   {{"records", audit->last_seq()}, {"last_hash", audit->last_hash()}});
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
    // Prometheus metrics (docs/gateway.md, "Metrics") behind the admin token; a liveness probe
    // without it.
    gov->admin->AddRoute("GET", "/metrics", [](const gateway::AdminRequest&) {
      gateway::AdminResponse r;
      r.body = gateway::Metrics::Global().Render();
      r.content_type = gateway::kMetricsContentType;
      return r;
    });
    gov->admin->AddRoute(
        "GET", "/healthz",
        [](const gateway::AdminRequest&) {
          return gateway::AdminResponse::Json(200, {{"status", "ok"}});
        },
        gateway::AdminServer::Auth::kNone);
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
  // Upstream credentials never reach the log either (an upstream may print its env). The
  // holder is read per line, so a credential rotation covers the log too.
  if (guards->scrub != nullptr) {
    std::shared_ptr<gateway::ScrubberHolder> scrub = guards->scrub;
    gateway::SetLogScrubber([scrub](std::string* line) { scrub->ScrubString(line); });
  }
  return guards;
}

// The credential rotator run on SIGHUP (gateway/rotation.h), or null when no secrets are
// configured. `raw`: the config before ResolveSecrets; `config`: after.
std::unique_ptr<gateway::SecretRotator> MakeRotator(
    const gateway::Config& raw, const gateway::Config& config,
    const std::vector<std::pair<std::string, std::string>>& secrets,
    const std::shared_ptr<const gateway::Guards>& guards,
    const std::shared_ptr<gateway::AuditLog>& audit) {
  auto r = std::make_unique<gateway::SecretRotator>(raw, config.upstreams, secrets,
                                                    guards->scrub, audit);
  if (!r->enabled()) return nullptr;
  return r;
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

// What both serve modes start after the policies load, in order: credentials resolved, the
// audit log (a gateway that cannot audit does not serve), approvals / kill switch / admin API,
// the tools/call guards, the credential rotator and the trace.
struct Services {
  std::shared_ptr<gateway::AuditLog> audit;
  gateway::Governance gov;
  std::shared_ptr<const gateway::Guards> guards;
  std::unique_ptr<gateway::SecretRotator> rotator;
  std::shared_ptr<gateway::TraceWriter> trace;
};

// Resolves `${secret:NAME}` in *config in place and starts the services. False (reason
// printed; exit 2) when one cannot start.
bool StartServices(gateway::Config* config, Services* s) {
  std::vector<std::pair<std::string, std::string>> secrets;
  const gateway::Config raw_config = *config;  // references unresolved: for rotation
  std::string errors;
  if (!gateway::ResolveSecrets(config, &secrets, &errors)) {
    std::cerr << errors;
    return false;
  }
  if (!OpenAudit(*config, &s->audit)) return false;
  if (!StartGovernance(*config, s->audit, &s->gov)) return false;
  s->guards = MakeGuards(*config, secrets, &s->gov);
  if (s->guards == nullptr) return false;
  s->rotator = MakeRotator(raw_config, *config, secrets, s->guards, s->audit);
  return OpenTrace(*config, &s->trace);
}

// `writ serve` without --stdio: Streamable HTTP (gateway/http_server.h) until SIGINT/SIGTERM.
int RunServeHttp(const ServeOptions& o) {
  gateway::Config config;
  std::string errors;
  if (!gateway::LoadConfig(o.config, &config, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  gateway::ConfigureLog(config.log.format, config.log.level);
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
  Services svc;
  if (!StartServices(&config, &svc)) return kExitUsage;
  std::shared_ptr<gateway::AuditLog>& audit = svc.audit;
  gateway::Governance& gov = svc.gov;
  std::shared_ptr<const gateway::Guards>& guards = svc.guards;
  std::unique_ptr<gateway::SecretRotator>& rotator = svc.rotator;
  std::shared_ptr<gateway::TraceWriter>& trace = svc.trace;

  auto holder = std::make_shared<gateway::BundleHolder>(bundle);
  gateway::HttpServerOptions hopts;
  hopts.config = config;
  hopts.bundle = bundle;
  hopts.bundles = holder;
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
  gateway::LogInfo("listening on " + host + ":" + std::to_string(server.port()) + " (path " +
                   config.http.path + (auth == nullptr ? ", anonymous" : "") + ")");
  std::unique_ptr<gateway::PolicyReloader> reloader = StartReloader(config, holder, audit);

  // SIGHUP reloads the policies; SIGINT/SIGTERM drain (503 for new requests, in-flight calls
  // get shutdown.drain_timeout) and stop.
  boost::asio::io_context sig_ioc;
  boost::asio::signal_set signals(sig_ioc, SIGHUP, SIGINT, SIGTERM);
  std::thread drain_thread;  // started by the first SIGINT/SIGTERM
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          gateway::LogInfo("SIGHUP: reloading the policies");
          reloader->Trigger("sighup");
          if (rotator != nullptr) {
            gateway::RotationResult rr = rotator->Rotate("sighup");
            if (rr.ok && !rr.changed_upstreams.empty())
              server.RotateUpstreams(rr.upstreams, rr.changed_upstreams);
          }
          signals.async_wait(on_signal);
          return;
        }
        if (drain_thread.joinable()) {  // a second signal: stop without waiting
          gateway::LogWarn("second signal; stopping now", {{"signal", sig}});
          server.Stop();
          return;
        }
        gateway::LogInfo("signal; no new requests, draining", {{"signal", sig}});
        drain_thread = std::thread([&server, &config] {
          server.Drain(std::chrono::milliseconds(config.shutdown.drain_timeout_ms));
          gateway::LogInfo("shutting down");
          server.Stop();
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  std::thread sig_thread([&sig_ioc] { sig_ioc.run(); });
  server.Run();
  sig_ioc.stop();
  sig_thread.join();
  if (drain_thread.joinable()) drain_thread.join();
  reloader->Stop();
  gov.Stop();
  FinishAudit(audit);
  gateway::LogInfo("stopped");
  return kExitOk;
}

// Waits until `proxy` has no client request in flight or `timeout` passes. True if drained.
bool Drain(gateway::Proxy& proxy, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  int n = proxy.InFlight();
  if (n > 0)
    gateway::LogInfo("draining in-flight calls",
                     {{"in_flight", n}, {"timeout_ms", timeout.count()}});
  while ((n = proxy.InFlight()) > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (n > 0) gateway::LogWarn("drain timeout; abandoning in-flight calls", {{"in_flight", n}});
  return n == 0;
}

int RunServeStdio(const ServeOptions& o) {
  gateway::Config config;
  std::string errors;
  if (!gateway::LoadConfig(o.config, &config, &errors)) {
    std::cerr << errors;
    return kExitUsage;
  }
  gateway::ConfigureLog(config.log.format, config.log.level);
  std::shared_ptr<const runtime::Bundle> bundle = LoadPolicies(config);
  if (bundle == nullptr) return kExitFailure;

  // The audit log is opened before any upstream starts: a gateway that cannot audit does not
  // serve (exit 2 with the reason).
  Services svc;
  if (!StartServices(&config, &svc)) return kExitUsage;
  std::shared_ptr<gateway::AuditLog>& audit = svc.audit;
  gateway::Governance& gov = svc.gov;
  std::shared_ptr<const gateway::Guards>& guards = svc.guards;
  std::unique_ptr<gateway::SecretRotator>& rotator = svc.rotator;
  std::shared_ptr<gateway::TraceWriter>& trace = svc.trace;

  std::mutex out_mu;
  // Replies produced while a reader thread handles one read's worth of lines are flushed
  // together when it is done (gateway::FlushBatch): one write(2) for the batch.
  std::function<void()> flush_client = [&out_mu] {
    std::lock_guard<std::mutex> lock(out_mu);
    std::fflush(stdout);
  };
  auto write_client = [&out_mu, &flush_client](const std::string& line) {
    {
      std::lock_guard<std::mutex> lock(out_mu);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    }
    if (!gateway::DeferFlush(&out_mu, flush_client)) flush_client();
  };
  auto holder = std::make_shared<gateway::BundleHolder>(bundle);
  gateway::ProxyOptions popts;
  popts.principal = config.stdio_principal;
  popts.identity = {{"auth", "stdio"}};
  popts.limits = config.limits;
  popts.version = kVersion;
  popts.audit = audit;
  popts.guards = guards;
  popts.trace = trace;
  popts.bundles = holder;
  gateway::Proxy proxy(popts, bundle, write_client);
  std::vector<std::unique_ptr<gateway::HttpUpstream>> remotes;  // upstreams with `url:`
  std::vector<std::unique_ptr<gateway::UpstreamSupervisor>> upstreams =
      gateway::StartUpstreams(&proxy, config.upstreams, config.limits, "", &remotes);
  std::unique_ptr<gateway::PolicyReloader> reloader = StartReloader(config, holder, audit);

  // SIGHUP reloads the policies; SIGINT/SIGTERM stop reading stdin, then drain and exit.
  std::atomic<bool> stop_reading{false}, force_stop{false};
  boost::asio::io_context sig_ioc;
  boost::asio::signal_set signals(sig_ioc, SIGHUP, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          gateway::LogInfo("SIGHUP: reloading the policies");
          reloader->Trigger("sighup");
          if (rotator != nullptr) {
            gateway::RotationResult rr = rotator->Rotate("sighup");
            for (size_t i : rr.ok ? rr.changed_upstreams : std::vector<size_t>{}) {
              if (i < upstreams.size() && upstreams[i] != nullptr) {
                upstreams[i]->RestartWithEnv(rr.upstreams[i].env);
              } else if (i < rr.upstreams.size()) {
                gateway::LogWarn("credential rotation: a url: upstream's new headers need a "
                                 "restart of writ serve --stdio",
                                 {{"upstream", rr.upstreams[i].name}});
              }
            }
          }
          signals.async_wait(on_signal);
          return;
        }
        if (stop_reading.exchange(true)) {  // a second signal: stop without waiting
          gateway::LogWarn("second signal; stopping now", {{"signal", sig}});
          force_stop = true;
          return;
        }
        gateway::LogInfo("signal; no new requests, draining", {{"signal", sig}});
        proxy.StopAccepting();
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  std::thread sig_thread([&sig_ioc] { sig_ioc.run(); });

  std::atomic<bool> stop{false};
  // (audit.fsync: interval is synced by the audit log's own thread, gateway/audit.h.)
  std::thread ticker([&] {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      proxy.Tick();
    }
  });

  gateway::LineSplitter splitter(config.limits.max_message_bytes,
                                 [&](std::string_view line, bool oversized) {
                                   proxy.OnClientLine(line, oversized);
                                 });
  // After SIGTERM/SIGINT stdin is still read, so that the client's answers (sampling,
  // elicitation) and cancellations reach in-flight calls, but new requests are refused
  // (Proxy::StopAccepting) until nothing is in flight or shutdown.drain_timeout passes.
  char buf[65536];
  bool eof = false;
  std::chrono::steady_clock::time_point drain_until;
  bool draining = false;
  for (;;) {
    if (stop_reading.load()) {
      if (!draining) {
        draining = true;
        drain_until = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(config.shutdown.drain_timeout_ms);
      }
      if (proxy.InFlight() == 0 || force_stop.load() ||
          std::chrono::steady_clock::now() >= drain_until)
        break;
    }
    pollfd pfd{0, POLLIN, 0};
    int pr = poll(&pfd, 1, 100);
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
      break;
    }
    splitter.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  if (eof) {
    splitter.Finish();
    gateway::LogInfo("stdin closed; shutting down");
  }
  // stdin EOF: the client may still read stdout, so in-flight calls get the drain time too.
  proxy.StopAccepting();
  auto left = std::chrono::milliseconds(config.shutdown.drain_timeout_ms);
  if (draining)
    left = std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        drain_until - std::chrono::steady_clock::now()));
  if (force_stop.load()) left = std::chrono::milliseconds(0);
  Drain(proxy, left);
  gateway::LogInfo("stopping upstreams");
  for (auto& u : upstreams)
    if (u != nullptr) u->Shutdown(std::chrono::milliseconds(2000));
  for (auto& r : remotes)
    if (r != nullptr) r->Shutdown();
  reloader->Stop();
  sig_ioc.stop();
  sig_thread.join();
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
