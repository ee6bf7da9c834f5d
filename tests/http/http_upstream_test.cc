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
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include "gateway/config.h"
#include "gateway/metrics.h"

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

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// A plain-HTTP MCP server on 127.0.0.1:0 (Boost.Beast, a thread per connection) that counts
// TCP connections and logs every request's JSON-RPC method (or HTTP method). Requests with an
// id get {"result": {"conn": N}} (N: the connection's number, from 1), initialize also an
// MCP-Session-Id; notifications 202; GET 405; DELETE 200. kDropSecond: on each connection
// the second request is read and the connection closed without an answer (a server that
// closed a kept-alive connection just as a request arrived).
class CountingServer {
 public:
  enum Mode { kKeepAlive, kDropSecond, kSlowInit };  // kSlowInit: initialize answered after 300 ms
  explicit CountingServer(Mode mode)
      : mode_(mode), acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~CountingServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }
  int port() const { return port_; }
  int accepts() const { return accepts_; }
  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  // The MCP-Session-Id header of each logged request ("" when absent).
  std::vector<std::string> sessions() {
    std::lock_guard<std::mutex> lock(mu_);
    return sids_;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stopping_) break;
      int n = ++accepts_;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(sock.native_handle());
      threads_.emplace_back([this, n, s = std::move(sock)]() mutable { Serve(std::move(s), n); });
    }
  }
  void Serve(tcp::socket sock, int conn) {
    beast::flat_buffer buf;
    beast::error_code ec;
    for (int n = 1;; ++n) {
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) break;
      json m = json::parse(req.body(), nullptr, false);
      std::string method = m.is_object() ? m.value("method", "") : "";
      {
        std::lock_guard<std::mutex> lock(mu_);
        log_.push_back(method.empty() ? std::string(req.method_string()) : method);
        sids_.push_back(std::string(req["MCP-Session-Id"]));
      }
      if (mode_ == kSlowInit && method == "initialize")
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      if (mode_ == kDropSecond && n == 2) break;
      http::response<http::string_body> res{http::status::ok, 11};
      if (req.method() == http::verb::get) {
        res.result(http::status::method_not_allowed);
      } else if (req.method() == http::verb::post && m.is_object() && m.contains("id")) {
        res.set(http::field::content_type, "application/json");
        if (method == "initialize") res.set("MCP-Session-Id", "counted");
        res.body() = json{{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", {{"conn", conn}}}}
                         .dump();
      } else if (req.method() == http::verb::post) {
        res.result(http::status::accepted);
      }
      res.keep_alive(true);
      res.prepare_payload();
      http::write(sock, res, ec);
      if (ec) break;
    }
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  Mode mode_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepts_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::vector<std::string> log_, sids_;
};

HttpUpstreamSpec CountedSpec(int port) {
  HttpUpstreamSpec spec;
  spec.name = "counted";
  spec.url = "http://127.0.0.1:" + std::to_string(port) + "/mcp";
  spec.connect_timeout = std::chrono::milliseconds(5000);
  return spec;
}

}  // namespace

namespace {

// The process metrics of upstream `name` (writ_upstream_http_*_total), as a stats struct.
writ::gateway::HttpUpstreamStats MetricsOf(const std::string& name) {
  writ::gateway::Metrics& m = writ::gateway::Metrics::Global();
  writ::gateway::HttpUpstreamStats s;
  s.connections = static_cast<int64_t>(m.http_connections().With({name}).Value());
  s.reused = static_cast<int64_t>(m.http_reused().With({name}).Value());
  s.retried = static_cast<int64_t>(m.http_resends().With({name}).Value());
  s.tls_resumed = static_cast<int64_t>(m.http_tls_resumptions().With({name}).Value());
  return s;
}

// Each counter of `after` minus `before`, compared with an instance's stats().
void CheckMetricsMatch(const writ::gateway::HttpUpstreamStats& before,
                       const writ::gateway::HttpUpstreamStats& after,
                       const writ::gateway::HttpUpstreamStats& st) {
  CHECK(after.connections - before.connections == st.connections);
  CHECK(after.reused - before.reused == st.reused);
  CHECK(after.retried - before.retried == st.retried);
  CHECK(after.tls_resumed - before.tls_resumed == st.tls_resumed);
}

}  // namespace

