// proxy.cc -- see proxy.h. Sections: request construction, decisions, the message loop,
// client methods, tools/call stages, upstream plumbing.
#include "gateway/proxy.h"

#include <openssl/rand.h>

#include <algorithm>
#include <iostream>
#include <random>
#include <set>

#include "gateway/jsonrpc.h"
#include "gateway/log.h"

namespace writ::gateway {

using Json = nlohmann::json;

// ---- request construction ----

bool SplitName(std::string_view full, std::string* server, std::string* name) {
  size_t p = full.find(kSeparator);
  if (p == std::string_view::npos || p == 0 || p + 2 >= full.size()) return false;
  *server = std::string(full.substr(0, p));
  *name = std::string(full.substr(p + 2));
  return true;
}

std::string IntentOf(const Json& tool) {
  auto a = tool.find("annotations");
  if (a == tool.end() || !a->is_object()) return "write";
  if (a->value("readOnlyHint", Json(false)) == Json(true)) return "read";
  if (a->value("destructiveHint", Json(false)) == Json(true)) return "destructive";
  return "write";
}

Json TimeContext(std::time_t now) {
  static const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  std::tm tm{};
  gmtime_r(&now, &tm);
  char date[16];
  std::strftime(date, sizeof date, "%Y-%m-%d", &tm);
  return {{"time", {{"hour", tm.tm_hour}, {"weekday", kDays[tm.tm_wday % 7]}, {"date", date}}}};
}

std::string EntityUid(std::string_view type, std::string_view id) {
  std::string out(type);
  out += "::\"";
  for (char c : id) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out += "\"";
  return out;
}

namespace {

Json PrincipalJson(const PrincipalConfig& p) {
  return {{"uid", p.uid}, {"attrs", p.attrs}, {"parents", p.parents}};
}

Json ServerParents(const std::string& server) {
  return Json::array({EntityUid("Server", server)});
}

}  // namespace

Json BuildToolRequest(const PrincipalConfig& p, const std::string& server, const Json& tool,
                      const Json& args, std::time_t now) {
  std::string name = tool.value("name", std::string());
  Json attrs = {{"name", name}, {"server", server}};
  auto a = tool.find("annotations");
  if (a != tool.end() && a->is_object()) {
    for (auto it = a->begin(); it != a->end(); ++it) {
      // Only the scalar hints: a title string or a boolean. Anything else is dropped so a
      // server cannot make the request invalid or deep.
      if (it.value().is_boolean() || it.value().is_string()) attrs[it.key()] = it.value();
    }
  }
  Json req = {{"principal", PrincipalJson(p)},
              {"action", "tools/call"},
              {"resource",
               {{"uid", EntityUid("Tool", server + kSeparator + name)},
                {"attrs", attrs},
                {"parents", ServerParents(server)}}},
              {"context", TimeContext(now)},
              {"call", {{"intent", IntentOf(tool)}}}};
  if (args.is_object()) req["args"] = args;
  return req;
}

Json BuildPromptRequest(const PrincipalConfig& p, const std::string& server,
                        const std::string& name, const Json& args, std::time_t now) {
  Json req = {{"principal", PrincipalJson(p)},
              {"action", "prompts/get"},
              {"resource",
               {{"uid", EntityUid("Prompt", server + kSeparator + name)},
                {"attrs", {{"name", name}, {"server", server}}},
                {"parents", ServerParents(server)}}},
              {"context", TimeContext(now)},
              {"call", {{"intent", "read"}}}};
  if (args.is_object()) req["args"] = args;
  return req;
}

Json BuildResourceRequest(const PrincipalConfig& p, const std::string& server,
                          const std::string& uri, std::time_t now) {
  return {{"principal", PrincipalJson(p)},
          {"action", "resources/read"},
          {"resource",
           {{"uid", EntityUid("Resource", uri)},
            {"attrs", {{"uri", uri}, {"server", server}}},
            {"parents", ServerParents(server)}}},
          {"context", TimeContext(now)},
          {"call", {{"intent", "read"}}}};
}

std::string NewDecisionId() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    std::random_device rd;
    for (auto& x : b) x = static_cast<unsigned char>(rd());
  }
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char x : b) {
    s.push_back(kHex[x >> 4]);
    s.push_back(kHex[x & 15]);
  }
  return s;
}

int64_t CountRecords(const Json& result) {
  if (!result.is_object() || result.value("isError", Json(false)) == Json(true)) return 0;
  // The largest array directly in `v` (v itself, or one of its fields); -1 if none.
  auto largest = [](const Json& v) -> int64_t {
    if (v.is_array()) return static_cast<int64_t>(v.size());
    int64_t best = -1;
    if (v.is_object())
      for (const auto& f : v)
        if (f.is_array()) best = std::max<int64_t>(best, static_cast<int64_t>(f.size()));
    return best;
  };
  auto sc = result.find("structuredContent");
  if (sc != result.end()) {
    int64_t n = largest(*sc);
    return n >= 0 ? n : 1;
  }
  int64_t total = 0;
  auto content = result.find("content");
  if (content == result.end() || !content->is_array()) return 0;
  for (const auto& item : *content) {
    if (!item.is_object() || item.value("type", "") != "text") {
      ++total;
      continue;
    }
    const Json* text = item.contains("text") && item["text"].is_string() ? &item["text"] : nullptr;
    int64_t n = -1;
    if (text != nullptr && text->get_ref<const std::string&>().size() <= kMaxRecordParseBytes) {
      Json parsed = Json::parse(text->get_ref<const std::string&>(), nullptr, false);
      if (!parsed.is_discarded()) n = largest(parsed);
    }
    total += n >= 0 ? n : 1;
  }
  return total;
}

