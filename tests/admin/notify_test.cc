// The webhook notifier (gateway/notify.h) against a local HTTP(S) receiver on 127.0.0.1.
#include <doctest/doctest.h>

#include <mutex>

#include "gateway/notify.h"
#include "tests/admin/admin_util.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

struct Logs {
  std::mutex mu;
  std::vector<std::string> lines;
  Notifier::Logger logger() {
    return [this](const std::string& l) {
      std::lock_guard<std::mutex> lock(mu);
      lines.push_back(l);
    };
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mu);
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
};

NotifyOptions Options(const std::string& url, const std::string& ca_file = "") {
  NotifyOptions o;
  o.channels.push_back({"slack", url, {{"X-Api-Key", "k1"}}, ca_file});
  o.timeout_ms = 2000;
  o.retries = 2;
  o.backoff_ms = 20;
  return o;
}

}  // namespace

TEST_CASE("webhook URLs") {
  HttpUrl u;
  std::string err;
  REQUIRE(ParseHttpUrl("https://hooks.slack.com/services/T/B/x?y=1", &u, &err));
  CHECK(u.tls);
  CHECK(u.host == "hooks.slack.com");
  CHECK(u.port == "443");
  CHECK(u.target == "/services/T/B/x?y=1");
  REQUIRE(ParseHttpUrl("http://127.0.0.1:8080", &u, &err));
  CHECK_FALSE(u.tls);
  CHECK(u.port == "8080");
  CHECK(u.target == "/");
  REQUIRE(ParseHttpUrl("HTTP://[::1]:9/x#frag", &u, &err));
  CHECK(u.host == "::1");
  CHECK(u.target == "/x");
  CHECK_FALSE(ParseHttpUrl("ftp://x/", &u, &err));
  CHECK(err.find("not a supported URL scheme") != std::string::npos);
  CHECK_FALSE(ParseHttpUrl("https://user:pw@x/", &u, &err));
  CHECK_FALSE(ParseHttpUrl("http://x:99999/", &u, &err));
  CHECK_FALSE(ParseHttpUrl("http:///path", &u, &err));
  CHECK_FALSE(ParseHttpUrl("http://x/a b", &u, &err));
}

TEST_CASE("notifier POSTs the event as JSON with the channel's headers") {
  WebhookServer hook({200});
  Logs logs;
  Notifier n(Options("http://127.0.0.1:" + std::to_string(hook.port()) + "/hook/secret-path"),
             logs.logger());
  CHECK(n.HasChannel("slack"));
  CHECK_FALSE(n.HasChannel("pager"));
  REQUIRE(n.Send("slack", "#approvals", "approval.requested", "alice wants fs__delete",
                 {{"approval", {{"id", "ap_1"}, {"tool", "fs__delete"}}}}));
  REQUIRE(n.Flush(std::chrono::seconds(10)));
  auto got = hook.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].target == "/hook/secret-path");
  CHECK(got[0].headers["content-type"] == "application/json");
  CHECK(got[0].headers["x-api-key"] == "k1");
  json body = json::parse(got[0].body);
  CHECK(body["event"] == "approval.requested");
  CHECK(body["channel"] == "slack");
  CHECK(body["target"] == "#approvals");
  CHECK(body["text"] == "alice wants fs__delete");
  CHECK(body["approval"]["id"] == "ap_1");
  CHECK(body["time"].get<std::string>().back() == 'Z');
  CHECK(n.stats().sent == 1);
  CHECK(logs.all().empty());
}

