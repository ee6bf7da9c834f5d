// typecheck.cc -- the checks of `writ check` (see typecheck.h for the list and entry point).
//
// Per statement: resolve the scope (which entity types principal/resource may have, which
// tools pin `args`), then infer the type of every expression bottom-up, carrying the set of
// attribute paths proven present by `has` ("facts"). kAny marks dynamic values and values
// already reported, so one mistake yields one diagnostic. After all statements: permits
// shadowed by unconditional forbids.
#include "compiler/typecheck.h"

#include <re2/re2.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include "compiler/schema.h"
#include "compiler/types.h"

namespace writ {
namespace {

using ast::Expr;
using ast::ExprKind;
using types::Kind;
using types::TypePtr;
using Facts = std::set<std::string>;
using Const = std::variant<bool, int64_t, std::string>;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string Tick(const std::string& s) { return "`" + s + "`"; }

// "principal.department" for var/attr chains, "" otherwise. `tool` is `resource`.
std::string PathOf(const Expr& e) {
  if (e.kind == ExprKind::kVar) return e.str == "tool" ? "resource" : e.str;
  if (e.kind == ExprKind::kAttr) {
    std::string base = PathOf(*e.kids[0]);
    return base.empty() ? "" : base + "." + e.str;
  }
  return "";
}

// Constant folding of literal subexpressions; nullopt when not constant (or on overflow).
std::optional<Const> Fold(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kBool: return Const{e.b};
    case ExprKind::kLong: return Const{e.i};
    case ExprKind::kString: return Const{e.str};
    case ExprKind::kNot: {
      auto v = Fold(*e.kids[0]);
      if (v && std::holds_alternative<bool>(*v)) return Const{!std::get<bool>(*v)};
      return std::nullopt;
    }
    case ExprKind::kNeg: {
      auto v = Fold(*e.kids[0]);
      if (v && std::holds_alternative<int64_t>(*v) && std::get<int64_t>(*v) != INT64_MIN) {
        return Const{-std::get<int64_t>(*v)};
      }
      return std::nullopt;
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      bool is_and = e.kind == ExprKind::kAnd;
      bool all_const = true;
      for (const auto& k : e.kids) {
        auto v = Fold(*k);
        if (v && std::holds_alternative<bool>(*v)) {
          if (std::get<bool>(*v) != is_and) return Const{!is_and};  // Kleene: decides alone
        } else {
          all_const = false;
        }
      }
      return all_const ? std::optional<Const>(Const{is_and}) : std::nullopt;
    }
    case ExprKind::kIf: {
      auto c = Fold(*e.kids[0]);
      if (c && std::holds_alternative<bool>(*c)) return Fold(*e.kids[std::get<bool>(*c) ? 1 : 2]);
      return std::nullopt;
    }
    case ExprKind::kBinary: {
      auto a = Fold(*e.kids[0]);
      auto b = Fold(*e.kids[1]);
      if (!a || !b || a->index() != b->index()) return std::nullopt;
      using ast::BinOp;
      if (e.op == BinOp::kEq) return Const{*a == *b};
      if (e.op == BinOp::kNe) return Const{*a != *b};
      if (!std::holds_alternative<int64_t>(*a)) return std::nullopt;
      int64_t x = std::get<int64_t>(*a), y = std::get<int64_t>(*b), r = 0;
      switch (e.op) {
        case BinOp::kLt: return Const{x < y};
        case BinOp::kLe: return Const{x <= y};
        case BinOp::kGt: return Const{x > y};
        case BinOp::kGe: return Const{x >= y};
        case BinOp::kAdd: return __builtin_add_overflow(x, y, &r) ? std::nullopt : std::optional(Const{r});
        case BinOp::kSub: return __builtin_sub_overflow(x, y, &r) ? std::nullopt : std::optional(Const{r});
        case BinOp::kMul: return __builtin_mul_overflow(x, y, &r) ? std::nullopt : std::optional(Const{r});
        default: return std::nullopt;
      }
    }
    default: return std::nullopt;
  }
}

std::optional<bool> FoldBool(const Expr& e) {
  auto v = Fold(e);
  if (v && std::holds_alternative<bool>(*v)) return std::get<bool>(*v);
  return std::nullopt;
}

Facts Union(Facts a, const Facts& b) {
  a.insert(b.begin(), b.end());
  return a;
}

Facts Intersect(const Facts& a, const Facts& b) {
  Facts out;
  for (const auto& x : a) {
    if (b.count(x)) out.insert(x);
  }
  return out;
}

Facts FalseFacts(const Expr& e);

// Paths proven present when `e` evaluates to true.
Facts TrueFacts(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kHas: {
      std::string p = PathOf(*e.kids[0]);
      return p.empty() ? Facts{} : Facts{p + "." + e.str};
    }
    case ExprKind::kIs: {  // narrows the entity type: "principal is User"
      std::string p = PathOf(*e.kids[0]);
      return p.empty() ? Facts{} : Facts{p + " is " + e.type};
    }
    case ExprKind::kNot: return FalseFacts(*e.kids[0]);
    case ExprKind::kAnd: {
      Facts f;
      for (const auto& k : e.kids) f = Union(std::move(f), TrueFacts(*k));
      return f;
    }
    case ExprKind::kOr: {
      Facts f = TrueFacts(*e.kids[0]);
      for (size_t i = 1; i < e.kids.size(); ++i) f = Intersect(f, TrueFacts(*e.kids[i]));
      return f;
    }
    case ExprKind::kIf:
      return Intersect(Union(TrueFacts(*e.kids[0]), TrueFacts(*e.kids[1])),
                       Union(FalseFacts(*e.kids[0]), TrueFacts(*e.kids[2])));
    default: return {};
  }
}

