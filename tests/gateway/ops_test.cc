// Operations: restart backoff, bundle hot swap and reloads (audited), metrics exposition
// format, structured log lines, the ops config keys. In memory; no processes.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "compiler/compile.h"
#include "gateway/audit_verify.h"
#include "gateway/config.h"
#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/proxy.h"
#include "gateway/reload.h"
#include "gateway/supervisor.h"

using namespace writ::gateway;
using nlohmann::json;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const writ::runtime::Bundle> Compile(const std::string& text) {
  std::string bytes, error;
  REQUIRE_MESSAGE(writ::CompileText("t.writ", text, &bytes, &error), error);
  auto b = writ::runtime::Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(b != nullptr, error);
  return b;
}

const char kAllowAll[] = R"(@id("all") permit (principal, action, resource);)";
const char kDenyRun[] = R"(@id("all") permit (principal, action, resource);
@id("no-run") forbid (principal, action, resource == Tool::"a__run") then reason("run is off");)";

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("writ-ops-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("restart backoff doubles up to the cap, resets after a stable run, has a budget") {
  RestartConfig c;
  c.initial_backoff_ms = 100;
  c.max_backoff_ms = 350;
  c.reset_after_ms = 10000;
  c.max_restarts = 4;
  c.window_ms = 60000;
  RestartBackoff b(c);
  auto t = RestartBackoff::Clock::now();
  auto quick = milliseconds(5);
  CHECK(b.OnExit(t, quick) == milliseconds(100));
  CHECK(b.OnExit(t + milliseconds(1), quick) == milliseconds(200));
  CHECK(b.OnExit(t + milliseconds(2), quick) == milliseconds(350));  // capped
  // A run longer than reset_after starts over at the initial delay.
  CHECK(b.OnExit(t + milliseconds(3), milliseconds(10000)) == milliseconds(100));
  // Four restarts within the window: the fifth exit gives up.
  CHECK_FALSE(b.OnExit(t + milliseconds(4), quick).has_value());
  // Once the window has passed, restarts are allowed again.
  CHECK(b.OnExit(t + milliseconds(60010), quick).has_value());

  RestartConfig never;
  never.max_restarts = 0;
  RestartBackoff n(never);
  CHECK_FALSE(n.OnExit(t, quick).has_value());
}

TEST_CASE("ops config keys parse, and their errors are located") {
  Config c;
  std::string errors;
  bool ok = ParseConfig(R"(policies: ./p
upstreams:
  - name: fs
    command: npx
    restart: { initial_backoff: 200ms, max_backoff: 5s, reset_after: 30s, max_restarts: 3, window: 2s }
reload: { watch: false, poll_interval: 250ms, debounce: 100ms }
log: { format: json, level: warn }
shutdown: { drain_timeout: 3s }
)",
                        "c.yaml", "", &c, &errors);
  INFO(errors);
  REQUIRE(ok);
  CHECK(c.upstreams[0].restart.initial_backoff_ms == 200);
  CHECK(c.upstreams[0].restart.max_backoff_ms == 5000);
  CHECK(c.upstreams[0].restart.reset_after_ms == 30000);
  CHECK(c.upstreams[0].restart.max_restarts == 3);
  CHECK(c.upstreams[0].restart.window_ms == 2000);
  CHECK_FALSE(c.reload.watch);
  CHECK(c.reload.poll_interval_ms == 250);
  CHECK(c.reload.debounce_ms == 100);
  CHECK(c.log.format == "json");
  CHECK(c.log.level == "warn");
  CHECK(c.shutdown.drain_timeout_ms == 3000);

  Config d;
  CHECK(ParseConfig("policies: ./p\nupstreams: []\n", "c.yaml", "", &d, &errors));
  CHECK(d.reload.watch);
  CHECK(d.log.format == "text");
  CHECK(d.shutdown.drain_timeout_ms == 10000);
  CHECK(d.upstreams.empty());

  CHECK_FALSE(ParseConfig(R"(policies: ./p
upstreams:
  - name: fs
    command: npx
    restart: { max_backof: 1s, initial_backoff: 2s, max_backoff: 1s }
log: { format: xml }
shutdown: { drain_timeout: forever }
)",
                          "c.yaml", "", &d, &errors));
  CHECK(errors.find("c.yaml:5:16: upstreams[0].restart.max_backof: unknown key") !=
        std::string::npos);
  CHECK(errors.find("did you mean `max_backoff`?") != std::string::npos);
  CHECK(errors.find("upstreams[0].restart.max_backoff: smaller than initial_backoff") !=
        std::string::npos);
  CHECK(errors.find("c.yaml:6:16: log.format: `xml` is not one of text | json") !=
        std::string::npos);
  CHECK(errors.find("c.yaml:7:28: shutdown.drain_timeout: `forever` is not a duration") !=
        std::string::npos);
}