// ---- decisions ----

Json Proxy::WithContext(Json request) {
  Json& context = request["context"];
  if (!context.is_object()) context = Json::object();
  context["identity"] = opts_.identity.is_object() ? opts_.identity : Json::object();
  std::lock_guard<std::mutex> lock(mu_);
  context["session"] = {{"calls", session_calls_}, {"records", session_records_}};
  return request;
}

Proxy::Proxy(ProxyOptions opts, std::shared_ptr<const runtime::Bundle> bundle, WriteFn to_client)
    : opts_(std::move(opts)), bundle_(std::move(bundle)), to_client_(std::move(to_client)) {
  if (opts_.session.empty()) opts_.session = "s-" + NewDecisionId().substr(0, 16);
  if (bundle_ != nullptr) bundle_hash_ = bundle_->source_hash_hex();
  Metrics::Global().sessions().Inc();
}

Proxy::~Proxy() { Metrics::Global().sessions().Dec(); }

std::shared_ptr<const runtime::Bundle> Proxy::CurrentBundle() const {
  return opts_.bundles != nullptr ? opts_.bundles->Get() : bundle_;
}

// ---- audit ----

bool Proxy::AuditDecision(const AuditSubject& subject, const Decided& d, const Json& detail) {
  if (opts_.audit == nullptr) return true;
  AuditRecord r;
  r.kind = "decision";
  r.decision_id = d.id;
  r.principal = opts_.principal.uid;
  r.on_behalf_of = opts_.identity.value("on_behalf_of", std::string());
  r.session = opts_.session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    r.client = client_name_;
  }
  r.method = subject.method;
  r.server = subject.server;
  r.tool = subject.tool;
  if (!subject.args.is_null()) r.args = subject.args;
  r.decision = runtime::EffectName(d.effect);
  const Json obligations = d.decision.value("obligations", Json::array());
  for (const auto& o : obligations)
    if (o.is_object() && o.value("kind", "") == "redact") r.redact_args = true;
  for (const auto& id : d.decision.value("determining", Json::array()))
    if (id.is_string()) r.determining.push_back(id);
  r.bundle_hash = d.bundle_hash;
  if (!obligations.empty()) r.detail = {{"obligations", obligations}};
  if (detail.is_object())
    for (auto it = detail.begin(); it != detail.end(); ++it) r.detail[it.key()] = it.value();
  AuditStatus st = opts_.audit->Append(r);
  if (st.ok()) return true;
  bool deny = opts_.audit->options().on_failure == AuditFailurePolicy::kDeny;
  LogError(std::string("audit: cannot record decision ") + d.id + ": " + st.message +
               (deny ? "; denying the request (audit.on_failure: deny)"
                     : "; serving anyway (audit.on_failure: allow)"),
           {{"decision_id", d.id}});
  return !deny;
}

void Proxy::FailClosed(const Json& client_id, const Decided& d) {
  ReplyError(client_id, kDenied, std::string(kAuditUnavailable) + " (decision " + d.id + ")",
             Json{{"decision_id", d.id},
                  {"decision", "deny"},
                  {"policy_decision", runtime::EffectName(d.effect)},
                  {"determining", Json::array()},
                  {"help", "the gateway could not write its audit log (see its stderr); "
                           "nothing was forwarded"}});
}

void Proxy::ForwardAudited(size_t up, const Json& client_id, const std::string& method,
                           Json params, const AuditSubject& subject, const Decided& d,
                           Filter also, std::shared_ptr<Json> detail) {
  const std::string& decision_id = d.id;
  Filter on_reply = also;
  if (opts_.audit != nullptr) {
    auto start = std::chrono::steady_clock::now();
    std::shared_ptr<AuditLog> audit = opts_.audit;
    AuditRecord base;
    base.kind = "outcome";
    base.decision_id = decision_id;
    base.principal = opts_.principal.uid;
    base.on_behalf_of = opts_.identity.value("on_behalf_of", std::string());
    base.session = opts_.session;
    {
      std::lock_guard<std::mutex> lock(mu_);
      base.client = client_name_;
    }
    base.method = subject.method;
    base.server = subject.server;
    base.tool = subject.tool;
    base.bundle_hash = d.bundle_hash;
    on_reply = [audit, base, start, also, detail](Json& reply) {
      if (also) also(reply);
      AuditRecord r = base;
      if (detail != nullptr && detail->is_object() && !detail->empty()) r.detail = *detail;
      AuditUpstream u;
      u.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
      if (reply.contains("error")) {
        u.outcome = "error";
        const Json& e = reply["error"];
        u.error = e.is_object() && e.contains("message") && e["message"].is_string()
                      ? e["message"].get<std::string>()
                      : std::string("error reply");
        if (u.error.size() > 200) u.error.resize(200);
      } else if (reply.contains("result") && reply["result"].is_object() &&
                 reply["result"].value("isError", Json(false)) == Json(true)) {
        u.outcome = "error";
        u.error = "the tool reported an error (isError)";
      } else {
        u.outcome = "ok";
      }
      r.upstream = u;
      AuditStatus st = audit->Append(r);
      if (!st.ok())
        LogError("audit: cannot record the outcome of decision " + r.decision_id + ": " +
                 st.message);
    };
  }
  ForwardClientRequest(up, client_id, method, std::move(params), std::move(on_reply));
}

