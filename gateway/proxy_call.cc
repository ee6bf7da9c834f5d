// proxy_call.cc -- the tools/call pipeline of Proxy (ARCHITECTURE.md, "The request
// pipeline"; docs/governance.md). Stages, each returning a StageStatus:
//
//   Route -> Guard (kill switch, tool pin) -> Decide (classify intent, DLP scan of the
//   arguments, poisoning findings, policy, rate limits, audit, notify) -> Hold (approval) ->
//   Forward (redact arguments, circuit breaker) -> on the reply: DLP scan and redaction of the
//   result, secret scrubbing, session counters, audit outcome -> respond.
//
// The rest of Proxy (message loop, relay, lists) is in proxy.cc.
#include <algorithm>
#include <iostream>

#include "gateway/approvals.h"
#include "gateway/governance.h"
#include "gateway/guards.h"
#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/proxy.h"

namespace writ::gateway {

using Json = nlohmann::json;

namespace {

// The obligations of kind `kind` in a DecisionToJson result.
std::vector<Json> Obligations(const Json& decision, const char* kind) {
  std::vector<Json> out;
  auto o = decision.find("obligations");
  if (o == decision.end() || !o->is_array()) return out;
  for (const auto& x : *o)
    if (x.is_object() && x.value("kind", "") == kind) out.push_back(x);
  return out;
}

// Turns a decision into a deny with `reason` (a rate limit, an unusable redact target...).
void OverrideToDeny(Json* decision, const std::string& reason) {
  (*decision)["decision"] = "deny";
  if (!(*decision)["obligations"].is_array()) (*decision)["obligations"] = Json::array();
  (*decision)["obligations"].push_back({{"kind", "reason"}, {"message", reason}});
}

}  // namespace

int64_t Proxy::NowMs() const {
  if (opts_.guards != nullptr && opts_.guards->now_ms) return opts_.guards->now_ms();
  return gateway::NowMs();
}

void Proxy::Enrich(Json* request, const std::string& server, const ToolDef& def,
                   const Json* args, Json* detail) {
  const Json& tool_def = *def;
  const Guards* g = opts_.guards.get();
  if (g == nullptr) return;  // BuildToolRequest's annotation-only intent stays
  Json& attrs = (*request)["resource"]["attrs"];
  // What the definition alone says is computed once per definition (the scanner costs tens of
  // microseconds): cached by tool name, reused while the definition is unchanged. The same
  // tools/list answer gives the same shared definition, so a hit is a pointer comparison; a
  // new answer with an equal definition is compared once and then shares the new pointer.
  const std::string key = server + kSeparator + tool_def.value("name", std::string());
  ToolFacts facts;  // on a hit, without its def (not needed here)
  bool hit = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tool_facts_.find(key);
    if (it != tool_facts_.end() &&
        (it->second.def == def || (it->second.def != nullptr && *it->second.def == tool_def))) {
      it->second.def = def;
      facts.intent = it->second.intent;
      facts.poisoning = it->second.poisoning;
      hit = true;
    }
  }
  if (!hit) {
    facts.def = def;
    facts.intent = IntentName(g->intent->ClassifyTool(server, tool_def).intent);
    facts.poisoning = FindingKinds(ScanToolDefinition(tool_def));
    std::lock_guard<std::mutex> lock(mu_);
    tool_facts_[key] = facts;
  }
  attrs["intent"] = facts.intent;
  const std::vector<std::string>& poisoning = facts.poisoning;
  attrs["poisoning"] = poisoning;
  if (args == nullptr) {
    (*request)["call"]["intent"] = facts.intent;
    (*request)["context"]["dlp"] = {{"args", Json::array()}};
    return;
  }
  IntentResult call_intent = g->intent->ClassifyCall(server, tool_def, *args);
  (*request)["call"]["intent"] = IntentName(call_intent.intent);
  if (detail != nullptr) {
    (*detail)["intent"] = {{"call", IntentName(call_intent.intent)}, {"why", call_intent.why}};
    if (!poisoning.empty()) (*detail)["poisoning"] = poisoning;
  }
}