// Paths proven present when `e` evaluates to false.
Facts FalseFacts(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kNot: return TrueFacts(*e.kids[0]);
    case ExprKind::kOr: {
      Facts f;
      for (const auto& k : e.kids) f = Union(std::move(f), FalseFacts(*k));
      return f;
    }
    case ExprKind::kAnd: {
      Facts f = FalseFacts(*e.kids[0]);
      for (size_t i = 1; i < e.kids.size(); ++i) f = Intersect(f, FalseFacts(*e.kids[i]));
      return f;
    }
    case ExprKind::kIf:
      return Intersect(Union(TrueFacts(*e.kids[0]), FalseFacts(*e.kids[1])),
                       Union(FalseFacts(*e.kids[0]), FalseFacts(*e.kids[2])));
    default: return {};
  }
}

bool Is(const TypePtr& t, Kind k) { return t->kind == k; }
bool Known(const TypePtr& t) { return t->kind != Kind::kAny; }

class Checker {
 public:
  Checker(const Schema* schema, Diagnostics* diags) : schema_(schema), diags_(diags) {}

  // Returns true if the statement can match at all (used to skip it in shadowing).
  bool CheckStatement(const ast::Statement& s);

 private:
  // ---- scope ----
  std::vector<std::string> ScopeTypes(const ast::Scope& sc, const std::vector<std::string>& all,
                                      const char* var, bool* never);
  bool CheckEntityType(const std::string& type, Span span);
  void CheckAction(const ast::EntityUid& uid);
  void PinTools(const ast::Scope& sc);

  // ---- expressions ----
  TypePtr Check(const Expr& e, const Facts& facts);
  TypePtr CheckBool(const Expr& e, const Facts& facts, const char* what);
  TypePtr Access(const Expr& e, const TypePtr& base, const Facts& facts, bool is_has);
  TypePtr Binary(const Expr& e, const Facts& facts);
  TypePtr Method(const Expr& e, const Facts& facts);
  TypePtr VarType(const std::string& name);
  void Mismatch(Span span, std::string msg, std::string help) {
    diags_->Error("E0201", span, std::move(msg), std::move(help));
  }

  const Schema* schema_;
  Diagnostics* diags_;
  // Per statement:
  TypePtr principal_, resource_, args_;
  std::vector<const ToolDecl*> tools_;  // tools pinned by the resource scope; empty = dynamic
};

bool Checker::CheckEntityType(const std::string& type, Span span) {
  if (schema_ == nullptr || schema_->FindEntity(type) != nullptr) return true;
  std::string guess = ClosestMatch(type, schema_->EntityNames());
  diags_->Error("E0208", span, "unknown entity type `" + type + "`",
                guess.empty() ? "the schema declares: " + Join(schema_->EntityNames())
                              : "did you mean `" + guess + "`?");
  return false;
}

void Checker::CheckAction(const ast::EntityUid& uid) {
  if (uid.type != "Action") {
    Mismatch(uid.span, "the action scope needs an `Action` entity, found `" + uid.type + "`",
             "write `action == Action::\"tools/call\"`");
    return;
  }
  const std::vector<std::string>& known = schema_ ? schema_->actions : McpMethods();
  if (std::find(known.begin(), known.end(), uid.id) != known.end()) return;
  std::string guess = ClosestMatch(uid.id, known);
  diags_->Error("E0209", uid.span, "unknown action `" + uid.id + "`",
                guess.empty() ? "actions are MCP method names such as `tools/call`; declare "
                                "others under `actions:` in the schema"
                              : "did you mean `Action::\"" + guess + "\"`?");
}

