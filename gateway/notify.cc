// notify.cc -- see notify.h. The HTTP client is Boost.Beast over Asio (C++20 coroutines,
// one io_context per attempt, bounded by run_for), TLS is OpenSSL through asio::ssl.
#include "gateway/notify.h"

#include <openssl/ssl.h>

#include <utility>  // before Boost 1.74 asio (awaitable.hpp uses std::exchange)

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <cctype>
#include <iostream>

#include "gateway/audit.h"

namespace writ::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

constexpr size_t kMaxResponseBytes = 1 << 20;


#if defined(BOOST_ASIO_HAS_CO_AWAIT)
template <class Stream>
net::awaitable<void> Exchange(Stream& s, http::request<http::string_body>& req,
                              HttpCallResult* out) {
  co_await http::async_write(s, req, net::use_awaitable);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  co_await http::async_read(s, buf, parser, net::use_awaitable);
  out->status = parser.get().result_int();
  out->body = parser.get().body();
}

net::awaitable<void> Call(const HttpUrl& u, http::verb verb,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& body, ssl::context* ctx, HttpCallResult* out) {
  try {
    auto ex = co_await net::this_coro::executor;
    tcp::resolver resolver(ex);
    auto eps = co_await resolver.async_resolve(u.host, u.port, net::use_awaitable);
    http::request<http::string_body> req{verb, u.target, 11};
    bool default_port = u.port == (u.tls ? "443" : "80");
    std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    req.set(http::field::host, default_port ? host : host + ":" + u.port);
    req.set(http::field::user_agent, "writ");
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.keep_alive(false);
    req.prepare_payload();
    if (u.tls) {
      beast::ssl_stream<beast::tcp_stream> s(ex, *ctx);
      beast::error_code ec;
      net::ip::make_address(u.host, ec);
      if (ec && !SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str())) {
        out->error = "cannot set the TLS server name";
        co_return;
      }
      s.set_verify_callback(ssl::host_name_verification(u.host));
      co_await beast::get_lowest_layer(s).async_connect(eps, net::use_awaitable);
      co_await s.async_handshake(ssl::stream_base::client, net::use_awaitable);
      co_await Exchange(s, req, out);
      beast::get_lowest_layer(s).socket().shutdown(tcp::socket::shutdown_both, ec);
    } else {
      beast::tcp_stream s(ex);
      co_await s.async_connect(eps, net::use_awaitable);
      co_await Exchange(s, req, out);
      beast::error_code ec;
      s.socket().shutdown(tcp::socket::shutdown_both, ec);
    }
  } catch (const boost::system::system_error& e) {
    out->status = 0;
    out->error = e.code().message();
  } catch (const std::exception& e) {
    out->status = 0;
    out->error = e.what();
  }
}
#endif  // BOOST_ASIO_HAS_CO_AWAIT

}  // namespace


HttpCallResult HttpCall(const std::string& method, const std::string& url,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const std::string& body, const std::string& ca_file,
                        std::chrono::milliseconds timeout) {
  HttpCallResult r;
  HttpUrl u;
  if (!ParseHttpUrl(url, &u, &r.error)) return r;
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    r.error = "unknown HTTP method " + method;
    return r;
  }
  ssl::context ctx(ssl::context::tls_client);
  if (u.tls) {
    beast::error_code ec;
    ctx.set_verify_mode(ssl::verify_peer, ec);
    if (!ca_file.empty()) {
      ctx.load_verify_file(ca_file, ec);
      if (ec) {
        r.error = "cannot load ca_file " + ca_file + ": " + ec.message();
        return r;
      }
    } else {
      ctx.set_default_verify_paths(ec);
    }
  }
  // Declared after everything the coroutine refers to, so it is destroyed (with any operation
  // still pending after a timeout) first.
  net::io_context ioc;
#if defined(BOOST_ASIO_HAS_CO_AWAIT)
  net::co_spawn(ioc, Call(u, verb, headers, body, &ctx, &r), net::detached);
#else
  // Only the clang fuzz build lacks C++20 coroutines in Boost.Asio (clang 14 + libstdc++).
  r.error = "HTTP calls are not available in this build (no C++20 coroutine support)";
  return r;