size_t Proxy::AddUpstream(const std::string& name, SendFn send) {
  std::lock_guard<std::mutex> lock(mu_);
  ups_.push_back(Upstream{name, std::move(send)});
  ups_.back().latency = &Metrics::Global().upstream_seconds().With({name});
  ups_.back().errors = &Metrics::Global().upstream_errors().With({name});
  return ups_.size() - 1;
}

Proxy::Decided Proxy::DecideRequest(const Json& request, bool list_time) {
  Decided d;
  if (!list_time) d.id = NewDecisionId();
  // One bundle for the whole decision, even if a reload swaps it meanwhile.
  std::shared_ptr<const runtime::Bundle> bundle = CurrentBundle();
  d.bundle_hash = bundle == nullptr ? bundle_hash_ : bundle->source_hash_hex();
  auto start = std::chrono::steady_clock::now();
  // Metrics for call decisions (not list-time visibility): effect, or "error" when the
  // request could not be decided (denied).
  auto count = [&](const char* effect) {
    if (list_time) return;
    Metrics& m = Metrics::Global();
    m.Decision(effect).Inc();
    m.decision_seconds().Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  // A failure to decide is a deny.
  try {
    runtime::PreparedRequest prepared;
    std::string error;
    if (bundle == nullptr || !runtime::PrepareRequest(*bundle, request, &prepared, &error)) {
      d.effect = runtime::Effect::kDeny;
      d.decision = {{"decision", "deny"},
                    {"determining", Json::array()},
                    {"obligations", Json::array({{{"kind", "reason"},
                                                  {"message", "the request could not be decided: " +
                                                                  error}}})}};
      count("error");
      return d;
    }
    if (list_time) {
      prepared.args_unknown = true;
      runtime::Visibility v = runtime::ListVisibility(*bundle, prepared);
      d.effect = v == runtime::Visibility::kDeny ? runtime::Effect::kDeny : runtime::Effect::kAllow;
      return d;
    }
    auto eval_start = std::chrono::steady_clock::now();
    runtime::Decision dec = runtime::Evaluate(*bundle, prepared);
    d.effect = dec.effect;
    d.decision = runtime::DecisionToJson(*bundle, prepared, dec);
    count(runtime::EffectName(d.effect));
    if (opts_.trace != nullptr) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - eval_start);
      std::string server = request.value(Json::json_pointer("/resource/attrs/server"), "");
      opts_.trace->Decision(TraceWho(), server, request.value("action", ""), request, d.decision,
                            d.id, d.bundle_hash, us.count());
    }
  } catch (const std::exception& e) {
    count("error");
    d.effect = runtime::Effect::kDeny;
    d.decision = {{"decision", "deny"}, {"determining", Json::array()}, {"obligations", Json::array()}};
    LogError(std::string("decision failed: ") + e.what());
  }
  return d;
}

bool Proxy::Visible(const Json& request) {
  return DecideRequest(request, /*list_time=*/true).effect != runtime::Effect::kDeny;
}

void Proxy::ReplyDecision(const Json& client_id, const Decided& d, Json extra) {
  std::string reasons;
  if (d.decision.contains("obligations")) {
    for (const auto& o : d.decision["obligations"]) {
      if (o.value("kind", "") == "reason")
        reasons += (reasons.empty() ? "" : "; ") + o.value("message", std::string());
    }
  }
  Json data = {{"decision_id", d.id},
               {"decision", runtime::EffectName(d.effect)},
               {"determining", d.decision.value("determining", Json::array())}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) data[it.key()] = it.value();
  if (d.effect == runtime::Effect::kRequireApproval) {
    for (const auto& o : d.decision["obligations"])
      if (o.value("kind", "") == "require_approval") data["approval"] = o;
    ReplyError(client_id, kHeldForApproval,
               "held for approval" + (reasons.empty() ? "" : ": " + reasons) + " (decision " +
                   d.id + "; no approval store is configured, the call was not forwarded)",
               data);
    return;
  }
  ReplyError(client_id, kDenied,
             (reasons.empty() ? std::string("denied by policy") : "denied by policy: " + reasons) +
                 " (decision " + d.id + ")",
             data);
}

// ---- the message loop ----

void Proxy::ToClient(const Json& msg) {
  // Upstream credentials never reach the client, whatever the upstream echoes.
  const Json* out = &msg;
  Json copy;
  if (opts_.guards != nullptr && opts_.guards->scrub != nullptr) {
    copy = msg;
    if (opts_.guards->scrub->ScrubJson(&copy) > 0) {
      std::cerr << "writ: scrubbed an upstream secret from a message to the client\n";
      out = &copy;
    }
  }
  if (opts_.trace != nullptr)
    opts_.trace->Message(TraceWho(), TraceDirection::kGatewayToClient, *out);
  to_client_(ToLine(*out));
}

TraceSession Proxy::TraceWho() {
  TraceSession who{opts_.session,
                   {{"uid", opts_.principal.uid},
                    {"attrs", opts_.principal.attrs},
                    {"parents", opts_.principal.parents}},
                   ""};
  std::lock_guard<std::mutex> lock(mu_);
  who.client = client_name_;
  return who;
}

