// ast.cc -- names and small helpers of the AST.
#include "compiler/ast.h"

#include <algorithm>

namespace writ::ast {

const char* BinOpSpelling(BinOp op) {
  switch (op) {
    case BinOp::kEq: return "==";
    case BinOp::kNe: return "!=";
    case BinOp::kLt: return "<";
    case BinOp::kLe: return "<=";
    case BinOp::kGt: return ">";
    case BinOp::kGe: return ">=";
    case BinOp::kIn: return "in";
    case BinOp::kAdd: return "+";
    case BinOp::kSub: return "-";
    case BinOp::kMul: return "*";
  }
  return "?";
}

const char* EffectName(Effect e) {
  switch (e) {
    case Effect::kPermit: return "permit";
    case Effect::kForbid: return "forbid";
    case Effect::kRule: return "rule";
  }
  return "?";
}

const char* ScopeVarName(ScopeVar v) {
  switch (v) {
    case ScopeVar::kPrincipal: return "principal";
    case ScopeVar::kAction: return "action";
    case ScopeVar::kResource: return "resource";
  }
  return "?";
}

namespace {
struct ObligationEntry {
  ObligationKind kind;
  const char* name;
};
constexpr ObligationEntry kObligations[] = {
    {ObligationKind::kRequireApproval, "require_approval"},
    {ObligationKind::kRedact, "redact"},
    {ObligationKind::kRateLimit, "rate_limit"},
    {ObligationKind::kNotify, "notify"},
    {ObligationKind::kLog, "log"},
    {ObligationKind::kTag, "tag"},
    {ObligationKind::kReason, "reason"},
};
}  // namespace

const char* ObligationName(ObligationKind k) {
  for (const auto& e : kObligations) {
    if (e.kind == k) return e.name;
  }
  return "?";
}

bool ObligationFromName(const std::string& name, ObligationKind* out) {
  for (const auto& e : kObligations) {
    if (name == e.name) {
      *out = e.kind;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& ObligationNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& e : kObligations) v.push_back(e.name);
    return v;
  }();
  return names;
}

std::string EntityUid::ToString() const {
  std::string out = type + "::\"";
  for (char c : id) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const Annotation* Statement::FindAnnotation(const std::string& name) const {
  for (const auto& a : annotations) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

bool Statement::HasObligation(ObligationKind k) const {
  return std::any_of(obligations.begin(), obligations.end(),
                     [&](const Obligation& o) { return o.kind == k; });
}

std::vector<const Statement*> PolicySet::AllStatements() const {
  std::vector<const Statement*> out;
  for (const auto& f : files) {
    for (const auto& s : f.statements) out.push_back(&s);
  }
  return out;
}

const std::vector<std::string>& VariableNames() {
  static const std::vector<std::string> k{"principal", "action", "resource", "tool",
                                          "call",      "args",   "context"};
  return k;
}

bool IsVariableName(const std::string& name) {
  const auto& v = VariableNames();
  return std::find(v.begin(), v.end(), name) != v.end();
}

}  // namespace writ::ast