// The entity types a scope variable may have; sets *never when the schema rules out a match.
std::vector<std::string> Checker::ScopeTypes(const ast::Scope& sc,
                                             const std::vector<std::string>& all,
                                             const char* var, bool* never) {
  std::vector<std::string> out;
  std::string v = var;
  auto allowed = [&](const std::string& t, Span span) {
    if (std::find(all.begin(), all.end(), t) != all.end()) return true;
    diags_->Error("E0205", span,
                  "`" + v + "` is never a `" + t + "`, so this statement never matches",
                  "the schema's `" + v + "s` lists " + Join(all) + "; add `" + t +
                      "` there or change the scope");
    *never = true;
    return false;
  };
  switch (sc.op) {
    case ast::ScopeOp::kAny: return all;
    case ast::ScopeOp::kEq: {
      const auto& uid = sc.entities[0];
      if (CheckEntityType(uid.type, uid.span) && allowed(uid.type, uid.span)) out = {uid.type};
      return out;
    }
    case ast::ScopeOp::kIs:
    case ast::ScopeOp::kIsIn: {
      if (!CheckEntityType(sc.is_type, sc.is_type_span) || !allowed(sc.is_type, sc.is_type_span)) {
        return out;
      }
      if (sc.op == ast::ScopeOp::kIsIn) {
        for (const auto& uid : sc.entities) {
          if (CheckEntityType(uid.type, uid.span) && !schema_->CanBeIn(sc.is_type, uid.type)) {
            diags_->Error("E0205", uid.span,
                          "a `" + sc.is_type + "` is never in a `" + uid.type +
                              "`, so this statement never matches",
                          "add `" + uid.type + "` to the `in:` list of entity `" + sc.is_type +
                              "` in the schema, or change the scope");
            *never = true;
            return out;
          }
        }
      }
      return {sc.is_type};
    }
    case ast::ScopeOp::kIn: {
      for (const auto& uid : sc.entities) {
        if (!CheckEntityType(uid.type, uid.span)) return out;
        for (const auto& t : all) {
          if (schema_->CanBeIn(t, uid.type)) out.push_back(t);
        }
        if (out.empty()) {
          diags_->Error("E0205", uid.span,
                        "no " + v + " type can be in a `" + uid.type +
                            "`, so this statement never matches",
                        "list `" + uid.type + "` under `in:` of one of " + Join(all) +
                            " in the schema, or change the scope");
          *never = true;
        }
      }
      return out;
    }
  }
  return out;
}

void Checker::PinTools(const ast::Scope& sc) {
  tools_.clear();
  if (schema_ == nullptr) return;
  if (sc.op == ast::ScopeOp::kEq && sc.entities[0].type == "Tool") {
    const auto& uid = sc.entities[0];
    auto it = schema_->tools.find(uid.id);
    if (it != schema_->tools.end()) {
      tools_.push_back(&it->second);
      return;
    }
    // Only judge names of servers the schema knows: other servers are simply not imported.
    std::string server = uid.id.substr(0, uid.id.find("__"));
    std::vector<std::string> same_server;
    for (const auto& [name, t] : schema_->tools) {
      if (t.server == server) same_server.push_back(name);
    }
    if (!same_server.empty()) {
      std::string guess = ClosestMatch(uid.id, same_server);
      diags_->Error("E0210", uid.span, "unknown tool `" + uid.id + "`",
                    guess.empty() ? "server `" + server + "` has: " + Join(same_server)
                                  : "did you mean `Tool::\"" + guess + "\"`?");
    }
    return;
  }
  if ((sc.op == ast::ScopeOp::kIn || sc.op == ast::ScopeOp::kIsIn) && sc.entities.size() == 1 &&
      sc.entities[0].type == "Server") {
    for (const auto& [name, t] : schema_->tools) {
      if (t.server == sc.entities[0].id) tools_.push_back(&t);
    }
  }
}

