// upstream.h -- one MCP server run as a child process speaking newline-delimited JSON-RPC on
// its stdin/stdout. Entry point: class ChildProcess.
//
// Why posix_spawn and pipes rather than Boost.Process: we need exact control of what the child
// inherits (only the three pipe ends; every other fd of ours is O_CLOEXEC), a process group of
// its own (so `npx` and the node it starts are signalled together), a shutdown sequence with
// our own timeouts (close stdin -> wait -> SIGTERM -> wait -> SIGKILL), and no exceptions.
// Boost.Process v1 throws, owns SIGCHLD handling and hides the group; the direct calls are
// ~150 lines.
//
// Threads: one reads the child's stdout (lines -> on_line), one copies its stderr to ours with
// a "[name] " prefix; the stdout reader also reaps the child and calls on_exit once.
//
// Thread safety: Send may be called from any thread. on_line and on_exit run on the reader
// thread and must not call Shutdown. Shutdown must be called (or the destructor runs it) from
// one thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace writ::gateway {

struct ChildSpec {
  std::string name;     // for log prefixes
  std::string command;  // searched on PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) ours
  size_t max_line = 4 * 1024 * 1024;                      // longer stdout lines are dropped
};

class ChildProcess {
 public:
  using LineFn = std::function<void(std::string_view line)>;
  using ExitFn = std::function<void(int status)>;  // waitpid status

  explicit ChildProcess(ChildSpec spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Spawns the child. False with *error if it could not be started.
  bool Start(LineFn on_line, ExitFn on_exit, std::string* error);

  // Writes `line` plus '\n'. False if the child's stdin is closed or the write failed.
  bool Send(std::string_view line);

  // Closes stdin; waits up to `grace`; SIGTERM to the group; waits up to `grace`; SIGKILL.
  // Joins the threads. Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  bool running() const { return started_ && !exited_.load(); }
  pid_t pid() const { return pid_; }
  const std::string& name() const { return spec_.name; }
  // "exited with status N" / "killed by signal N" (after exit).
  std::string ExitDescription() const;

 private:
  void ReadStdout();
  void ReadStderr();
  void Signal(int sig);

  ChildSpec spec_;
  LineFn on_line_;
  ExitFn on_exit_;
  pid_t pid_ = -1;
  bool started_ = false;
  int in_fd_ = -1, out_fd_ = -1, err_fd_ = -1;
  std::mutex write_mu_;  // guards in_fd_ writes and closing
  std::mutex reap_mu_;   // guards reaped_ and signalling (no signal after reaping: pid reuse)
  bool reaped_ = false;
  std::atomic<bool> exited_{false};
  std::atomic<int> status_{0};
  std::thread out_thread_, err_thread_;
  bool shut_down_ = false;
};

// Renders a waitpid status.
std::string DescribeExit(int status);

}  // namespace writ::gateway
