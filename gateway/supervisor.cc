// supervisor.cc -- see supervisor.h.
#include "gateway/supervisor.h"

#include <algorithm>

#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"

namespace writ::gateway {

std::optional<std::chrono::milliseconds> RestartBackoff::OnExit(Clock::time_point now,
                                                                std::chrono::milliseconds uptime) {
  if (c_.max_restarts <= 0) return std::nullopt;
  if (uptime.count() >= c_.reset_after_ms) next_ = std::chrono::milliseconds(c_.initial_backoff_ms);
  while (!restarts_.empty() && now - restarts_.front() >= std::chrono::milliseconds(c_.window_ms))
    restarts_.pop_front();
  if (static_cast<int>(restarts_.size()) >= c_.max_restarts) return std::nullopt;
  std::chrono::milliseconds delay = next_;
  next_ = std::min(next_ * 2, std::chrono::milliseconds(c_.max_backoff_ms));
  restarts_.push_back(now);
  return delay;
}

UpstreamSupervisor::UpstreamSupervisor(ChildSpec spec, RestartConfig restart, Hooks hooks)
    : spec_(std::move(spec)),
      backoff_(restart),
      hooks_(std::move(hooks)),
      restart_counter_(&Metrics::Global().upstream_restarts().With({spec_.name})) {}

UpstreamSupervisor::~UpstreamSupervisor() { Shutdown(std::chrono::milliseconds(500)); }

pid_t UpstreamSupervisor::pid() {
  std::lock_guard<std::mutex> lock(mu_);
  return current_ ? current_->pid() : -1;
}

bool UpstreamSupervisor::Spawn(std::string* error) {
  // spec_ is only written by the supervisor thread (or before it starts), which is the caller.
  auto child = std::make_shared<ChildProcess>(spec_);
  ChildProcess* raw = child.get();
  // Held across Start so that an immediate exit (on the reader thread) sees current_ set.
  std::lock_guard<std::mutex> lock(mu_);
  bool ok = raw->Start(
      [this](std::string_view line) {
        if (hooks_.on_line) hooks_.on_line(line);
      },
      [this, raw](int status) {
        if (hooks_.on_exit) hooks_.on_exit(DescribeExit(status));
        std::lock_guard<std::mutex> exit_lock(mu_);
        if (current_.get() != raw) return;
        ++exits_;
        cv_.notify_all();
      },
      error);
  if (!ok) return false;
  current_ = std::move(child);
  started_at_ = std::chrono::steady_clock::now();
  return true;
}

bool UpstreamSupervisor::Start(std::string* error) {
  if (!Spawn(error)) return false;
  thread_ = std::thread([this] { Loop(); });
  return true;
}

bool UpstreamSupervisor::Send(std::string_view line) {
  std::shared_ptr<ChildProcess> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = current_;
  }
  return c != nullptr && c->Send(line);
}

bool UpstreamSupervisor::RestartWithEnv(std::vector<std::pair<std::string, std::string>> env,
                                        std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || !thread_.joinable()) return false;
  pending_env_ = std::move(env);
  rotate_ = true;
  rotate_grace_ = grace;
  cv_.notify_all();
  return true;
}