// The args record of the pinned tools: an attribute every tool has keeps its type; one only
// some tools have becomes optional; conflicting types become Any.
TypePtr ArgsOf(const std::vector<const ToolDecl*>& tools) {
  if (tools.empty()) return types::OpenRecord();
  if (tools.size() == 1) return tools[0]->args;
  std::map<std::string, types::Attribute> out;
  std::map<std::string, size_t> count;
  for (const ToolDecl* t : tools) {
    for (const auto& [name, a] : t->args->attrs) {
      ++count[name];
      auto [it, fresh] = out.emplace(name, a);
      if (!fresh) {
        it->second.optional |= a.optional;
        if (types::ToString(*it->second.type) != types::ToString(*a.type)) {
          it->second.type = types::Any();
        }
      }
    }
  }
  for (auto& [name, a] : out) a.optional |= count[name] < tools.size();
  return types::Record(std::move(out));
}

TypePtr Checker::VarType(const std::string& name) {
  if (name == "principal") return principal_;
  if (name == "resource" || name == "tool") return resource_;
  if (name == "action") return types::Entity({"Action"});
  if (name == "args") return args_;
  if (schema_ && name == "call") return schema_->call;
  if (schema_ && name == "context") return schema_->context;
  return schema_ ? types::Any() : types::OpenRecord();
}

bool Checker::CheckStatement(const ast::Statement& s) {
  bool never = false;
  size_t before = diags_->items().size();
  principal_ = resource_ = types::Entity({});
  tools_.clear();
  if (schema_ != nullptr) {
    principal_ = types::Entity(ScopeTypes(s.principal, schema_->principals, "principal", &never));
    resource_ = types::Entity(ScopeTypes(s.resource, schema_->resources, "resource", &never));
    PinTools(s.resource);
  }
  for (const auto& uid : s.action.entities) CheckAction(uid);
  args_ = ArgsOf(tools_);
  // A statement whose scope is already wrong is not also reported as shadowed.
  if (diags_->items().size() != before) never = true;

  Facts facts;
  for (const auto& c : s.conditions) {
    CheckBool(*c.expr, facts, c.unless ? "an `unless` condition" : "a `when` condition");
    std::optional<bool> v = FoldBool(*c.expr);
    if (v && *v == c.unless) {
      diags_->Error("E0205", c.expr->span,
                    std::string("this condition is always ") + (c.unless ? "true" : "false") +
                        ", so the statement never matches",
                    "remove the statement, or fix the condition");
      never = true;
    }
    facts = Union(std::move(facts), c.unless ? FalseFacts(*c.expr) : TrueFacts(*c.expr));
  }
  if (s.rule_condition) {
    CheckBool(*s.rule_condition, facts, "a rule condition");
    std::optional<bool> v = FoldBool(*s.rule_condition);
    if (v && !*v) {
      diags_->Error("E0205", s.rule_condition->span,
                    "this condition is always false, so the rule never applies",
                    "remove the rule, or fix the condition");
      never = true;
    }
    facts = Union(std::move(facts), TrueFacts(*s.rule_condition));
  }
  for (const auto& ob : s.obligations) {
    if (ob.kind != ast::ObligationKind::kRateLimit) continue;
    for (const auto& a : ob.args) {
      if (a.name == "key" && a.value) Check(*a.value, facts);
    }
  }
  return !never;
}

TypePtr Checker::CheckBool(const Expr& e, const Facts& facts, const char* what) {
  TypePtr t = Check(e, facts);
  if (Known(t) && !Is(t, Kind::kBool)) {
    Mismatch(e.span, std::string(what) + " must be a Bool, found " + types::ToString(*t),
             "compare it, e.g. `x == ...`, or test presence with `has`");
  }
  return types::Bool();
}

