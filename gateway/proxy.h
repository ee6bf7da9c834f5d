// proxy.h -- one downstream MCP session proxied to N upstream servers, with every tools/call,
// prompts/get and resources/read decided by the policy bundle. Entry point: class Proxy.
// docs/gateway.md describes the behaviour seen by a client (namespacing, error codes, what is
// relayed).
//
// The proxy knows nothing about processes or stdio: it receives lines (OnClientLine,
// OnUpstreamLine), transport events (OnUpstreamExit) and sends lines through callbacks, so
// tests drive it directly and `writ serve` wires it to stdin/stdout and child processes.
//
// Ids: every request the gateway sends upstream carries a gateway-owned integer id, unique
// across upstreams; the client's id is restored on the reply. Server-to-client requests get a
// gateway-owned downstream id ("writ-N"), restored when the client answers. Progress tokens
// of server-to-client requests are rewritten the same way. Cancellations are translated in
// both directions.
//
// Thread safety: all public methods may be called from any thread. State is guarded by one
// mutex; no callback (send, write, completion) is invoked while it is held, so a slow pipe
// never blocks other threads on the lock. Nothing here throws out of a public method.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/audit.h"
#include "gateway/config.h"
#include "gateway/guards.h"
#include "gateway/trace.h"
#include "gateway/metrics.h"
#include "gateway/reload.h"
#include "runtime/evaluator.h"

namespace writ::gateway {

inline constexpr char kSeparator[] = "__";

// Splits "SERVER__name" at the first "__". False if there is none or either side is empty.
bool SplitName(std::string_view full, std::string* server, std::string* name);

// The intent the gateway assigns from a tool's annotations: "read" if readOnlyHint,
// "destructive" if destructiveHint, else "write". Annotations come from the server and are
// untrusted; a real classifier replaces this later.
std::string IntentOf(const nlohmann::json& tool);

// The context section: {"time": {"hour", "weekday" ("mon".."sun"), "date" ("YYYY-MM-DD")}}, UTC.
nlohmann::json TimeContext(std::time_t now);

// The policy request for calling (or listing) `tool` (the upstream's definition, original
// name) of upstream `server` (docs/semantics.md has the form). `args` may be null (listing).
nlohmann::json BuildToolRequest(const PrincipalConfig& p, const std::string& server,
                                const nlohmann::json& tool, const nlohmann::json& args,
                                std::time_t now);
// Same for prompts/get (resource Prompt::"SERVER__name") and resources/read (Resource::"uri").
nlohmann::json BuildPromptRequest(const PrincipalConfig& p, const std::string& server,
                                  const std::string& name, const nlohmann::json& args,
                                  std::time_t now);
nlohmann::json BuildResourceRequest(const PrincipalConfig& p, const std::string& server,
                                    const std::string& uri, std::time_t now);

// The number of records a tools/call result returned, for context.session.records
// (docs/gateway.md, "Session counters"): 0 for an error result; else the length of the
// largest array in structuredContent (the value itself or one of its fields), 1 if it has
// none; without structuredContent, per content item: a text item holding JSON counts the
// largest array in it the same way (1 if none or not JSON), any other item counts 1.
inline constexpr size_t kMaxRecordParseBytes = 1 << 20;  // larger texts count 1
int64_t CountRecords(const nlohmann::json& result);

// Renders an entity uid Type::"id" with id escaped.
std::string EntityUid(std::string_view type, std::string_view id);

// A random 128-bit id in hex.
std::string NewDecisionId();

// The outcome of one pipeline stage (ARCHITECTURE.md, "The request pipeline").
enum class StageStatus {
  kContinue,         // the next stage runs
  kRespondNow,       // the stage produced the reply (an error or a gateway answer); stop
  kHoldForApproval,  // policy requires approval; the reply says so and nothing is forwarded
};

struct ProxyOptions {
  PrincipalConfig principal;
  LimitsConfig limits;
  std::string version = "0.1.0";  // serverInfo.version
  std::function<std::time_t()> clock = [] { return std::time(nullptr); };
  // The audit trail (docs/audit.md); null: none. Every decided request (tools/call,
  // prompts/get, resources/read) gets a `decision` record before anything is forwarded and,
  // when the upstream answers, an `outcome` record. If a decision record cannot be written
  // and audit->options().on_failure is kDeny, the request is denied (fail closed).
  std::shared_ptr<AuditLog> audit;
  std::string session;  // the audit records' session id; empty: a random one per Proxy
  // The shared protections (gateway/guards.h): kill switch, lock, intent, DLP, rate limits,
  // approvals, breakers, secret scrubbing. Null: none (annotation-only intent, approvals
  // held without a store).
  std::shared_ptr<const Guards> guards;
  // The request's context.identity: {"auth": "api_key"|"jwt"|"stdio"|"anonymous",
  // "client", "on_behalf_of"} (identity.h Principal::ToContextJson); on_behalf_of also goes
  // to the audit records.
  nlohmann::json identity = nlohmann::json::object();
  // Trace recording (`record:`, docs/replay.md); null: none. Gets every client message in
  // and out, and a `decision` record per decided request.
  std::shared_ptr<TraceWriter> trace;
  // The shared, hot-reloadable bundle (gateway/reload.h). When set, each decision uses the
  // bundle current at that moment (and records its hash); the constructor's bundle is unused.
  std::shared_ptr<BundleHolder> bundles;
};

// The message of the error a call gets when its decision could not be audited (fail closed).
inline constexpr char kAuditUnavailable[] = "audit trail unavailable; denied (fail closed)";

class Proxy {
 public:
  using WriteFn = std::function<void(const std::string& line)>;
  using SendFn = std::function<bool(const std::string& line)>;
  using Json = nlohmann::json;
  using ToolDef = std::shared_ptr<const Json>;  // a tool definition, shared, never mutated