TEST_CASE("a swapped bundle decides the next call; the audit names the deciding bundle") {
  auto allow = Compile(kAllowAll);
  auto deny = Compile(kDenyRun);
  auto holder = std::make_shared<BundleHolder>(allow);
  fs::path dir = TempDir("swap");
  AuditOptions ao;
  ao.path = (dir / "audit.jsonl").string();
  ao.fsync = AuditFsync::kNever;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(ao, &log).ok());
  std::shared_ptr<AuditLog> audit = std::move(log);

  ProxyOptions o;
  o.bundles = holder;
  o.audit = audit;
  std::vector<json> client, up;
  Proxy p(o, nullptr, [&](const std::string& l) { client.push_back(json::parse(l)); });
  p.AddUpstream("a", [&](const std::string& l) {
    up.push_back(json::parse(l));
    return true;
  });
  p.OnClientLine(json{{"jsonrpc", "2.0"},
                      {"id", 0},
                      {"method", "initialize"},
                      {"params", {{"protocolVersion", "2025-06-18"}}}}
                     .dump());
  p.OnUpstreamLine(
      0, json{{"jsonrpc", "2.0"},
              {"id", up.back()["id"]},
              {"result",
               {{"protocolVersion", "2025-06-18"}, {"capabilities", {{"tools", json::object()}}}}}}
             .dump());
  p.OnClientLine(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  p.OnUpstreamLine(0, json{{"jsonrpc", "2.0"},
                           {"id", up.back()["id"]},
                           {"result", {{"tools", json::array({{{"name", "run"}}})}}}}
                          .dump());
  auto call = [&](int id) {
    p.OnClientLine(json{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", {{"name", "a__run"}}}}
                       .dump());
  };
  call(2);
  json forwarded = up.back();
  REQUIRE(forwarded["method"] == "tools/call");
  // Swap while call 2 is in flight: it finishes (relayed) on the decision already made.
  holder->Set(deny);
  call(3);
  CHECK(client.back()["id"] == 3);
  CHECK(client.back()["error"]["code"] == kDenied);
  CHECK(client.back()["error"]["message"].get<std::string>().find("run is off") !=
        std::string::npos);
  p.OnUpstreamLine(
      0, json{{"jsonrpc", "2.0"}, {"id", forwarded["id"]}, {"result", {{"ok", 1}}}}.dump());
  CHECK(client.back()["id"] == 2);
  CHECK(client.back()["result"]["ok"] == 1);
  // Swap back: allowed again.
  holder->Set(allow);
  call(4);
  CHECK(up.back()["method"] == "tools/call");

  // Records: decision(2, allow bundle), decision(3, deny bundle), outcome(2, allow bundle), ...
  std::ifstream f(ao.path);
  std::vector<json> recs;
  for (std::string line; std::getline(f, line);) recs.push_back(json::parse(line));
  REQUIRE(recs.size() >= 4);
  CHECK(recs[0]["decision"] == "allow");
  CHECK(recs[0]["bundle_hash"] == allow->source_hash_hex());
  CHECK(recs[1]["decision"] == "deny");
  CHECK(recs[1]["bundle_hash"] == deny->source_hash_hex());
  CHECK(recs[2]["kind"] == "outcome");
  CHECK(recs[2]["bundle_hash"] == allow->source_hash_hex());
  fs::remove_all(dir);
}

TEST_CASE("PolicyReloader: a bad bundle keeps the old one; every attempt is audited") {
  auto first = Compile(kAllowAll);
  auto second = Compile(kDenyRun);
  auto holder = std::make_shared<BundleHolder>(first);
  fs::path dir = TempDir("reload");
  AuditOptions ao;
  ao.path = (dir / "audit.jsonl").string();
  ao.fsync = AuditFsync::kNever;
  ao.secrets = {"hunter2"};
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(ao, &log).ok());
  std::shared_ptr<AuditLog> audit = std::move(log);

  int mode = 0;  // 0: fails with diagnostics, 1: the second bundle
  uint64_t ok_before = Metrics::Global().reloads().With({"ok"}).Value();
  uint64_t failed_before = Metrics::Global().reloads().With({"failed"}).Value();
  PolicyReloader r(
      holder,
      [&](std::string* diags) -> std::shared_ptr<const writ::runtime::Bundle> {
        if (mode == 0) {
          *diags = "p.writ:3:1: error: unexpected token (password hunter2)\n";
          return nullptr;
        }
        return second;
      },
      {}, ReloadConfig{}, audit);
  ReloadResult bad = r.ReloadNow("sighup");
  CHECK_FALSE(bad.ok);
  CHECK(bad.error.find("unexpected token") != std::string::npos);
  CHECK(holder->Get() == first);
  mode = 1;
  ReloadResult good = r.ReloadNow("file_change");
  CHECK(good.ok);
  CHECK(good.changed);
  CHECK(good.old_hash == first->source_hash_hex());
  CHECK(good.new_hash == second->source_hash_hex());
  CHECK(holder->Get() == second);
  CHECK(Metrics::Global().reloads().With({"ok"}).Value() == ok_before + 1);
  CHECK(Metrics::Global().reloads().With({"failed"}).Value() == failed_before + 1);

  std::ifstream f(ao.path);
  std::vector<json> recs;
  for (std::string line; std::getline(f, line);) recs.push_back(json::parse(line));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0]["kind"] == "reload");
  CHECK(recs[0]["reload"]["trigger"] == "sighup");
  CHECK(recs[0]["reload"]["result"] == "failed");
  CHECK(recs[0]["reload"]["old_bundle_hash"] == first->source_hash_hex());
  CHECK_FALSE(recs[0]["reload"].contains("new_bundle_hash"));
  CHECK(recs[0]["bundle_hash"] == first->source_hash_hex());
  std::string err = recs[0]["reload"]["error"];
  CHECK(err.find("unexpected token") != std::string::npos);
  CHECK(err.find("hunter2") == std::string::npos);  // scrubbed like every record
  CHECK(recs[1]["reload"]["result"] == "ok");
  CHECK(recs[1]["reload"]["trigger"] == "file_change");
  CHECK(recs[1]["reload"]["new_bundle_hash"] == second->source_hash_hex());
  CHECK(recs[1]["bundle_hash"] == second->source_hash_hex());
  // `writ audit verify` accepts reload records.
  AuditVerifyResult v = VerifyAuditFile(ao.path, nullptr);
  CHECK(v.kind == AuditVerifyResult::Kind::kOk);
  CHECK(v.records == 2);
  fs::remove_all(dir);
}