TypePtr Checker::Access(const Expr& e, const TypePtr& base, const Facts& facts, bool is_has) {
  const std::string& attr = e.str;
  std::string path = PathOf(*e.kids[0]);
  std::string what = path.empty() ? types::ToString(*base) : path;
  types::Attribute found;
  bool have = false, partial = false;
  std::vector<std::string> names;
  bool is_args = path == "args";
  std::vector<std::string> lacking;  // entity types (of a union) without the attribute
  if (Is(base, Kind::kAny)) return types::Any();
  if (Is(base, Kind::kEntity)) {
    if (schema_ == nullptr || base->entity_types.empty()) return types::Any();
    std::vector<std::string> narrowed;
    for (const auto& tn : base->entity_types) {
      if (!path.empty() && facts.count(path + " is " + tn)) narrowed.push_back(tn);
    }
    const std::vector<std::string>& cands = narrowed.empty() ? base->entity_types : narrowed;
    for (const auto& tn : cands) {
      const EntityTypeDecl* d = schema_->FindEntity(tn);
      if (d == nullptr) return types::Any();
      auto it = d->attrs->attrs.find(attr);
      for (const auto& [n, a] : d->attrs->attrs) names.push_back(n);
      if (it == d->attrs->attrs.end()) {
        partial = true;
        lacking.push_back(tn);
        continue;
      }
      if (have && types::ToString(*found.type) != types::ToString(*it->second.type)) {
        found.type = types::Any();
      } else if (!have) {
        found = it->second;
      }
      found.optional |= it->second.optional;
      have = true;
    }
    found.optional |= partial;
    what = path.empty() ? types::ToString(*base) : path + " (" + types::ToString(*base) + ")";
  } else if (Is(base, Kind::kRecord)) {
    auto it = base->attrs.find(attr);
    for (const auto& [n, a] : base->attrs) names.push_back(n);
    if (it != base->attrs.end()) {
      found = it->second;
      have = true;
    } else if (base->open) {
      return types::Any();
    }
  } else {
    Mismatch(e.kids[0]->span,
             std::string(is_has ? "`has`" : "`." + attr + "`") +
                 " needs an entity or a record, found " + types::ToString(*base),
             "only entities and records have attributes");
    return types::Any();
  }
  if (!have) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string guess = ClosestMatch(attr, names);
    std::string help = !guess.empty() ? "did you mean `" + guess + "`?"
                       : names.empty() ? "no attributes are declared for it in the schema"
                                       : "declared: " + Join(names);
    if (is_has) help += " (as written, `has` is always false)";
    if (is_args) {
      std::string tools;
      for (const ToolDecl* t : tools_) tools += (tools.empty() ? "" : ", ") + Tick(t->name);
      diags_->Error("E0207", e.span,
                    (tools_.size() == 1 ? "tool " + tools + " has no argument "
                                        : "no tool among " + tools + " has an argument ") +
                        Tick(attr),
                    help);
    } else {
      diags_->Error("E0200", e.span, "unknown attribute `" + attr + "` on " + what, help);
    }
    return types::Any();
  }
  if (!is_has && partial && !path.empty() && !facts.count(path + "." + attr)) {
    std::string types_with;
    for (const auto& tn : base->entity_types) {
      if (std::find(lacking.begin(), lacking.end(), tn) == lacking.end()) {
        types_with += (types_with.empty() ? "" : " | ") + tn;
      }
    }
    diags_->Error("E0202", e.span,
                  "`" + path + "` may be " + Join(lacking) + ", which has no attribute `" + attr +
                      "`",
                  "narrow it first: `" + path + " is " + types_with + " && " + path + "." +
                      attr + " ...`, or guard with `" + path + " has " + attr + "`");
  } else if (!is_has && found.optional && !path.empty() && !facts.count(path + "." + attr)) {
    diags_->Error("E0202", e.span, "attribute `" + attr + "` of " + what + " may be missing",
                  "guard it: `" + path + " has " + attr + " && " + path + "." + attr +
                      " ...` (an unguarded missing attribute is an error at run time)");
  } else if (!is_has && found.optional && path.empty()) {
    diags_->Error("E0202", e.span, "optional attribute `" + attr + "` used without `has`",
                  "test it with `has` first");
  }
  return is_has ? types::Bool() : found.type;
}