#endif
  ioc.run_for(timeout);
  if (!ioc.stopped()) {
    r.status = 0;
    r.error = "timed out after " + std::to_string(timeout.count()) + " ms";
  } else if (r.status == 0 && r.error.empty()) {
    r.error = "no response";
  }
  return r;
}

int PostJson(const NotifyChannel& ch, const std::string& body, std::chrono::milliseconds timeout,
             std::string* error) {
  HttpCallResult r = HttpCall("POST", ch.url, ch.headers, body, ch.ca_file, timeout);
  if (r.status == 0) *error = r.error;
  return r.status;
}

Notifier::Notifier(NotifyOptions options, Logger log)
    : options_(std::move(options)), log_(std::move(log)) {
  worker_ = std::thread([this] { Worker(); });
}

Notifier::~Notifier() { Stop(std::chrono::milliseconds(2000)); }

void Notifier::Log(const std::string& line) {
  if (log_)
    log_(line);
  else
    std::cerr << "writ: notify: " + line + "\n";
}

bool Notifier::HasChannel(std::string_view name) const {
  for (const auto& c : options_.channels)
    if (c.name == name) return true;
  return false;
}

bool Notifier::Send(const std::string& channel, const std::string& target, const std::string& event,
                    const std::string& text, const Json& fields) {
  size_t index = options_.channels.size();
  for (size_t i = 0; i < options_.channels.size(); ++i)
    if (options_.channels[i].name == channel) index = i;
  Json body = fields.is_object() ? fields : Json::object();
  body["event"] = event;
  body["channel"] = channel;
  body["target"] = target;
  body["text"] = text;
  body["time"] = FormatAuditTime(std::chrono::system_clock::now());
  std::string bytes = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::lock_guard<std::mutex> lock(mu_);
  if (index == options_.channels.size() || stopping_ || queue_.size() >= options_.max_queue) {
    ++stats_.dropped;
    Log(index == options_.channels.size()
            ? "unknown channel `" + channel + "` (configure it under notify.channels); " + event +
                  " dropped"
        : stopping_ ? "stopping; " + event + " dropped"
                    : "queue full (" + std::to_string(options_.max_queue) + "); " + event +
                          " to channel " + channel + " dropped");
    return false;
  }
  queue_.push_back(Item{index, std::move(bytes), event});
  cv_.notify_all();
  return true;
}

void Notifier::Worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, nothing left
    if (stopping_ && std::chrono::steady_clock::now() >= drain_deadline_) {
      stats_.dropped += queue_.size();
      Log("stopping; " + std::to_string(queue_.size()) + " undelivered event(s) dropped");
      queue_.clear();
      break;
    }
    Item item = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const NotifyChannel& ch = options_.channels[item.channel];
    HttpUrl u;
    std::string host_err;
    std::string host = ParseHttpUrl(ch.url, &u, &host_err) ? u.host : "?";
    std::string last_error;
    bool delivered = false;
    int attempts = 0;
    for (int attempt = 0; attempt <= options_.retries; ++attempt) {
      ++attempts;
      lock.unlock();
      std::string error;
      int status = PostJson(ch, item.body, std::chrono::milliseconds(options_.timeout_ms), &error);
      lock.lock();
      if (status >= 200 && status < 300) {
        delivered = true;
        break;
      }
      last_error = status != 0 ? "HTTP status " + std::to_string(status) : error;
      if (attempt == options_.retries) break;
      auto backoff =
          std::chrono::milliseconds(static_cast<int64_t>(options_.backoff_ms) << attempt);
      auto until = std::chrono::steady_clock::now() + backoff;
      if (stopping_ && until > drain_deadline_) break;
      cv_.wait_until(lock, until, [this] {
        return stopping_ && std::chrono::steady_clock::now() >= drain_deadline_;
      });
      if (stopping_ && std::chrono::steady_clock::now() >= drain_deadline_) break;
    }
    if (delivered) {
      ++stats_.sent;
    } else {
      ++stats_.failed;
      Log("channel " + ch.name + " (" + host + "): " + item.event + " not delivered after " +
          std::to_string(attempts) + " attempt(s): " + last_error);
    }
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  busy_ = false;
  idle_cv_.notify_all();
}

bool Notifier::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !busy_; });
}

void Notifier::Stop(std::chrono::milliseconds drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_ = std::chrono::steady_clock::now() + drain;
    }
    cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

Notifier::Stats Notifier::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace writ::gateway
