// The audit trail's fsync-failure path (audit.fsync: always), provoked for real: /dev/null
// takes every write(2) but fdatasync(2) on it fails (EINVAL), so each record reaches the
// "written but not durable" state that WaitDurable must treat as a failure. Checked at three
// levels: AuditLog itself (the error, the sticky failed state, concurrent appends through the
// group commit), the Proxy (calls denied, fail closed, nothing forwarded, the failure logged
// and counted), and the built `writ serve --stdio` with `audit: { fsync: always }`.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "gateway/audit.h"
#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "tests/gateway/proxy_session.h"

using namespace writ::gateway;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr char kDevNull[] = "/dev/null";

// Whether this machine gives the failure the tests rely on: write succeeds, fdatasync fails.
bool FsyncFailsOnDevNull() {
  int fd = ::open(kDevNull, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool wrote = ::write(fd, "x", 1) == 1;
  bool sync_failed = ::fdatasync(fd) != 0;
  ::close(fd);
  return wrote && sync_failed;
}

AuditRecord Sample(int i) {
  AuditRecord r;
  r.decision_id = "d" + std::to_string(i);
  r.principal = "User::\"alice\"";
  r.method = "tools/call";
  r.server = "a";
  r.tool = "run";
  r.decision = "allow";
  return r;
}

std::shared_ptr<AuditLog> OpenDevNull(AuditFailurePolicy on_failure) {
  AuditOptions o;
  o.path = kDevNull;
  o.fsync = AuditFsync::kAlways;
  o.on_failure = on_failure;
  std::unique_ptr<AuditLog> log;
  AuditStatus st = AuditLog::Open(o, &log);
  REQUIRE_MESSAGE(st.ok(), st.message);
  return std::shared_ptr<AuditLog>(std::move(log));
}

// Captures the gateway's log lines for the lifetime of the object (through the scrub hook,
// which sees every line before it is written).
class LogCapture {
 public:
  LogCapture() {
    SetLogScrubber([this](std::string* line) {
      std::lock_guard<std::mutex> lock(mu_);
      text_ += *line;
      text_ += '\n';
    });
  }
  ~LogCapture() { SetLogScrubber(nullptr); }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

// One in-memory session with one upstream "a" that offers tool `run`.
struct OneUpstream : writ::gateway_test::ProxySession {
  explicit OneUpstream(std::shared_ptr<AuditLog> audit)
      : ProxySession("@id(\"all\") permit (principal, action, resource);", Options(audit), "a") {
    Initialize();
    REQUIRE(ListTools(json::array({{{"name", "run"}}}))["result"]["tools"].size() == 1);
  }
  static ProxyOptions Options(std::shared_ptr<AuditLog> audit) {
    ProxyOptions opts;
    opts.audit = std::move(audit);
    return opts;
  }
  json Call(int id) {
    Client({{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"},
            {"params", {{"name", "a__run"}, {"arguments", {{"n", id}}}}}});
    return client.back();
  }
};

}  // namespace

TEST_CASE("audit fsync always: a failed fdatasync is an error and the log stays failed") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  std::shared_ptr<AuditLog> log = OpenDevNull(AuditFailurePolicy::kDeny);
  uint64_t failures = Metrics::Global().audit_failures().Value();

  // The record was written (seq advanced) but is not durable: Append must not say ok.
  AuditStatus st = log->Append(Sample(1));
  CHECK(st.code == AuditStatus::Code::kIoError);
  CHECK_MESSAGE(st.message.find("cannot fsync /dev/null") != std::string::npos, st.message);
  CHECK(Metrics::Global().audit_failures().Value() >= failures + 1);

  // Sticky: nothing is chained onto a record of unknown durability; Sync reports it too.
  st = log->Append(Sample(2));
  CHECK(st.code == AuditStatus::Code::kFailed);
  CHECK(st.message.find("failed earlier") != std::string::npos);
  CHECK_FALSE(log->Sync().ok());
  CHECK_FALSE(log->AppendReload({}).ok());
}

TEST_CASE("audit fsync interval: the sync thread's failure fails later appends, counted once") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  AuditOptions o;
  o.path = kDevNull;
  o.fsync = AuditFsync::kInterval;
  o.fsync_interval = std::chrono::milliseconds(5);
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  LogCapture logs;
  const uint64_t failures = Metrics::Global().audit_failures().Value();

  // In this mode an append does not wait for the disk: the first one is ok.
  REQUIRE(log->Append(Sample(1)).ok());
  // The log's own thread syncs within the interval, fails, and marks the log failed; the next
  // append reports it (bounded wait: 2 s).
  AuditStatus st;
  for (int i = 0; i < 400; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = log->Append(Sample(2 + i));
    if (!st.ok()) break;
  }
  CHECK(st.code == AuditStatus::Code::kFailed);
  // The thread marks the log failed before it writes its log line: wait for it (bounded).
  for (int i = 0; i < 400 && logs.text().find("cannot fsync /dev/null") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK_MESSAGE(logs.text().find("cannot fsync /dev/null") != std::string::npos, logs.text());
  // Counted once by the thread plus once per failed append, not once per interval forever.
  const uint64_t after = Metrics::Global().audit_failures().Value();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // 12 intervals
  CHECK(Metrics::Global().audit_failures().Value() == after);
  CHECK(after >= failures + 1);
}

TEST_CASE("audit fsync always: concurrent appends sharing a failed group commit all fail") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  std::shared_ptr<AuditLog> log = OpenDevNull(AuditFailurePolicy::kDeny);
  constexpr int kThreads = 8, kEach = 20;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (log->Append(Sample(t * kEach + i)).ok()) ++ok;
        else ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == 0);  // no caller may believe its record is durable
  CHECK(failed == kThreads * kEach);
}