  Proxy(ProxyOptions opts, std::shared_ptr<const runtime::Bundle> bundle, WriteFn to_client);
  ~Proxy();  // (counts the session out of writ_sessions_active)

  // REQUIRES: called before any message flows. Returns the upstream's index.
  size_t AddUpstream(const std::string& name, SendFn send);

  // One line from the client; `oversized` when it exceeded the size limit (it is empty).
  void OnClientLine(std::string_view line, bool oversized = false);
  void OnUpstreamLine(size_t up, std::string_view line);
  // The upstream's process exited or could not start: its pending requests fail with
  // kUpstreamUnavailable, its tools disappear.
  void OnUpstreamExit(size_t up, const std::string& why);
  // A new process runs for an upstream that had exited (gateway/supervisor.h). If the client
  // has initialized, the gateway initializes it again (the client's protocol version and
  // capabilities), sends notifications/initialized, lists its tools and tells the client
  // notifications/tools/list_changed. Calls to it meanwhile get -32003 (restarting).
  void OnUpstreamRestarted(size_t up);
  // Fails fan-out requests past their deadline. Call periodically (serve does every 100 ms).
  void Tick();

  // Number of client requests forwarded and not yet answered.
  int InFlight();
  // Graceful shutdown: from now on new client requests (other than ping) are answered with
  // kShuttingDown; responses (e.g. to sampling) and notifications (cancellations) still flow so
  // in-flight calls can finish.
  void StopAccepting() { draining_ = true; }

  // The ids (JSON-dumped) of the client requests forwarded to upstream `up` and not yet
  // answered. The HTTP transport uses it to put an upstream's notifications and requests on
  // the SSE stream of a related POST.
  std::vector<std::string> ClientRequestsTo(size_t up);
  // Whether client request `key` (its id, JSON-dumped) is forwarded upstream and not yet
  // answered: its reply (or the call_timeout error) is still to come, also after the client
  // cancelled it. The HTTP transport uses it to release a cancelled request's stream.
  bool AwaitingUpstream(const std::string& key);