TEST_CASE("HttpUpstream keeps connections alive: N sequential calls, one TCP connection") {
  CountingServer server(CountingServer::kKeepAlive);
  auto metrics_before = MetricsOf("counted");
  HttpUpstream up(CountedSpec(server.port()));
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  REQUIRE(up.Send(Rpc(0, "initialize", InitParams()).dump()));
  REQUIRE(sink.Reply(0).is_object());
  constexpr int kCalls = 20;
  for (int i = 1; i <= kCalls; ++i) {
    REQUIRE(up.Send(Rpc(i, i % 2 ? "ping" : "tools/call").dump()));
    json r = sink.Reply(i);
    REQUIRE(r.is_object());
    CHECK(r["result"]["conn"] == 1);
  }
  CHECK(server.accepts() == 1);
  auto st = up.stats();
  CHECK(st.connections == 1);
  CHECK(st.reused == kCalls);
  CHECK(st.retried == 0);
  // The same counts reach the process metrics (writ_upstream_http_*_total{upstream="counted"}).
  CheckMetricsMatch(metrics_before, MetricsOf("counted"), st);
  CHECK(MetricsOf("counted").reused - metrics_before.reused == kCalls);
  up.Shutdown();  // the DELETE goes on the kept connection too
  std::vector<std::string> log = server.log();
  REQUIRE(log.size() == kCalls + 2);
  CHECK(log.back() == "DELETE");
  CHECK(server.accepts() == 1);
}

TEST_CASE("HttpUpstream: a kept connection the server closed is replaced; only reads are resent") {
  CountingServer server(CountingServer::kDropSecond);
  auto metrics_before = MetricsOf("counted");
  HttpUpstream up(CountedSpec(server.port()));
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  // Connection 1 answers ping a; ping b goes on it, is read and dropped: being read-only it is
  // sent again on a fresh connection 2, which answers.
  REQUIRE(up.Send(Rpc("a", "ping").dump()));
  json a = sink.Reply("a");
  REQUIRE(a.is_object());
  CHECK(a["result"]["conn"] == 1);
  REQUIRE(up.Send(Rpc("b", "ping").dump()));
  json b = sink.Reply("b");
  REQUIRE(b.is_object());
  CHECK(b["result"]["conn"] == 2);
  // A tools/call on connection 2 is dropped the same way: never sent twice, it fails.
  REQUIRE(up.Send(Rpc("c", "tools/call", {{"name", "t"}}).dump()));
  json c = sink.Reply("c");
  REQUIRE(c.is_object());
  CHECK(c["error"]["code"] == -32003);
  CHECK(c["error"]["message"].get<std::string>().find("no answer") != std::string::npos);
  std::vector<std::string> log = server.log();
  CHECK(log == std::vector<std::string>{"ping", "ping", "ping", "tools/call"});
  CHECK(server.accepts() == 2);
  CHECK(up.stats().retried == 1);
  // The session goes on: the next call gets a fresh connection.
  REQUIRE(up.Send(Rpc("d", "tools/call", {{"name", "t"}}).dump()));
  json d = sink.Reply("d");
  REQUIRE(d.is_object());
  CHECK(d["result"]["conn"] == 3);
  CheckMetricsMatch(metrics_before, MetricsOf("counted"), up.stats());
  CHECK(MetricsOf("counted").retried - metrics_before.retried == 1);  // the resend, exported
}

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
    // Kept alive: the next calls go over the same TLS connection.
    json conn = r["result"]["conn"];
    for (int i = 0; i < 3; ++i) {
      REQUIRE(up->Send(Rpc(i, "ping").dump()));
      json again = sink.Reply(i);
      REQUIRE(again.is_object());
      CHECK(again["result"]["conn"] == conn);
    }
    CHECK(up->stats().reused >= 3);
  }

  SUBCASE("a server that closes every connection: new TLS handshakes resume the session") {
    auto metrics_before = MetricsOf("tls");
    auto up = run("https://localhost:" + port + "/mcp", true, cert);
    Sink sink;
    std::string error;
    up = [&] {
      HttpUpstreamSpec spec;
      spec.name = "tls";
      spec.url = "https://localhost:" + port + "/mcp";
      spec.ca_file = cert;
      spec.headers = {{"X-Close", "1"}};
      spec.connect_timeout = std::chrono::milliseconds(5000);
      return std::make_unique<HttpUpstream>(spec);
    }();
    REQUIRE(up->Start(sink.LineFn(), sink.ExitFn(), &error));
    std::vector<json> results;
    for (int i = 0; i < 3; ++i) {
      REQUIRE(up->Send(Rpc(i, "ping").dump()));
      json r = sink.Reply(i);
      REQUIRE(r.is_object());
      results.push_back(r["result"]);
    }
    CHECK(results[0]["resumed"] == false);
    CHECK(results[1]["conn"] != results[0]["conn"]);  // the server closed each one
    CHECK(results[1]["resumed"] == true);
    CHECK(results[2]["resumed"] == true);
    auto st = up->stats();
    CHECK(st.connections == 3);
    CHECK(st.tls_resumed == 2);
    auto metrics_after = MetricsOf("tls");  // writ_upstream_http_tls_resumptions_total
    CHECK(metrics_after.tls_resumed - metrics_before.tls_resumed == 2);
    CHECK(metrics_after.connections - metrics_before.connections == 3);
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
  CHECK(c.upstreams[1].keep_alive_pool_size == 8);
  CHECK(c.upstreams[1].keep_alive_idle_timeout_ms == 30000);
  writ::gateway::HttpUpstreamSpec spec =
      writ::gateway::HttpUpstreamSpecFor(c.upstreams[1], c.limits);
  HttpUrl u;
  std::string error;
  CHECK(ParseHttpUrl(spec.url, &u, &error));
  CHECK(spec.pool_size == 8);
  CHECK(spec.idle_timeout == std::chrono::seconds(30));
}