void Proxy::ReplyError(const Json& id, int code, const std::string& message, Json data) {
  ToClient(ErrorReply(id, code, message, std::move(data)));
}

int Proxy::InFlight() {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

void Proxy::OnClientLine(std::string_view line, bool oversized) {
  try {
    if (oversized) {
      ReplyError(nullptr, kParseError,
                 "message larger than limits.max_message_bytes (" +
                     std::to_string(opts_.limits.max_message_bytes) + ")");
      return;
    }
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    ParsedMessage p = ParseMessage(line, opts_.limits.max_message_bytes, opts_.limits.max_depth);
    if (p.error_code != 0) {
      ReplyError(p.id, p.error_code, p.error);
      return;
    }
    if (opts_.trace != nullptr)
      opts_.trace->Message(TraceWho(), TraceDirection::kClientToGateway, p.msg);
    if (IsRequest(p.msg)) {
      HandleClientRequest(std::move(p.msg));
    } else if (IsNotification(p.msg)) {
      HandleClientNotification(std::move(p.msg));
    } else {
      HandleClientResponse(std::move(p.msg));
    }
  } catch (const std::exception& e) {
    // Nothing should throw here; if something does, the session survives.
    LogError(std::string("internal error handling a client message: ") + e.what());
  }
}

void Proxy::HandleClientRequest(Json msg) {
  const Json id = msg["id"];
  const std::string method = msg["method"];
  Json params = msg.value("params", Json::object());
  if (method == "initialize") return Initialize(id, params);
  if (method == "ping") return ToClient(ResultReply(id, Json::object()));
  if (draining_)
    return ReplyError(id, kShuttingDown, "the gateway is shutting down; no new requests",
                      Json{{"help", "reconnect once it is back"}});
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (client_requests_.count(id.dump())) {
      // Fall through to the reply below, outside the lock.
    } else if (in_flight_ >= opts_.limits.max_in_flight) {
      params = nullptr;
    }
  }
  if (params.is_null()) {
    return ReplyError(id, kTooManyInFlight,
                      "too many requests in flight (limits.max_in_flight = " +
                          std::to_string(opts_.limits.max_in_flight) + ")");
  }
  if (method == "tools/list") return ListTools(id);
  if (method == "tools/call") return CallTool(id, params);
  if (method == "prompts/list") return ListOther(id, method, "prompts");
  if (method == "resources/list") return ListOther(id, method, "resources");
  if (method == "resources/templates/list") return ListOther(id, method, "resourceTemplates");
  if (method == "prompts/get") return GetPrompt(id, std::move(params));
  if (method == "resources/read" || method == "resources/subscribe" ||
      method == "resources/unsubscribe")
    return ReadResource(id, method, std::move(params));
  if (method == "completion/complete") return Complete(id, std::move(params));
  if (method == "logging/setLevel") return Broadcast(id, method, params);
  ReplyError(id, kMethodNotFound, "method not found: " + method);
}

void Proxy::HandleClientNotification(Json msg) {
  const std::string method = msg["method"];
  Json params = msg.value("params", Json::object());
  std::vector<std::pair<size_t, Json>> sends;  // done outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (method == "notifications/cancelled") {
      // A call held for approval is dropped (it was never forwarded).
      const Json rid = params.value("requestId", Json());
      held_.erase(std::remove_if(held_.begin(), held_.end(),
                                 [&](const auto& h) { return h->client_id == rid; }),
                  held_.end());
      auto it = client_requests_.find(rid.dump());
      if (it == client_requests_.end()) return;  // finished already, or never forwarded
      auto p = pending_.find(it->second);
      if (p == pending_.end()) return;
      params["requestId"] = it->second;
      msg["params"] = params;
      sends.emplace_back(p->second.up, msg);
    } else if (method == "notifications/progress") {
      // Progress on a server-to-client request: route by our token.
      auto it = progress_tokens_.find(params.value("progressToken", Json()).dump());
      if (it == progress_tokens_.end()) return;
      params["progressToken"] = it->second.second;
      msg["params"] = params;
      sends.emplace_back(it->second.first, msg);
    } else {
      // notifications/initialized, roots/list_changed, ...: every live upstream.
      for (size_t i = 0; i < ups_.size(); ++i)
        if (ups_[i].alive) sends.emplace_back(i, msg);
    }
  }
  for (auto& [up, m] : sends) ups_[up].send(ToLine(m));
}

void Proxy::HandleClientResponse(Json msg) {
  ServerRequest sr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = server_requests_.find(msg["id"].dump());
    if (it == server_requests_.end()) {
      LogWarn("dropped a client response with unknown id " + msg["id"].dump());
      return;
    }
    sr = it->second;
    server_requests_.erase(it);
    for (auto t = progress_tokens_.begin(); t != progress_tokens_.end();) {
      t = t->first == msg["id"].dump() ? progress_tokens_.erase(t) : std::next(t);
    }
    if (!ups_[sr.up].alive) return;
  }
  msg["id"] = sr.id;
  ups_[sr.up].send(ToLine(msg));
}