bool Proxy::HiddenByLock(const std::string& full, const Json& tool_def) {
  const Guards* g = opts_.guards.get();
  if (g == nullptr || g->lock == nullptr) return false;
  LockStatus st = g->lock->Check(full, tool_def);
  if (st == LockStatus::kLocked) return false;
  LockAction action = st == LockStatus::kNew ? g->on_new : g->on_drift;
  return action == LockAction::kHide;
}

// tools/call: Route -> (refresh the tool catalog if needed) -> Guard -> Decide -> Hold|Forward.
void Proxy::CallTool(const Json& id, Json params) {
  auto s = std::make_shared<CallState>();
  s->client_id = id;
  s->params = std::move(params);
  if (Route(*s) != StageStatus::kContinue) return;
  auto rest = [this, s] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = ups_[s->up].tools.find(s->tool);
      if (it != ups_[s->up].tools.end()) s->tool_def = it->second;
    }
    if (s->tool_def == nullptr) {
      ReplyError(s->client_id, kInvalidParams, "unknown tool: " + s->server + kSeparator + s->tool,
                 Json{{"help", "list the tools with tools/list"}});
      return;
    }
    if (Guard(*s) != StageStatus::kContinue) return;
    switch (Decide(*s)) {
      case StageStatus::kContinue:
        Forward(s);
        // An allowed call's log line is written once the call is on its way, off its latency.
        if (s->log_pending) LogDecision(*s);
        return;
      case StageStatus::kHoldForApproval:
        return Hold(s);
      case StageStatus::kRespondNow:
        return;
    }
  };
  bool known;
  {
    std::lock_guard<std::mutex> lock(mu_);
    known = ups_[s->up].tools_known && ups_[s->up].tools.count(s->tool);
  }
  if (known) {
    rest();
  } else {
    RefreshTools(s->up, rest);  // the client called without listing, or the list changed
  }
}

StageStatus Proxy::Route(CallState& s) {
  auto name = s.params.find("name");
  if (name == s.params.end() || !name->is_string()) {
    ReplyError(s.client_id, kInvalidParams, "tools/call needs a string `name`");
    return StageStatus::kRespondNow;
  }
  auto args = s.params.find("arguments");
  if (args != s.params.end() && !args->is_object()) {
    ReplyError(s.client_id, kInvalidParams, "tools/call `arguments` must be an object");
    return StageStatus::kRespondNow;
  }
  s.args = args != s.params.end() ? *args : Json::object();
  auto meta = s.params.find("_meta");
  if (meta != s.params.end() && meta->is_object() && meta->contains("progressToken"))
    s.progress_token = (*meta)["progressToken"];
  std::string full = *name;
  bool ok = SplitName(full, &s.server, &s.tool);
  bool alive = false, restarting = false;
  if (ok) {
    std::lock_guard<std::mutex> lock(mu_);
    ok = FindUpstream(s.server, &s.up);
    alive = ok && ups_[s.up].alive;
    restarting = alive && ups_[s.up].restarting;
  }
  if (!ok) {
    ReplyError(s.client_id, kInvalidParams, "unknown tool: " + full,
               Json{{"help", "tool names are SERVER__tool; list them with tools/list"}});
    return StageStatus::kRespondNow;
  }
  if (!alive || restarting) {
    ReplyError(s.client_id, kUpstreamUnavailable,
               "upstream '" + s.server + "' is " +
                   (restarting ? "restarting; retry shortly" : "not running"),
               Json{{"upstream", s.server}});
    return StageStatus::kRespondNow;
  }
  return StageStatus::kContinue;
}

