// util.h -- helpers for the harness tests: temporary directories, files, and running the
// built `writ` binary with its exit code, stdout and stderr captured (bounded by `timeout`).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace harness_test {

namespace fs = std::filesystem;

inline std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// A fresh directory under the temp dir, removed by the destructor.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("writ-harness-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& p) const { return path / p; }
};

struct RunResult {
  int code = -1;
  std::string out, err;
};

inline std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `writ ARGS...` (in `cwd` if given), at most 60 s.
inline RunResult RunWrit(const std::vector<std::string>& args, const fs::path& cwd = {}) {
  static int counter = 0;
  fs::path err = fs::temp_directory_path() / ("writ-harness-stderr-" + std::to_string(getpid()) +
                                              "-" + std::to_string(++counter));
  std::string cmd;
  if (!cwd.empty()) cmd = "cd " + Quote(cwd.string()) + " && ";
  cmd += "timeout 60 " + Quote(std::string(WRIT_BINARY_DIR) + "/cli/writ");
  for (const auto& a : args) cmd += " " + Quote(a);
  cmd += " 2>" + Quote(err.string());
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = Slurp(err);
  fs::remove(err);
  return r;
}

inline bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace harness_test