void UpstreamSupervisor::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || exits_ > 0 || rotate_; });
    if (stopping_) return;
    if (pending_env_) {  // every spawn from now on uses the rotated environment
      spec_.env = std::move(*pending_env_);
      pending_env_.reset();
    }
    if (rotate_) {
      rotate_ = false;
      exits_ = 0;  // the old process's exit is ours, not a crash
      std::shared_ptr<ChildProcess> old = std::move(current_);
      auto grace = rotate_grace_;
      lock.unlock();
      LogInfo("restarting upstream with rotated credentials", {{"upstream", spec_.name}});
      if (old) old->Shutdown(grace);
      old.reset();
      std::string error;
      bool ok = Spawn(&error);
      lock.lock();
      if (stopping_) return;
      if (!ok) {
        LogError("upstream could not be restarted", {{"upstream", spec_.name}, {"error", error}});
        started_at_ = std::chrono::steady_clock::now();
        ++exits_;
        lock.unlock();
        if (hooks_.on_exit) hooks_.on_exit("could not be restarted (" + error + ")");
        lock.lock();
        continue;
      }
      LogInfo("upstream restarted", {{"upstream", spec_.name},
                                     {"pid", current_->pid()},
                                     {"reason", "credential rotation"}});
      lock.unlock();
      if (hooks_.on_restart) hooks_.on_restart();
      lock.lock();
      continue;
    }
    exits_ = 0;
    auto now = std::chrono::steady_clock::now();
    auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_at_);
    std::optional<std::chrono::milliseconds> delay = backoff_.OnExit(now, uptime);
    if (!delay) {
      LogError("upstream exceeded its restart budget; it stays down until the gateway restarts",
               {{"upstream", spec_.name},
                {"restarts", restarts_.load()},
                {"help", "see its stderr above; tune upstreams[].restart (max_restarts, window)"}});
      cv_.wait(lock, [this] { return stopping_; });
      return;
    }
    LogWarn("upstream exited; restarting",
            {{"upstream", spec_.name}, {"in_ms", delay->count()}, {"uptime_ms", uptime.count()}});
    if (cv_.wait_for(lock, *delay, [this] { return stopping_; })) return;
    // A rotation requested during the backoff is served by this restart.
    if (pending_env_) {
      spec_.env = std::move(*pending_env_);
      pending_env_.reset();
    }
    rotate_ = false;
    // Reap the old process (its reader threads have finished or are finishing) off the lock.
    std::shared_ptr<ChildProcess> old = std::move(current_);
    lock.unlock();
    if (old) old->Shutdown(std::chrono::milliseconds(500));
    old.reset();
    std::string error;
    bool ok = Spawn(&error);
    lock.lock();
    if (stopping_) return;  // Shutdown stops whatever Spawn started
    if (!ok) {
      LogError("upstream could not be restarted", {{"upstream", spec_.name}, {"error", error}});
      started_at_ = std::chrono::steady_clock::now();
      ++exits_;  // counts against the budget like a crash
      lock.unlock();
      if (hooks_.on_exit) hooks_.on_exit("could not be restarted (" + error + ")");
      lock.lock();
      continue;
    }
    ++restarts_;
    restart_counter_->Inc();
    LogInfo("upstream restarted",
            {{"upstream", spec_.name}, {"pid", current_->pid()}, {"restarts", restarts_.load()}});
    lock.unlock();
    if (hooks_.on_restart) hooks_.on_restart();
    lock.lock();
  }
}

void UpstreamSupervisor::Shutdown(std::chrono::milliseconds grace) {
  std::shared_ptr<ChildProcess> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = current_;
  }
  if (c) c->Shutdown(grace);
}

std::vector<std::unique_ptr<UpstreamSupervisor>> StartUpstreams(
    Proxy* proxy, const std::vector<UpstreamConfig>& ups, const LimitsConfig& limits,
    const std::string& session, std::vector<std::unique_ptr<HttpUpstream>>* remotes,
    std::function<void(size_t up, std::string_view line)> on_line) {
  std::vector<std::unique_ptr<UpstreamSupervisor>> out;
  remotes->clear();
  auto deliver = [proxy, on_line](size_t i) {
    return [proxy, on_line, i](std::string_view line) {
      if (on_line) {
        on_line(i, line);
      } else {
        proxy->OnUpstreamLine(i, line);
      }
    };
  };
  for (size_t i = 0; i < ups.size(); ++i) {
    const UpstreamConfig& u = ups[i];
    if (!u.url.empty()) {
      remotes->push_back(std::make_unique<HttpUpstream>(HttpUpstreamSpecFor(u, limits)));
      HttpUpstream* r = remotes->back().get();
      proxy->AddUpstream(u.name, [r](const std::string& line) { return r->Send(line); });
      out.push_back(nullptr);
      continue;
    }
    remotes->push_back(nullptr);
    ChildSpec spec{u.name, u.command, u.args, u.env, limits.max_message_bytes};
    UpstreamSupervisor::Hooks hooks;
    hooks.on_line = deliver(i);
    hooks.on_exit = [proxy, i](const std::string& why) { proxy->OnUpstreamExit(i, why); };
    hooks.on_restart = [proxy, i] { proxy->OnUpstreamRestarted(i); };
    auto s = std::make_unique<UpstreamSupervisor>(spec, u.restart, std::move(hooks));
    UpstreamSupervisor* raw = s.get();
    proxy->AddUpstream(u.name, [raw](const std::string& line) { return raw->Send(line); });
    out.push_back(std::move(s));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    std::string error;
    nlohmann::json f = {{"upstream", ups[i].name}};
    if (!session.empty()) f["session"] = session;
    if (out[i] == nullptr) {
      HttpUpstream* r = (*remotes)[i].get();
      if (!r->Start(deliver(i), [proxy, i](const std::string& why) { proxy->OnUpstreamExit(i, why); },
                    &error)) {
        f["error"] = error;
        LogError("upstream could not be started", f);
        proxy->OnUpstreamExit(i, "could not be started (" + error + ")");
      } else {
        LogInfo("connected upstream", f);
      }
      continue;
    }
    if (!out[i]->Start(&error)) {
      f["error"] = error;
      LogError("upstream could not be started", f);
      proxy->OnUpstreamExit(i, "could not be started (" + error + ")");
    } else {
      f["pid"] = out[i]->pid();
      LogInfo("started upstream", f);
    }
  }
  return out;
}

}  // namespace writ::gateway
