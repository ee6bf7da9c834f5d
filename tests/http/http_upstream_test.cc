// gateway/http_upstream.h: URL parsing, `url:` upstream config, the client against a local
// TLS MCP server (tests/http/tls_mcp_server.py, certificate made here with the openssl CLI:
// peer and host name verification, CA file, SNI, SSE answers split across reads, session id
// and protocol version headers), and `writ serve` chained in front of another `writ serve`
// (the inner one as a Streamable HTTP upstream: SSE relay of server requests and progress,
// the GET stream, DELETE at the end). Every wait is bounded; every process is stopped by pid.
#include "gateway/http_upstream.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "gateway/config.h"

using nlohmann::json;
namespace fs = std::filesystem;
using writ::gateway::HttpUpstream;
using writ::gateway::HttpUpstreamSpec;
using writ::gateway::HttpUrl;
using writ::gateway::ParseHttpUrl;

namespace {


// Collects on_line / on_exit from an HttpUpstream.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<json> lines;
  std::string exit_why;

  HttpUpstream::LineFn LineFn() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu);
      lines.push_back(json::parse(line, nullptr, false));
      cv.notify_all();
    };
  }
  HttpUpstream::ExitFn ExitFn() {
    return [this](const std::string& why) {
      std::lock_guard<std::mutex> lock(mu);
      exit_why = why;
      cv.notify_all();
    };
  }
  // The next message whose id is `id` (others are kept in `seen`).
  json Reply(const json& id, std::vector<json>* seen = nullptr, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      while (!lines.empty()) {
        json m = lines.front();
        lines.pop_front();
        if (m.is_object() && m.contains("id") && !m.contains("method") && m["id"] == id) return m;
        if (seen != nullptr) seen->push_back(m);
      }
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && lines.empty())
        return nullptr;
    }
  }
};

json Rpc(const json& id, const std::string& method, json params = json::object()) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
}

json InitParams() {
  return {{"protocolVersion", "2025-06-18"},
          {"capabilities", json::object()},
          {"clientInfo", {{"name", "t"}, {"version", "1"}}}};
}

// A child process with its stdin and stdout piped; stopped (stdin closed, then SIGKILL) at
// destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, const fs::path& err = "/dev/null") {
    int in[2], out[2];
    REQUIRE(pipe(in) == 0);
    REQUIRE(pipe(out) == 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      FILE* f = std::freopen(err.c_str(), "w", stderr);
      (void)f;
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = fdopen(out[0], "r");
  }
  ~Child() { Stop(); }
  std::string ReadLine() {
    char buf[256];
    if (out_ == nullptr || std::fgets(buf, sizeof buf, out_) == nullptr) return "";
    return buf;
  }
  void Stop() {
    if (pid_ <= 0) return;
    close(in_);
    for (int i = 0; i < 40; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_ != nullptr) std::fclose(out_);
    out_ = nullptr;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  FILE* out_ = nullptr;
};

}  // namespace

TEST_CASE("ParseHttpUrl") {
  HttpUrl u;
  std::string error;
  REQUIRE(ParseHttpUrl("https://mcp.example.com/mcp?x=1#frag", &u, &error));
  CHECK(u.tls);
  CHECK(u.host == "mcp.example.com");
  CHECK(u.port == "443");
  CHECK(u.target == "/mcp?x=1");
  CHECK(u.host_header == "mcp.example.com");
  REQUIRE(ParseHttpUrl("http://127.0.0.1:8080", &u, &error));
  CHECK_FALSE(u.tls);
  CHECK(u.port == "8080");
  CHECK(u.target == "/");
  REQUIRE(ParseHttpUrl("HTTP://[::1]:9/p", &u, &error));
  CHECK(u.host == "::1");
  CHECK(u.port == "9");
  CHECK(u.host_header == "[::1]:9");
  CHECK_FALSE(ParseHttpUrl("ftp://h/", &u, &error));
  CHECK_FALSE(ParseHttpUrl("https://user:pw@h/", &u, &error));
  CHECK_FALSE(ParseHttpUrl("http://h:99999/", &u, &error));
  CHECK_FALSE(ParseHttpUrl("http://h:x/", &u, &error));
  CHECK_FALSE(ParseHttpUrl("http:///p", &u, &error));
  CHECK_FALSE(ParseHttpUrl("http://[::1/p", &u, &error));
}