TEST_CASE("PolicyReloader watches files: a change is reloaded once it settles") {
  fs::path dir = TempDir("watch");
  std::ofstream(dir / "p.writ") << "v1";
  auto holder = std::make_shared<BundleHolder>(Compile(kAllowAll));
  std::atomic<int> loads{0};
  ReloadConfig rc;
  rc.poll_interval_ms = 20;
  rc.debounce_ms = 60;
  auto second = Compile(kDenyRun);
  PolicyReloader r(
      holder,
      [&](std::string*) -> std::shared_ptr<const writ::runtime::Bundle> {
        ++loads;
        return second;
      },
      {dir.string()}, rc, nullptr);
  r.Start();
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(loads == 0);                               // nothing changed
  std::ofstream(dir / "p.writ") << "version two";  // a different size
  for (int i = 0; i < 200 && loads == 0; ++i) std::this_thread::sleep_for(milliseconds(10));
  CHECK(loads == 1);
  CHECK(holder->Get() == second);
  std::this_thread::sleep_for(milliseconds(150));
  CHECK(loads == 1);  // one change, one reload
  r.Trigger("sighup");
  for (int i = 0; i < 200 && loads == 1; ++i) std::this_thread::sleep_for(milliseconds(10));
  CHECK(loads == 2);
  r.Stop();
  std::string fp = FilesFingerprint({dir.string(), (dir / "nope").string()});
  CHECK(fp.find("p.writ 11 ") != std::string::npos);
  CHECK(fp.find("nope missing") != std::string::npos);
  fs::remove_all(dir);
}

