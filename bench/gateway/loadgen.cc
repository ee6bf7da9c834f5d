// writ_gateway_loadgen: the open-loop, paced client of the gateway latency benchmark
// (bench/gateway-latency.mjs, scripts/bench-gateway.sh; docs/performance.md, "Gateway added
// latency").
//
// It starts an MCP server on stdio (the command after `--`: the echo server directly, or
// `writ serve --stdio` in front of it), initializes, then sends COUNT `tools/call` requests at
// RATE calls/s, each at its scheduled time whatever the previous ones do, and measures each
// call's round trip. Unlike a JavaScript client it waits for the next send time with
// clock_nanosleep and for replies with a blocking read, so the client sleeps between calls
// instead of spinning a core of the (2-core) machine, and its own cost is small and the same
// in both modes. Output: one line of JSON on stdout,
//   {"count":..,"achieved":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..}  (microseconds)
// and exit 0; any failure (a missing tool, an error reply, a bad reply, the child exiting, a
// reply missing after --timeout seconds) prints the reason on stderr and exits 1.
//
// Usage: writ_gateway_loadgen --tool NAME [--rate 1000] [--count 5000] [--warmup 500]
//                             [--timeout 60] [--stderr FILE] -- COMMAND [ARGS...]
// --stderr sends the server's stderr (the gateway's log) to FILE instead of ours, so that no
// reader of a pipe is woken for each log line during the measurement.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "loadgen: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

struct Child {
  pid_t pid = -1;
  int in = -1;   // its stdin (we write)
  int out = -1;  // its stdout (we read)
};

Child Spawn(char** argv, const std::string& stderr_path) {
  int to[2], from[2];
  if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) Fail("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to[0], 0);
  posix_spawn_file_actions_adddup2(&fa, from[1], 1);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  Child c;
  int rc = posix_spawnp(&c.pid, argv[0], &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) Fail(std::string("cannot start ") + argv[0] + ": " + std::strerror(rc));
  close(to[0]);
  close(from[1]);
  c.in = to[1];
  c.out = from[0];
  return c;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Fail("write to the server failed (did it exit?)");
    off += static_cast<size_t>(n);
  }
}

// Reads newline-delimited messages from the child.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  // The next line; *at_ns is when the read(2) that completed it returned. Fails on EOF or
  // when nothing arrives within timeout_ms.
  std::string Next(int64_t* at_ns, int timeout_ms) {
    for (;;) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        std::string line = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        if (pos_ > 65536) {
          buf_.erase(0, pos_);
          pos_ = 0;
        }
        *at_ns = at_;
        if (line.empty()) continue;
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      int pr = poll(&p, 1, timeout_ms);
      if (pr == 0) Fail("no reply from the server within the timeout");
      if (pr < 0 && errno == EINTR) continue;
      char chunk[65536];
      ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Fail("the server closed its stdout (exited?)");
      at_ = NowNs();
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  int64_t at_ = 0;
};

std::string Request(int64_t id, const char* method, const nlohmann::json& params) {
  return nlohmann::json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}
             .dump() +
         "\n";
}

// Reads until the reply with `id` (skipping notifications); fails on an error reply.
nlohmann::json Await(Reader* r, int64_t id, int timeout_ms) {
  for (;;) {
    int64_t at;
    nlohmann::json m = nlohmann::json::parse(r->Next(&at, timeout_ms), nullptr, false);
    if (m.is_discarded()) Fail("the server wrote a line that is not JSON");
    if (!m.contains("id") || !m["id"].is_number_integer() || m["id"].get<int64_t>() != id) continue;
    if (m.contains("error")) Fail("error reply: " + m["error"].dump());
    return m["result"];
  }
}