TEST_CASE("notifier retries failures with backoff, then gives up and logs") {
  WebhookServer flaky({500, 503, 200});
  Logs logs;
  Notifier n(Options("http://127.0.0.1:" + std::to_string(flaky.port()) + "/x"), logs.logger());
  REQUIRE(n.Send("slack", "#t", "notify", "hello", nullptr));
  REQUIRE(n.Flush(std::chrono::seconds(10)));
  CHECK(flaky.received().size() == 3);
  CHECK(n.stats().sent == 1);
  CHECK(n.stats().failed == 0);

  WebhookServer broken({500});
  Notifier m(Options("http://127.0.0.1:" + std::to_string(broken.port()) + "/secret-path"),
             logs.logger());
  REQUIRE(m.Send("slack", "#t", "notify", "hello", nullptr));
  REQUIRE(m.Flush(std::chrono::seconds(10)));
  CHECK(broken.received().size() == 3);  // 1 + retries
  CHECK(m.stats().failed == 1);
  std::string log = logs.all();
  CHECK(log.find("channel slack (127.0.0.1): notify not delivered after 3 attempt(s): HTTP status "
                 "500") != std::string::npos);
  CHECK(log.find("secret-path") == std::string::npos);  // URLs may embed secrets
}

TEST_CASE("notifier: unknown channel, full queue, unreachable host, timeout") {
  Logs logs;
  WebhookServer slow({200}, false, 1500);
  NotifyOptions o = Options("http://127.0.0.1:" + std::to_string(slow.port()) + "/");
  o.timeout_ms = 300;
  o.retries = 0;
  o.max_queue = 1;
  Notifier n(o, logs.logger());
  CHECK_FALSE(n.Send("pager", "x", "notify", "t", nullptr));
  CHECK(logs.all().find("unknown channel `pager`") != std::string::npos);
  // The first is taken by the worker, the second fills the queue, the third is dropped.
  REQUIRE(n.Send("slack", "x", "e1", "t", nullptr));
  REQUIRE(slow.WaitFor(1, 5000));
  CHECK(n.Send("slack", "x", "e2", "t", nullptr));
  CHECK_FALSE(n.Send("slack", "x", "e3", "t", nullptr));
  REQUIRE(n.Flush(std::chrono::seconds(10)));
  CHECK(n.stats().dropped == 2);
  CHECK(n.stats().failed == 2);  // both timed out
  CHECK(logs.all().find("timed out after 300 ms") != std::string::npos);
  CHECK(logs.all().find("queue full (1)") != std::string::npos);

  std::string err;
  NotifyChannel refused{"c", "http://127.0.0.1:1/", {}, ""};
  CHECK(PostJson(refused, "{}", std::chrono::milliseconds(2000), &err) == 0);
  CHECK(err.find("refused") != std::string::npos);
}

TEST_CASE("notifier over https verifies the peer") {
  WebhookServer tls({200}, true);
  REQUIRE_MESSAGE(!tls.ca_file().empty(), "openssl could not make a test certificate");
  std::string url = "https://127.0.0.1:" + std::to_string(tls.port()) + "/hook";
  std::string err;
  // Trusted through ca_file.
  CHECK(PostJson({"c", url, {}, tls.ca_file()}, "{\"a\":1}", std::chrono::seconds(5), &err) ==
        200);
  CHECK(err.empty());
  REQUIRE(tls.received().size() == 1);
  CHECK(tls.received()[0].body == "{\"a\":1}");
  // Not trusted by the system store: the handshake fails, nothing is sent.
  err.clear();
  CHECK(PostJson({"c", url, {}, ""}, "{}", std::chrono::seconds(5), &err) == 0);
  CHECK(err.find("certificate verify failed") != std::string::npos);
  // The certificate is for 127.0.0.1, not localhost: the host name check fails.
  err.clear();
  std::string by_name = "https://localhost:" + std::to_string(tls.port()) + "/hook";
  CHECK(PostJson({"c", by_name, {}, tls.ca_file()}, "{}", std::chrono::seconds(5), &err) == 0);
  CHECK_FALSE(err.empty());
  // The notifier delivers through the same path.
  Logs logs;
  Notifier n(Options(url, tls.ca_file()), logs.logger());
  REQUIRE(n.Send("slack", "#x", "notify", "hi", nullptr));
  REQUIRE(n.Flush(std::chrono::seconds(10)));
  CHECK(n.stats().sent == 1);
  CHECK(logs.all().empty());
}