// A deny that no policy statement made (kill switch, drifted tool): audited, then answered.
StageStatus Proxy::GatewayDeny(CallState& s, const std::string& reason, Json data) {
  s.decided.id = NewDecisionId();
  s.decided.effect = runtime::Effect::kDeny;
  s.decided.decision = {{"decision", "deny"},
                        {"determining", Json::array()},
                        {"obligations", Json::array({{{"kind", "reason"}, {"message", reason}}})}};
  AuditDecision({"tools/call", s.server, s.tool, s.args}, s.decided, data);
  ReplyDecision(s.client_id, s.decided, std::move(data));
  return StageStatus::kRespondNow;
}

StageStatus Proxy::Guard(CallState& s) {
  const Guards* g = opts_.guards.get();
  if (g == nullptr) return StageStatus::kContinue;
  if (g->governance != nullptr && g->governance->killswitch != nullptr) {
    if (auto k = g->governance->killswitch->Blocks(s.server, opts_.principal.uid))
      return GatewayDeny(s, k->Message(), Json{{"killswitch", k->ToJson()}});
  }
  if (g->lock != nullptr) {
    const std::string full = s.server + kSeparator + s.tool;
    LockStatus st = g->lock->Check(full, *s.tool_def);
    LockAction action = st == LockStatus::kNew ? g->on_new : g->on_drift;
    if (st != LockStatus::kLocked) {
      std::cerr << "writ: ALERT: tool " << full << " is " << LockStatusName(st)
                << " compared with the lockfile"
                << (action == LockAction::kAllow ? " (lock.on_drift: allow, serving it)"
                                                 : "; its calls are denied until it is reviewed")
                << "\n";
    }
    if (st != LockStatus::kLocked && action != LockAction::kAllow) {
      return GatewayDeny(
          s,
          std::string("tool definition ") +
              (st == LockStatus::kNew ? "is not in" : "changed since it was pinned in") +
              " the lockfile; calls are denied until an operator reviews it",
          Json{{"lock", LockStatusName(st)},
               {"help", "review the tool, then re-pin it with `writ lock --config gateway.yaml`"}});
    }
  }
  return StageStatus::kContinue;
}

StageStatus Proxy::Decide(CallState& s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++session_calls_;  // this call counts: context.session.calls includes it
  }
  const Guards* g = opts_.guards.get();
  s.request = WithContext(BuildToolRequest(opts_.principal, s.server, *s.tool_def, s.args,
                                           opts_.clock()));
  Json detail = Json::object();
  Enrich(&s.request, s.server, s.tool_def, &s.args, &detail);
  if (g != nullptr) {
    Json dlp_args = Json::array();
    if (g->dlp != nullptr) {
      s.args_report = g->dlp->ScanJson(s.args);
      for (auto& c : DlpScanner::Classes(s.args_report)) dlp_args.push_back(c);
    }
    s.request["context"]["dlp"] = {{"args", dlp_args}};
    if (!dlp_args.empty()) detail["dlp_args"] = dlp_args;
  }
  s.decided = DecideRequest(s.request, /*list_time=*/false);

  // Obligations that can still turn the answer into a deny come before the audit record, so
  // the record carries the final decision.
  if (g != nullptr && s.decided.effect != runtime::Effect::kDeny) {
    for (const Json& o : Obligations(s.decided.decision, "redact"))
      for (const auto& t : o.value("targets", Json::array()))
        if (t.is_string()) s.redact.push_back(t);
    std::string bad;
    for (const auto& t : s.redact)
      if (g->dlp == nullptr || !g->dlp->ValidTarget(t, &bad)) {
        s.decided.effect = runtime::Effect::kDeny;
        OverrideToDeny(&s.decided.decision,
                       "the policy asks to redact `" + t + "`, which the gateway cannot do" +
                           (bad.empty() ? std::string(" (no `dlp:` configured)") : ": " + bad));
        break;
      }
    for (const Json& o : Obligations(s.decided.decision, "rate_limit")) {
      if (s.decided.effect == runtime::Effect::kDeny) break;
      RateLimitResult r = g->rate->Take(o.value("key", std::string()), o.value("limit", 0),
                                        o.value("per_ms", int64_t{1}), NowMs());
      if (!r.allowed) {
        s.decided.effect = runtime::Effect::kDeny;
        s.retry_after_ms = r.retry_after_ms;
        OverrideToDeny(&s.decided.decision,
                       "rate limit exceeded (" + std::to_string(o.value("limit", 0)) + " per " +
                           std::to_string(o.value("per_ms", int64_t{0}) / 1000) +
                           " s); retry after " + std::to_string((r.retry_after_ms + 999) / 1000) +
                           " s");
        detail["rate_limited"] = {{"key", o.value("key", std::string())},
                                  {"retry_after_ms", r.retry_after_ms}};
      }
    }
  }
  if (s.decided.effect == runtime::Effect::kAllow) {
    s.log_pending = true;  // CallTool logs it after Forward
  } else {
    LogDecision(s);
  }
  if (!AuditDecision({"tools/call", s.server, s.tool, s.args}, s.decided, detail) &&
      s.decided.effect != runtime::Effect::kDeny) {
    if (s.log_pending) LogDecision(s);
    s.log_pending = false;
    FailClosed(s.client_id, s.decided);
    return StageStatus::kRespondNow;
  }
  if (g != nullptr) Notify(s);
  switch (s.decided.effect) {
    case runtime::Effect::kAllow:
      return StageStatus::kContinue;
    case runtime::Effect::kDeny: {
      Json data = Json::object();
      if (s.retry_after_ms > 0) data["retry_after_ms"] = s.retry_after_ms;
      ReplyDecision(s.client_id, s.decided, std::move(data));
      return StageStatus::kRespondNow;
    }
    case runtime::Effect::kRequireApproval:
      return StageStatus::kHoldForApproval;
  }
  return StageStatus::kRespondNow;
}