TEST_CASE("upstreams with url: are validated with line:col") {
  writ::gateway::Config c;
  std::string errors;
  REQUIRE_MESSAGE(writ::gateway::ParseConfig(
                      "policies: p\nupstreams:\n  - name: remote\n    url: https://h.example/mcp\n"
                      "    headers: { Authorization: 'Bearer abc', X-Team: eng }\n"
                      "    tls: { verify: true, ca_file: certs/ca.pem }\n",
                      "g.yaml", "/etc/writ", &c, &errors),
                  errors);
  REQUIRE(c.upstreams.size() == 1);
  const auto& u = c.upstreams[0];
  CHECK(u.url == "https://h.example/mcp");
  CHECK(u.command.empty());
  REQUIRE(u.headers.size() == 2);
  CHECK(u.headers[0] == std::make_pair(std::string("Authorization"), std::string("Bearer abc")));
  CHECK(u.tls_verify);
  CHECK(u.tls_ca_file == "/etc/writ/certs/ca.pem");
  // Header values are credentials: scrubbed from the audit like env values.
  CHECK(std::find(c.audit.options.secrets.begin(), c.audit.options.secrets.end(), "Bearer abc") !=
        c.audit.options.secrets.end());

  CHECK_FALSE(writ::gateway::ParseConfig(
      "policies: p\nupstreams:\n  - name: a\n    url: https://h/mcp\n    command: npx\n"
      "  - name: b\n    url: mailto:x\n"
      "  - name: c\n    command: x\n    headers: { A: b }\n"
      "  - name: d\n    url: http://h/\n    tls: { verify: maybe, ca: x }\n"
      "  - name: e\n    url: http://h/\n    headers: { Mcp-Session-Id: x, 'bad name': y }\n",
      "g.yaml", "", &c, &errors));
  CHECK(errors.find("g.yaml:5:14: upstreams[0].command: not allowed with `url`") !=
        std::string::npos);
  CHECK(errors.find("g.yaml:7:10: upstreams[1].url: `mailto:x` is not an http:// or https:// "
                    "URL") != std::string::npos);
  CHECK(errors.find("upstreams[2].headers: only for an upstream with `url:`") != std::string::npos);
  CHECK(errors.find("upstreams[3].tls.verify: expected true or false") != std::string::npos);
  CHECK(errors.find("upstreams[3].tls.ca: unknown key") != std::string::npos);
  CHECK(errors.find("upstreams[4].headers.Mcp-Session-Id: set by the gateway") !=
        std::string::npos);
  CHECK(errors.find("`bad name` is not an HTTP header name") != std::string::npos);
  CHECK(errors.find("help: ") != std::string::npos);
}

TEST_CASE("HttpUpstream: a server that is not there fails the request, not the session") {
  HttpUpstreamSpec spec;
  spec.name = "gone";
  spec.url = "http://127.0.0.1:1/mcp";  // port 1: nothing listens
  spec.connect_timeout = std::chrono::milliseconds(2000);
  HttpUpstream up(spec);
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  REQUIRE(up.Send(Rpc(1, "initialize", InitParams()).dump()));
  json r = sink.Reply(1);
  REQUIRE(r.is_object());
  CHECK(r["error"]["code"] == -32003);
  CHECK(r["error"]["message"].get<std::string>().find("cannot connect") != std::string::npos);
  CHECK(sink.exit_why.empty());
  up.Shutdown();
  CHECK_FALSE(up.Send("{}"));  // after shutdown
}