 private:
  // A full JSON-RPC response, handed over (the relay edits it in place rather than copying).
  using Done = std::function<void(Json reply)>;
  using Filter = std::function<void(Json& reply)>;      // sees (and may change) a reply
  struct Upstream {
    std::string name;
    SendFn send;
    bool alive = true;
    bool initialized = false;
    Json capabilities = Json::object();
    std::map<std::string, ToolDef> tools;  // original name -> definition (last tools/list)
    bool tools_known = false;
    bool restarting = false;  // restarted, being initialized again
    Histogram* latency = nullptr;  // its metrics series, looked up once in AddUpstream
    Counter* errors = nullptr;
  };
  struct Pending {
    size_t up = 0;
    Done done;
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  };
  struct ServerRequest {  // a server-to-client request awaiting the client's answer
    size_t up = 0;
    Json id;
  };
  struct Decided {
    runtime::Effect effect = runtime::Effect::kDeny;
    std::string id;
    Json decision;  // DecisionToJson, or a synthetic deny
    std::string bundle_hash;  // of the bundle that decided
  };
  // The state of one tools/call through the stages.
  struct CallState {
    Json client_id, params;
    Json args = Json::object();  // params.arguments
    Json progress_token;         // params._meta.progressToken, if the client sent one
    size_t up = 0;
    std::string server, tool;
    ToolDef tool_def;  // shared with ups_[up].tools: never copied per call
    Json request;
    Decided decided;
    DlpReport args_report;            // the DLP scan of args (guards with dlp only)
    std::vector<std::string> redact;  // redact targets of the decision
    int64_t retry_after_ms = 0;       // set when a rate limit denied the call
    bool log_pending = false;         // an allowed call's decision log line, written once
                                      // the call is on its way (LogDecision)
    // Held for approval (Hold/CheckHeld).
    std::string approval_id;
    int64_t held_since_ms = 0, held_until_ms = 0, next_progress_ms = 0;
  };

  void HandleClientRequest(Json msg);
  void HandleClientNotification(Json msg);
  void HandleClientResponse(Json msg);

  void Initialize(const Json& id, const Json& params);
  void ListTools(const Json& id);
  void ListOther(const Json& id, const std::string& method, const std::string& key);
  void CallTool(const Json& id, Json params);
  void GetPrompt(const Json& id, Json params);
  void ReadResource(const Json& id, const std::string& method, Json params);
  void Complete(const Json& id, Json params);
  void Broadcast(const Json& id, const std::string& method, const Json& params);

  // What an audited request is about (for its decision and outcome records).
  struct AuditSubject {
    std::string method, server, tool;
    Json args;  // null: the request has no arguments
  };
  // The fields both records of a decided request share (who, where, which decision).
  AuditRecord AuditRecordFor(const char* kind, const AuditSubject& subject, const Decided& d);
  // Writes the decision record. False when it could not be written and the policy is to
  // fail closed; the caller then answers with FailClosed and forwards nothing.
  // `detail` (an object, may be null) is added to the record's detail (intent, DLP, ...).
  bool AuditDecision(const AuditSubject& subject, const Decided& d, const Json& detail = nullptr);
  void FailClosed(const Json& client_id, const Decided& d);
  // Forwards an allowed, audited request; its reply also gets an outcome record.
  // `also`, if set, sees (and may change) the reply first; what it puts into *detail goes
  // into the outcome record's detail.
  void ForwardAudited(size_t up, const Json& client_id, const std::string& method, Json params,
                      const AuditSubject& subject, const Decided& d,
                      Filter also = nullptr, std::shared_ptr<Json> detail = nullptr);

