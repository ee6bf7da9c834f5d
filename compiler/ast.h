// ast.h -- the abstract syntax tree of Writ policies.
//
// Produced by cst_to_ast (the only consumer of ANTLR types), then read by the type checker,
// the formatter, the normalizer and the reference evaluator. Every node carries a byte-offset
// Span. The tree is owned by unique_ptrs; it is built once and never shared across threads.
//
// Invariant: cst_to_ast rejects trees deeper than kMaxExprDepth, so recursive walkers over
// Expr are bounded and safe on any input. And/Or chains are n-ary, so long `a || b || ...`
// lists do not add depth.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/span.h"

namespace writ::ast {

inline constexpr int kMaxExprDepth = 128;

enum class ExprKind : uint8_t {
  kBool,      // b
  kLong,      // i
  kString,    // str (unescaped)
  kDuration,  // i = milliseconds; str = source spelling as written, e.g. "1h30m"
  kEntity,    // Type::"id": type (e.g. "Tool" or "Ns::Tool"), str = id
  kVar,       // str = principal|action|resource|tool|call|args|context
  kSymbol,    // bare identifier in an obligation argument, e.g. log(critical): str
  kSet,       // [kids...]
  kRecord,    // {keys[i]: kids[i]}
  kAttr,      // kids[0].str  or kids[0]["str"] (bracket = true)
  kHas,       // kids[0] has str
  kLike,      // kids[0] like "str" (pattern, unescaped; `\*` kept as literal star, see pattern)
  kMatches,   // kids[0] matches "str" (RE2 syntax)
  kIs,        // kids[0] is type   [in kids[1]]
  kMethod,    // kids[0].str(kids[1..])   contains containsAll containsAny isEmpty lower isInRange
  kCall,      // str(kids...)             extension function: ip
  kNot,       // !kids[0]
  kNeg,       // -kids[0]
  kBinary,    // kids[0] op kids[1]
  kAnd,       // kids[0] && kids[1] && ...   (n-ary, >= 2 kids)
  kOr,        // kids[0] || kids[1] || ...   (n-ary, >= 2 kids)
  kIf,        // if kids[0] then kids[1] else kids[2]
};

enum class BinOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kAdd, kSub, kMul };

const char* BinOpSpelling(BinOp op);  // "==", "in", ...

// A `like` pattern: literal chunks separated by `*` wildcards. Escaped `\*` stays in a chunk.
struct LikePattern {
  std::vector<std::string> chunks;  // size() == number of wildcards + 1
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  Span span;
  bool b = false;
  bool bracket = false;  // kAttr written as ["x"]
  BinOp op = BinOp::kEq;
  int64_t i = 0;
  std::string str;
  std::string type;               // kEntity, kIs
  Span type_span;                 // kIs: span of the type path
  LikePattern pattern;            // kLike
  std::vector<std::string> keys;  // kRecord
  std::vector<Span> key_spans;    // kRecord
  std::vector<ExprPtr> kids;

  Expr(ExprKind k, Span s) : kind(k), span(s) {}
};

// ---- statements ----

enum class Effect : uint8_t { kPermit, kForbid, kRule };
const char* EffectName(Effect e);  // "permit" "forbid" "rule"

enum class ScopeVar : uint8_t { kPrincipal, kAction, kResource };
const char* ScopeVarName(ScopeVar v);

enum class ScopeOp : uint8_t {
  kAny,   // principal
  kEq,    // principal == E
  kIn,    // principal in E      (action in [E1, E2] allowed for action)
  kIs,    // principal is T
  kIsIn,  // principal is T in E
};

struct EntityUid {
  std::string type;  // "User", "Action", "Ns::Tool"
  std::string id;
  Span span;
  std::string ToString() const;  // User::"alice" with the id escaped
  bool operator==(const EntityUid& o) const { return type == o.type && id == o.id; }
};

struct Scope {
  ScopeVar var = ScopeVar::kPrincipal;
  ScopeOp op = ScopeOp::kAny;
  Span span;
  std::string is_type;            // kIs, kIsIn
  Span is_type_span;
  std::vector<EntityUid> entities;  // kEq: 1; kIn / kIsIn: 1, or several for `action in [..]`
  bool set_syntax = false;          // written as [..] (action in [A, B])
};

enum class ObligationKind : uint8_t {
  kRequireApproval,
  kRedact,
  kRateLimit,
  kNotify,
  kLog,
  kTag,
  kReason,
};
const char* ObligationName(ObligationKind k);  // "require_approval", ...
// Looks up an obligation by name; false if unknown.
bool ObligationFromName(const std::string& name, ObligationKind* out);
const std::vector<std::string>& ObligationNames();

struct ObligationArg {
  std::string name;  // empty for a positional argument
  Span name_span;
  ExprPtr value;
};

struct Obligation {
  ObligationKind kind;
  Span span;
  Span name_span;
  std::vector<ObligationArg> args;
};

struct Annotation {
  std::string name;   // "id", "description", ...
  std::string value;  // unescaped; empty if written without a value
  bool has_value = false;
  Span span;
};

struct Condition {
  bool unless = false;
  Span span;
  ExprPtr expr;
};

struct Statement {
  Effect effect = Effect::kPermit;
  Span span;         // whole statement including annotations and `;`
  Span effect_span;  // the `permit` / `forbid` / `rule` keyword
  std::vector<Annotation> annotations;
  Scope principal, action, resource;  // var set by the constructor
  std::vector<Condition> conditions;  // permit/forbid: when/unless in source order
  ExprPtr rule_condition;             // rule: the `if` expression
  std::vector<Obligation> obligations;
  std::string id;  // @id value, or "<file stem>:<index>" when absent (see cst_to_ast)
  bool explicit_id = false;

  Statement() {
    action.var = ScopeVar::kAction;
    resource.var = ScopeVar::kResource;
  }
  const Annotation* FindAnnotation(const std::string& name) const;
  bool HasObligation(ObligationKind k) const;
};

// A comment kept for the formatter: `//...` or `/*...*/` with its exact text.
struct Comment {
  Span span;
  std::string text;
};

struct PolicyFile {
  uint32_t file = 0;  // SourceMap index
  std::vector<Statement> statements;
  std::vector<Comment> comments;  // in source order
};

struct PolicySet {
  std::vector<PolicyFile> files;
  // All statements of all files in order, for passes that do not care about files.
  std::vector<const Statement*> AllStatements() const;
};

// Recognized variable names in expressions.
bool IsVariableName(const std::string& name);
const std::vector<std::string>& VariableNames();

}  // namespace writ::ast
