// notify.h -- webhook notifications (docs/approvals.md, "Notifications"): the `notify(channel,
// target)` obligation and new approvals POST a JSON event to a configured channel's URL.
// Entry point: Notifier::Send (never blocks on the network).
//
// Body (Content-Type: application/json):
//   {"event": "approval.requested", "channel": "slack", "target": "#approvals",
//    "text": "<one line for humans; Slack incoming webhooks display it>",
//    "time": "2025-11-25T10:00:00.000000Z", ...the caller's fields, e.g. "approval": {...}}
//
// Delivery: a bounded queue drained by one worker thread. Each POST has a deadline
// (timeout_ms: resolve + connect + TLS + request + response); a failure (network error,
// timeout, status other than 2xx) is retried `retries` times with exponential backoff from
// backoff_ms, then logged and dropped. Nothing is thrown to the caller; a full queue drops the
// new event (logged, counted). http:// and https:// (OpenSSL through Boost.Beast; the peer's
// certificate is verified against the system store or the channel's ca_file, the host name
// is checked, SNI is sent). Logs never contain the URL's path or query (webhook URLs often
// embed a secret), only the channel name and host.
//
// Thread safety: Send, Flush, stats may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/http_url.h"

namespace writ::gateway {

struct NotifyChannel {
  std::string name;
  std::string url;  // http://host[:port]/path or https://...
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::string ca_file;  // PEM CA bundle to trust instead of the system store (optional)
};

struct NotifyOptions {
  std::vector<NotifyChannel> channels;
  int timeout_ms = 5000;  // per attempt
  int retries = 3;        // attempts after the first
  int backoff_ms = 500;   // before the first retry; doubled each time
  size_t max_queue = 1000;
};


struct HttpCallResult {
  int status = 0;     // 0: no response (see error)
  std::string body;   // at most 1 MiB
  std::string error;  // network/TLS/timeout error; never contains the URL's path or query
};

// One HTTP/1.1 request to `url` (http or https; TLS verified as described above, against
// `ca_file` if non-empty) within `timeout`. Never throws. Used by the notifier and `writ`'s
// admin client.
HttpCallResult HttpCall(const std::string& method, const std::string& url,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const std::string& body, const std::string& ca_file,
                        std::chrono::milliseconds timeout);

// One POST of `body` to `channel` within `timeout`. Returns the HTTP status, or 0 with
// *error (never containing the URL's path). Synchronous; used by the worker and tests.
int PostJson(const NotifyChannel& channel, const std::string& body,
             std::chrono::milliseconds timeout, std::string* error);

class Notifier {
 public:
  using Logger = std::function<void(const std::string&)>;
  // `log` receives one line per failure (default: stderr, prefixed "writ: notify: ").
  explicit Notifier(NotifyOptions options, Logger log = nullptr);
  ~Notifier();  // Stop(2 s)
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool HasChannel(std::string_view name) const;

  // Queues one event for `channel`. `fields` (an object, may be null) is merged into the
  // body; `text` is the human-readable line. False (and logged) when the channel is unknown,
  // the queue is full or the notifier is stopped.
  bool Send(const std::string& channel, const std::string& target, const std::string& event,
            const std::string& text, const nlohmann::json& fields);

  // Waits until every queued event has been delivered or given up, at most `timeout`.
  // True if the queue drained.
  bool Flush(std::chrono::milliseconds timeout);
  // Stops the worker: events still queued get up to `drain` to go out, the rest are dropped.
  void Stop(std::chrono::milliseconds drain);

  struct Stats {
    uint64_t sent = 0;     // delivered (2xx)
    uint64_t failed = 0;   // given up after retries
    uint64_t dropped = 0;  // queue full, unknown channel, stopped
  };
  Stats stats() const;

 private:
  struct Item {
    size_t channel;
    std::string body;
    std::string event;
  };
  void Worker();
  void Log(const std::string& line);

  const NotifyOptions options_;
  Logger log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // work queued, or stopping
  std::condition_variable idle_cv_;  // queue empty and nothing in flight
  std::deque<Item> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  Stats stats_;
  std::thread worker_;
};

}  // namespace writ::gateway
