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
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "gateway/config.h"
#include "gateway/http_server.h"
#include "gateway/identity.h"

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
  return "upstreams:\n  - name: demo\n    command: python3\n    args: [" + fake + "]\n";
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

  // GET (no server stream yet): 405. Body not JSON: 400.
  r = Do(port, http::verb::get, "/mcp", "", Mcp(kAlice, sid));
  CHECK(r.result_int() == 405);
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