void Proxy::LogDecision(const CallState& s) {
  LogInfo("decision " + s.decided.id + " " + runtime::EffectName(s.decided.effect) +
              " tools/call " + s.server + kSeparator + s.tool,
          {{"decision_id", s.decided.id},
           {"effect", runtime::EffectName(s.decided.effect)},
           {"method", "tools/call"},
           {"tool", s.server + kSeparator + s.tool}});
}

void Proxy::Notify(const CallState& s) {
  Governance* gov = opts_.guards->governance;
  if (gov == nullptr || gov->notifier == nullptr) return;
  for (const Json& o : Obligations(s.decided.decision, "notify")) {
    std::string channel = o.value("channel", std::string());
    std::string target = o.value("target", std::string());
    std::string text = std::string("writ: ") + runtime::EffectName(s.decided.effect) + " " +
                       opts_.principal.uid + " -> " + s.server + kSeparator + s.tool +
                       " (decision " + s.decided.id + ")";
    gov->notifier->Send(channel, target, "decision", text,
                        Json{{"decision_id", s.decided.id},
                             {"decision", runtime::EffectName(s.decided.effect)},
                             {"principal", opts_.principal.uid},
                             {"tool", s.server + kSeparator + s.tool},
                             {"determining", s.decided.decision.value("determining", Json::array())}});
  }
}

// ---- approval ----