double Pct(const std::vector<double>& sorted, double p) {
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  return sorted[std::min(sorted.size() - 1, i)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string tool, stderr_path;
  double rate = 1000;
  int64_t count = 5000, warmup = 500;
  int timeout_s = 60;
  int cmd = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      cmd = i + 1;
      break;
    }
    if (i + 1 >= argc) Fail("flag " + a + " needs a value");
    std::string v = argv[++i];
    if (a == "--tool") tool = v;
    else if (a == "--rate") rate = std::atof(v.c_str());
    else if (a == "--count") count = std::atoll(v.c_str());
    else if (a == "--warmup") warmup = std::atoll(v.c_str());
    else if (a == "--timeout") timeout_s = std::atoi(v.c_str());
    else if (a == "--stderr") stderr_path = v;
    else Fail("unknown flag " + a);
  }
  if (cmd < 0 || cmd >= argc || tool.empty() || rate <= 0 || count <= 0 || warmup < 0 ||
      timeout_s <= 0)
    Fail("usage: writ_gateway_loadgen --tool NAME [--rate R] [--count N] [--warmup N] "
         "[--timeout S] [--stderr FILE] -- COMMAND [ARGS...]");
  signal(SIGPIPE, SIG_IGN);
  Child child = Spawn(argv + cmd, stderr_path);
  Reader reader(child.out);
  const int tmo = timeout_s * 1000;

  int64_t id = 1;
  WriteAll(child.in, Request(id, "initialize",
                             {{"protocolVersion", "2025-06-18"},
                              {"capabilities", nlohmann::json::object()},
                              {"clientInfo", {{"name", "writ-loadgen"}, {"version", "1.0.0"}}}}));
  Await(&reader, id++, tmo);
  WriteAll(child.in, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
  WriteAll(child.in, Request(id, "tools/list", nlohmann::json::object()));
  nlohmann::json tools = Await(&reader, id++, tmo);
  bool listed = false;
  for (const auto& t : tools.value("tools", nlohmann::json::array()))
    if (t.is_object() && t.value("name", "") == tool) listed = true;
  if (!listed) Fail("tool " + tool + " is not listed: " + tools.dump());
  // Warm up (the server's JIT and allocator, the gateway's caches), one call at a time.
  for (int64_t i = 0; i < warmup; ++i) {
    WriteAll(child.in, Request(id, "tools/call",
                               {{"name", tool}, {"arguments", {{"message", "w"}}}}));
    Await(&reader, id++, tmo);
  }

  // Paced run: call i is written at t0 + i * period by the sender thread; the reader (this
  // thread) timestamps each reply when the read(2) that completed it returned.
  const int64_t first = id;
  std::vector<std::string> lines(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    lines[i] = Request(first + i, "tools/call",
                       {{"name", tool}, {"arguments", {{"message", "m" + std::to_string(i)}}}});
  std::vector<std::atomic<int64_t>> sent(static_cast<size_t>(count));
  const double period_ns = 1e9 / rate;
  const int64_t t0 = NowNs() + 10000000;  // 10 ms from now
  std::thread sender([&] {
    for (int64_t i = 0; i < count; ++i) {
      int64_t due = t0 + static_cast<int64_t>(static_cast<double>(i) * period_ns);
      timespec ts{static_cast<time_t>(due / 1000000000), static_cast<long>(due % 1000000000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
      sent[i].store(NowNs(), std::memory_order_release);
      WriteAll(child.in, lines[i]);
    }
  });
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(count));
  std::vector<char> seen(static_cast<size_t>(count), 0);
  while (static_cast<int64_t>(lat.size()) < count) {
    int64_t at;
    std::string line = reader.Next(&at, tmo);
    nlohmann::json m = nlohmann::json::parse(line, nullptr, false);
    if (m.is_discarded()) Fail("the server wrote a line that is not JSON");
    if (!m.contains("id") || !m["id"].is_number_integer()) continue;  // notifications
    int64_t k = m["id"].get<int64_t>() - first;
    if (k < 0 || k >= count || seen[k]) Fail("unexpected reply: " + line);
    if (m.contains("error")) Fail("error reply: " + m["error"].dump());
    const nlohmann::json* text = nullptr;
    if (m.contains("result") && m["result"].contains("content") &&
        m["result"]["content"].is_array() && !m["result"]["content"].empty())
      text = &m["result"]["content"][0]["text"];
    if (text == nullptr || !text->is_string() || *text != "m" + std::to_string(k))
      Fail("bad result: " + line);
    seen[k] = 1;
    int64_t s = sent[k].load(std::memory_order_acquire);
    lat.push_back(static_cast<double>(at - s) / 1000.0);
  }
  sender.join();
  const double elapsed_s = static_cast<double>(NowNs() - t0) / 1e9;
  close(child.in);  // the server exits on EOF; killed if it does not within 2 s
  for (int i = 0; i < 200; ++i) {
    if (waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
      child.pid = -1;
      break;
    }
    usleep(10000);
  }
  if (child.pid > 0) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, nullptr, 0);
  }
  std::sort(lat.begin(), lat.end());
  std::printf(
      "{\"count\":%lld,\"achieved\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
      "\"max\":%.1f}\n",
      static_cast<long long>(count), static_cast<double>(count) / elapsed_s, Pct(lat, 50),
      Pct(lat, 90), Pct(lat, 99), Pct(lat, 99.9), lat.back());
  return 0;
}
