// End-to-end: the built `writ serve` (Streamable HTTP) with a fake upstream
// (tests/gateway/fake_upstream.py), driven by a Boost.Beast client. The gateway listens on
// port 0 and prints the bound port on stderr. Every wait is bounded.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <poll.h>
#include <sys/socket.h>

#include "gateway/config.h"
#include "gateway/http_server.h"
#include "gateway/identity.h"
#include "gateway/sse.h"
#include "tests/http/http_test_util.h"

using nlohmann::json;
namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `writ serve --config FILE` as a child with stderr in a file; port() parsed from it.
class Server {
 public:
  Server(const fs::path& config, const fs::path& log) : log_(log) {
    std::string writ = std::string(WRIT_BINARY_DIR) + "/cli/writ";
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      execl(writ.c_str(), writ.c_str(), "serve", "--config", config.c_str(), (char*)nullptr);
      _exit(127);
    }
    std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 300 && port_ == 0; ++i) {
      std::smatch m;
      std::string text = Slurp(log);
      if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
      int st = 0;
      if (port_ == 0 && waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
  }
  ~Server() { Stop(); }
  // SIGTERM; the exit status (-1 on timeout, then SIGKILL).
  int Stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = st;
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }
  int port() const { return port_; }
  std::string log() const { return Slurp(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = -1;
};

using Headers = std::map<std::string, std::string>;

http::response<http::string_body> Do(int port, http::verb verb, const std::string& target,
                                     const std::string& body, const Headers& headers) {
  net::io_context ioc;
  tcp::socket sock(ioc);
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) {
    req.body() = body;
  }
  req.prepare_payload();
  http::write(sock, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(sock, buf, res);
  beast::error_code ec;
  sock.shutdown(tcp::socket::shutdown_both, ec);
  return res;
}

Headers Mcp(const std::string& token, const std::string& session = "") {
  Headers h = {{"Content-Type", "application/json"},
               {"Accept", "application/json, text/event-stream"}};
  if (!token.empty()) h["Authorization"] = "Bearer " + token;
  if (!session.empty()) h["MCP-Session-Id"] = session;
  return h;
}

json Rpc(const json& id, const std::string& method, json params = json::object()) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
}

json InitParams() {
  return {{"protocolVersion", "2025-06-18"},
          {"capabilities", json::object()},
          {"clientInfo", {{"name", "http-test"}, {"version", "1"}}}};
}

fs::path MakeDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / (name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "policies");
  fs::copy_file(std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fixtures/demo.writ", dir / "policies" / "p.writ",
                fs::copy_options::overwrite_existing);
  return dir;
}

std::string Upstreams() {
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  return "upstreams:\n  - name: demo\n    command: python3\n    args: [" + fake + ", --progress]\n";
}

// A request whose response is read on a thread of its own: headers, then (for
// text/event-stream) each SSE message as it arrives, or the whole body. Every wait is bounded.
// A `slow` client sets a small receive buffer and reads nothing until StartReading().
class Streamed {
 public:
  enum class Mode { kRead, kSlow };
  Streamed(int port, http::verb verb, const std::string& body, const Headers& headers,
           Mode mode = Mode::kRead)
      : sock_(ioc_) {
    sock_.open(tcp::v4());
    if (mode == Mode::kSlow) sock_.set_option(net::socket_base::receive_buffer_size(4096));
    sock_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{verb, "/mcp", 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::write(sock_, req);
    if (mode == Mode::kRead) StartReading();
  }
  ~Streamed() {
    ::shutdown(sock_.native_handle(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  void StartReading() {
    if (!thread_.joinable()) thread_ = std::thread([this] { Read(); });
  }
  // Whether response bytes are waiting in the socket (not consumed), within the timeout.
  bool WaitReadable(int timeout_ms) {
    pollfd pfd{sock_.native_handle(), POLLIN, 0};
    return ::poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN) != 0;
  }
  // Waits for the headers; the status (0 on timeout).
  int Status(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return status_ != 0; });
    return status_;
  }
  std::string content_type() {
    std::lock_guard<std::mutex> lock(mu_);
    return content_type_;
  }
  // The next SSE message as JSON; null on timeout or at the end of the stream.
  json Next(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [this] { return !events_.empty() || ended_; });
    if (events_.empty()) return nullptr;
    json m = events_.front();
    events_.pop_front();
    last_next_id_ = event_ids_.front();
    event_ids_.pop_front();
    return m;
  }
  // The SSE id of the message Next() returned last.
  std::string last_next_id() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_next_id_;
  }
  // The first SSE event's id, waiting for it (a priming event counts); "" on timeout.
  std::string FirstId(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [this] { return !ids_.empty() || ended_; });
    return ids_.empty() ? "" : ids_.front();
  }
  std::string replay() {
    std::lock_guard<std::mutex> lock(mu_);
    return replay_;
  }
  // Whether the response ended (within the timeout).
  bool Ended(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return ended_; });
  }
  // Whether the response ended as HTTP says it ends (the last chunk), not by a read error or
  // the connection closing mid-body.
  bool EndedComplete(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return ended_; }) &&
           complete_;
  }
  std::string body() {
    std::lock_guard<std::mutex> lock(mu_);
    return body_;
  }

 private:
  void Read() {
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    p.body_limit(std::numeric_limits<std::uint64_t>::max());  // long streams (default: 8 MB)
    beast::error_code ec;
    http::read_header(sock_, buf, p, ec);
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = ec ? -1 : static_cast<int>(p.get().result_int());
      content_type_ = std::string(p.get()[http::field::content_type]);
      replay_ = std::string(p.get()["Writ-Replay"]);
      cv_.notify_all();
    }
    writ::gateway::SseParser parser([this](const writ::gateway::SseMessage& m) {
      std::lock_guard<std::mutex> lock(mu_);
      ids_.push_back(m.id);
      cv_.notify_all();
      if (m.data.empty()) return;  // a priming event (an id only)
      events_.push_back(json::parse(m.data, nullptr, false));
      event_ids_.push_back(m.id);
      cv_.notify_all();
    });
    char chunk[4096];
    while (!ec && !p.is_done()) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof chunk;
      http::read_some(sock_, buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      std::string_view got(chunk, sizeof chunk - p.get().body().size);
      parser.Feed(got);
      std::lock_guard<std::mutex> lock(mu_);
      body_.append(got);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    complete_ = p.is_done();
    cv_.notify_all();
  }

  net::io_context ioc_;
  tcp::socket sock_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int status_ = 0;
  std::string content_type_, body_, replay_, last_next_id_;
  std::deque<json> events_;
  std::deque<std::string> event_ids_, ids_;  // ids_: of every event, priming ones too
  bool ended_ = false;
  bool complete_ = false;  // ended with the parser done
};