TypePtr Checker::Binary(const Expr& e, const Facts& facts) {
  using ast::BinOp;
  TypePtr l = Check(*e.kids[0], facts);
  TypePtr r = Check(*e.kids[1], facts);
  std::string op = ast::BinOpSpelling(e.op);
  switch (e.op) {
    case BinOp::kEq:
    case BinOp::kNe: {
      if (types::Comparable(*l, *r)) return types::Bool();
      const Expr* lit = nullptr;
      TypePtr ent;
      if (Is(l, Kind::kEntity) && e.kids[1]->kind == ExprKind::kString) lit = e.kids[1].get(), ent = l;
      if (Is(r, Kind::kEntity) && e.kids[0]->kind == ExprKind::kString) lit = e.kids[0].get(), ent = r;
      std::string help = "both sides of `" + op + "` must have the same type";
      if (lit != nullptr) {
        std::string type = ent->entity_types.size() == 1 ? ent->entity_types[0] : "Type";
        help = "write `" + type + "::\"" + lit->str + "\"`";
      }
      Mismatch(e.span,
               "cannot compare " + types::ToString(*l) + " with " + types::ToString(*r), help);
      return types::Bool();
    }
    case BinOp::kLt:
    case BinOp::kLe:
    case BinOp::kGt:
    case BinOp::kGe:
    case BinOp::kAdd:
    case BinOp::kSub:
    case BinOp::kMul: {
      bool arith = e.op == BinOp::kAdd || e.op == BinOp::kSub || e.op == BinOp::kMul;
      auto ok = [&](const TypePtr& t) {
        return !Known(t) || Is(t, Kind::kLong) || (!arith && Is(t, Kind::kDuration));
      };
      const char* need = arith ? "Long" : "Long or Duration";
      bool reported = false;
      for (int i = 0; i < 2; ++i) {
        const TypePtr& t = i == 0 ? l : r;
        if (ok(t)) continue;
        std::string help = "`" + op + "` works on " + need + " values";
        if (e.kids[i]->kind == ExprKind::kString) {
          help = "write the number without quotes";
        } else if (Is(t, Kind::kString) && !arith) {
          help = "strings are not ordered in writ; compare with `==`, `like` or `matches`";
        }
        Mismatch(e.kids[i]->span,
                 "`" + op + "` needs " + need + " operands, found " + types::ToString(*t), help);
        reported = true;
      }
      if (!reported && Known(l) && Known(r) && l->kind != r->kind) {
        Mismatch(e.span, "cannot compare " + types::ToString(*l) + " with " + types::ToString(*r),
                 "both sides of `" + op + "` must have the same type");
      }
      return arith ? types::Long() : types::Bool();
    }
    case BinOp::kIn: {
      if (!Known(r)) return types::Bool();
      if (Is(r, Kind::kEntity)) {
        if (Known(l) && !Is(l, Kind::kEntity)) {
          Mismatch(e.kids[0]->span,
                   "`in` with an entity on the right needs an entity on the left, found " +
                       types::ToString(*l),
                   "to test set membership write `x in [\"a\", \"b\"]`");
        }
      } else if (Is(r, Kind::kSet)) {
        if (!types::Comparable(*l, *r->elem)) {
          Mismatch(e.span,
                   "cannot look for " + types::ToString(*l) + " in " + types::ToString(*r),
                   "the left side must have the set's element type");
        }
      } else {
        std::string help = "write an entity such as `Role::\"admins\"` or a set `[...]`";
        if (e.kids[1]->kind == ExprKind::kString) {
          help = "write `Role::\"" + e.kids[1]->str + "\"` (entity) or `[\"" + e.kids[1]->str +
                 "\"]` (set)";
        }
        Mismatch(e.kids[1]->span,
                 "the right side of `in` must be an entity or a set, found " +
                     types::ToString(*r),
                 help);
      }
      return types::Bool();
    }
  }
  return types::Any();
}

TypePtr Checker::Method(const Expr& e, const Facts& facts) {
  TypePtr base = Check(*e.kids[0], facts);
  std::vector<TypePtr> args;
  for (size_t i = 1; i < e.kids.size(); ++i) args.push_back(Check(*e.kids[i], facts));
  const std::string& m = e.str;
  auto need = [&](Kind k, const char* name, std::string help) {
    if (!Known(base) || base->kind == k) return true;
    Mismatch(e.kids[0]->span,
             "`." + m + "` needs " + name + ", found " + types::ToString(*base), std::move(help));
    return false;
  };
  if (m == "lower") {
    need(Kind::kString, "a String", "call `.lower()` on a string");
    return types::String();
  }
  if (m == "isInRange") {
    // Strings are parsed as addresses at run time (docs/semantics.md), so both are accepted.
    auto ip_like = [&](const TypePtr& t) { return !Known(t) || Is(t, Kind::kIpAddr) || Is(t, Kind::kString); };
    if (!ip_like(base)) {
      Mismatch(e.kids[0]->span, "`.isInRange` needs an IpAddr or String, found " + types::ToString(*base),
               "write `context.ip.isInRange(ip(\"10.0.0.0/8\"))`");
    }
    if (!args.empty() && !ip_like(args[0])) {
      Mismatch(e.kids[1]->span, "`.isInRange` needs an IpAddr or String argument, found " +
                                    types::ToString(*args[0]),
               "write `ip(\"10.0.0.0/8\")`");
    }
    return types::Bool();
  }
  // Set methods: contains containsAll containsAny isEmpty.
  std::string help = Is(base, Kind::kString) && m == "contains"
                         ? "to search a string write `x like \"*text*\"`"
                         : "set methods work on values declared `Set<T>`";
  if (!need(Kind::kSet, "a Set", help) || !Known(base)) return types::Bool();
  if (m == "contains" && !args.empty() && !types::Comparable(*args[0], *base->elem)) {
    Mismatch(e.kids[1]->span,
             "cannot look for " + types::ToString(*args[0]) + " in " + types::ToString(*base),
             "the argument must have the set's element type");
  }
  if ((m == "containsAll" || m == "containsAny") && !args.empty() && Known(args[0])) {
    if (!Is(args[0], Kind::kSet)) {
      Mismatch(e.kids[1]->span, "`." + m + "` needs a Set argument, found " +
                                    types::ToString(*args[0]),
               "write a set, e.g. `[\"a\", \"b\"]`");
    } else if (!types::Comparable(*args[0]->elem, *base->elem)) {
      Mismatch(e.kids[1]->span,
               "cannot compare " + types::ToString(*args[0]) + " with " + types::ToString(*base),
               "both sets must have the same element type");
    }
  }
  return types::Bool();
}