void Proxy::OnUpstreamLine(size_t up, std::string_view line) {
  try {
    ParsedMessage p = ParseMessage(line, opts_.limits.max_message_bytes, opts_.limits.max_depth);
    if (p.error_code != 0) {
      LogWarn("upstream " + ups_[up].name + " sent an invalid message: " + p.error,
              {{"upstream", ups_[up].name}});
      return;
    }
    Json& msg = p.msg;
    if (IsResponse(msg)) {
      Done done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!msg["id"].is_number_integer()) return;
        auto it = pending_.find(msg["id"].get<int64_t>());
        if (it == pending_.end() || it->second.up != up) return;  // late (timed out) or forged
        done = std::move(it->second.done);
        pending_.erase(it);
      }
      done(msg);
      return;
    }
    const std::string method = msg["method"];
    if (IsRequest(msg)) {
      if (method == "ping") {
        ups_[up].send(ToLine(ResultReply(msg["id"], Json::object())));
        return;
      }
      // Server-to-client request (sampling, elicitation, roots/list, ...).
      {
        std::lock_guard<std::mutex> lock(mu_);
        std::string ours = "writ-" + std::to_string(next_id_++);
        server_requests_[Json(ours).dump()] = ServerRequest{up, msg["id"]};
        msg["id"] = ours;
        Json* meta = msg.contains("params") ? &msg["params"] : nullptr;
        if (meta && meta->contains("_meta") && (*meta)["_meta"].contains("progressToken")) {
          Json& tok = (*meta)["_meta"]["progressToken"];
          progress_tokens_[Json(ours).dump()] = {up, tok};
          tok = ours;  // the same string as the id: erased together when the client answers
        }
      }
      ToClient(msg);
      return;
    }
    // Notifications from the server.
    if (method == "notifications/cancelled") {
      std::lock_guard<std::mutex> lock(mu_);
      Json rid = msg["params"].value("requestId", Json());
      bool found = false;
      for (auto it = server_requests_.begin(); it != server_requests_.end(); ++it) {
        if (it->second.up == up && it->second.id == rid) {
          msg["params"]["requestId"] = Json::parse(it->first);
          server_requests_.erase(it);
          found = true;
          break;
        }
      }
      if (!found) return;
    }
    // notifications/progress carries the client's own token (requests are forwarded with it
    // unchanged); message, list_changed, resources/updated are relayed as they are.
    ToClient(msg);
  } catch (const std::exception& e) {
    LogError("internal error handling a message from " + ups_[up].name + ": " + e.what(),
             {{"upstream", ups_[up].name}});
  }
}

void Proxy::OnUpstreamExit(size_t up, const std::string& why) {
  std::vector<Done> failed;
  bool had_tools = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Upstream& u = ups_[up];
    if (!u.alive) return;
    u.alive = false;
    u.restarting = false;
    had_tools = !u.tools.empty();
    u.tools.clear();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.up == up) {
        failed.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = resource_routes_.begin(); it != resource_routes_.end();)
      it = it->second == up ? resource_routes_.erase(it) : std::next(it);
    for (auto it = server_requests_.begin(); it != server_requests_.end();)
      it = it->second.up == up ? server_requests_.erase(it) : std::next(it);
  }
  LogWarn("upstream " + ups_[up].name + " " + why + "; its tools are gone and its calls fail",
          {{"upstream", ups_[up].name}});
  Json err = ErrorReply(nullptr, kUpstreamUnavailable,
                        "upstream '" + ups_[up].name + "' " + why,
                        Json{{"upstream", ups_[up].name}});
  for (auto& d : failed) d(err);
  if (had_tools)
    ToClient({{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}});
}

void Proxy::OnUpstreamRestarted(size_t up) {
  Json params;
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Upstream& u = ups_[up];
    u.alive = true;
    u.initialized = false;
    u.tools.clear();
    u.tools_known = false;
    name = u.name;
    params = client_init_params_;
    // Before the client's initialize there is nothing to redo: that initialize reaches it.
    u.restarting = !params.is_null();
  }
  if (params.is_null()) return;
  SendUpstream(
      up, "initialize", params,
      [this, up, name](const Json& reply) {
        if (!reply.contains("result") || !reply["result"].is_object()) {
          LogError("restarted upstream failed to initialize; it stays unavailable",
                   {{"upstream", name}, {"error", reply.value("error", Json()).dump()}});
          std::lock_guard<std::mutex> lock(mu_);
          ups_[up].alive = false;
          ups_[up].restarting = false;
          return;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          ups_[up].initialized = true;
          ups_[up].restarting = false;
          ups_[up].capabilities = reply["result"].value("capabilities", Json::object());
        }
        ups_[up].send(ToLine(Json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}));
        RefreshTools(up, [this, name] {
          LogInfo("restarted upstream is initialized; its tools are back", {{"upstream", name}});
          ToClient({{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}});
        });
      },
      opts_.limits.upstream_timeout_ms);
}

void Proxy::Tick() {
  std::vector<std::pair<size_t, Done>> expired;
  std::vector<std::pair<size_t, int64_t>> cancel;  // the upstream stops working on them
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline < now) {
        cancel.emplace_back(it->second.up, it->first);
        expired.emplace_back(it->second.up, std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [up, id] : cancel)
    ups_[up].send(ToLine({{"jsonrpc", "2.0"},
                          {"method", "notifications/cancelled"},
                          {"params", {{"requestId", id}, {"reason", "timed out at the gateway"}}}}));
  for (auto& [up, d] : expired)
    d(ErrorReply(nullptr, kUpstreamTimeout, "upstream '" + ups_[up].name + "' did not answer in time"));
  CheckHeld();
}

// ---- upstream plumbing ----

