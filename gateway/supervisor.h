// supervisor.h -- keeps one stdio upstream running: restarts it with exponential backoff when
// it exits (upstreams[i].restart, docs/gateway.md "Restarts"), and wires upstreams to a Proxy.
// Entry points: StartUpstreams (what `writ serve` calls per session), UpstreamSupervisor (one
// upstream), RestartBackoff (the pure delay/budget logic, unit tested).
//
// On an exit the Proxy is told at once (OnUpstreamExit: pending calls fail with -32003); the
// supervisor's own thread then waits out the backoff, reaps the old process, spawns a new one
// and calls Proxy::OnUpstreamRestarted, which re-runs MCP initialize and refreshes its tools.
// Past the restart budget the upstream stays down and the log says so; other upstreams and
// the session are never affected.
//
// Thread safety: Send may be called from any thread; Start and Shutdown from one owner thread.
// Hooks run on the child's reader thread (on_line, on_exit) or the supervisor thread
// (on_restart) and must not call Shutdown.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/config.h"
#include "gateway/http_upstream.h"
#include "gateway/upstream.h"

namespace writ::gateway {

class Proxy;
class Counter;

// The delay before each restart and the restart budget. Not thread-safe (one supervisor).
class RestartBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RestartBackoff(RestartConfig c) : c_(c), next_(c.initial_backoff_ms) {}
  // The process exited at `now` after running for `uptime`. Returns how long to wait before
  // starting it again, or nullopt when max_restarts restarts already happened within the
  // window (or max_restarts is 0): it stays down.
  std::optional<std::chrono::milliseconds> OnExit(Clock::time_point now,
                                                  std::chrono::milliseconds uptime);

 private:
  RestartConfig c_;
  std::chrono::milliseconds next_;
  std::deque<Clock::time_point> restarts_;  // within the window
};

class UpstreamSupervisor {
 public:
  struct Hooks {
    std::function<void(std::string_view line)> on_line;
    std::function<void(const std::string& why)> on_exit;  // every exit, and a failed respawn
    std::function<void()> on_restart;                     // a new process runs
  };
  UpstreamSupervisor(ChildSpec spec, RestartConfig restart, Hooks hooks);
  ~UpstreamSupervisor();  // Shutdown(500ms)
  UpstreamSupervisor(const UpstreamSupervisor&) = delete;
  UpstreamSupervisor& operator=(const UpstreamSupervisor&) = delete;

  // Spawns the first process. False with *error if it could not be started (not retried:
  // a missing command is a configuration problem). REQUIRES: called once.
  bool Start(std::string* error);
  // Writes one line to the current process. False when none runs (exited, restarting).
  bool Send(std::string_view line);
  // No more restarts; stops the current process (ChildProcess::Shutdown). Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  // Credential rotation (docs/credentials.md): the next process gets `env` (added to the
  // inherited environment, as ChildSpec::env), and the current one is replaced now: it is
  // stopped gracefully (stdin closed, then signals after `grace`) and a new one spawned at once,
  // without backoff and without counting against the restart budget. Calls in flight to it
  // fail with -32003 like on a crash; the Proxy re-initializes the new process
  // (OnUpstreamRestarted) and the client session stays open. Returns at once; the restart runs
  // on the supervisor thread. False after Shutdown or before Start.
  bool RestartWithEnv(std::vector<std::pair<std::string, std::string>> env,
                      std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  const std::string& name() const { return spec_.name; }
  pid_t pid();
  int restarts() const { return restarts_.load(); }

 private:
  bool Spawn(std::string* error);  // a new ChildProcess as current_
  void Loop();                     // the supervisor thread

  ChildSpec spec_;
  RestartBackoff backoff_;
  Hooks hooks_;
  Counter* restart_counter_;
  std::mutex mu_;  // guards current_, exits_, stopping_, started_at_, pending_env_, rotate_*
  std::condition_variable cv_;
  std::shared_ptr<ChildProcess> current_;
  int exits_ = 0;  // exits not handled by Loop yet
  // RestartWithEnv: the env for the next spawn (applied to spec_ on the supervisor thread).
  std::optional<std::vector<std::pair<std::string, std::string>>> pending_env_;
  bool rotate_ = false;  // replace the current process now
  std::chrono::milliseconds rotate_grace_{2000};
  bool stopping_ = false;
  std::chrono::steady_clock::time_point started_at_;
  std::atomic<int> restarts_{0};
  std::thread thread_;
};

// One supervisor per stdio upstream of `ups` and one HttpUpstream (gateway/http_upstream.h)
// per `url:` upstream, registered with `proxy` (AddUpstream) in order and started; an
// upstream that cannot be started is reported to the proxy (OnUpstreamExit) and logged, the
// others run. `session` labels log lines ("" for stdio, "#N" for HTTP). The result has one
// entry per upstream, null for `url:` upstreams, whose clients go to *remotes (one entry per
// upstream, null for stdio ones). `on_line`, if set, delivers upstream lines instead of
// Proxy::OnUpstreamLine (the HTTP server marks which upstream a line came from).
std::vector<std::unique_ptr<UpstreamSupervisor>> StartUpstreams(
    Proxy* proxy, const std::vector<UpstreamConfig>& ups, const LimitsConfig& limits,
    const std::string& session, std::vector<std::unique_ptr<HttpUpstream>>* remotes,
    std::function<void(size_t up, std::string_view line)> on_line = nullptr);

}  // namespace writ::gateway