TypePtr Checker::Check(const Expr& e, const Facts& facts) {
  switch (e.kind) {
    case ExprKind::kBool: return types::Bool();
    case ExprKind::kLong: return types::Long();
    case ExprKind::kString: return types::String();
    case ExprKind::kDuration: return types::Duration();
    case ExprKind::kSymbol: return types::Any();
    case ExprKind::kVar: return VarType(e.str);
    case ExprKind::kEntity: {
      Span span = e.span;
      if (e.type == "Action") {
        CheckAction(ast::EntityUid{e.type, e.str, span});
      } else if (!CheckEntityType(e.type, span)) {
        return types::Any();
      }
      return types::Entity({e.type});
    }
    case ExprKind::kSet: {
      TypePtr elem;
      for (const auto& k : e.kids) {
        TypePtr t = Check(*k, facts);
        elem = elem ? types::Join(elem, t) : t;
      }
      return types::SetOf(elem ? elem : types::Any());
    }
    case ExprKind::kRecord: {
      std::map<std::string, types::Attribute> attrs;
      for (size_t i = 0; i < e.kids.size(); ++i) {
        attrs[e.keys[i]] = types::Attribute{Check(*e.kids[i], facts), false, e.key_spans[i]};
      }
      return types::Record(std::move(attrs));
    }
    case ExprKind::kAttr: return Access(e, Check(*e.kids[0], facts), facts, false);
    case ExprKind::kHas: return Access(e, Check(*e.kids[0], facts), facts, true);
    case ExprKind::kLike:
    case ExprKind::kMatches: {
      TypePtr t = Check(*e.kids[0], facts);
      const char* kw = e.kind == ExprKind::kLike ? "like" : "matches";
      if (Known(t) && !Is(t, Kind::kString)) {
        Mismatch(e.kids[0]->span,
                 std::string("`") + kw + "` needs a String, found " + types::ToString(*t),
                 Is(t, Kind::kSet) ? "to test a set use `.contains(...)`"
                                   : "`like` and `matches` work on strings only");
      }
      if (e.kind == ExprKind::kMatches) {
        RE2::Options opts;
        opts.set_log_errors(false);
        RE2 re(e.str, opts);
        if (!re.ok()) {
          diags_->Error("E0203", e.span, "invalid regular expression: " + re.error(),
                        "writ uses RE2 syntax (no backreferences or lookaround); see "
                        "https://github.com/google/re2/wiki/Syntax");
        }
      }
      return types::Bool();
    }
    case ExprKind::kIs: {
      TypePtr t = Check(*e.kids[0], facts);
      if (Known(t) && !Is(t, Kind::kEntity)) {
        Mismatch(e.kids[0]->span, "`is` needs an entity, found " + types::ToString(*t),
                 "`is` tests the type of an entity, e.g. `principal is User`");
      }
      CheckEntityType(e.type, e.type_span);
      if (e.kids.size() > 1) {
        TypePtr r = Check(*e.kids[1], facts);
        if (Known(r) && !Is(r, Kind::kEntity) &&
            !(Is(r, Kind::kSet) && (!Known(r->elem) || Is(r->elem, Kind::kEntity)))) {
          Mismatch(e.kids[1]->span,
                   "the right side of `is ... in` must be an entity, found " +
                       types::ToString(*r),
                   "write e.g. `principal is User in Role::\"admins\"`");
        }
      }
      return types::Bool();
    }
    case ExprKind::kMethod: return Method(e, facts);
    case ExprKind::kCall: {
      for (const auto& k : e.kids) Check(*k, facts);
      return e.str == "ip" ? types::IpAddr() : types::Any();
    }
    case ExprKind::kNot: return CheckBool(*e.kids[0], facts, "the operand of `!`");
    case ExprKind::kNeg: {
      TypePtr t = Check(*e.kids[0], facts);
      if (Known(t) && !Is(t, Kind::kLong)) {
        Mismatch(e.kids[0]->span, "`-` needs a Long, found " + types::ToString(*t),
                 "negation works on Long values");
      }
      return types::Long();
    }
    case ExprKind::kBinary: return Binary(e, facts);
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      bool is_and = e.kind == ExprKind::kAnd;
      Facts f = facts;
      for (const auto& k : e.kids) {
        CheckBool(*k, f, is_and ? "an operand of `&&`" : "an operand of `||`");
        f = Union(std::move(f), is_and ? TrueFacts(*k) : FalseFacts(*k));
      }
      return types::Bool();
    }
    case ExprKind::kIf: {
      CheckBool(*e.kids[0], facts, "the condition of `if`");
      TypePtr a = Check(*e.kids[1], Union(facts, TrueFacts(*e.kids[0])));
      TypePtr b = Check(*e.kids[2], Union(facts, FalseFacts(*e.kids[0])));
      return types::Join(a, b);
    }
  }
  return types::Any();
}