json Response(const json& id, const json& result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", result}};
}

}  // namespace

TEST_CASE("HostAllowed / OriginAllowed defaults are loopback only") {
  writ::gateway::HttpConfig c;
  CHECK(writ::gateway::HostAllowed(c, "127.0.0.1:8080"));
  CHECK(writ::gateway::HostAllowed(c, "localhost"));
  CHECK(writ::gateway::HostAllowed(c, "[::1]:9"));
  CHECK_FALSE(writ::gateway::HostAllowed(c, "evil.example:8080"));
  CHECK_FALSE(writ::gateway::HostAllowed(c, ""));
  CHECK(writ::gateway::OriginAllowed(c, "http://localhost:3000"));
  CHECK_FALSE(writ::gateway::OriginAllowed(c, "http://evil.example"));
  CHECK_FALSE(writ::gateway::OriginAllowed(c, "null"));
  c.allowed_hosts = {"mcp.example.com"};
  c.allowed_origins = {"https://app.example.com"};
  CHECK(writ::gateway::HostAllowed(c, "mcp.example.com:443"));
  CHECK_FALSE(writ::gateway::HostAllowed(c, "127.0.0.1"));
  CHECK(writ::gateway::OriginAllowed(c, "https://app.example.com"));
  CHECK_FALSE(writ::gateway::OriginAllowed(c, "http://localhost"));
}

TEST_CASE("http config keys are validated with line:col") {
  writ::gateway::Config c;
  std::string errors;
  CHECK_FALSE(writ::gateway::ParseConfig(
      "policies: p\nupstreams: []\nhttp:\n  listen: nowhere\n  alow_anonymous: true\n", "g.yaml",
      "", &c, &errors));
  CHECK(errors.find("g.yaml:4:11: http.listen: `nowhere` is not HOST:PORT") != std::string::npos);
  CHECK(errors.find("http.alow_anonymous: unknown key") != std::string::npos);
  CHECK(errors.find("did you mean `allow_anonymous`") != std::string::npos);
  REQUIRE(writ::gateway::ParseConfig(
      "policies: p\nupstreams: []\nhttp: {listen: '0.0.0.0:0', path: /x, allow_anonymous: true}\n",
      "g.yaml", "", &c, &errors));
  CHECK(c.http.host == "0.0.0.0");
  CHECK(c.http.port == 0);
  CHECK(c.http.path == "/x");
  CHECK(c.http.allow_anonymous);
  // identity: is checked at load, located at the section.
  CHECK_FALSE(writ::gateway::ParseConfig(
      "policies: p\nupstreams: []\nidentity:\n  resource: http://h/mcp\n  api_keys:\n"
      "    - {name: a, hash: nope, principal: 'User::\"a\"'}\n",
      "g.yaml", "", &c, &errors));
  CHECK(errors.find("g.yaml:4:3: identity.api_keys[0].hash") != std::string::npos);
}