  // tools/call stages (proxy_call.cc).
  StageStatus Route(CallState& s);
  StageStatus Guard(CallState& s);   // kill switch, tool pinned by the lockfile
  StageStatus Decide(CallState& s);  // intent, DLP, policy, rate limits, audit, notify
  void Hold(std::shared_ptr<CallState> s);     // require_approval: wait for a human
  void CheckHeld();                            // from Tick: approved / denied / timed out
  void Forward(std::shared_ptr<CallState> s);  // redact args, breaker, result filters
  StageStatus GatewayDeny(CallState& s, const std::string& reason, Json data);
  void Notify(const CallState& s);
  void LogDecision(const CallState& s);  // the decision's info log line
  // Adds tool.intent and tool.poisoning (and call.intent from the tool) to a request.
  // `args` null: list time. Fills *detail (may be null) with the why, for the audit.
  void Enrich(Json* request, const std::string& server, const ToolDef& tool_def, const Json* args,
              Json* detail = nullptr);
  int64_t NowMs() const;
  void ReportShadowing(const std::map<std::string, std::vector<Json>>& by_server);
  // Whether tools/list hides `full` (SERVER__tool) because it drifted from the lockfile.
  bool HiddenByLock(const std::string& full, const Json& tool_def);

  // Sends a request upstream under a fresh gateway id; `done` gets the reply (or a synthetic
  // error if the upstream is gone, the send fails or `timeout_ms` passes; 0: no deadline).
  // With `client_key`, also maps that client request to the gateway id (for cancellation).
  void SendUpstream(size_t up, const std::string& method, Json params, Done done,
                    int64_t timeout_ms, const std::string* client_key = nullptr);
  // Forwards a client request and relays the reply under the client's id.
  // `on_reply`, if set, sees the upstream's reply first (audit outcome).
  void ForwardClientRequest(size_t up, const Json& client_id, const std::string& method,
                            Json params, Filter on_reply = nullptr);
  // Lists every page of `method` from one upstream; `done(items, error)`.
  void ListAllPages(size_t up, const std::string& method, const std::string& key,
                    std::function<void(Json items, Json error)> done);
  void RefreshTools(size_t up, std::function<void()> then);

  // Adds context.identity and context.session {calls, records} to a policy request.
  Json WithContext(Json request);
  Decided DecideRequest(const Json& request, bool list_time);
  // `extra` (an object, may be null) is merged into the error's data.
  void ReplyDecision(const Json& client_id, const Decided& d, Json extra = nullptr);
  bool Visible(const Json& request);

  void ToClient(const Json& msg);
  TraceSession TraceWho();  // for opts_.trace records
  void ReplyError(const Json& id, int code, const std::string& message, Json data = nullptr);
  bool FindUpstream(const std::string& name, size_t* up);  // REQUIRES: mu_ held
  std::vector<size_t> LiveUpstreams();

  std::shared_ptr<const runtime::Bundle> CurrentBundle() const;

  ProxyOptions opts_;
  std::shared_ptr<const runtime::Bundle> bundle_;
  WriteFn to_client_;

  std::mutex mu_;
  std::vector<Upstream> ups_;
  int64_t next_id_ = 1;
  std::unordered_map<int64_t, Pending> pending_;        // gateway id -> waiter
  std::map<std::string, int64_t> client_requests_;      // client id (dumped) -> gateway id
  std::map<std::string, ServerRequest> server_requests_;  // downstream id -> upstream's
  std::map<std::string, std::pair<size_t, Json>> progress_tokens_;  // ours -> (up, theirs)
  std::map<std::string, size_t> resource_routes_;       // uri -> upstream
  std::string client_protocol_;
  std::string client_name_;  // initialize's clientInfo.name, for the audit
  std::string bundle_hash_;  // Bundle::source_hash_hex(), for the audit
  Json client_init_params_;  // initialize's params as sent upstream (for restarts); null: none
  int in_flight_ = 0;
  std::vector<std::shared_ptr<CallState>> held_;  // calls waiting for an approval
  struct ToolFacts {  // what Enrich derives from a definition alone
    ToolDef def;
    std::string intent;
    std::vector<std::string> poisoning;
  };
  std::map<std::string, ToolFacts> tool_facts_;
  std::set<std::string> shadow_reported_;  // shadowing warnings already logged
  int64_t session_calls_ = 0;    // tools/call requests decided in this session
  int64_t session_records_ = 0;  // records returned by its calls (CountRecords)
  std::atomic<bool> draining_{false};
};

}  // namespace writ::gateway