bool Proxy::FindUpstream(const std::string& name, size_t* up) {
  for (size_t i = 0; i < ups_.size(); ++i) {
    if (ups_[i].name == name) {
      *up = i;
      return true;
    }
  }
  return false;
}

std::vector<size_t> Proxy::LiveUpstreams() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<size_t> out;
  for (size_t i = 0; i < ups_.size(); ++i)
    if (ups_[i].alive && ups_[i].initialized) out.push_back(i);
  return out;
}

void Proxy::SendUpstream(size_t up, const std::string& method, Json params, Done done,
                         int64_t timeout_ms, const std::string* client_key) {
  int64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ups_[up].alive) {
      id = next_id_++;
      Pending p{up, std::move(done)};
      if (timeout_ms > 0)
        p.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      pending_[id] = std::move(p);
      if (client_key != nullptr) client_requests_[*client_key] = id;
    }
  }
  if (id != 0) {
    Json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
    if (ups_[up].send(ToLine(msg))) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // already failed by OnUpstreamExit
    done = std::move(it->second.done);
    pending_.erase(it);
  }
  done(ErrorReply(nullptr, kUpstreamUnavailable, "upstream '" + ups_[up].name + "' is not running",
                  Json{{"upstream", ups_[up].name}}));
}

void Proxy::ForwardClientRequest(size_t up, const Json& client_id, const std::string& method,
                                 Json params, Filter on_reply) {
  std::string key = client_id.dump();
  Histogram* latency;
  Counter* errors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++in_flight_;
    latency = ups_[up].latency;
    errors = ups_[up].errors;
  }
  Metrics::Global().in_flight().Inc();
  auto start = std::chrono::steady_clock::now();
  SendUpstream(
      up, method, std::move(params),
      [this, client_id, key, on_reply, latency, errors, start](const Json& reply) {
        Metrics::Global().in_flight().Dec();
        if (latency != nullptr)
          latency->Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (errors != nullptr && reply.contains("error")) errors->Inc();
        Json out = reply;
        if (on_reply) on_reply(out);
        {
          std::lock_guard<std::mutex> lock(mu_);
          --in_flight_;
          client_requests_.erase(key);
        }
        out["id"] = client_id;
        ToClient(out);
      },
      opts_.limits.call_timeout_ms, &key);
}

void Proxy::ListAllPages(size_t up, const std::string& method, const std::string& key,
                         std::function<void(Json items, Json error)> done) {
  struct State {
    Json items = Json::array();
    int pages = 0;
  };
  auto st = std::make_shared<State>();
  auto step = std::make_shared<std::function<void(Json cursor)>>();
  *step = [this, up, method, key, done, st, step](Json cursor) {
    Json params = Json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    SendUpstream(
        up, method, params,
        [this, key, done, st, step](const Json& reply) {
          if (reply.contains("error") || !reply.contains("result") ||
              !reply["result"].is_object()) {
            done(Json::array(), reply.value("error", Json{{"message", "malformed reply"}}));
            *step = nullptr;  // break the self-reference
            return;
          }
          const Json& r = reply["result"];
          if (r.contains(key) && r[key].is_array())
            for (const auto& x : r[key]) st->items.push_back(x);
          auto next = r.find("nextCursor");
          if (next != r.end() && next->is_string() && ++st->pages < 100) {
            (*step)(*next);
          } else {
            done(std::move(st->items), nullptr);
            *step = nullptr;
          }
        },
        opts_.limits.upstream_timeout_ms);
  };
  (*step)(nullptr);
}

void Proxy::RefreshTools(size_t up, std::function<void()> then) {
  ListAllPages(up, "tools/list", "tools", [this, up, then](Json items, Json error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      Upstream& u = ups_[up];
      if (error.is_null() && u.alive) {
        u.tools.clear();
        for (auto& t : items) {
          if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
          std::string name = t["name"];
          if (!u.tools.emplace(name, t).second)
            LogWarn("upstream " + u.name + " lists tool `" + name +
                    "` twice; the later definition is dropped",
                    {{"upstream", u.name}});
        }
        u.tools_known = true;
      } else if (!error.is_null()) {
        LogWarn("tools/list from " + u.name + " failed: " + error.dump(), {{"upstream", u.name}});
      }
    }
    then();
  });
}

}  // namespace writ::gateway

// ---- client methods ----

namespace writ::gateway {

namespace {

// A counter shared by the callbacks of one fan-out; `finish` runs once, when all are in.
struct FanIn {
  std::mutex mu;
  size_t remaining = 0;
  std::vector<std::pair<size_t, Json>> replies;  // (upstream, reply)
  std::function<void(std::vector<std::pair<size_t, Json>>&)> finish;
  void Add(size_t up, Json reply) {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu);
      replies.emplace_back(up, std::move(reply));
      last = --remaining == 0;
    }
    if (last) finish(replies);
  }
};

void MergeCapability(Json& into, const Json& from) {
  if (!from.is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_boolean()) {
      into[it.key()] = into.value(it.key(), false) || it.value().get<bool>();
    } else if (!into.contains(it.key())) {
      into[it.key()] = it.value();
    }
  }
}

}  // namespace

