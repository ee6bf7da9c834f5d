// proxy_audit.cc -- the audit records of requests Proxy decides (tools/call, prompts/get,
// resources/read): the `decision` record written before anything is forwarded (fail closed
// when it cannot be written and audit.on_failure is deny) and the `outcome` record written when
// the upstream answers, before the client sees the answer. Entry points: Proxy::AuditDecision,
// Proxy::ForwardAudited. docs/audit.md describes the records.
#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/proxy.h"

namespace writ::gateway {

using Json = nlohmann::json;

AuditRecord Proxy::AuditRecordFor(const char* kind, const AuditSubject& subject,
                                  const Decided& d) {
  AuditRecord r;
  r.kind = kind;
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
  r.bundle_hash = d.bundle_hash;
  return r;
}

bool Proxy::AuditDecision(const AuditSubject& subject, const Decided& d, const Json& detail) {
  if (opts_.audit == nullptr) return true;
  AuditRecord r = AuditRecordFor("decision", subject, d);
  if (!subject.args.is_null()) r.args = subject.args;
  r.decision = runtime::EffectName(d.effect);
  const Json obligations = d.decision.value("obligations", Json::array());
  for (const auto& o : obligations)
    if (o.is_object() && o.value("kind", "") == "redact") r.redact_args = true;
  for (const auto& id : d.decision.value("determining", Json::array()))
    if (id.is_string()) r.determining.push_back(id);
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
  Filter on_reply = also;
  if (opts_.audit != nullptr) {
    auto start = std::chrono::steady_clock::now();
    std::shared_ptr<AuditLog> audit = opts_.audit;
    AuditRecord base = AuditRecordFor("outcome", subject, d);
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

}  // namespace writ::gateway
