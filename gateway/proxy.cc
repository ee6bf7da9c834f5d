// proxy.cc -- see proxy.h. Sections: request construction, decisions, the message loop
// (client and upstream messages, notifications and server-to-client requests in both
// directions, exits, restarts, timeouts), upstream plumbing. The other parts of Proxy:
// proxy_call.cc (the tools/call pipeline), proxy_methods.cc (initialize, lists, prompts,
// resources, completion), proxy_audit.cc (decision and outcome records).
#include "gateway/proxy.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
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
  // Built member by member: nlohmann's initializer lists copy every value (request path).
  Json out = Json::object();
  Json& time = out["time"];
  time["hour"] = tm.tm_hour;
  time["weekday"] = kDays[tm.tm_wday % 7];
  time["date"] = date;
  return out;
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

// (The request builders below fill objects member by member rather than with initializer
// lists, which copy every value: they run for every decided call.)
Json PrincipalJson(const PrincipalConfig& p) {
  Json out = Json::object();
  out["uid"] = p.uid;
  out["attrs"] = p.attrs;
  out["parents"] = p.parents;
  return out;
}

Json ServerParents(const std::string& server) {
  Json out = Json::array();
  out.push_back(EntityUid("Server", server));
  return out;
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
  Json req = Json::object();
  req["principal"] = PrincipalJson(p);
  req["action"] = "tools/call";
  Json& resource = req["resource"];
  resource["uid"] = EntityUid("Tool", server + kSeparator + name);
  resource["attrs"] = std::move(attrs);
  resource["parents"] = ServerParents(server);
  req["context"] = TimeContext(now);
  req["call"]["intent"] = IntentOf(tool);
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
  // OpenSSL's generator is asked for 32 ids' worth of bytes at a time, per thread (one call
  // costs about as much as the rest of an id's request path); used bytes are wiped.
  struct Pool {
    unsigned char bytes[512];
    size_t used = sizeof bytes;
  };
  thread_local Pool pool;
  unsigned char b[16];
  if (pool.used + sizeof b > sizeof pool.bytes) {
    if (RAND_bytes(pool.bytes, sizeof pool.bytes) == 1) pool.used = 0;
  }
  if (pool.used + sizeof b <= sizeof pool.bytes) {
    std::memcpy(b, pool.bytes + pool.used, sizeof b);
    OPENSSL_cleanse(pool.bytes + pool.used, sizeof b);
    pool.used += sizeof b;
  } else {
    std::random_device rd;  // RAND_bytes failed: the OS's generator, as before
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
    // Only an object or an array can hold an array; anything else (plain text) counts as one
    // record without a parse attempt (a failed parse builds an error message: costly).
    const std::string* str = text != nullptr ? &text->get_ref<const std::string&>() : nullptr;
    size_t first = str != nullptr ? str->find_first_not_of(" \t\r\n") : std::string::npos;
    if (first != std::string::npos && ((*str)[first] == '{' || (*str)[first] == '[') &&
        str->size() <= kMaxRecordParseBytes) {
      Json parsed = Json::parse(*str, nullptr, false);
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
    // Per thread, so its buffers are reused from call to call (PrepareRequest sets every
    // field); only used within this function, which never runs nested on one thread.
    thread_local runtime::PreparedRequest prepared;
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
  auto params_it = msg.find("params");  // moved out: msg is not used after this
  Json params = params_it != msg.end() ? std::move(*params_it) : Json::object();
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
  if (method == "tools/call") return CallTool(id, std::move(params));
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
      done(std::move(msg));
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
      [this, client_id, key, on_reply, latency, errors, start](Json out) {
        Metrics::Global().in_flight().Dec();
        if (latency != nullptr)
          latency->Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (errors != nullptr && out.contains("error")) errors->Inc();
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

bool Proxy::AwaitingUpstream(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = client_requests_.find(key);
  return it != client_requests_.end() && pending_.count(it->second) > 0;
}

}  // namespace writ::gateway