TEST_CASE("writ serve over HTTP refuses to start without identity or allow_anonymous") {
  fs::path dir = MakeDir("writ-http-noid");
  std::ofstream(dir / "writ.yaml") << "policies: ./policies\n"
                                   << Upstreams() << "http: { listen: '127.0.0.1:0' }\n";
  std::string cmd = std::string(WRIT_BINARY_DIR) + "/cli/writ serve --config " +
                    (dir / "writ.yaml").string() + " > " + (dir / "out").string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  CHECK(WEXITSTATUS(rc) == 2);
  CHECK(Slurp(dir / "out").find("allow_anonymous") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("writ serve over HTTP: sessions, identity, policy, origin checks") {
  fs::path dir = MakeDir("writ-http-test");
  std::string hash = writ::gateway::HashApiKey("alice-key");
  std::string bob_hash = writ::gateway::HashApiKey("bob-key");
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n"
      << Upstreams() << "http: { listen: '127.0.0.1:0' }\n"
      << "limits: { max_message_bytes: 65536 }\n"
      << "identity:\n"
      << "  resource: http://127.0.0.1/mcp\n"
      << "  api_keys:\n"
      << "    - name: alice\n      hash: \"" << hash << "\"\n"
      << "      principal: 'User::\"alice\"'\n      parents: ['Role::\"analyst\"']\n"
      << "    - name: bob\n      hash: \"" << bob_hash << "\"\n"
      << "      principal: 'User::\"bob\"'\n";
  Server srv(dir / "writ.yaml", dir / "stderr");
  REQUIRE_MESSAGE(srv.port() != 0, srv.log());
  int port = srv.port();
  const std::string kAlice = "alice-key";

  // No token: 401 with the RFC 9728 challenge; the metadata document is served.
  auto r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), Mcp(""));
  CHECK(r.result_int() == 401);
  CHECK(std::string(r[http::field::www_authenticate]).find("resource_metadata=") !=
        std::string::npos);
  r = Do(port, http::verb::get, "/.well-known/oauth-protected-resource/mcp", "", {});
  CHECK(r.result_int() == 200);
  CHECK(json::parse(r.body())["resource"] == "http://127.0.0.1/mcp");
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(),
         Mcp("wrong-key"));
  CHECK(r.result_int() == 401);

  // A foreign Origin (DNS rebinding) and a foreign Host are refused before anything else.
  Headers bad = Mcp(kAlice);
  bad["Origin"] = "http://evil.example";
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), bad);
  CHECK(r.result_int() == 403);
  bad = Mcp(kAlice);
  bad["Host"] = "evil.example";
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), bad);
  CHECK(r.result_int() == 403);

  // Accept without application/json: 406; bad protocol version: 400.
  bad = Mcp(kAlice);
  bad["Accept"] = "text/event-stream";
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), bad);
  CHECK(r.result_int() == 406);
  bad = Mcp(kAlice);
  bad["MCP-Protocol-Version"] = "1999-01-01";
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), bad);
  CHECK(r.result_int() == 400);

  // initialize creates the session.
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), Mcp(kAlice));
  REQUIRE_MESSAGE(r.result_int() == 200, r.body());
  CHECK(std::string(r[http::field::content_type]) == "application/json");
  json init = json::parse(r.body());
  CHECK(init["id"] == 1);
  CHECK(init["result"]["serverInfo"]["name"] == "writ");
  std::string sid(r["MCP-Session-Id"]);
  CHECK(sid.size() == 32);

  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  r = Do(port, http::verb::post, "/mcp", note.dump(), Mcp(kAlice, sid));
  CHECK(r.result_int() == 202);
  CHECK(r.body().empty());

  Headers h = Mcp(kAlice, sid);
  h["MCP-Protocol-Version"] = "2025-06-18";
  r = Do(port, http::verb::post, "/mcp", Rpc(2, "tools/list").dump(), h);
  REQUIRE(r.result_int() == 200);
  json list = json::parse(r.body());
  std::vector<std::string> names;
  for (auto& t : list["result"]["tools"]) names.push_back(t["name"]);
  CHECK(std::find(names.begin(), names.end(), "demo__echo") != names.end());
  CHECK(std::find(names.begin(), names.end(), "demo__secret") == names.end());

  r = Do(port, http::verb::post, "/mcp",
         Rpc(3, "tools/call", {{"name", "demo__echo"}, {"arguments", {{"text", "hi"}}}}).dump(), h);
  REQUIRE(r.result_int() == 200);
  json call = json::parse(r.body());
  CHECK(call["id"] == 3);
  CHECK(call.contains("result"));

  r = Do(port, http::verb::post, "/mcp",
         Rpc("d", "tools/call", {{"name", "demo__secret"}, {"arguments", json::object()}}).dump(),
         h);
  REQUIRE(r.result_int() == 200);
  json denied = json::parse(r.body());
  CHECK(denied["id"] == "d");
  CHECK(denied["error"]["code"] == -32001);

  // Missing session: 400; unknown: 404; another principal's session: 404.
  r = Do(port, http::verb::post, "/mcp", Rpc(4, "tools/list").dump(), Mcp(kAlice));
  CHECK(r.result_int() == 400);
  r = Do(port, http::verb::post, "/mcp", Rpc(4, "tools/list").dump(),
         Mcp(kAlice, "00000000000000000000000000000000"));
  CHECK(r.result_int() == 404);
  r = Do(port, http::verb::post, "/mcp", Rpc(4, "tools/list").dump(), Mcp("bob-key", sid));
  CHECK(r.result_int() == 404);

  // GET without Accept: text/event-stream: 406; PUT: 405. Body not JSON: 400.
  Headers json_only = Mcp(kAlice, sid);
  json_only["Accept"] = "application/json";
  r = Do(port, http::verb::get, "/mcp", "", json_only);
  CHECK(r.result_int() == 406);
  r = Do(port, http::verb::put, "/mcp", "", Mcp(kAlice, sid));
  CHECK(r.result_int() == 405);
  CHECK(std::string(r[http::field::allow]) == "GET, POST, DELETE");
  r = Do(port, http::verb::post, "/mcp", "{nope", Mcp(kAlice, sid));
  CHECK(r.result_int() == 400);

  // Wrong Content-Type: 415; a body over limits.max_message_bytes: 413.
  Headers text = Mcp(kAlice, sid);
  text["Content-Type"] = "text/plain";
  r = Do(port, http::verb::post, "/mcp", Rpc(6, "tools/list").dump(), text);
  CHECK(r.result_int() == 415);
  r = Do(port, http::verb::post, "/mcp", std::string(70000, ' '), Mcp(kAlice, sid));
  CHECK(r.result_int() == 413);

  // DELETE ends the session; later use is 404.
  r = Do(port, http::verb::delete_, "/mcp", "", Mcp(kAlice, sid));
  CHECK(r.result_int() == 204);
  r = Do(port, http::verb::post, "/mcp", Rpc(5, "tools/list").dump(), Mcp(kAlice, sid));
  CHECK(r.result_int() == 404);

  // A second session works independently.
  r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), Mcp("bob-key"));
  CHECK(r.result_int() == 200);
  CHECK(std::string(r["MCP-Session-Id"]) != sid);

  // SIGTERM: graceful exit 0.
  int st = srv.Stop();
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(srv.log().find("shutting down") != std::string::npos);
  fs::remove_all(dir);
}

namespace {

// An anonymous gateway (stdio_principal an analyst) in front of the fake upstream; returns
// the session id after initialize + initialized.
// writ.yaml in `dir` for the slow-client tests: fake_upstream.py --flood behind an anonymous
// HTTP listener with a replay buffer large enough for the whole flood.
void WriteFloodConfig(const fs::path& dir) {
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n"
         "upstreams:\n  - name: demo\n    command: python3\n    args: [" + fake + ", --flood]\n"
         "http: { listen: '127.0.0.1:0', allow_anonymous: true,\n"
         "        resume_buffer_events: 100000, resume_buffer_bytes: 67108864 }\n"
         "stdio_principal: { uid: 'User::\"ann\"', parents: ['Role::\"analyst\"'] }\n";
}

std::string OpenSession(int port) {
  auto r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), Mcp(""));
  REQUIRE_MESSAGE(r.result_int() == 200, r.body());
  std::string sid(r["MCP-Session-Id"]);
  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  REQUIRE(Do(port, http::verb::post, "/mcp", note.dump(), Mcp("", sid)).result_int() == 202);
  // List first so the tools are known.
  r = Do(port, http::verb::post, "/mcp", Rpc(2, "tools/list").dump(), Mcp("", sid));
  REQUIRE(r.result_int() == 200);
  return sid;
}

std::string AnonymousConfig() {
  return "policies: ./policies\n" + Upstreams() +
         "http: { listen: '127.0.0.1:0', allow_anonymous: true }\n"
         "stdio_principal: { uid: 'User::\"ann\"', parents: ['Role::\"analyst\"'] }\n";
}