namespace {

// A minimal parser for the text exposition format: every non-comment line is
// NAME{LABELS} VALUE with valid names and quoted, escaped label values.
struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;
};

std::vector<Sample> ParseExposition(const std::string& text, std::vector<std::string>* types) {
  std::vector<Sample> out;
  std::istringstream in(text);
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      types->push_back(line.substr(7));
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    REQUIRE_MESSAGE(!line.empty(), "empty line in the exposition");
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    REQUIRE_MESSAGE(std::regex_match(s.name, kName), line);
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find('=', i);
        std::string lname = line.substr(i, eq - i);
        REQUIRE_MESSAGE(std::regex_match(lname, kName), line);
        REQUIRE(line[eq + 1] == '"');
        std::string v;
        size_t j = eq + 2;
        for (; line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            REQUIRE_MESSAGE((line[j] == '\\' || line[j] == '"' || line[j] == 'n'), line);
            v.push_back(line[j] == 'n' ? '\n' : line[j]);
          } else {
            v.push_back(line[j]);
          }
        }
        s.labels.emplace_back(lname, v);
        i = j + 1;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    REQUIRE(line[i] == ' ');
    s.value = line.substr(i + 1);
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("metrics render the Prometheus text format 0.0.4") {
  Registry r;
  Family<Counter>& c = r.AddCounter("t_requests_total", "Requests.\nSecond line \\ x", {"path"});
  c.With({"a\"b\\c\nd"}).Inc(3);
  c.With({"plain"}).Inc();
  r.AddGauge("t_sessions", "Sessions.").With({}).Set(-2);
  r.AddCounter("t_never_total", "Never touched.");
  Histogram& h =
      r.AddHistogram("t_latency_seconds", "Latency.", {"upstream"}, {0.1, 0.5, 1}).With({"fs"});
  h.Observe(0.05);
  h.Observe(0.1);  // le is inclusive
  h.Observe(0.7);
  h.Observe(3);
  std::string text = r.Render();
  std::vector<std::string> types;
  std::vector<Sample> samples = ParseExposition(text, &types);
  CHECK(types == std::vector<std::string>{"t_requests_total counter", "t_sessions gauge",
                                          "t_never_total counter", "t_latency_seconds histogram"});
  CHECK(text.find("# HELP t_requests_total Requests.\\nSecond line \\\\ x\n") != std::string::npos);
  CHECK(text.find("t_requests_total{path=\"a\\\"b\\\\c\\nd\"} 3\n") != std::string::npos);
  auto find = [&](const std::string& name, const std::string& le = "") -> std::string {
    for (auto& s : samples) {
      if (s.name != name) continue;
      if (le.empty()) return s.value;
      for (auto& [k, v] : s.labels)
        if (k == "le" && v == le) return s.value;
    }
    return "absent";
  };
  // The escaped label round-trips through the parser.
  bool escaped = false;
  for (auto& s : samples)
    if (s.name == "t_requests_total" && s.labels[0].second == "a\"b\\c\nd")
      escaped = s.value == "3";
  CHECK(escaped);
  CHECK(find("t_sessions") == "-2");
  CHECK(find("t_never_total") == "0");
  CHECK(find("t_latency_seconds_bucket", "0.1") == "2");
  CHECK(find("t_latency_seconds_bucket", "0.5") == "2");
  CHECK(find("t_latency_seconds_bucket", "1") == "3");
  CHECK(find("t_latency_seconds_bucket", "+Inf") == "4");
  CHECK(find("t_latency_seconds_count") == "4");
  CHECK(std::stod(find("t_latency_seconds_sum")) == doctest::Approx(3.85));
  // Histogram labels come before le.
  CHECK(text.find("t_latency_seconds_bucket{upstream=\"fs\",le=\"+Inf\"} 4\n") !=
        std::string::npos);
  CHECK(FormatMetricValue(0.00025) == "0.00025");
  CHECK(FormatMetricValue(1.0 / 0.0) == "+Inf");
}