TEST_CASE("upstreams[i].keep_alive: defaults are today's constants; bad values are located") {
  // Without keep_alive: the spec gets exactly HttpUpstreamSpec's own defaults (4, 15 s).
  writ::gateway::Config c;
  std::string errors;
  REQUIRE_MESSAGE(writ::gateway::ParseConfig(
                      "policies: p\nupstreams:\n  - name: r\n    url: http://h/mcp\n",
                      "g.yaml", "", &c, &errors),
                  errors);
  HttpUpstreamSpec defaults;
  HttpUpstreamSpec spec = writ::gateway::HttpUpstreamSpecFor(c.upstreams[0], c.limits);
  CHECK(spec.pool_size == 4);
  CHECK(spec.pool_size == defaults.pool_size);
  CHECK(spec.idle_timeout == std::chrono::seconds(15));
  CHECK(spec.idle_timeout == defaults.idle_timeout);

  // pool_size 0 (reuse off) and a duration with minutes are accepted.
  REQUIRE_MESSAGE(writ::gateway::ParseConfig(
                      "policies: p\nupstreams:\n  - name: r\n    url: http://h/mcp\n"
                      "    keep_alive: { pool_size: 0, idle_timeout: 2m }\n",
                      "g.yaml", "", &c, &errors),
                  errors);
  spec = writ::gateway::HttpUpstreamSpecFor(c.upstreams[0], c.limits);
  CHECK(spec.pool_size == 0);
  CHECK(spec.idle_timeout == std::chrono::minutes(2));

  errors.clear();
  CHECK_FALSE(writ::gateway::ParseConfig(
      "policies: p\nupstreams:\n"
      "  - name: a\n    url: http://h/mcp\n"
      "    keep_alive:\n      pool_size: -1\n      idle_timeout: 0\n      size: 3\n"
      "  - name: b\n    url: http://h/mcp\n    keep_alive: 4\n"
      "  - name: c\n    url: http://h/mcp\n    keep_alive: { pool_size: 257, idle_timeout: 2h }\n"
      "  - name: d\n    command: x\n    keep_alive: { pool_size: 2 }\n",
      "g.yaml", "", &c, &errors));
  CHECK_MESSAGE(errors.find("g.yaml:6:18: upstreams[0].keep_alive.pool_size: out of range\n"
                            "help: an integer from 0 to 256") != std::string::npos,
                errors);
  CHECK(errors.find("g.yaml:7:21: upstreams[0].keep_alive.idle_timeout: `0` is not a duration") !=
        std::string::npos);
  CHECK(errors.find("g.yaml:8:7: upstreams[0].keep_alive.size: unknown key") != std::string::npos);
  CHECK(errors.find("g.yaml:11:17: upstreams[1].keep_alive: expected a mapping\n"
                    "help: e.g. keep_alive: { pool_size: 4, idle_timeout: 15s }") !=
        std::string::npos);
  CHECK(errors.find("upstreams[2].keep_alive.pool_size: out of range") != std::string::npos);
  CHECK(errors.find(
            "upstreams[2].keep_alive.idle_timeout: `2h` is not a duration from 1ms to 1h") !=
        std::string::npos);
  CHECK(errors.find("g.yaml:17:17: upstreams[3].keep_alive: only for an upstream with `url:`") !=
        std::string::npos);
}

