// See admin_util.h.
#include "tests/admin/admin_util.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TempDir::TempDir(const std::string& name) {
  dir_ = fs::path(WRIT_BINARY_DIR) / "tests" / "admin_tmp" / name;
  fs::remove_all(dir_);
  fs::create_directories(dir_);
}

HttpReply Http(int port, const std::string& method, const std::string& target,
               const std::string& body, const std::string& auth) {
  net::io_context ioc;
  tcp::socket sock(ioc);
  sock.connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!auth.empty()) req.set(http::field::authorization, auth);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(sock, buf, res);
  beast::error_code ec;
  sock.shutdown(tcp::socket::shutdown_both, ec);
  HttpReply r;
  r.status = res.result_int();
  r.body = res.body();
  for (const auto& f : res) r.headers[Lower(std::string(f.name_string()))] = std::string(f.value());
  return r;
}

struct WebhookServer::Impl {
  std::vector<int> statuses;
  int delay_ms = 0;
  bool tls = false;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  ssl::context ctx{ssl::context::tls_server};
  std::thread thread;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Received> got;

  template <class Stream>
  void Serve(Stream& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    beast::error_code ec;
    http::read(s, buf, req, ec);
    if (ec) return;
    int status;
    {
      std::lock_guard<std::mutex> lock(mu);
      Received r;
      r.target = std::string(req.target());
      r.body = req.body();
      for (const auto& f : req)
        r.headers[Lower(std::string(f.name_string()))] = std::string(f.value());
      status = statuses[std::min(got.size(), statuses.size() - 1)];
      got.push_back(std::move(r));
      cv.notify_all();
    }
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.body() = "ok";
    res.keep_alive(false);
    res.prepare_payload();
    http::write(s, res, ec);
  }

  void Run() {
    while (!stop) {
      tcp::socket sock(ioc);
      beast::error_code ec;
      acceptor.accept(sock, ec);
      if (stop || ec) break;
      if (tls) {
        beast::ssl_stream<tcp::socket> s(std::move(sock), ctx);
        s.handshake(ssl::stream_base::server, ec);
        if (!ec) Serve(s);
        beast::get_lowest_layer(s).shutdown(tcp::socket::shutdown_both, ec);
      } else {
        Serve(sock);
        sock.shutdown(tcp::socket::shutdown_both, ec);
      }
    }
  }
};

WebhookServer::WebhookServer(std::vector<int> statuses, bool tls, int delay_ms)
    : impl_(std::make_unique<Impl>()) {
  impl_->statuses = std::move(statuses);
  impl_->tls = tls;
  impl_->delay_ms = delay_ms;
  if (tls) {
    static std::atomic<int> n{0};
    TempDir dir("tls_" + std::to_string(getpid()) + "_" + std::to_string(n++));
    std::string key = dir.path("key.pem"), cert = dir.path("cert.pem");
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) {
      impl_->ctx.use_certificate_chain_file(cert);
      impl_->ctx.use_private_key_file(key, ssl::context::pem);
      ca_file_ = cert;
    }
  }
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->thread = std::thread([this] { impl_->Run(); });
}

WebhookServer::~WebhookServer() {
  impl_->stop = true;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->thread.join();
}

std::vector<WebhookServer::Received> WebhookServer::received() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->got;
}

bool WebhookServer::WaitFor(size_t n, int timeout_ms) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return impl_->got.size() >= n; });
}

int RunWrit(const std::string& args, std::string* out, std::string* err,
            const std::map<std::string, std::string>& env) {
  static std::atomic<int> n{0};
  TempDir dir("run_" + std::to_string(getpid()) + "_" + std::to_string(n++));
  std::string cmd = "env";
  for (const auto& [k, v] : env) cmd += " '" + k + "=" + v + "'";
  cmd += " timeout 20 " + std::string(WRIT_BINARY_DIR) + "/cli/writ " + args + " </dev/null >" +
         dir.path("out") + " 2>" + dir.path("err");
  int st = std::system(cmd.c_str());
  *out = Slurp(dir.path("out"));
  *err = Slurp(dir.path("err"));
  if (!WIFEXITED(st)) return -1;
  int code = WEXITSTATUS(st);
  return code == 124 ? -1 : code;
}