json CallParams(const std::string& tool, json meta = nullptr) {
  json p = {{"name", tool}, {"arguments", json::object()}};
  if (!meta.is_null()) p["_meta"] = meta;
  return p;
}

}  // namespace

TEST_CASE("HTTP: SSE on POST carries progress, logs and server requests before the reply") {
  fs::path dir = MakeDir("writ-http-sse");
  std::ofstream(dir / "writ.yaml") << AnonymousConfig();
  Server srv(dir / "writ.yaml", dir / "stderr");
  REQUIRE_MESSAGE(srv.port() != 0, srv.log());
  int port = srv.port();
  std::string sid = OpenSession(port);

  SUBCASE("progress and a log message arrive on the POST's stream, then the reply") {
    Streamed post(port, http::verb::post,
                  Rpc(10, "tools/call", CallParams("demo__progress", {{"progressToken", "tok"}}))
                      .dump(),
                  Mcp("", sid));
    REQUIRE(post.Status() == 200);
    CHECK(post.content_type() == "text/event-stream");
    std::vector<json> got;
    for (json m = post.Next(); !m.is_null(); m = post.Next()) got.push_back(m);
    REQUIRE(got.size() == 4);
    CHECK(got[0]["method"] == "notifications/progress");
    CHECK(got[0]["params"]["progressToken"] == "tok");  // the client's own token
    CHECK(got[0]["params"]["progress"] == 1);
    CHECK(got[1]["params"]["progress"] == 2);
    CHECK(got[2]["method"] == "notifications/message");
    CHECK(got[3]["id"] == 10);
    CHECK(got[3]["result"]["content"][0]["text"] == "done");
    CHECK(post.Ended());
  }

  SUBCASE("a client that accepts only JSON gets JSON; its notifications are not sent") {
    Headers h = Mcp("", sid);
    h["Accept"] = "application/json";
    auto r = Do(port, http::verb::post, "/mcp",
                Rpc(11, "tools/call", CallParams("demo__progress", {{"progressToken", 1}})).dump(),
                h);
    REQUIRE(r.result_int() == 200);
    CHECK(std::string(r[http::field::content_type]) == "application/json");
    CHECK(json::parse(r.body())["result"]["content"][0]["text"] == "done");
  }

  SUBCASE("a reply with nothing before it is plain JSON even when SSE is accepted") {
    auto r = Do(port, http::verb::post, "/mcp",
                Rpc(12, "tools/call", CallParams("demo__echo")).dump(), Mcp("", sid));
    REQUIRE(r.result_int() == 200);
    CHECK(std::string(r[http::field::content_type]) == "application/json");
  }

  SUBCASE("sampling on the POST's stream; the client's answer is POSTed back (202)") {
    Streamed post(port, http::verb::post,
                  Rpc("c1", "tools/call", CallParams("demo__ask")).dump(), Mcp("", sid));
    REQUIRE(post.Status() == 200);
    CHECK(post.content_type() == "text/event-stream");
    json req = post.Next();
    REQUIRE(req.is_object());
    CHECK(req["method"] == "sampling/createMessage");
    REQUIRE(req["id"].is_string());
    CHECK(req["id"].get<std::string>().rfind("writ-", 0) == 0);  // the gateway's id
    auto r = Do(port, http::verb::post, "/mcp",
                Response(req["id"], {{"role", "assistant"},
                                     {"content", {{"type", "text"}, {"text", "42"}}}})
                    .dump(),
                Mcp("", sid));
    CHECK(r.result_int() == 202);
    json reply = post.Next();
    REQUIRE(reply.is_object());
    CHECK(reply["id"] == "c1");
    std::string text = reply["result"]["content"][0]["text"];
    CHECK(text.find("client said:") == 0);
    CHECK(text.find("42") != std::string::npos);
    CHECK(post.Ended());
  }

  SUBCASE("without any stream, a server request is answered with an error for the client") {
    Headers h = Mcp("", sid);
    h["Accept"] = "application/json";
    auto r = Do(port, http::verb::post, "/mcp",
                Rpc(13, "tools/call", CallParams("demo__ask")).dump(), h);
    REQUIRE(r.result_int() == 200);
    // The fake server returns what the "client" said: an error, so no result.
    CHECK(json::parse(r.body())["result"]["content"][0]["text"] == "client said: null");
  }

  SUBCASE("the GET stream carries server requests not tied to an SSE POST") {
    Headers get = Mcp("", sid);
    get["Accept"] = "text/event-stream";
    Streamed stream(port, http::verb::get, "", get);
    REQUIRE(stream.Status() == 200);
    CHECK(stream.content_type() == "text/event-stream");
    Headers h = Mcp("", sid);
    h["Accept"] = "application/json";
    Streamed post(port, http::verb::post, Rpc(14, "tools/call", CallParams("demo__ask")).dump(),
                  h);
    json req = stream.Next();
    REQUIRE(req.is_object());
    CHECK(req["method"] == "sampling/createMessage");
    auto r = Do(port, http::verb::post, "/mcp",
                Response(req["id"], {{"role", "assistant"},
                                     {"content", {{"type", "text"}, {"text", "via-get"}}}})
                    .dump(),
                Mcp("", sid));
    CHECK(r.result_int() == 202);
    REQUIRE(post.Status() == 200);
    REQUIRE(post.Ended());
    CHECK(json::parse(post.body())["result"]["content"][0]["text"].get<std::string>().find(
              "via-get") != std::string::npos);
    // A newer GET replaces the open one, which ends.
    Streamed second(port, http::verb::get, "", get);
    REQUIRE(second.Status() == 200);
    CHECK(stream.Ended());
    CHECK_FALSE(second.Ended(300));
    // DELETE ends the session and its stream.
    CHECK(Do(port, http::verb::delete_, "/mcp", "", Mcp("", sid)).result_int() == 204);
    CHECK(second.Ended());
  }

  SUBCASE("GET needs a valid session") {
    Headers get = Mcp("", "");
    get["Accept"] = "text/event-stream";
    CHECK(Do(port, http::verb::get, "/mcp", "", get).result_int() == 400);
    get["MCP-Session-Id"] = "00000000000000000000000000000000";
    CHECK(Do(port, http::verb::get, "/mcp", "", get).result_int() == 404);
  }
  fs::remove_all(dir);
}