// ---- shadowing ----

bool SameUids(const std::vector<ast::EntityUid>& sub, const std::vector<ast::EntityUid>& sup) {
  for (const auto& u : sub) {
    if (std::find(sup.begin(), sup.end(), u) == sup.end()) return false;
  }
  return true;
}

// True if every request matching scope `p` also matches scope `f`.
bool Covers(const ast::Scope& f, const ast::Scope& p) {
  using ast::ScopeOp;
  switch (f.op) {
    case ScopeOp::kAny: return true;
    case ScopeOp::kEq: return p.op == ScopeOp::kEq && p.entities[0] == f.entities[0];
    case ScopeOp::kIn:  // `in` is reflexive: E in E
      return (p.op == ScopeOp::kEq || p.op == ScopeOp::kIn || p.op == ScopeOp::kIsIn) &&
             SameUids(p.entities, f.entities);
    case ScopeOp::kIs:
      if (p.op == ScopeOp::kIs || p.op == ScopeOp::kIsIn) return p.is_type == f.is_type;
      return p.op == ScopeOp::kEq && p.entities[0].type == f.is_type;
    case ScopeOp::kIsIn:
      return p.op == ScopeOp::kIsIn && p.is_type == f.is_type && SameUids(p.entities, f.entities);
  }
  return false;
}

bool Unconditional(const ast::Statement& s) {
  for (const auto& c : s.conditions) {
    std::optional<bool> v = FoldBool(*c.expr);
    if (!v || *v == c.unless) return false;
  }
  return true;
}

void CheckShadowing(const std::vector<const ast::Statement*>& live, Diagnostics* diags) {
  std::vector<const ast::Statement*> forbids;
  for (const auto* s : live) {
    if (s->effect == ast::Effect::kForbid && Unconditional(*s)) forbids.push_back(s);
  }
  if (forbids.empty()) return;
  for (const auto* p : live) {
    if (p->effect != ast::Effect::kPermit) continue;
    for (const auto* f : forbids) {
      if (Covers(f->principal, p->principal) && Covers(f->action, p->action) &&
          Covers(f->resource, p->resource)) {
        diags->Error("E0206", p->effect_span,
                     "permit `" + p->id + "` is shadowed by forbid `" + f->id + "`",
                     "`" + f->id +
                         "` has no condition and a scope at least as broad, so it denies "
                         "every request this permit allows; narrow the forbid or remove the "
                         "permit");
        break;
      }
    }
  }
}

}  // namespace

void TypeCheck(const ast::PolicySet& policies, const Schema* schema, Diagnostics* diags) {
  std::map<std::string, const ast::Statement*> ids;
  Checker checker(schema, diags);
  std::vector<const ast::Statement*> live;
  for (const ast::Statement* s : policies.AllStatements()) {
    if (s->explicit_id) {
      auto [it, fresh] = ids.emplace(s->id, s);
      if (!fresh) {
        const ast::Annotation* a = s->FindAnnotation("id");
        diags->Error("E0204", a ? a->span : s->span, "duplicate id `" + s->id + "`",
                     "every @id must be unique across the policy set; rename one of them");
      }
    }
    if (checker.CheckStatement(*s)) live.push_back(s);
  }
  CheckShadowing(live, diags);
}

}  // namespace writ
