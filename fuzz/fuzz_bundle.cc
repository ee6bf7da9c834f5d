// fuzz_bundle.cc -- libFuzzer target for the runtime's untrusted inputs: bundle bytes (loader +
// verifier, then evaluation of whatever loads) and request JSON against a fixed bundle.
// First input byte selects the mode: even = bundle bytes, odd = request JSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/compile.h"
#include "runtime/evaluator.h"

namespace {

const char* kPolicies = R"(
@id("p") permit (principal in Role::"analyst", action == Action::"tools/call", resource in Server::"stripe")
  when { args.amount < 1000 && context.ip.isInRange(ip("10.0.0.0/8")) } then rate_limit(key: [principal, args.k], limit: 5, per: 1m);
@id("f") forbid (principal, action, resource) when { args.note like "*DROP*" || args.tags.containsAny(["x", "y"]) };
@id("r") rule if call.intent == "destructive" || {a: args.a} == {a: 1} then require_approval(), log(critical);
)";

const char* kRequest = R"({"principal": {"uid": "User::\"a\"", "parents": ["Role::\"analyst\""]},
  "action": "tools/call", "resource": {"uid": "Tool::\"stripe__refund\"", "parents": ["Server::\"stripe\""]},
  "args": {"amount": 5, "note": "hi", "tags": ["z"], "a": 1, "k": "v"}, "context": {"ip": "10.1.1.1"},
  "call": {"intent": "read"}})";

void Decide(const writ::runtime::Bundle& b, const nlohmann::json& doc) {
  writ::runtime::PreparedRequest req;
  std::string error;
  if (!writ::runtime::PrepareRequest(b, doc, &req, &error)) return;
  writ::runtime::Decision d = writ::runtime::Evaluate(b, req);
  (void)writ::runtime::DecisionToJson(b, req, d).dump();
  (void)writ::runtime::ListVisibility(b, req);
  (void)writ::runtime::Explain(b, req);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::shared_ptr<const writ::runtime::Bundle> fixed = [] {
    std::string bytes, error;
    if (!writ::CompileText("fuzz.writ", kPolicies, &bytes, &error)) __builtin_trap();
    return writ::runtime::Bundle::Load(bytes, &error);
  }();
  static const nlohmann::json request = nlohmann::json::parse(kRequest);
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    std::string error;
    auto b = writ::runtime::Bundle::Load(input, &error);
    if (b != nullptr) {
      (void)writ::runtime::Disassemble(*b);
      Decide(*b, request);
    }
  } else {
    nlohmann::json doc = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_discarded()) Decide(*fixed, doc);
  }
  return 0;
}