void Proxy::Initialize(const Json& id, const Json& params) {
  std::string client_version = params.value("protocolVersion", Json("")).is_string()
                                   ? params.value("protocolVersion", std::string())
                                   : std::string();
  Json up_params = {{"protocolVersion", client_version},
                    {"capabilities", params.value("capabilities", Json::object())},
                    {"clientInfo", {{"name", "writ"}, {"version", opts_.version}}}};
  std::vector<size_t> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    client_protocol_ = client_version;
    client_init_params_ = up_params;
    const Json info = params.value("clientInfo", Json::object());
    if (info.is_object() && info.contains("name") && info["name"].is_string())
      client_name_ = info["name"].get<std::string>().substr(0, 200);
    for (size_t i = 0; i < ups_.size(); ++i)
      if (ups_[i].alive) targets.push_back(i);
  }
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id, client_version](std::vector<std::pair<size_t, Json>>& replies) {
    Json caps = Json::object();
    std::string version = client_version;
    bool all_agree = true;
    std::string oldest;
    for (auto& [up, reply] : replies) {
      const Json* r = reply.contains("result") && reply["result"].is_object() ? &reply["result"]
                                                                               : nullptr;
      if (r == nullptr) {
        LogWarn("upstream " + ups_[up].name +
                    " failed to initialize: " + reply.value("error", Json()).dump(),
                {{"upstream", ups_[up].name}});
        continue;
      }
      std::string v = r->value("protocolVersion", Json("")).is_string()
                          ? r->value("protocolVersion", std::string())
                          : std::string();
      if (v != client_version) all_agree = false;
      if (!v.empty() && (oldest.empty() || v < oldest)) oldest = v;
      Json up_caps = r->value("capabilities", Json::object());
      {
        std::lock_guard<std::mutex> lock(mu_);
        ups_[up].initialized = true;
        ups_[up].capabilities = up_caps;
      }
      for (const char* k : {"tools", "resources", "prompts", "logging", "completions"}) {
        if (!up_caps.contains(k)) continue;
        if (!caps.contains(k)) caps[k] = Json::object();
        MergeCapability(caps[k], up_caps[k]);
      }
    }
    // The gateway announces tools/list_changed itself when an upstream goes away.
    if (caps.contains("tools")) caps["tools"]["listChanged"] = true;
    // Dates compare as strings; when an upstream answered with another version, the oldest
    // answered one is the one every upstream can speak.
    if (!all_agree && !oldest.empty()) version = oldest;
    ToClient(ResultReply(id, {{"protocolVersion", version},
                              {"capabilities", caps},
                              {"serverInfo", {{"name", "writ"}, {"version", opts_.version}}}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    SendUpstream(up, "initialize", up_params, [fan, up](const Json& r) { fan->Add(up, r); },
                 opts_.limits.upstream_timeout_ms);
}

// Tool shadowing (docs/integrity.md): tools of two servers an agent could confuse. Logged once
// per session and name; both stay listed (namespacing keeps the calls apart).
void Proxy::ReportShadowing(const std::map<std::string, std::vector<Json>>& by_server) {
  if (by_server.size() < 2) return;
  for (const Shadowing& sh : FindShadowing(by_server)) {
    std::string servers;
    for (const auto& s : sh.servers) servers += (servers.empty() ? "" : ", ") + s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!shadow_reported_.insert(sh.tool + "|" + servers).second) continue;
    }
    std::cerr << "writ: WARNING: tool shadowing (" << sh.how << "): `" << sh.tool
              << "` is offered by " << servers
              << "; agents may confuse them (docs/integrity.md)\n";
  }
}

void Proxy::ListTools(const Json& id) {
  std::vector<size_t> targets = LiveUpstreams();
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id](std::vector<std::pair<size_t, Json>>& replies) {
    std::sort(replies.begin(), replies.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json tools = Json::array();
    std::set<std::string> seen;
    std::time_t now = opts_.clock();
    std::map<std::string, std::vector<Json>> by_server;  // for the shadowing report
    for (auto& [up, unused] : replies) {
      std::map<std::string, Json> defs;
      std::string server;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!ups_[up].alive) continue;
        defs = ups_[up].tools;
        server = ups_[up].name;
      }
      for (auto& [name, def] : defs) by_server[server].push_back(def);
      for (auto& [name, def] : defs) {
        std::string full = server + kSeparator + name;
        if (!seen.insert(full).second) {
          LogWarn("tool name collision on `" + full + "`; the later one is dropped");
          continue;
        }
        if (HiddenByLock(full, def)) continue;
        Json request = WithContext(BuildToolRequest(opts_.principal, server, def, nullptr, now));
        Enrich(&request, server, def, nullptr);
        if (!Visible(request)) continue;
        Json t = def;
        t["name"] = full;
        tools.push_back(std::move(t));
      }
    }
    ReportShadowing(by_server);
    ToClient(ResultReply(id, {{"tools", std::move(tools)}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    RefreshTools(up, [fan, up] { fan->Add(up, nullptr); });
}

void Proxy::ListOther(const Json& id, const std::string& method, const std::string& key) {
  std::vector<size_t> targets;
  for (size_t up : LiveUpstreams()) {
    std::lock_guard<std::mutex> lock(mu_);
    const char* cap = key == "prompts" ? "prompts" : "resources";
    if (ups_[up].capabilities.contains(cap)) targets.push_back(up);
  }
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id, key](std::vector<std::pair<size_t, Json>>& replies) {
    std::sort(replies.begin(), replies.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json items = Json::array();
    std::time_t now = opts_.clock();
    for (auto& [up, list] : replies) {
      std::string server = ups_[up].name;
      for (auto& item : list) {
        if (!item.is_object()) continue;
        if (key == "prompts") {
          if (!item.contains("name") || !item["name"].is_string()) continue;
          std::string name = item["name"];
          if (!Visible(WithContext(BuildPromptRequest(opts_.principal, server, name, nullptr, now))))
            continue;
          item["name"] = server + kSeparator + name;
        } else if (key == "resources") {
          if (!item.contains("uri") || !item["uri"].is_string()) continue;
          std::string uri = item["uri"];
          {
            std::lock_guard<std::mutex> lock(mu_);
            auto [it, fresh] = resource_routes_.emplace(uri, up);
            if (!fresh && it->second != up) {
              LogWarn("resource `" + uri + "` is offered by " + ups_[it->second].name +
                      " and " + server + "; the later one is dropped");
              continue;
            }
          }
          if (!Visible(WithContext(BuildResourceRequest(opts_.principal, server, uri, now)))) continue;
        }
        items.push_back(std::move(item));
      }
    }
    ToClient(ResultReply(id, {{key, std::move(items)}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets) {
    ListAllPages(up, method, key, [fan, up](Json items, Json error) {
      fan->Add(up, error.is_null() ? std::move(items) : Json::array());
    });
  }
}

void Proxy::GetPrompt(const Json& id, Json params) {
  std::string server, name;
  size_t up = 0;
  bool ok = params.contains("name") && params["name"].is_string() &&
            SplitName(params["name"].get<std::string>(), &server, &name);
  if (ok) {
    std::lock_guard<std::mutex> lock(mu_);
    ok = FindUpstream(server, &up) && ups_[up].alive;
  }
  if (!ok)
    return ReplyError(id, kInvalidParams, "unknown prompt: " + params.value("name", Json()).dump(),
                      Json{{"help", "prompt names are SERVER__name; list them with prompts/list"}});
  Decided d = DecideRequest(
      WithContext(BuildPromptRequest(opts_.principal, server, name,
                                     params.value("arguments", Json()), opts_.clock())),
      false);
  AuditSubject subject{"prompts/get", server, name, params.value("arguments", Json())};
  if (!AuditDecision(subject, d) && d.effect == runtime::Effect::kAllow) return FailClosed(id, d);
  if (d.effect != runtime::Effect::kAllow) return ReplyDecision(id, d);
  params["name"] = name;
  subject.args = nullptr;
  ForwardAudited(up, id, "prompts/get", std::move(params), subject, d);
}

void Proxy::ReadResource(const Json& id, const std::string& method, Json params) {
  if (!params.contains("uri") || !params["uri"].is_string())
    return ReplyError(id, kInvalidParams, method + " needs a string `uri`");
  std::string uri = params["uri"];
  size_t up = 0;
  std::string server;
  bool ok;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = resource_routes_.find(uri);
    ok = it != resource_routes_.end() && ups_[it->second].alive;
    if (ok) {
      up = it->second;
      server = ups_[up].name;
    }
  }
  if (!ok)
    return ReplyError(id, kInvalidParams, "unknown resource: " + uri,
                      Json{{"help", "resources are routed by the URIs resources/list returned"}});
  if (method != "resources/unsubscribe") {
    Decided d = DecideRequest(
        WithContext(BuildResourceRequest(opts_.principal, server, uri, opts_.clock())), false);
    // The audit's `tool` field carries the resource's URI.
    AuditSubject subject{method, server, uri, Json()};
    if (!AuditDecision(subject, d) && d.effect == runtime::Effect::kAllow) return FailClosed(id, d);
    if (d.effect != runtime::Effect::kAllow) return ReplyDecision(id, d);
    return ForwardAudited(up, id, method, std::move(params), subject, d);
  }
  ForwardClientRequest(up, id, method, std::move(params));
}

void Proxy::Complete(const Json& id, Json params) {
  Json ref = params.value("ref", Json::object());
  std::string type = ref.value("type", Json("")).is_string() ? ref.value("type", std::string()) : "";
  size_t up = 0;
  bool ok = false;
  if (type == "ref/prompt" && ref.contains("name") && ref["name"].is_string()) {
    std::string server, name;
    if (SplitName(ref["name"].get<std::string>(), &server, &name)) {
      std::lock_guard<std::mutex> lock(mu_);
      ok = FindUpstream(server, &up) && ups_[up].alive;
      params["ref"]["name"] = name;
    }
  } else if (type == "ref/resource" && ref.contains("uri") && ref["uri"].is_string()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = resource_routes_.find(ref["uri"].get<std::string>());
    ok = it != resource_routes_.end() && ups_[it->second].alive;
    if (ok) up = it->second;
  }
  if (!ok) return ReplyError(id, kInvalidParams, "completion/complete: unknown ref");
  ForwardClientRequest(up, id, "completion/complete", std::move(params));
}

void Proxy::Broadcast(const Json& id, const std::string& method, const Json& params) {
  std::vector<size_t> targets = LiveUpstreams();
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id](std::vector<std::pair<size_t, Json>>&) {
    ToClient(ResultReply(id, Json::object()));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    SendUpstream(up, method, params, [fan, up](const Json& r) { fan->Add(up, r); }, true);
}

}  // namespace writ::gateway

namespace writ::gateway {

std::vector<std::string> Proxy::ClientRequestsTo(size_t up) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, id] : client_requests_) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.up == up) out.push_back(key);
  }
  return out;
}

}  // namespace writ::gateway
