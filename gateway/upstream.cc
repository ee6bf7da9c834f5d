// upstream.cc -- see upstream.h.
#include "gateway/upstream.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "gateway/jsonrpc.h"
#include "gateway/log.h"

extern char** environ;

namespace writ::gateway {

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

ChildProcess::ChildProcess(ChildSpec spec) : spec_(std::move(spec)) {}

ChildProcess::~ChildProcess() { Shutdown(std::chrono::milliseconds(500)); }

std::string ChildProcess::ExitDescription() const { return DescribeExit(status_.load()); }

bool ChildProcess::Start(LineFn on_line, ExitFn on_exit, std::string* error) {
  on_line_ = std::move(on_line);
  on_exit_ = std::move(on_exit);
  // A write to a child that has exited must fail with EPIPE, not kill the gateway.
  signal(SIGPIPE, SIG_IGN);
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);  // dup2 clears O_CLOEXEC on 0/1/2
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);  // undo our SIG_IGN for the child
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);

  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : spec_.env) env[k] = v;
  std::vector<std::string> env_strs;
  for (const auto& [k, v] : env) env_strs.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strs{spec_.command};
  argv_strs.insert(argv_strs.end(), spec_.args.begin(), spec_.args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strs) argv.push_back(s.data());
  argv.push_back(nullptr);

  int rc = posix_spawnp(&pid_, spec_.command.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]), close(out[0]), close(err[0]);
    *error = "cannot run `" + spec_.command + "`: " + strerror(rc);
    pid_ = -1;
    return false;
  }
  in_fd_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
  started_ = true;
  out_thread_ = std::thread([this] { ReadStdout(); });
  err_thread_ = std::thread([this] { ReadStderr(); });
  return true;
}

bool ChildProcess::Send(std::string_view line) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (in_fd_ < 0) return false;
  std::string buf(line);
  buf.push_back('\n');
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = write(in_fd_, buf.data() + off, buf.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void ChildProcess::ReadStdout() {
  LineSplitter splitter(spec_.max_line, [this](std::string_view line, bool oversized) {
    if (oversized) {
      LogWarn("dropped a message from upstream " + spec_.name + " larger than " +
                  std::to_string(spec_.max_line) + " bytes",
              {{"upstream", spec_.name}});
      return;
    }
    if (!line.empty()) on_line_(line);
  });
  char buf[65536];
  for (;;) {
    ssize_t n = read(out_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    splitter.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  splitter.Finish();
  // Wait for the exit without reaping, then reap under reap_mu_ so that Signal never targets
  // a reused pid.
  siginfo_t info;
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  int status = 0;
  {
    std::lock_guard<std::mutex> lock(reap_mu_);
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  status_ = status;
  exited_ = true;
  if (on_exit_) on_exit_(status);
}

void ChildProcess::ReadStderr() {
  LineSplitter splitter(64 * 1024, [&](std::string_view line, bool oversized) {
    LogUpstreamStderr(spec_.name, oversized ? std::string_view("(long line dropped)") : line);
  });
  char buf[8192];
  for (;;) {
    ssize_t n = read(err_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    splitter.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  splitter.Finish();
}

void ChildProcess::Signal(int sig) {
  std::lock_guard<std::mutex> lock(reap_mu_);
  if (!reaped_ && pid_ > 0) kill(-pid_, sig);  // the child leads its own process group
}

void ChildProcess::Shutdown(std::chrono::milliseconds grace) {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
  }
  auto wait_exit = [&](std::chrono::milliseconds d) {
    auto until = std::chrono::steady_clock::now() + d;
    while (!exited_.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return exited_.load();
  };
  if (!wait_exit(grace)) {
    LogWarn("upstream " + spec_.name + " did not exit after stdin closed; SIGTERM",
            {{"upstream", spec_.name}});
    Signal(SIGTERM);
    if (!wait_exit(grace)) {
      LogWarn("upstream " + spec_.name + " ignored SIGTERM; SIGKILL", {{"upstream", spec_.name}});
      Signal(SIGKILL);
    }
  }
  // A grandchild may hold the stdout pipe open after the child exits; the group was signalled,
  // so the reader sees EOF once they are gone.
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
  close(out_fd_);
  close(err_fd_);
}

}  // namespace writ::gateway