void Proxy::Hold(std::shared_ptr<CallState> s) {
  const Guards* g = opts_.guards.get();
  Governance* gov = g != nullptr ? g->governance : nullptr;
  if (gov == nullptr || gov->approvals == nullptr) {
    ReplyDecision(s->client_id, s->decided,
                  Json{{"help", "configure `approvals:` in gateway.yaml to let a human approve "
                                "held calls (docs/approvals.md)"}});
    return;
  }
  Json ob = Json::object();
  for (const Json& o : Obligations(s->decided.decision, "require_approval")) ob = o;
  ApprovalBinding b{opts_.principal.uid, s->server, s->server + kSeparator + s->tool,
                    ApprovalArgsDigest(s->args), s->decided.bundle_hash};
  ApprovalContext c;
  for (const auto& a : ob.value("approvers", Json::array()))
    if (a.is_string()) c.approvers.push_back(a);
  c.decision_id = s->decided.id;
  c.session = opts_.session;
  // The approver sees the arguments masked as the upstream would get them (fail closed).
  ApprovalPreviewMask mask{s->redact, g->dlp.get(), &s->args_report};
  std::shared_ptr<const SecretScrubber> scrubber = g->scrub ? g->scrub->Get() : nullptr;
  mask.scrubber = scrubber.get();
  if (opts_.audit != nullptr) mask.secrets = opts_.audit->options().secrets;
  std::string why;
  c.args_preview = MaskedApprovalArgsPreview(s->args, mask, &why);
  if (!why.empty())
    LogWarn("approval preview of decision " + s->decided.id + " withheld: " + why,
            {{"decision_id", s->decided.id}});
  int64_t ttl = ob.value("timeout_ms", g->approval_default_ttl_ms);
  if (ttl <= 0) ttl = g->approval_default_ttl_ms;
  std::string error;
  int64_t now = NowMs();
  auto r = gov->approvals->Request(b, c, ttl, now, &error);
  if (!r) {
    std::cerr << "writ: approvals: " << error << "; denying (fail closed)\n";
    ReplyError(s->client_id, kDenied,
               "the approval store is unavailable; denied (fail closed) (decision " +
                   s->decided.id + ")",
               Json{{"decision_id", s->decided.id}, {"decision", "deny"}});
    return;
  }
  s->approval_id = r->id;
  if (r->created) {
    if (auto a = gov->approvals->Get(r->id)) gov->ApprovalRequested(*a);
  }
  s->held_since_ms = now;
  s->held_until_ms = now + g->approval_wait_ms;
  s->next_progress_ms = now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back(s);
  }
  CheckHeld();  // an approval granted earlier to an identical call is used at once
}

void Proxy::CheckHeld() {
  const Guards* g = opts_.guards.get();
  if (g == nullptr || g->governance == nullptr || g->governance->approvals == nullptr) return;
  ApprovalStore& store = *g->governance->approvals;
  std::vector<std::shared_ptr<CallState>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held = held_;
  }
  for (auto& s : held) {
    int64_t now = NowMs();
    std::optional<Approval> a = store.Get(s->approval_id);
    enum { kWait, kGo, kFail, kTimeout } what = kWait;
    std::string why;
    if (!a) {
      what = kFail;
      why = "approval " + s->approval_id + " is gone from the store";
    } else if (a->state == ApprovalState::kApproved) {
      ApprovalError e = store.Consume(a->id, now);
      what = e == ApprovalError::kNone ? kGo : kFail;
      if (e != ApprovalError::kNone) why = DescribeApprovalError(e, a->id);
    } else if (a->state == ApprovalState::kDenied) {
      what = kFail;
      why = "approval " + a->id + " was denied" +
            (a->decided_by.empty() ? "" : " by " + a->decided_by) +
            (a->note.empty() ? "" : ": " + a->note);
    } else if (a->state != ApprovalState::kPending) {
      what = kFail;
      why = "approval " + a->id + " is " + std::string(ApprovalStateName(a->state));
    } else if (now >= s->held_until_ms) {
      what = kTimeout;
    }
    if (what == kWait) {
      if (!s->progress_token.is_null() && now >= s->next_progress_ms) {
        s->next_progress_ms = now + 1000;
        ToClient({{"jsonrpc", "2.0"},
                  {"method", "notifications/progress"},
                  {"params",
                   {{"progressToken", s->progress_token},
                    {"progress", (now - s->held_since_ms) / 1000},
                    {"message", "waiting for approval " + s->approval_id}}}});
      }
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.erase(std::remove(held_.begin(), held_.end(), s), held_.end());
    }
    Json data = {{"decision_id", s->decided.id}, {"approval_id", s->approval_id}};
    if (what == kGo) {
      std::cerr << "writ: approval " << s->approval_id << " used by decision " << s->decided.id
                << "\n";
      Forward(s);
    } else if (what == kFail) {
      data["decision"] = "deny";
      ReplyError(s->client_id, kDenied, why + "; the call was not forwarded", data);
    } else {
      data["decision"] = "require_approval";
      data["help"] = "ask an approver to run `writ approvals approve " + s->approval_id +
                     "`, then retry the identical call";
      ReplyError(s->client_id, kHeldForApproval,
                 "waiting for approval " + s->approval_id +
                     "; the call was not forwarded. Retry the identical call once it is approved "
                     "(decision " + s->decided.id + ")",
                 data);
    }
  }
}