TEST_CASE("Proxy: with audit.fsync always, a failed fsync denies the call (fail closed)") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  LogCapture logs;
  OneUpstream s(OpenDevNull(AuditFailurePolicy::kDeny));
  uint64_t failures = Metrics::Global().audit_failures().Value();

  json r = s.Call(1);
  REQUIRE(r.contains("error"));
  CHECK(r["id"] == 1);
  CHECK(r["error"]["code"] == kDenied);
  CHECK(r["error"]["message"].get<std::string>().find(kAuditUnavailable) != std::string::npos);
  std::string decision_id = r["error"]["data"]["decision_id"];
  CHECK(decision_id.size() == 32);
  CHECK(r["error"]["data"]["decision"] == "deny");
  CHECK(r["error"]["data"]["policy_decision"] == "allow");  // the policy allowed; audit did not
  CHECK(s.Forwarded() == 0);

  // Reported: an error log line naming the decision and the fsync failure, and the counter.
  std::string text = logs.text();
  CHECK_MESSAGE(text.find("audit: cannot record decision " + decision_id) != std::string::npos,
                text);
  CHECK(text.find("cannot fsync /dev/null") != std::string::npos);
  CHECK(text.find("denying the request (audit.on_failure: deny)") != std::string::npos);
  CHECK(Metrics::Global().audit_failures().Value() >= failures + 1);

  // Later calls stay denied (the log is failed until reopened), still nothing forwarded.
  r = s.Call(2);
  CHECK(r["error"]["code"] == kDenied);
  CHECK(r["error"]["message"].get<std::string>().find(kAuditUnavailable) != std::string::npos);
  CHECK(s.Forwarded() == 0);
  CHECK(s.proxy->InFlight() == 0);
}

TEST_CASE("Proxy: audit.on_failure allow serves the call despite the failed fsync, and says so") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  LogCapture logs;
  OneUpstream s(OpenDevNull(AuditFailurePolicy::kAllow));
  s.Client({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"},
            {"params", {{"name", "a__run"}}}});
  CHECK(s.Forwarded() == 1);
  CHECK(logs.text().find("serving anyway (audit.on_failure: allow)") != std::string::npos);
}

TEST_CASE("writ serve --stdio: audit.fsync always on a target whose fsync fails denies calls") {
  if (!FsyncFailsOnDevNull()) {
    MESSAGE("skipped: fdatasync on /dev/null does not fail here");
    return;
  }
  fs::path dir = fs::temp_directory_path() / ("writ-audit-fsync-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "policies");
  fs::copy_file(std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fixtures/demo.writ",
                dir / "policies" / "p.writ");
  std::string fake = std::string(WRIT_SOURCE_DIR) + "/tests/gateway/fake_upstream.py";
  std::ofstream(dir / "writ.yaml")
      << "policies: ./policies\n"
      << "stdio_principal: { uid: 'User::\"alice\"', parents: ['Role::\"analyst\"'] }\n"
      << "upstreams:\n  - name: demo\n    command: python3\n    args: [" << fake
      << ", --record, " << (dir / "demo.calls").string() << "]\n"
      << "audit: { path: /dev/null, fsync: always }\n";
  json init = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
               {"params", {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object()},
                           {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}};
  json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  json call = {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"},
               {"params", {{"name", "demo__echo"}, {"arguments", {{"msg", "hi"}}}}}};
  std::ofstream(dir / "in1") << init.dump() << "\n";
  std::ofstream(dir / "in2") << note.dump() << "\n" << call.dump() << "\n";
  // Spaced so each message is answered before stdin closes; bounded by `timeout`.
  std::string cmd = "(cat " + (dir / "in1").string() + "; sleep 1; cat " + (dir / "in2").string() +
                    "; sleep 1) | timeout 30 " + std::string(WRIT_BINARY_DIR) +
                    "/cli/writ serve --stdio --config " + (dir / "writ.yaml").string() + " > " +
                    (dir / "out").string() + " 2> " + (dir / "err").string();
  CHECK(std::system(cmd.c_str()) == 0);
  std::ifstream out_file(dir / "out"), err_file(dir / "err");
  std::string out((std::istreambuf_iterator<char>(out_file)), {});
  std::string err((std::istreambuf_iterator<char>(err_file)), {});
  json reply;
  for (size_t at = 0, nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1) {
    json m = json::parse(out.substr(at, nl - at), nullptr, false);
    if (m.is_object() && m.value("id", json()) == 2) reply = m;
  }
  REQUIRE_MESSAGE(reply.is_object(), std::string(out + err));
  CHECK(reply["error"]["code"] == kDenied);
  CHECK(reply["error"]["message"].get<std::string>().find(kAuditUnavailable) != std::string::npos);
  CHECK_MESSAGE(err.find("cannot fsync /dev/null") != std::string::npos, err);
  std::ifstream calls(dir / "demo.calls");
  std::string forwarded((std::istreambuf_iterator<char>(calls)), {});
  CHECK(forwarded.find("echo") == std::string::npos);  // nothing reached the upstream
  fs::remove_all(dir);
}