TEST_CASE("Metrics::Global exposes the gateway's instruments, parseable") {
  Metrics& m = Metrics::Global();
  m.Decision("require_approval").Inc();
  m.upstream_restarts().With({"x"}).Inc();
  std::string text = m.Render();
  std::vector<std::string> types;
  std::vector<Sample> samples = ParseExposition(text, &types);
  for (const char* want :
       {"writ_decisions_total counter", "writ_decision_duration_seconds histogram",
        "writ_upstream_request_duration_seconds histogram", "writ_upstream_errors_total counter",
        "writ_upstream_restarts_total counter", "writ_sessions_active gauge",
        "writ_in_flight_calls gauge", "writ_policy_reloads_total counter",
        "writ_audit_write_failures_total counter", "writ_upstream_http_connections_total counter",
        "writ_upstream_http_reused_total counter", "writ_upstream_http_resends_total counter",
        "writ_upstream_http_tls_resumptions_total counter"})
    CHECK_MESSAGE(std::find(types.begin(), types.end(), want) != types.end(), want);
  CHECK(text.find("writ_decisions_total{effect=\"require_approval\"} ") != std::string::npos);
  CHECK(text.find("writ_upstream_restarts_total{upstream=\"x\"} ") != std::string::npos);
  CHECK(text.find("writ_decision_duration_seconds_bucket{le=\"+Inf\"} ") != std::string::npos);
}

TEST_CASE("a decision and a forwarded call are counted") {
  Metrics& m = Metrics::Global();
  uint64_t denied = m.Decision("deny").Value();
  uint64_t decided = m.decision_seconds().Count();
  Histogram& lat = m.upstream_seconds().With({"a"});
  uint64_t forwarded = lat.Count();
  uint64_t errors = m.upstream_errors().With({"a"}).Value();
  std::vector<json> client, up;
  Proxy p(ProxyOptions{}, Compile(kDenyRun),
          [&](const std::string& l) { client.push_back(json::parse(l)); });
  p.AddUpstream("a", [&](const std::string& l) {
    up.push_back(json::parse(l));
    return true;
  });
  p.OnClientLine(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__run"}})");
  // (the catalog is fetched first)
  p.OnUpstreamLine(0,
                   json{{"jsonrpc", "2.0"},
                        {"id", up.back()["id"]},
                        {"result", {{"tools", json::array({{{"name", "run"}}, {{"name", "x"}}})}}}}
                       .dump());
  CHECK(client.back()["error"]["code"] == kDenied);
  CHECK(m.Decision("deny").Value() == denied + 1);
  CHECK(m.decision_seconds().Count() == decided + 1);
  int64_t in_flight = m.in_flight().Value();
  p.OnClientLine(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a__x"}})");
  CHECK(m.in_flight().Value() == in_flight + 1);
  p.OnUpstreamLine(0, json{{"jsonrpc", "2.0"},
                           {"id", up.back()["id"]},
                           {"error", {{"code", -1}, {"message", "boom"}}}}
                          .dump());
  CHECK(m.in_flight().Value() == in_flight);
  CHECK(lat.Count() == forwarded + 1);
  CHECK(m.upstream_errors().With({"a"}).Value() == errors + 1);
}