// ---- forward and the reply ----

void Proxy::Forward(std::shared_ptr<CallState> s) {
  const Guards* g = opts_.guards.get();
  Json params = std::move(s->params);  // not needed once forwarded (s->args has the arguments)
  params["name"] = s->tool;
  auto result_detail = std::make_shared<Json>(Json::object());
  CircuitBreaker* breaker = nullptr;
  CircuitBreaker::Admission admission;
  if (g != nullptr) {
    if (!s->redact.empty()) {
      Json args = s->args;
      DlpRedaction red;
      std::string error;
      if (!g->dlp->RedactJson(&args, "args", s->redact, &s->args_report, &red, &error)) {
        ReplyError(s->client_id, kDenied,
                   "cannot apply the policy's redaction: " + error + "; denied (decision " +
                       s->decided.id + ")",
                   Json{{"decision_id", s->decided.id}, {"decision", "deny"}});
        return;
      }
      params["arguments"] = std::move(args);
      if (!red.items.empty()) (*result_detail)["redacted_args"] = red.items.size();
    }
    breaker = &g->breakers->For(s->server);
    admission = breaker->Allow(NowMs());
    if (!admission.allowed) {
      ReplyError(s->client_id, kUpstreamUnavailable,
                 "upstream '" + s->server + "' is failing (circuit open); retry after " +
                     std::to_string((admission.retry_after_ms + 999) / 1000) + " s",
                 Json{{"upstream", s->server}, {"retry_after_ms", admission.retry_after_ms}});
      return;
    }
  }
  Filter filter = [this, s, g, breaker, result_detail](Json& reply) {
    if (breaker != nullptr) {
      // A transport failure (the upstream died, did not answer) counts against the upstream;
      // a JSON-RPC error or an isError result is the tool's own answer.
      bool transport = reply.contains("error") && reply["error"].is_object() &&
                       (reply["error"].value("code", 0) == kUpstreamUnavailable ||
                        reply["error"].value("code", 0) == kUpstreamTimeout);
      if (transport) {
        breaker->OnFailure(NowMs());
      } else {
        breaker->OnSuccess(NowMs());
      }
    }
    if (reply.contains("result")) {
      int64_t n = CountRecords(reply["result"]);
      {
        std::lock_guard<std::mutex> lock(mu_);
        session_records_ += n;
      }
      if (g != nullptr && g->dlp != nullptr && g->dlp->config().scan_results) {
        Json& result = reply["result"];
        DlpReport report = g->dlp->ScanToolResult(result);
        std::vector<std::string> classes = DlpScanner::Classes(report);
        if (!classes.empty()) (*result_detail)["dlp_result"] = classes;
        std::vector<std::string> targets;
        for (const auto& t : s->redact) targets.push_back(t);
        if (!targets.empty()) {
          DlpRedaction red;
          std::string error;
          if (!g->dlp->RedactJson(&result, "result", targets, &report, &red, &error)) {
            // Fail closed: a result that cannot be redacted is not shown.
            reply.erase("result");
            reply["error"] = {{"code", kDenied},
                              {"message", "the result could not be redacted: " + error +
                                              "; withheld (decision " + s->decided.id + ")"}};
          } else if (!red.items.empty()) {
            (*result_detail)["redacted_result"] = red.items.size();
          }
        }
      }
    }
  };
  ForwardAudited(s->up, s->client_id, "tools/call", std::move(params),
                 {"tools/call", s->server, s->tool, Json()}, s->decided, std::move(filter),
                 result_detail);
}

}  // namespace writ::gateway