TEST_CASE("HttpUpstream keep_alive: pool_size 0 opens a connection per message") {
  CountingServer server(CountingServer::kKeepAlive);
  HttpUpstreamSpec spec = CountedSpec(server.port());
  spec.pool_size = 0;
  HttpUpstream up(spec);
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  constexpr int kCalls = 4;
  for (int i = 1; i <= kCalls; ++i) {
    REQUIRE(up.Send(Rpc(i, "ping").dump()));
    json r = sink.Reply(i);
    REQUIRE(r.is_object());
    CHECK(r["result"]["conn"] == i);  // connection i answers message i
  }
  CHECK(server.accepts() == kCalls);
  CHECK(up.stats().connections == kCalls);
  CHECK(up.stats().reused == 0);
}

TEST_CASE("HttpUpstream keep_alive: an idle connection is closed after idle_timeout") {
  CountingServer server(CountingServer::kKeepAlive);
  HttpUpstreamSpec spec = CountedSpec(server.port());
  spec.idle_timeout = std::chrono::milliseconds(300);
  HttpUpstream up(spec);
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  REQUIRE(up.Send(Rpc(1, "ping").dump()));
  REQUIRE(sink.Reply(1)["result"]["conn"] == 1);
  REQUIRE(up.Send(Rpc(2, "ping").dump()));  // within the idle time: the kept connection
  CHECK(sink.Reply(2)["result"]["conn"] == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // past it: a fresh one
  REQUIRE(up.Send(Rpc(3, "ping").dump()));
  CHECK(sink.Reply(3)["result"]["conn"] == 2);
  CHECK(up.stats().connections == 2);
  CHECK(up.stats().reused == 1);
}

TEST_CASE("HttpUpstream: messages sent right after initialize wait for its session id") {
  CountingServer server(CountingServer::kSlowInit);
  HttpUpstream up(CountedSpec(server.port()));
  Sink sink;
  std::string error;
  REQUIRE(up.Start(sink.LineFn(), sink.ExitFn(), &error));
  REQUIRE(up.Send(Rpc(0, "initialize", InitParams()).dump()));
  // Without waiting for the answer (as a proxy relaying a fast client does):
  REQUIRE(up.Send(json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump()));
  REQUIRE(up.Send(Rpc(1, "tools/list").dump()));
  REQUIRE(up.Send(Rpc(2, "ping").dump()));
  REQUIRE(sink.Reply(0).is_object());
  // The other two on connections of their own: their answers may come in either order.
  std::vector<json> seen;
  REQUIRE(sink.Reply(1, &seen).is_object());
  bool got2 = false;
  for (const auto& m : seen) got2 = got2 || (m.is_object() && m.value("id", json()) == 2);
  if (!got2) got2 = sink.Reply(2).is_object();
  REQUIRE(got2);
  // (Each went on its own connection while initialize was pending, so the server's threads
  // may log them in any order; what matters is that each carried the session id.)
  std::vector<std::string> log = server.log(), sids = server.sessions();
  REQUIRE(log.size() >= 4);  // and the GET stream, opened after notifications/initialized
  std::map<std::string, std::string> sid_of;
  for (size_t i = 0; i < log.size(); ++i) sid_of[log[i]] = sids[i];
  CHECK(log[0] == "initialize");  // the others waited for its answer
  CHECK(sid_of["initialize"].empty());
  CHECK(sid_of["notifications/initialized"] == "counted");
  CHECK(sid_of["tools/list"] == "counted");
  CHECK(sid_of["ping"] == "counted");
}