TEST_CASE("log lines: text and one JSON object per line") {
  std::string t = FormatLogLine(false, LogLevel::kInfo, "started upstream",
                                {{"upstream", "fs"}, {"pid", 12}, {"why", "a b"}});
  CHECK(t == "writ: started upstream pid=12 upstream=fs why=\"a b\"");
  std::string j = FormatLogLine(true, LogLevel::kWarn, "upstream exited; restarting",
                                {{"upstream", "fs"}, {"in_ms", 500}});
  CHECK(j.find('\n') == std::string::npos);
  json o = json::parse(j);
  CHECK(o["level"] == "warn");
  CHECK(o["msg"] == "upstream exited; restarting");
  CHECK(o["upstream"] == "fs");
  CHECK(o["in_ms"] == 500);
  CHECK(std::regex_match(o["ts"].get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  // Invalid UTF-8 from an upstream's stderr does not break the line.
  json bad = json::parse(FormatLogLine(true, LogLevel::kInfo, std::string("x\xff\ny"), nullptr));
  CHECK(bad["msg"].get<std::string>().find("x") == 0);
}

TEST_CASE("docs/gateway.md: the Operations config example parses with the documented defaults") {
  std::ifstream f(std::string(WRIT_SOURCE_DIR) + "/docs/gateway.md");
  std::string doc((std::istreambuf_iterator<char>(f)), {});
  size_t at = doc.find("## Operations\n");
  REQUIRE(at != std::string::npos);
  size_t open = doc.find("```yaml\n", at);
  REQUIRE(open != std::string::npos);
  open += 8;
  size_t close = doc.find("```", open);
  std::string yaml = doc.substr(open, close - open);
  Config c;
  std::string errors;
  REQUIRE_MESSAGE(ParseConfig(yaml, "gateway.md", "", &c, &errors), errors);
  // The example shows the defaults: they must be the defaults.
  RestartConfig def;
  const RestartConfig& r = c.upstreams[0].restart;
  CHECK(r.initial_backoff_ms == def.initial_backoff_ms);
  CHECK(r.max_backoff_ms == def.max_backoff_ms);
  CHECK(r.reset_after_ms == def.reset_after_ms);
  CHECK(r.max_restarts == def.max_restarts);
  CHECK(r.window_ms == def.window_ms);
  ReloadConfig rd;
  CHECK(c.reload.watch == rd.watch);
  CHECK(c.reload.poll_interval_ms == rd.poll_interval_ms);
  CHECK(c.reload.debounce_ms == rd.debounce_ms);
  CHECK(c.log.format == LogConfig{}.format);
  CHECK(c.log.level == LogConfig{}.level);
  CHECK(c.shutdown.drain_timeout_ms == ShutdownConfig{}.drain_timeout_ms);
}

TEST_CASE("UpstreamSupervisor: restarts a process that keeps exiting until the budget is spent") {
  fs::path dir = TempDir("supervisor");
  fs::path log = dir / "starts";
  std::ofstream(dir / "t.sh") << "echo started >> " << log.string() << "\nexit 3\n";
  RestartConfig rc;
  rc.initial_backoff_ms = 10;
  rc.max_backoff_ms = 40;
  rc.max_restarts = 3;
  std::atomic<int> exits{0}, restarts{0};
  std::mutex mu;
  std::vector<std::string> whys;
  UpstreamSupervisor::Hooks hooks;
  hooks.on_exit = [&](const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    whys.push_back(why);
    ++exits;
  };
  hooks.on_restart = [&] { ++restarts; };
  uint64_t counted = Metrics::Global().upstream_restarts().With({"flaky"}).Value();
  UpstreamSupervisor s(ChildSpec{"flaky", "sh", {(dir / "t.sh").string()}, {}}, rc, hooks);
  std::string error;
  REQUIRE(s.Start(&error));
  for (int i = 0; i < 300 && exits < 4; ++i) std::this_thread::sleep_for(milliseconds(10));
  std::this_thread::sleep_for(milliseconds(200));  // no fifth start may follow
  CHECK(exits == 4);
  CHECK(restarts == 3);
  CHECK(s.restarts() == 3);
  CHECK(Metrics::Global().upstream_restarts().With({"flaky"}).Value() == counted + 3);
  std::ifstream f(log);
  int starts = 0;
  for (std::string line; std::getline(f, line);) ++starts;
  CHECK(starts == 4);
  CHECK(whys[0] == "exited with status 3");
  CHECK_FALSE(s.Send("{}"));  // nothing runs
  s.Shutdown(milliseconds(200));
  fs::remove_all(dir);
}

TEST_CASE("UpstreamSupervisor: a failed respawn counts against the budget and is reported") {
  fs::path dir = TempDir("supervisor2");
  fs::path script = dir / "once.sh";
  std::ofstream(script) << "#!/bin/sh\nexit 1\n";
  fs::permissions(script, fs::perms::owner_all);
  RestartConfig rc;
  rc.initial_backoff_ms = 10;
  rc.max_restarts = 2;
  std::mutex mu;
  std::vector<std::string> whys;
  UpstreamSupervisor::Hooks hooks;
  hooks.on_exit = [&](const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    whys.push_back(why);
    fs::remove(script);  // the next start cannot find the program
  };
  UpstreamSupervisor s(ChildSpec{"gone", script.string(), {}, {}}, rc, hooks);
  std::string error;
  REQUIRE(s.Start(&error));
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (whys.size() >= 3) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::this_thread::sleep_for(milliseconds(100));
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(whys.size() == 3);  // the exit, then two failed respawns; then it stays down
  CHECK(whys[0] == "exited with status 1");
  CHECK(whys[1].find("could not be restarted (cannot run") == 0);
  CHECK(s.restarts() == 0);
  fs::remove_all(dir);
}
