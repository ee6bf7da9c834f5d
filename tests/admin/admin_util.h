// Helpers for tests/admin: temporary directories, a one-shot HTTP client, a local webhook
// receiver (plain HTTP or TLS with a throwaway certificate) on 127.0.0.1 port 0, and running
// the built `writ` binary with a time limit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

class TempDir {
 public:
  explicit TempDir(const std::string& name);
  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lowercased names
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One request to 127.0.0.1:port. `auth` is the whole Authorization value ("" = none).
HttpReply Http(int port, const std::string& method, const std::string& target,
               const std::string& body = "", const std::string& auth = "");

// A webhook receiver: answers each request with the next status of `statuses` (the last one
// repeats), records the requests. With `tls`, serves HTTPS with a self-signed certificate for
// 127.0.0.1 written to ca_file().
class WebhookServer {
 public:
  struct Received {
    std::string target;
    std::map<std::string, std::string> headers;  // lowercased names
    std::string body;
  };
  WebhookServer(std::vector<int> statuses, bool tls = false, int delay_ms = 0);
  ~WebhookServer();
  int port() const { return port_; }
  std::string ca_file() const { return ca_file_; }
  std::vector<Received> received();
  // Waits until `n` requests arrived (at most timeout_ms). True if they did.
  bool WaitFor(size_t n, int timeout_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::string ca_file_;
};

// Runs `writ ARGS` (a shell command line after the binary) with stdin from /dev/null, a 20 s
// limit, stdout and stderr captured separately. Returns the exit code (-1 if it did not exit).
int RunWrit(const std::string& args, std::string* out, std::string* err,
            const std::map<std::string, std::string>& env = {});
