// tool_fetch.cc -- see tool_fetch.h.
#include "gateway/tool_fetch.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "gateway/upstream.h"

namespace writ::gateway {

using Json = nlohmann::json;

namespace {

constexpr int kMaxPages = 1000;
constexpr size_t kMaxTools = 100000;
constexpr int kMaxDepth = 128;

// True if `j` nests deeper than kMaxDepth (walked with an explicit stack: the depth is the
// upstream's to choose, and hashing or scanning a deeper value would recurse that deep).
bool TooDeep(const Json& j) {
  std::vector<std::pair<const Json*, int>> stack{{&j, 0}};
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    if (d > kMaxDepth) return true;
    if (v->is_structured())
      for (const auto& c : *v) stack.push_back({&c, d + 1});
  }
  return false;
}

// The child's stdout as a queue of parsed messages.
class Session {
 public:
  explicit Session(const UpstreamConfig& u) : child_(ChildSpec{u.name, u.command, u.args, u.env}) {}
  ~Session() { child_.Shutdown(std::chrono::milliseconds(500)); }

  bool Start(std::string* error) {
    return child_.Start(
        [this](std::string_view line) {
          Json m = Json::parse(line, nullptr, false);
          if (!m.is_discarded() && TooDeep(m)) m = Json();  // dropped: waits time out
          std::lock_guard<std::mutex> lock(mu_);
          if (!m.is_discarded() && !m.is_null()) queue_.push_back(std::move(m));
          cv_.notify_all();
        },
        [this](int status) {
          std::lock_guard<std::mutex> lock(mu_);
          exited_ = true;
          status_ = status;
          cv_.notify_all();
        },
        error);
  }

  bool Notify(const std::string& method) {
    return child_.Send(Json{{"jsonrpc", "2.0"}, {"method", method}}.dump());
  }

  // Sends a request and waits for its response. False with *error on timeout, exit or a
  // JSON-RPC error.
  bool Request(int64_t id, const std::string& method, const Json& params,
               std::chrono::milliseconds timeout, Json* result, std::string* error) {
    Json req = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
    if (!child_.Send(req.dump())) {
      *error = "cannot write to the process (" + Exited() + ")";
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      while (!queue_.empty()) {
        Json m = std::move(queue_.front());
        queue_.pop_front();
        if (!m.is_object()) continue;
        if (m.contains("method")) {
          if (m.contains("id")) {  // a server-to-client request: we are not a full client
            Json reply = {{"jsonrpc", "2.0"}, {"id", m["id"]}};
            if (m["method"] == "ping") {
              reply["result"] = Json::object();
            } else {
              reply["error"] = {{"code", -32601}, {"message", "writ lock does not handle this"}};
            }
            lock.unlock();
            child_.Send(reply.dump());
            lock.lock();
          }
          continue;
        }
        if (!m.contains("id") || m["id"] != Json(id)) continue;
        if (m.contains("error")) {
          *error = method + " failed: " + m["error"].dump();
          return false;
        }
        if (!m.contains("result") || !m["result"].is_object()) {
          *error = method + " answered without a result object";
          return false;
        }
        *result = std::move(m["result"]);
        return true;
      }
      if (exited_) {
        *error = "the process " + DescribeExit(status_) + " before answering " + method;
        return false;
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && queue_.empty() && !exited_) {
        *error = "did not answer " + method + " within " + std::to_string(timeout.count()) + " ms";
        return false;
      }
    }
  }

 private:
  std::string Exited() {
    std::lock_guard<std::mutex> lock(mu_);
    return exited_ ? DescribeExit(status_) : "still running";
  }

  ChildProcess child_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Json> queue_;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace

bool FetchUpstreamTools(const UpstreamConfig& upstream, std::chrono::milliseconds timeout,
                        FetchedTools* out, std::string* error) {
  Session s(upstream);
  if (!s.Start(error)) return false;
  Json result;
  Json init = {{"protocolVersion", "2025-06-18"},
               {"capabilities", Json::object()},
               {"clientInfo", {{"name", "writ-lock"}, {"version", "0.1.0"}}}};
  if (!s.Request(1, "initialize", init, timeout, &result, error)) return false;
  s.Notify("notifications/initialized");
  std::set<std::string> names, cursors;
  Json cursor;
  for (int page = 0; page < kMaxPages; ++page) {
    Json params = Json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    if (!s.Request(2 + page, "tools/list", params, timeout, &result, error)) return false;
    if (!result.contains("tools") || !result["tools"].is_array()) {
      *error = "tools/list answered without a `tools` array";
      return false;
    }
    for (auto& t : result["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) {
        out->warnings.push_back("a tool without a string `name` was skipped");
        continue;
      }
      std::string name = t["name"].get<std::string>();
      if (!names.insert(name).second) {
        out->warnings.push_back("tool `" + name + "` listed twice; the later one dropped");
        continue;
      }
      if (out->tools.size() >= kMaxTools) {
        *error = "more than " + std::to_string(kMaxTools) + " tools";
        return false;
      }
      out->tools.push_back(std::move(t));
    }
    if (!result.contains("nextCursor") || result["nextCursor"].is_null()) return true;
    cursor = result["nextCursor"];
    if (!cursors.insert(cursor.dump()).second) {
      *error = "tools/list repeated the cursor " + cursor.dump();
      return false;
    }
  }
  *error = "tools/list returned more than " + std::to_string(kMaxPages) + " pages";
  return false;
}

}  // namespace writ::gateway