TEST_CASE("writ serve in front of another writ serve (a Streamable HTTP upstream)") {
  // inner: the fake upstream behind an anonymous gateway; outer: `url:` to inner.
  fs::path dir = MakeDir("writ-http-chain");
  std::ofstream(dir / "inner.yaml") << AnonymousConfig();
  Server inner(dir / "inner.yaml", dir / "inner.log");
  REQUIRE_MESSAGE(inner.port() != 0, inner.log());
  fs::create_directories(dir / "outer-policies");
  std::ofstream(dir / "outer-policies" / "p.writ")
      << "@id(\"all\")\npermit (principal, action, resource);\n";
  std::ofstream(dir / "outer.yaml")
      << "policies: ./outer-policies\n"
      << "upstreams:\n  - name: inner\n    url: http://127.0.0.1:" << inner.port() << "/mcp\n"
      << "    headers: { X-Writ-Test: chained }\n"
      << "http: { listen: '127.0.0.1:0', allow_anonymous: true }\n";
  Server outer(dir / "outer.yaml", dir / "outer.log");
  REQUIRE_MESSAGE(outer.port() != 0, outer.log());
  int port = outer.port();

  auto r = Do(port, http::verb::post, "/mcp", Rpc(1, "initialize", InitParams()).dump(), Mcp(""));
  REQUIRE_MESSAGE(r.result_int() == 200, std::string(r.body() + outer.log()));
  CHECK(json::parse(r.body())["result"]["capabilities"].contains("tools"));
  std::string sid(r["MCP-Session-Id"]);
  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  REQUIRE(Do(port, http::verb::post, "/mcp", note.dump(), Mcp("", sid)).result_int() == 202);
  r = Do(port, http::verb::post, "/mcp", Rpc(2, "tools/list").dump(), Mcp("", sid));
  REQUIRE(r.result_int() == 200);
  std::vector<std::string> names;
  json listed = json::parse(r.body());
  for (auto& t : listed["result"]["tools"]) names.push_back(t["name"]);
  CHECK_MESSAGE(std::find(names.begin(), names.end(), "inner__demo__echo") != names.end(),
                r.body());
  CHECK(std::find(names.begin(), names.end(), "inner__demo__secret") == names.end());

  // A plain call (JSON answer from inner).
  r = Do(port, http::verb::post, "/mcp",
         Rpc(3, "tools/call", {{"name", "inner__demo__echo"}, {"arguments", {{"text", "hi"}}}})
             .dump(),
         Mcp("", sid));
  REQUIRE(r.result_int() == 200);
  CHECK(json::parse(r.body())["result"]["content"][0]["text"] == "{\"text\": \"hi\"}");

  // Progress: inner streams it over SSE to outer's HTTP upstream, outer to us.
  {
    Streamed post(port, http::verb::post,
                  Rpc(4, "tools/call", CallParams("inner__demo__progress", {{"progressToken", 9}}))
                      .dump(),
                  Mcp("", sid));
    REQUIRE(post.Status() == 200);
    std::vector<json> got;
    for (json m = post.Next(); !m.is_null(); m = post.Next()) got.push_back(m);
    REQUIRE(got.size() == 4);
    CHECK(got[0]["params"]["progressToken"] == 9);
    CHECK(got[1]["params"]["progress"] == 2);
    CHECK(got[3]["result"]["content"][0]["text"] == "done");
  }

  // Sampling through two gateways: the request comes out on our POST stream; our answer is
  // routed back through outer to inner to the fake server.
  {
    Streamed post(port, http::verb::post,
                  Rpc(5, "tools/call", CallParams("inner__demo__ask")).dump(), Mcp("", sid));
    REQUIRE(post.Status() == 200);
    json req = post.Next();
    REQUIRE(req.is_object());
    CHECK(req["method"] == "sampling/createMessage");
    r = Do(port, http::verb::post, "/mcp",
           Response(req["id"], {{"role", "assistant"},
                                {"content", {{"type", "text"}, {"text", "chained"}}}})
               .dump(),
           Mcp("", sid));
    CHECK(r.result_int() == 202);
    json reply = post.Next();
    REQUIRE(reply.is_object());
    CHECK(reply["id"] == 5);
    CHECK(reply["result"]["content"][0]["text"].get<std::string>().find("chained") !=
          std::string::npos);
  }

  // Ending the outer session DELETEs outer's session at inner.
  CHECK(Do(port, http::verb::delete_, "/mcp", "", Mcp("", sid)).result_int() == 204);
  bool deleted = false;
  for (int i = 0; i < 100 && !deleted; ++i) {
    deleted = inner.log().find("session #1 deleted") != std::string::npos;
    if (!deleted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK_MESSAGE(deleted, inner.log());
  CHECK(outer.Stop() == 0);
  fs::remove_all(dir);
}

TEST_CASE("writ serve --stdio with a Streamable HTTP upstream") {
  fs::path dir = MakeDir("writ-stdio-url");
  std::ofstream(dir / "inner.yaml") << AnonymousConfig();
  Server inner(dir / "inner.yaml", dir / "inner.log");
  REQUIRE_MESSAGE(inner.port() != 0, inner.log());
  fs::create_directories(dir / "outer-policies");
  std::ofstream(dir / "outer-policies" / "p.writ")
      << "@id(\"all\")\npermit (principal, action, resource);\n";
  std::ofstream(dir / "outer.yaml")
      << "policies: ./outer-policies\n"
      << "upstreams:\n  - name: inner\n    url: http://127.0.0.1:" << inner.port() << "/mcp\n";
  json init = Rpc(1, "initialize", InitParams());
  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  json call = Rpc(2, "tools/call", {{"name", "inner__demo__echo"}, {"arguments", {{"x", 1}}}});
  std::ofstream(dir / "in1") << init.dump() << "\n";
  std::ofstream(dir / "in2") << note.dump() << "\n" << call.dump() << "\n";
  // Messages are spaced so each is answered before stdin closes; bounded by `timeout`.
  std::string cmd = "(cat " + (dir / "in1").string() + "; sleep 1; cat " + (dir / "in2").string() +
                    "; sleep 2) | timeout 30 " + std::string(WRIT_BINARY_DIR) +
                    "/cli/writ serve --stdio --config " + (dir / "outer.yaml").string() + " > " +
                    (dir / "out").string() + " 2> " + (dir / "err").string();
  CHECK(std::system(cmd.c_str()) == 0);
  std::string out = Slurp(dir / "out");
  CHECK_MESSAGE(out.find("\"serverInfo\":{\"name\":\"writ\"") != std::string::npos,
                std::string(out + Slurp(dir / "err")));
  CHECK_MESSAGE(out.find("{\\\"x\\\": 1}") != std::string::npos,
                std::string(out + Slurp(dir / "err")));
  fs::remove_all(dir);
}

TEST_CASE("HTTP: a GET stream resumed with Last-Event-ID replays what the client missed") {
  // A replay buffer of 3 events: the demo__progress call below sends 3 messages to the GET
  // stream (2 progress notifications and a log message: the POST accepts only JSON).
  fs::path dir = MakeDir("writ-http-resume");
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n" + Upstreams() +
             "http: { listen: '127.0.0.1:0', allow_anonymous: true, resume_buffer_events: 3 }\n"
             "stdio_principal: { uid: 'User::\"ann\"', parents: ['Role::\"analyst\"'] }\n";
  Server srv(dir / "writ.yaml", dir / "stderr");
  REQUIRE_MESSAGE(srv.port() != 0, srv.log());
  int port = srv.port();
  std::string sid = OpenSession(port);
  Headers get = Mcp("", sid);
  get["Accept"] = "text/event-stream";
  get["MCP-Protocol-Version"] = "2025-11-25";
  Headers json_only = Mcp("", sid);
  json_only["Accept"] = "application/json";
  auto progress = [&](int id) {
    auto r = Do(port, http::verb::post, "/mcp",
                Rpc(id, "tools/call", CallParams("demo__progress", {{"progressToken", id}}))
                    .dump(),
                json_only);
    REQUIRE(r.result_int() == 200);
  };

  // The first GET starts with a priming event (an id, no data) and then the client leaves.
  std::string primed;
  {
    Streamed stream(port, http::verb::get, "", get);
    REQUIRE(stream.Status() == 200);
    primed = stream.FirstId();
    CHECK(primed == "g0");
    CHECK(stream.replay().empty());  // no Last-Event-ID: nothing to say
  }
  // While no stream is open, the messages for it are kept.
  progress(20);

  SUBCASE("the missed messages are replayed in order, with their ids") {
    get["Last-Event-ID"] = primed;
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK(again.replay() == "replayed");
    std::vector<std::string> ids;
    json a = again.Next();
    ids.push_back(again.last_next_id());
    json b = again.Next();
    ids.push_back(again.last_next_id());
    json c = again.Next();
    ids.push_back(again.last_next_id());
    REQUIRE(a.is_object());
    REQUIRE(b.is_object());
    REQUIRE(c.is_object());
    CHECK(a["method"] == "notifications/progress");
    CHECK(a["params"]["progress"] == 1);
    CHECK(b["params"]["progress"] == 2);
    CHECK(c["method"] == "notifications/message");
    CHECK(ids == std::vector<std::string>{"g1", "g2", "g3"});
    CHECK(again.Next(300).is_null());  // nothing more, and nothing twice
    // The resumed stream is live: new messages follow with the next ids.
    progress(21);
    json d = again.Next();
    REQUIRE(d.is_object());
    CHECK(d["method"] == "notifications/progress");
    CHECK(again.last_next_id() == "g4");
  }

  SUBCASE("resuming from the middle replays only what came after that id") {
    get["Last-Event-ID"] = "g2";
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK(again.replay() == "replayed");
    json c = again.Next();
    REQUIRE(c.is_object());
    CHECK(c["method"] == "notifications/message");
    CHECK(again.last_next_id() == "g3");
    CHECK(again.Next(300).is_null());
  }

  SUBCASE("an id older than the buffer replays what is left and says so") {
    progress(22);  // 3 more: the buffer (3 events) now holds g4..g6 only
    get["Last-Event-ID"] = "g1";
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK(again.replay() == "partial");
    std::vector<std::string> ids;
    for (json m = again.Next(2000); !m.is_null(); m = again.Next(300))
      ids.push_back(again.last_next_id());
    CHECK(ids == std::vector<std::string>{"g4", "g5", "g6"});
    CHECK(srv.log().find("older than the replay buffer") != std::string::npos);
  }

  SUBCASE("an unknown id starts a fresh stream without replay") {
    for (const char* bad : {"g99", "x1", "g", "g01", "18446744073709551616"}) {
      get["Last-Event-ID"] = bad;
      Streamed again(port, http::verb::get, "", get);
      REQUIRE(again.Status() == 200);
      CHECK(again.replay() == "unknown");
      CHECK(again.FirstId() == "g3");  // the priming event names the latest id
      CHECK(again.Next(300).is_null());
    }
  }

  SUBCASE("a client before 2025-11-25 gets no priming event") {
    get["MCP-Protocol-Version"] = "2025-06-18";
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK(again.FirstId(300).empty());
  }
  fs::remove_all(dir);
}

TEST_CASE("http.resume_buffer_* keys: the docs example parses, bad values are refused") {
  writ::gateway::Config c = writ::http_test::ParseDocsYaml("<!-- example: http-resume-config");
  std::string errors;
  CHECK(c.http.resume_buffer_events == 1000);
  CHECK(c.http.resume_buffer_bytes == 4194304u);
  writ::gateway::Config d;
  REQUIRE(writ::gateway::ParseConfig("policies: p\nupstreams: []\n", "g.yaml", "", &d, &errors));
  CHECK(d.http.resume_buffer_events == 256);  // the documented defaults
  CHECK(d.http.resume_buffer_bytes == 1048576u);
  errors.clear();
  CHECK_FALSE(writ::gateway::ParseConfig(
      "policies: p\nupstreams: []\nhttp:\n  resume_buffer_events: -1\n  resume_buffer_bytes: 10\n",
      "g.yaml", "", &d, &errors));
  CHECK(errors.find("http.resume_buffer_events") != std::string::npos);
  CHECK(errors.find("http.resume_buffer_bytes") != std::string::npos);
  CHECK(errors.find("g.yaml:4") != std::string::npos);
}

TEST_CASE("HTTP: a GET stream whose client stops reading is ended; nothing it missed is lost") {
  // The client opens the GET stream with a small receive buffer and reads nothing while the
  // upstream sends kCount log messages to it (the POST accepts only JSON, so they go to the
  // GET stream). Once the socket buffers are full the stream's queue (1024 events) fills; the
  // next message must not be dropped: it stays in the resumption buffer and the stream ends
  // after what is queued, so the client's resume with Last-Event-ID gets the rest.
  constexpr int kCount = 3000, kPad = 8000;  // ~24 MB: well past socket buffers + queue
  fs::path dir = MakeDir("writ-http-slow");
  WriteFloodConfig(dir);
  Server srv(dir / "writ.yaml", dir / "stderr");
  REQUIRE_MESSAGE(srv.port() != 0, srv.log());
  int port = srv.port();
  std::string sid = OpenSession(port);
  Headers get = Mcp("", sid);
  get["Accept"] = "text/event-stream";
  get["MCP-Protocol-Version"] = "2025-11-25";
  Headers json_only = Mcp("", sid);
  json_only["Accept"] = "application/json";

  std::vector<int> seen;        // data.i of every message received, in order
  std::vector<std::string> ids;  // their SSE ids
  auto take = [&](Streamed& s, int timeout_ms) {
    for (json m = s.Next(timeout_ms); !m.is_null(); m = s.Next(timeout_ms)) {
      REQUIRE(m["method"] == "notifications/message");
      seen.push_back(m["params"]["data"]["i"].get<int>());
      ids.push_back(s.last_next_id());
      if (static_cast<int>(seen.size()) == kCount) break;
    }
  };

  {
    Streamed slow(port, http::verb::get, "", get, Streamed::Mode::kSlow);
    // The server has registered the stream once its response headers arrive (unread).
    REQUIRE(slow.WaitReadable(10000));
    auto r = Do(port, http::verb::post, "/mcp",
                Rpc(30, "tools/call",
                    {{"name", "demo__flood"}, {"arguments", {{"count", kCount}, {"size", kPad}}}})
                    .dump(),
                json_only);
    REQUIRE_MESSAGE(r.result_int() == 200, r.body());
    REQUIRE(json::parse(r.body())["result"]["content"][0]["text"] == "flooded");
    // Every message has been handed to the session by now (the reply came after them).
    std::string log = srv.log();
    CHECK_MESSAGE(log.find("the GET stream's queue is full (slow client)") != std::string::npos,
                  log);
    slow.StartReading();
    REQUIRE(slow.Status() == 200);
    CHECK(slow.FirstId() == "g0");  // the priming event
    take(slow, 5000);
    // The server ended the stream (its last chunk), not left it open with a silent gap.
    CHECK(slow.EndedComplete(10000));
  }
  size_t first_stream = seen.size();
  CHECK(first_stream > 0);
  CHECK(first_stream < static_cast<size_t>(kCount));  // the queue really overflowed

  // Resume from the last id received until everything has arrived; a replay longer than one
  // queue comes in parts (each part's stream ends), so this takes a few GETs.
  for (int round = 0; round < 10 && static_cast<int>(seen.size()) < kCount; ++round) {
    REQUIRE_FALSE(ids.empty());
    get["Last-Event-ID"] = ids.back();
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK_MESSAGE(again.replay() == "replayed", again.replay());  // nothing evicted
    take(again, 2000);
  }
  REQUIRE(seen.size() == static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    CHECK_MESSAGE(seen[i] == i, "message " << i << " arrived as " << seen[i]);
    CHECK(ids[i] == "g" + std::to_string(i + 1));
    if (seen[i] != i) break;
  }
  fs::remove_all(dir);
}

TEST_CASE("HTTP: a POST stream whose client stops reading is ended; a resume gets the rest") {
  // As above, for a POST's own stream (resumable: ids p<k>-<n>): the client POSTs the flood
  // call accepting SSE and reads nothing; once its stream's queue is full the stream ends
  // after what is queued, and GETs with Last-Event-ID get every later message and the reply,
  // in order, each exactly once. The socket path (not DispatchForTesting) is what is tested.
  constexpr int kCount = 3000, kPad = 8000;
  fs::path dir = MakeDir("writ-http-slow-post");
  WriteFloodConfig(dir);
  Server srv(dir / "writ.yaml", dir / "stderr");
  REQUIRE_MESSAGE(srv.port() != 0, srv.log());
  int port = srv.port();
  std::string sid = OpenSession(port);
  Headers post_headers = Mcp("", sid);
  post_headers["MCP-Protocol-Version"] = "2025-11-25";
  Headers get = Mcp("", sid);
  get["Accept"] = "text/event-stream";
  get["MCP-Protocol-Version"] = "2025-11-25";

  std::vector<int> seen;         // data.i of every log message received, in order
  std::vector<std::string> ids;  // the SSE ids of every message received
  json reply;
  auto take = [&](Streamed& s, int timeout_ms) {
    for (json m = s.Next(timeout_ms); !m.is_null(); m = s.Next(timeout_ms)) {
      ids.push_back(s.last_next_id());
      if (m.contains("id")) {
        reply = m;
        break;
      }
      REQUIRE(m["method"] == "notifications/message");
      seen.push_back(m["params"]["data"]["i"].get<int>());
    }
  };

  {
    Streamed slow(port, http::verb::post,
                  Rpc(40, "tools/call",
                      {{"name", "demo__flood"}, {"arguments", {{"count", kCount}, {"size", kPad}}}})
                      .dump(),
                  post_headers, Streamed::Mode::kSlow);
    bool full = false;
    for (int i = 0; i < 400 && !full; ++i) {
      full = srv.log().find("the POST stream's queue is full (slow client)") != std::string::npos;
      if (!full) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE_MESSAGE(full, srv.log());
    slow.StartReading();
    REQUIRE(slow.Status() == 200);
    CHECK(slow.content_type() == "text/event-stream");
    std::string primed = slow.FirstId();
    CHECK(primed.size() > 3);
    CHECK(primed.substr(primed.size() - 2) == "-0");  // the priming event p<k>-0
    take(slow, 5000);
    CHECK(slow.EndedComplete(10000));  // ended by the server, not left open with a gap
  }
  size_t first_stream = seen.size();
  CHECK(first_stream > 0);
  CHECK(first_stream < static_cast<size_t>(kCount));
  CHECK(reply.is_null());

  for (int round = 0; round < 10 && reply.is_null(); ++round) {
    REQUIRE_FALSE(ids.empty());
    get["Last-Event-ID"] = ids.back();
    Streamed again(port, http::verb::get, "", get);
    REQUIRE(again.Status() == 200);
    CHECK_MESSAGE(again.replay() == "replayed", again.replay());
    take(again, 10000);
    CHECK(again.EndedComplete(10000));
  }
  REQUIRE(reply.is_object());
  CHECK(reply["id"] == 40);
  CHECK(reply["result"]["content"][0]["text"] == "flooded");
  REQUIRE(seen.size() == static_cast<size_t>(kCount));
  std::string stream = ids.front().substr(0, ids.front().find('-'));
  for (int i = 0; i < kCount; ++i) {
    CHECK_MESSAGE(seen[i] == i, "message " << i << " arrived as " << seen[i]);
    CHECK(ids[i] == stream + "-" + std::to_string(i + 1));
    if (seen[i] != i) break;
  }
  CHECK(ids.back() == stream + "-" + std::to_string(kCount + 1));  // the reply's id
  fs::remove_all(dir);
}

namespace {

// GET /metrics on the admin listener of `srv` (its port from the log), with the admin token.
std::string ScrapeMetrics(const Server& srv, const std::string& token) {
  std::smatch m;
  std::string log = srv.log();
  std::regex re("admin API on 127\\.0\\.0\\.1:([0-9]+)");
  REQUIRE_MESSAGE(std::regex_search(log, m, re), log);
  auto r = Do(std::stoi(m[1]), http::verb::get, "/metrics", "",
              {{"Authorization", "Bearer " + token}});
  REQUIRE(r.result_int() == 200);
  CHECK(std::string(r[http::field::content_type]).rfind("text/plain; version=0.0.4", 0) == 0);
  return r.body();
}

// The value of the series `name{upstream="<upstream>"}` in a scrape; -1 when absent.
long long Series(const std::string& scrape, const std::string& name, const std::string& upstream) {
  std::string key = name + "{upstream=\"" + upstream + "\"} ";
  size_t at = scrape.find("\n" + key);
  if (at == std::string::npos) return -1;
  return std::stoll(scrape.substr(at + 1 + key.size()));
}

}  // namespace

TEST_CASE("/metrics on the admin listener exports the url: upstream's connection counters") {
  // inner: the fake upstream behind an anonymous gateway; outer: `url:` to inner, with an
  // admin listener. Sequential calls through outer reuse one kept-alive connection to inner.
  fs::path dir = MakeDir("writ-http-upmetrics");
  std::ofstream(dir / "inner.yaml") << AnonymousConfig();
  Server inner(dir / "inner.yaml", dir / "inner.log");
  REQUIRE_MESSAGE(inner.port() != 0, inner.log());
  fs::create_directories(dir / "outer-policies");
  std::ofstream(dir / "outer-policies" / "p.writ")
      << "@id(\"all\")\npermit (principal, action, resource);\n";
  const std::string token = "upstream-metrics-token-0123456789";
  std::ofstream(dir / "admin.token") << token << "\n";
  // keep_alive.pool_size: 0 (the second run) turns reuse off: every POST connects anew.
  bool no_pool = false;
  SUBCASE("default keep_alive") {}
  SUBCASE("keep_alive: { pool_size: 0 }") { no_pool = true; }
  std::ofstream(dir / "outer.yaml")
      << "policies: ./outer-policies\n"
      << "upstreams:\n  - name: inner\n    url: http://127.0.0.1:" << inner.port() << "/mcp\n"
      << (no_pool ? "    keep_alive: { pool_size: 0 }\n" : "")
      << "http: { listen: '127.0.0.1:0', allow_anonymous: true }\n"
      << "admin: { listen: '127.0.0.1:0', token_file: admin.token }\n";
  Server outer(dir / "outer.yaml", dir / "outer.log");
  REQUIRE_MESSAGE(outer.port() != 0, outer.log());

  // The families are declared (with HELP and TYPE) before any session exists.
  std::string before = ScrapeMetrics(outer, token);
  for (const char* family :
       {"writ_upstream_http_connections_total", "writ_upstream_http_reused_total",
        "writ_upstream_http_resends_total", "writ_upstream_http_tls_resumptions_total"}) {
    CHECK_MESSAGE(before.find(std::string("# TYPE ") + family + " counter\n") != std::string::npos,
                  family);
    CHECK(before.find(std::string("# HELP ") + family + " ") != std::string::npos);
  }

  int port = outer.port();
  std::string sid = OpenSession(port);  // initialize, notifications/initialized, tools/list
  constexpr int kCalls = 5;
  for (int i = 0; i < kCalls; ++i) {
    json call = Rpc(10 + i, "tools/call",
                    {{"name", "inner__demo__echo"}, {"arguments", {{"i", i}}}});
    auto r = Do(port, http::verb::post, "/mcp", call.dump(), Mcp("", sid));
    REQUIRE(r.result_int() == 200);
  }
  std::string after = ScrapeMetrics(outer, token);
  long long connections = Series(after, "writ_upstream_http_connections_total", "inner");
  long long reused = Series(after, "writ_upstream_http_reused_total", "inner");
  // 3 + kCalls POSTs (initialize, notifications/initialized, tools/list pages, the calls) and
  // the GET stream: one connection for the POSTs (+ the GET's own), the rest reused; without
  // a pool, one connection per POST.
  if (no_pool) {
    CHECK_MESSAGE(connections >= 3 + kCalls, after);
    CHECK_MESSAGE(reused == 0, after);
  } else {
    CHECK_MESSAGE(connections >= 1, after);
    CHECK_MESSAGE(connections <= 3, after);
    CHECK_MESSAGE(reused >= kCalls + 1, after);
  }
  CHECK(Series(after, "writ_upstream_http_resends_total", "inner") == 0);
  CHECK(Series(after, "writ_upstream_http_tls_resumptions_total", "inner") == 0);  // http://
  CHECK(outer.Stop() == 0);
  fs::remove_all(dir);
}