TEST_CASE("HttpUpstream over TLS: verification, CA file, SSE answers, session headers") {
  fs::path dir = fs::temp_directory_path() / ("writ-tls-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-subj /CN=localhost -addext subjectAltName=DNS:localhost -days 1 -keyout " +
                    key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  Child server({"python3", std::string(WRIT_SOURCE_DIR) + "/tests/http/tls_mcp_server.py", cert,
                key});
  std::string line = server.ReadLine();
  REQUIRE(line.rfind("port ", 0) == 0);
  std::string port = line.substr(5, line.find_first_of("\r\n") - 5);

  auto run = [&](const std::string& url, bool verify, const std::string& ca) {
    HttpUpstreamSpec spec;
    spec.name = "tls";
    spec.url = url;
    spec.tls_verify = verify;
    spec.ca_file = ca;
    spec.headers = {{"X-Custom", "yes"}};
    spec.connect_timeout = std::chrono::milliseconds(5000);
    auto up = std::make_unique<HttpUpstream>(spec);
    return up;
  };

  SUBCASE("the system CAs do not trust a self-signed server: the request fails") {
    auto up = run("https://localhost:" + port + "/mcp", true, "");
    Sink sink;
    std::string error;
    REQUIRE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    REQUIRE(up->Send(Rpc(1, "initialize", InitParams()).dump()));
    json r = sink.Reply(1);
    REQUIRE(r.is_object());
    CHECK(r["error"]["code"] == -32003);
    CHECK(r["error"]["message"].get<std::string>().find("certificate verify failed") !=
          std::string::npos);
  }

  SUBCASE("with its certificate as ca_file: initialize, then an SSE answer with our headers") {
    auto up = run("https://localhost:" + port + "/mcp", true, cert);
    Sink sink;
    std::string error;
    REQUIRE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    REQUIRE(up->Send(Rpc(1, "initialize", InitParams()).dump()));
    json r = sink.Reply(1);
    REQUIRE(r.is_object());
    CHECK(r["result"]["serverInfo"]["name"] == "tls");
    CHECK(up->session_id() == "tls-session-1");
    REQUIRE(up->Send(json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump()));
    REQUIRE(up->Send(Rpc("x", "ping").dump()));
    std::vector<json> seen;
    r = sink.Reply("x", &seen);
    REQUIRE(r.is_object());
    CHECK(r["result"]["echo"] == "ping");
    CHECK(r["result"]["session"] == "tls-session-1");
    CHECK(r["result"]["version"] == "2025-06-18");
    CHECK(r["result"]["custom"] == "yes");
    REQUIRE(seen.size() == 1);  // the log event that came first on the stream
    CHECK(seen[0]["method"] == "notifications/message");
  }

  SUBCASE("the certificate must name the host: 127.0.0.1 is refused") {
    auto up = run("https://127.0.0.1:" + port + "/mcp", true, cert);
    Sink sink;
    std::string error;
    REQUIRE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    REQUIRE(up->Send(Rpc(1, "initialize", InitParams()).dump()));
    json r = sink.Reply(1);
    REQUIRE(r.is_object());
    CHECK(r["error"]["code"] == -32003);
  }

  SUBCASE("verify: false accepts it (testing only)") {
    auto up = run("https://127.0.0.1:" + port + "/mcp", false, "");
    Sink sink;
    std::string error;
    REQUIRE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    REQUIRE(up->Send(Rpc(1, "initialize", InitParams()).dump()));
    json r = sink.Reply(1);
    REQUIRE(r.is_object());
    CHECK(r.contains("result"));
  }

  SUBCASE("a CA file that does not exist is a start error") {
    auto up = run("https://localhost:" + port + "/mcp", true, (dir / "none.pem").string());
    Sink sink;
    std::string error;
    CHECK_FALSE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    CHECK(error.find("tls.ca_file") != std::string::npos);
  }
  server.Stop();
  fs::remove_all(dir);
}

TEST_CASE("docs/gateway.md: the HTTP upstream example is a valid config") {
  std::ifstream f(std::string(WRIT_SOURCE_DIR) + "/docs/gateway.md");
  std::string doc((std::istreambuf_iterator<char>(f)), {});
  size_t marker = doc.find("<!-- example: http-upstream-config");
  REQUIRE(marker != std::string::npos);
  size_t start = doc.find("```yaml\n", marker);
  REQUIRE(start != std::string::npos);
  start += 8;
  size_t end = doc.find("```", start);
  REQUIRE(end != std::string::npos);
  writ::gateway::Config c;
  std::string errors;
  REQUIRE_MESSAGE(
      writ::gateway::ParseConfig(doc.substr(start, end - start), "gateway.md", "/etc/writ", &c,
                                 &errors),
      errors);
  REQUIRE(c.upstreams.size() == 2);
  CHECK(c.upstreams[0].command == "npx");
  CHECK(c.upstreams[1].url == "https://mcp.example.com/mcp");
  CHECK(c.upstreams[1].headers.size() == 2);
  CHECK(c.upstreams[1].tls_verify);
  CHECK(c.upstreams[1].tls_ca_file == "/etc/writ/certs/internal-ca.pem");
  writ::gateway::HttpUpstreamSpec spec =
      writ::gateway::HttpUpstreamSpecFor(c.upstreams[1], c.limits);
  HttpUrl u;
  std::string error;
  CHECK(ParseHttpUrl(spec.url, &u, &error));
}
