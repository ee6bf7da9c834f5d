// cst_to_ast.cc -- ANTLR parse tree -> ast::PolicyFile, with targeted diagnostics for the
// mistakes the grammar deliberately lets through (see the header of grammar/Writ.g4).
#include "compiler/parse/cst_to_ast.h"

#include <charconv>
#include <filesystem>
#include <set>

#include "compiler/parse/token_offsets.h"

namespace writ::parse {
namespace {

using G = writgen::WritParser;
using ast::Expr;
using ast::ExprKind;
using ast::ExprPtr;

const std::vector<std::string>& MethodNames() {
  static const std::vector<std::string> k{"contains", "containsAll", "containsAny",
                                          "isEmpty",  "lower",       "isInRange"};
  return k;
}
int MethodArity(const std::string& m) {
  if (m == "isEmpty" || m == "lower") return 0;
  return 1;
}
const std::vector<std::string>& FunctionNames() {
  static const std::vector<std::string> k{"ip"};
  return k;
}

// Is there a syntax error (error node or conjured token) anywhere under `tree`?
bool HasSyntaxError(antlr4::tree::ParseTree* tree) {
  std::vector<antlr4::tree::ParseTree*> stack{tree};
  while (!stack.empty()) {
    antlr4::tree::ParseTree* t = stack.back();
    stack.pop_back();
    if (dynamic_cast<antlr4::tree::ErrorNode*>(t) != nullptr) return true;
    if (auto* term = dynamic_cast<antlr4::tree::TerminalNode*>(t)) {
      if (term->getSymbol() == nullptr || term->getSymbol()->getStartIndex() == INVALID_INDEX) {
        return true;
      }
      continue;
    }
    if (auto* ctx = dynamic_cast<antlr4::ParserRuleContext*>(t)) {
      if (ctx->exception != nullptr) return true;
    }
    for (auto* c : t->children) stack.push_back(c);
  }
  return false;
}

class Converter {
 public:
  Converter(const SourceMap& sources, uint32_t file, Diagnostics* diags)
      : sources_(sources), file_(file), diags_(diags),
        offsets_(sources.file(file).text()) {
    std::filesystem::path p(sources.file(file).path());
    stem_ = p.stem().string();
  }

  void Run(G::FileContext* cst, ast::PolicyFile* out) {
    int index = 0;
    for (G::StatementContext* s : cst->statement()) {
      ++index;
      if (HasSyntaxError(s)) continue;  // already reported by the parser
      size_t before = diags_->error_count();
      ast::Statement st = Statement(s, index);
      if (diags_->error_count() == before && CheckDepth(st)) {
        out->statements.push_back(std::move(st));
      }
    }
  }

 private:
  // ---- spans and tokens ----
  Span TokSpan(antlr4::Token* t) const { return offsets_.TokenSpan(file_, t); }
  Span TermSpan(antlr4::tree::TerminalNode* n) const { return TokSpan(n->getSymbol()); }
  Span CtxSpan(antlr4::ParserRuleContext* c) const {
    Span b = TokSpan(c->getStart());
    Span e = c->getStop() != nullptr ? TokSpan(c->getStop()) : b;
    if (e.end < b.begin) e = b;
    return Span{file_, b.begin, e.end};
  }
  std::string Text(antlr4::tree::ParseTree* t) const { return t->getText(); }

  void Error(const char* code, Span s, std::string msg, std::string help) {
    diags_->Error(code, s, std::move(msg), std::move(help));
  }

  // ---- statements ----
  ast::Statement Statement(G::StatementContext* s, int index) {
    ast::Statement st;
    st.span = CtxSpan(s);
    std::set<std::string> seen;
    for (G::AnnotationContext* a : s->annotation()) {
      ast::Annotation an;
      an.name = Text(a->ident());
      an.span = CtxSpan(a);
      if (a->STRING() != nullptr) {
        an.has_value = true;
        an.value = StringLiteral(a->STRING(), false);
      }
      if (!seen.insert(an.name).second) {
        Error("E0116", an.span, "duplicate annotation `@" + an.name + "`",
              "keep one `@" + an.name + "(...)` per statement");
      }
      if (an.name == "id") {
        if (!an.has_value || an.value.empty()) {
          Error("E0116", an.span, "`@id` needs a non-empty value", "write `@id(\"my-policy\")`");
        } else {
          st.id = an.value;
          st.explicit_id = true;
        }
      }
      st.annotations.push_back(std::move(an));
    }
    if (!st.explicit_id) st.id = stem_ + ":" + std::to_string(index);
    if (s->policy() != nullptr) {
      Policy(s->policy(), &st);
    } else {
      RuleStmt(s->ruleStmt(), &st);
    }
    return st;
  }

  void Policy(G::PolicyContext* p, ast::Statement* st) {
    G::EffectContext* e = p->effect();
    st->effect_span = CtxSpan(e);
    if (e->PERMIT() != nullptr) {
      st->effect = ast::Effect::kPermit;
    } else if (e->FORBID() != nullptr) {
      st->effect = ast::Effect::kForbid;
    } else {
      std::string word = Text(e);
      std::string suggestion;
      static const std::set<std::string> kAllowish{"allow", "grant", "accept", "approve", "Permit"};
      static const std::set<std::string> kDenyish{"deny", "block", "reject", "refuse", "Forbid"};
      if (kAllowish.count(word)) suggestion = "permit";
      if (kDenyish.count(word)) suggestion = "forbid";
      if (suggestion.empty()) suggestion = ClosestMatch(word, {"permit", "forbid"});
      Error("E0106", st->effect_span, "unknown effect `" + word + "`",
            suggestion.empty()
                ? "a statement starts with `permit`, `forbid` or `rule if`"
                : "did you mean `" + suggestion + "`? a statement starts with `permit`, "
                                                  "`forbid` or `rule if`");
      st->effect = ast::Effect::kPermit;
    }
    Scopes(p, st);
    for (G::ConditionContext* c : p->condition()) {
      ast::Condition cond;
      cond.unless = c->UNLESS() != nullptr;
      cond.span = CtxSpan(c);
      cond.expr = ExprOf(c->expr());
      st->conditions.push_back(std::move(cond));
    }
    if (p->obligations() != nullptr) Obligations(p->obligations(), st);
  }

  void RuleStmt(G::RuleStmtContext* r, ast::Statement* st) {
    st->effect = ast::Effect::kRule;
    st->effect_span = TermSpan(r->RULE());
    st->rule_condition = ExprOf(r->expr());
    Obligations(r->obligations(), st);
  }

  void Scopes(G::PolicyContext* p, ast::Statement* st) {
    static const char* kHelp =
        "the scope is `(principal, action, resource)`, each optionally constrained with "
        "`==`, `in` or `is`";
    std::vector<G::ScopeItemContext*> items = p->scopeItem();
    static const ast::ScopeVar kOrder[3] = {ast::ScopeVar::kPrincipal, ast::ScopeVar::kAction,
                                            ast::ScopeVar::kResource};
    if (items.size() != 3) {
      Span where = items.empty() ? CtxSpan(p) : CtxSpan(items.size() > 3 ? items[3] : items.back());
      Error("E0108", where,
            "the scope has " + std::to_string(items.size()) + " item" +
                (items.size() == 1 ? "" : "s") + ", expected 3",
            std::string(kHelp) + "; write `principal` alone to leave it unconstrained");
      return;
    }
    ast::Scope* dest[3] = {&st->principal, &st->action, &st->resource};
    for (int i = 0; i < 3; ++i) {
      G::ScopeItemContext* it = items[i];
      ast::Scope& sc = *dest[i];
      sc.var = kOrder[i];
      sc.span = CtxSpan(it);
      std::string name = Text(it->IDENT());
      std::string want = ast::ScopeVarName(kOrder[i]);
      bool ok_name = name == want || (kOrder[i] == ast::ScopeVar::kResource && name == "tool");
      if (!ok_name) {
        Error("E0108", TermSpan(it->IDENT()),
              "scope item " + std::to_string(i + 1) + " must be `" + want + "`, found `" + name + "`",
              kHelp);
        continue;
      }
      if (it->IS() != nullptr) {
        sc.op = it->IN() != nullptr ? ast::ScopeOp::kIsIn : ast::ScopeOp::kIs;
        sc.is_type = PathText(it->path());
        sc.is_type_span = CtxSpan(it->path());
        if (it->add() != nullptr) ScopeTarget(it->add(), &sc, want);
        continue;
      }
      if (it->relop() == nullptr) continue;  // unconstrained
      G::RelopContext* op = it->relop();
      if (op->EQ() != nullptr) {
        sc.op = ast::ScopeOp::kEq;
      } else if (op->IN() != nullptr) {
        sc.op = ast::ScopeOp::kIn;
      } else if (op->ASSIGN() != nullptr) {
        Error("E0104", CtxSpan(op), "`=` is not an operator in writ", "use `==` to compare values");
        sc.op = ast::ScopeOp::kEq;
      } else {
        Error("E0108", CtxSpan(op), "`" + Text(op) + "` cannot constrain the scope",
              "the scope allows only `==`, `in` and `is`; move other comparisons into "
              "`when { ... }`");
        continue;
      }
      ScopeTarget(it->add(), &sc, want);
    }
  }

  // The right side of a scope constraint must be an entity literal (or, for `in`, a set of
  // them), so the compiler can index on it.
  void ScopeTarget(G::AddContext* add, ast::Scope* sc, const std::string& var) {
    ExprPtr e = AddExpr(add);
    if (!e) return;
    std::string example = var == "principal" ? "User::\"alice\""
                          : var == "action"  ? "Action::\"tools/call\""
                                             : "Tool::\"github__create_issue\"";
    auto as_entity = [&](const Expr& x) -> bool {
      if (x.kind == ExprKind::kEntity) {
        sc->entities.push_back(ast::EntityUid{x.type, x.str, x.span});
        return true;
      }
      if (x.kind == ExprKind::kString) {
        const std::string type = var == "principal" ? "User" : var == "action" ? "Action" : "Tool";
        const std::string fixed = ast::EntityUid{type, x.str, {}}.ToString();
        Error("E0109", x.span, "`" + var + "` is compared with a string, not an entity",
              "write an entity reference such as `" + fixed + "`" +
                  (var == "principal" ? " (or `Agent::...`, `Role::...`)" : ""));
      } else {
        Error("E0109", x.span, "a scope constraint must be an entity literal",
              "write `" + var + " == " + example + "`, or move this comparison into `when { ... }`");
      }
      return false;
    };
    if (e->kind == ExprKind::kSet && sc->op == ast::ScopeOp::kIn) {
      sc->set_syntax = true;
      if (e->kids.empty()) {
        Error("E0109", e->span, "`" + var + " in []` can never match",
              "list at least one entity, e.g. `" + var + " in [" + example + "]`");
      }
      for (auto& k : e->kids) as_entity(*k);
      return;
    }
    as_entity(*e);
  }

  void Obligations(G::ObligationsContext* o, ast::Statement* st) {
    for (G::ObligationContext* ob : o->obligation()) {
      ast::Obligation out;
      out.span = CtxSpan(ob);
      out.name_span = CtxSpan(ob->ident());
      std::string name = Text(ob->ident());
      bool known = ast::ObligationFromName(name, &out.kind);
      for (G::ObligationArgContext* a : ob->obligationArg()) {
        ast::ObligationArg arg;
        if (a->ident() != nullptr) {
          arg.name = Text(a->ident());
          arg.name_span = CtxSpan(a->ident());
        }
        symbol_ok_ = true;
        arg.value = ExprOf(a->expr());
        symbol_ok_ = false;
        out.args.push_back(std::move(arg));
      }
      if (!known) {
        std::string guess = ClosestMatch(name, ast::ObligationNames());
        std::string list;
        for (const auto& n : ast::ObligationNames()) list += (list.empty() ? "" : ", ") + n;
        Error("E0107", out.name_span, "unknown obligation `" + name + "`",
              (guess.empty() ? "" : "did you mean `" + guess + "`? ") + "known obligations: " +
                  list);
        continue;
      }
      ValidateObligation(out);
      st->obligations.push_back(std::move(out));
    }
  }

  // Checks arity, names and literal kinds of obligation arguments.
  void ValidateObligation(const ast::Obligation& ob) {
    using K = ast::ObligationKind;
    const std::string name = ast::ObligationName(ob.kind);
    auto bad = [&](Span s, const std::string& msg, const char* sig) {
      Error("E0113", s, msg, std::string("write ") + sig);
    };
    auto positional = [&](const char* sig, size_t min, size_t max, auto ok_kind) {
      size_t n = 0;
      for (const auto& a : ob.args) {
        if (!a.name.empty()) {
          bad(a.name_span, "`" + name + "` takes no named argument `" + a.name + "`", sig);
          continue;
        }
        ++n;
        if (!ok_kind(*a.value)) bad(a.value->span, "invalid argument to `" + name + "`", sig);
      }
      if (n < min || n > max) {
        bad(ob.span,
            "`" + name + "` takes " +
                (min == max ? std::to_string(min)
                            : max == SIZE_MAX ? "at least " + std::to_string(min)
                                              : std::to_string(min) + " to " + std::to_string(max)) +
                " argument" + (min == 1 && (max == 1 || max == SIZE_MAX) ? "" : "s") +
                ", found " + std::to_string(n),
            sig);
      }
    };
    auto is_string = [](const Expr& e) { return e.kind == ExprKind::kString; };
    switch (ob.kind) {
      case K::kRedact:
        positional("`redact(\"email\", \"args.card_number\")`: DLP classes or JSON paths", 1,
                   SIZE_MAX, is_string);
        break;
      case K::kTag:
        positional("`tag(\"pci\")`", 1, SIZE_MAX, is_string);
        break;
      case K::kReason:
        positional("`reason(\"the message the agent sees\")`", 1, 1, is_string);
        break;
      case K::kNotify:
        positional("`notify(\"slack\", \"#security-alerts\")`: a channel and a target", 2, 2,
                   is_string);
        break;
      case K::kLog: {
        static const std::vector<std::string> kLevels{"debug", "info",  "notice",
                                                      "warning", "error", "critical"};
        positional("`log(critical)`; levels: debug, info, notice, warning, error, critical", 1, 1,
                   [&](const Expr& e) {
                     return (e.kind == ExprKind::kSymbol || e.kind == ExprKind::kString) &&
                            std::find(kLevels.begin(), kLevels.end(), e.str) != kLevels.end();
                   });
        break;
      }
      case K::kRequireApproval: {
        const char* sig = "`require_approval(approvers: \"finance-leads\", timeout: 15m)`";
        std::set<std::string> seen;
        for (const auto& a : ob.args) {
          if (a.name.empty()) {
            bad(a.value->span, "`require_approval` takes named arguments only", sig);
          } else if (!seen.insert(a.name).second) {
            bad(a.name_span, "argument `" + a.name + "` given twice", sig);
          } else if (a.name == "approvers") {
            bool ok = a.value->kind == ExprKind::kString;
            if (a.value->kind == ExprKind::kSet) {
              ok = !a.value->kids.empty();
              for (auto& k : a.value->kids) ok &= k->kind == ExprKind::kString;
            }
            if (!ok) bad(a.value->span, "`approvers` must be a string or a set of strings", sig);
          } else if (a.name == "timeout") {
            if (a.value->kind != ExprKind::kDuration || a.value->i <= 0) {
              bad(a.value->span, "`timeout` must be a positive duration such as `15m`", sig);
            }
          } else {
            bad(a.name_span, "unknown argument `" + a.name + "` to `require_approval`", sig);
          }
        }
        break;
      }
      case K::kRateLimit: {
        const char* sig = "`rate_limit(key: principal, limit: 10, per: 1h)`";
        std::set<std::string> seen;
        for (const auto& a : ob.args) {
          if (a.name.empty()) {
            bad(a.value->span, "`rate_limit` takes named arguments only", sig);
          } else if (!seen.insert(a.name).second) {
            bad(a.name_span, "argument `" + a.name + "` given twice", sig);
          } else if (a.name == "key") {
            if (ContainsSymbol(*a.value)) {
              bad(a.value->span, "`key` must be an expression such as `principal` or "
                                 "`[principal, tool]`", sig);
            }
          } else if (a.name == "limit") {
            if (a.value->kind != ExprKind::kLong || a.value->i <= 0) {
              bad(a.value->span, "`limit` must be a positive integer", sig);
            }
          } else if (a.name == "per") {
            if (a.value->kind != ExprKind::kDuration || a.value->i <= 0) {
              bad(a.value->span, "`per` must be a positive duration such as `1h`", sig);
            }
          } else {
            bad(a.name_span, "unknown argument `" + a.name + "` to `rate_limit`", sig);
          }
        }
        if (!seen.count("limit") || !seen.count("per")) {
          bad(ob.span, "`rate_limit` needs `limit:` and `per:`", sig);
        }
        break;
      }
    }
  }

  static bool ContainsSymbol(const Expr& e) {
    if (e.kind == ExprKind::kSymbol) return true;
    for (const auto& k : e.kids) {
      if (ContainsSymbol(*k)) return true;
    }
    return false;
  }

  // ---- expressions ----
  ExprPtr Make(ExprKind k, Span s) { return std::make_unique<Expr>(k, s); }

  ExprPtr ExprOf(G::ExprContext* e) {
    if (auto* ife = dynamic_cast<G::IfExprContext*>(e)) {
      auto x = Make(ExprKind::kIf, CtxSpan(ife));
      bool sym = symbol_ok_;
      symbol_ok_ = false;
      for (G::ExprContext* k : ife->expr()) x->kids.push_back(ExprOf(k));
      symbol_ok_ = sym;
      return x;
    }
    auto* plain = static_cast<G::PlainExprContext*>(e);
    return OrExpr(plain->orExpr());
  }

  // Reports `and` / `or` words among the operator tokens of an and/or chain.
  void CheckWordOps(antlr4::ParserRuleContext* ctx, size_t word_type, const char* word,
                    const char* op) {
    for (auto* c : ctx->children) {
      auto* t = dynamic_cast<antlr4::tree::TerminalNode*>(c);
      if (t != nullptr && t->getSymbol()->getType() == word_type) {
        Error("E0105", TermSpan(t), std::string("`") + word + "` is not an operator in writ",
              std::string("use `") + op + "`");
      }
    }
  }

  ExprPtr OrExpr(G::OrExprContext* o) {
    auto parts = o->andExpr();
    if (parts.size() == 1) return AndExpr(parts[0]);
    CheckWordOps(o, G::OR_WORD, "or", "||");
    bool sym = symbol_ok_;
    symbol_ok_ = false;
    auto x = Make(ExprKind::kOr, CtxSpan(o));
    for (auto* p : parts) x->kids.push_back(AndExpr(p));
    symbol_ok_ = sym;
    return x;
  }

  ExprPtr AndExpr(G::AndExprContext* a) {
    auto parts = a->relation();
    if (parts.size() == 1) return Relation(parts[0]);
    CheckWordOps(a, G::AND_WORD, "and", "&&");
    bool sym = symbol_ok_;
    symbol_ok_ = false;
    auto x = Make(ExprKind::kAnd, CtxSpan(a));
    for (auto* p : parts) x->kids.push_back(Relation(p));
    symbol_ok_ = sym;
    return x;
  }

  ExprPtr Relation(G::RelationContext* r) {
    Span span = CtxSpan(r);
    if (auto* c = dynamic_cast<G::CompareRelContext*>(r)) {
      auto adds = c->add();
      if (adds.size() == 1) return AddExpr(adds[0]);
      symbol_ok_ = false;
      auto x = Make(ExprKind::kBinary, span);
      G::RelopContext* op = c->relop();
      if (op->EQ()) x->op = ast::BinOp::kEq;
      if (op->NE()) x->op = ast::BinOp::kNe;
      if (op->LT()) x->op = ast::BinOp::kLt;
      if (op->LE()) x->op = ast::BinOp::kLe;
      if (op->GT()) x->op = ast::BinOp::kGt;
      if (op->GE()) x->op = ast::BinOp::kGe;
      if (op->IN()) x->op = ast::BinOp::kIn;
      if (op->ASSIGN()) {
        Error("E0104", CtxSpan(op), "`=` is not an operator in writ", "use `==` to compare values");
      }
      x->kids.push_back(AddExpr(adds[0]));
      x->kids.push_back(AddExpr(adds[1]));
      return x;
    }
    symbol_ok_ = false;
    if (auto* h = dynamic_cast<G::HasRelContext*>(r)) {
      auto x = Make(ExprKind::kHas, span);
      x->kids.push_back(AddExpr(h->add()));
      x->str = h->ident() != nullptr ? Text(h->ident()) : StringLiteral(h->STRING(), false);
      return x;
    }
    if (auto* l = dynamic_cast<G::LikeRelContext*>(r)) {
      auto x = Make(ExprKind::kLike, span);
      x->kids.push_back(AddExpr(l->add()));
      // Split the literal's body on unescaped `*` first, then unescape each chunk, so that
      // `\*` (a literal star) and `\\*` (a backslash, then a wildcard) stay distinct.
      std::string text = Text(l->STRING());
      std::string_view body = std::string_view(text).substr(1, text.size() - 2);
      ast::LikePattern pat;
      size_t start = 0;
      for (size_t i = 0; i <= body.size(); ++i) {
        if (i < body.size() && body[i] == '\\') {
          ++i;
          continue;
        }
        if (i < body.size() && body[i] != '*') continue;
        std::string chunk;
        size_t bad_off = 0, bad_len = 0;
        if (!Unescape(body.substr(start, i - start), true, &chunk, &bad_off, &bad_len)) {
          ReportBadEscape(l->STRING(), body, start + bad_off, bad_len, true);
        }
        pat.chunks.push_back(std::move(chunk));
        start = i + 1;
      }
      x->str = std::string(body);
      x->pattern = std::move(pat);
      return x;
    }
    if (auto* m = dynamic_cast<G::MatchesRelContext*>(r)) {
      auto x = Make(ExprKind::kMatches, span);
      x->kids.push_back(AddExpr(m->add()));
      x->str = StringLiteral(m->STRING(), false);
      return x;
    }
    auto* i = static_cast<G::IsRelContext*>(r);
    auto x = Make(ExprKind::kIs, span);
    auto adds = i->add();
    x->kids.push_back(AddExpr(adds[0]));
    x->type = PathText(i->path());
    x->type_span = CtxSpan(i->path());
    if (adds.size() > 1) x->kids.push_back(AddExpr(adds[1]));
    return x;
  }

  ExprPtr AddExpr(G::AddContext* a) {
    auto mults = a->mult();
    auto ops = a->addop();
    if (mults.size() > 1) symbol_ok_ = false;
    ExprPtr acc = MultExpr(mults[0]);
    for (size_t i = 1; i < mults.size(); ++i) {
      ExprPtr rhs = MultExpr(mults[i]);
      auto x = Make(ExprKind::kBinary, Span::Join(acc->span, rhs->span));
      x->op = ops[i - 1]->PLUS() != nullptr ? ast::BinOp::kAdd : ast::BinOp::kSub;
      x->kids.push_back(std::move(acc));
      x->kids.push_back(std::move(rhs));
      acc = std::move(x);
    }
    return acc;
  }

  ExprPtr MultExpr(G::MultContext* m) {
    auto us = m->unary();
    if (us.size() > 1) symbol_ok_ = false;
    ExprPtr acc = UnaryExpr(us[0]);
    for (size_t i = 1; i < us.size(); ++i) {
      ExprPtr rhs = UnaryExpr(us[i]);
      auto x = Make(ExprKind::kBinary, Span::Join(acc->span, rhs->span));
      x->op = ast::BinOp::kMul;
      x->kids.push_back(std::move(acc));
      x->kids.push_back(std::move(rhs));
      acc = std::move(x);
    }
    return acc;
  }

  ExprPtr UnaryExpr(G::UnaryContext* u) {
    std::vector<antlr4::tree::TerminalNode*> ops;
    for (auto* c : u->children) {
      if (auto* t = dynamic_cast<antlr4::tree::TerminalNode*>(c)) ops.push_back(t);
    }
    if (!ops.empty()) symbol_ok_ = false;
    // `-` directly before an integer literal makes a negative literal (so that
    // -9223372036854775808 is representable).
    bool neg_literal = !ops.empty() && ops.back()->getSymbol()->getType() == G::MINUS &&
                       u->member()->access().empty() &&
                       dynamic_cast<G::LiteralPrimaryContext*>(u->member()->primary()) != nullptr &&
                       static_cast<G::LiteralPrimaryContext*>(u->member()->primary())
                               ->literal()
                               ->INT() != nullptr;
    ExprPtr acc;
    if (neg_literal) {
      auto* lit = static_cast<G::LiteralPrimaryContext*>(u->member()->primary())->literal();
      Span s = Span::Join(TermSpan(ops.back()), TermSpan(lit->INT()));
      acc = IntLiteral("-" + Text(lit->INT()), s);
      ops.pop_back();
    } else {
      acc = MemberExpr(u->member());
    }
    for (size_t i = ops.size(); i-- > 0;) {
      bool bang = ops[i]->getSymbol()->getType() == G::BANG;
      auto x = Make(bang ? ExprKind::kNot : ExprKind::kNeg, Span::Join(TermSpan(ops[i]), acc->span));
      x->kids.push_back(std::move(acc));
      acc = std::move(x);
    }
    return acc;
  }

  ExprPtr MemberExpr(G::MemberContext* m) {
    auto accesses = m->access();
    if (!accesses.empty()) symbol_ok_ = false;
    ExprPtr acc = Primary(m->primary());
    for (G::AccessContext* a : accesses) {
      Span span = Span::Join(acc->span, CtxSpan(a));
      if (auto* d = dynamic_cast<G::DotAccessContext*>(a)) {
        std::string name = Text(d->ident());
        if (d->LPAREN() == nullptr) {
          auto x = Make(ExprKind::kAttr, span);
          x->str = name;
          x->kids.push_back(std::move(acc));
          acc = std::move(x);
          continue;
        }
        auto x = Make(ExprKind::kMethod, span);
        x->str = name;
        x->kids.push_back(std::move(acc));
        size_t argc = 0;
        if (d->exprList() != nullptr) {
          for (auto* e : d->exprList()->expr()) {
            x->kids.push_back(ExprOf(e));
            ++argc;
          }
        }
        const auto& methods = MethodNames();
        if (std::find(methods.begin(), methods.end(), name) == methods.end()) {
          std::string guess = ClosestMatch(name, methods);
          Error("E0114", CtxSpan(d->ident()), "unknown method `" + name + "`",
                guess.empty() ? "methods: contains, containsAll, containsAny, isEmpty, lower, "
                                "isInRange"
                              : "did you mean `" + guess + "`?");
        } else if (static_cast<int>(argc) != MethodArity(name)) {
          int want = MethodArity(name);
          Error("E0114", span,
                "`" + name + "` takes " + std::to_string(want) + " argument" +
                    (want == 1 ? "" : "s") + ", found " + std::to_string(argc),
                want == 0 ? "write `x." + name + "()`" : "write `x." + name + "(value)`");
        }
        acc = std::move(x);
        continue;
      }
      auto* ix = static_cast<G::IndexAccessContext*>(a);
      auto x = Make(ExprKind::kAttr, span);
      x->bracket = true;
      x->str = StringLiteral(ix->STRING(), false);
      x->kids.push_back(std::move(acc));
      acc = std::move(x);
    }
    return acc;
  }

  ExprPtr Primary(G::PrimaryContext* p) {
    Span span = CtxSpan(p);
    if (auto* l = dynamic_cast<G::LiteralPrimaryContext*>(p)) return Literal(l->literal());
    if (auto* e = dynamic_cast<G::EntityPrimaryContext*>(p)) {
      auto x = Make(ExprKind::kEntity, span);
      x->type = PathText(e->path());
      x->str = StringLiteral(e->STRING(), false);
      return x;
    }
    if (auto* c = dynamic_cast<G::CallPrimaryContext*>(p)) {
      std::string name = Text(c->IDENT());
      auto x = Make(ExprKind::kCall, span);
      x->str = name;
      bool sym = symbol_ok_;
      symbol_ok_ = false;
      if (c->exprList() != nullptr) {
        for (auto* e : c->exprList()->expr()) x->kids.push_back(ExprOf(e));
      }
      symbol_ok_ = sym;
      const auto& methods = MethodNames();
      if (std::find(methods.begin(), methods.end(), name) != methods.end()) {
        Error("E0114", TermSpan(c->IDENT()), "`" + name + "` is a method, not a function",
              "call it on a value: `x." + name + "(...)`");
      } else if (name != "ip") {
        std::string guess = ClosestMatch(name, FunctionNames());
        Error("E0114", TermSpan(c->IDENT()), "unknown function `" + name + "`",
              guess.empty() ? "the only function is `ip(\"10.0.0.0/8\")`"
                            : "did you mean `" + guess + "`?");
      } else if (x->kids.size() != 1 || x->kids[0]->kind != ExprKind::kString) {
        Error("E0114", span, "`ip` takes one string literal", "write `ip(\"10.0.0.0/8\")`");
      }
      return x;
    }
    if (auto* v = dynamic_cast<G::VarPrimaryContext*>(p)) {
      std::string name = Text(v->IDENT());
      if (symbol_ok_ && !ast::IsVariableName(name)) {
        auto x = Make(ExprKind::kSymbol, span);
        x->str = name;
        return x;
      }
      auto x = Make(ExprKind::kVar, span);
      x->str = name;
      if (!ast::IsVariableName(name)) {
        std::string guess = ClosestMatch(name, ast::VariableNames());
        std::string help = guess.empty() ? "" : "did you mean `" + guess + "`? ";
        help += "variables: principal, action, resource, tool, call, args, context";
        if (name == "null" || name == "nil" || name == "None") {
          help = "writ has no null; test presence with `has`, e.g. `args has amount`";
        } else if (name[0] >= 'A' && name[0] <= 'Z') {
          help = "an entity is written `" + name + "::\"id\"`";
        }
        Error("E0112", span, "unknown variable `" + name + "`", help);
      }
      return x;
    }
    if (auto* par = dynamic_cast<G::ParenPrimaryContext*>(p)) {
      bool sym = symbol_ok_;
      symbol_ok_ = false;
      ExprPtr inner = ExprOf(par->expr());
      symbol_ok_ = sym;
      return inner;
    }
    bool sym = symbol_ok_;
    symbol_ok_ = false;
    ExprPtr out;
    if (auto* s = dynamic_cast<G::SetPrimaryContext*>(p)) {
      out = Make(ExprKind::kSet, span);
      if (s->exprList() != nullptr) {
        for (auto* e : s->exprList()->expr()) out->kids.push_back(ExprOf(e));
      }
    } else {
      auto* r = static_cast<G::RecordPrimaryContext*>(p);
      out = Make(ExprKind::kRecord, span);
      std::set<std::string> keys;
      for (G::RecordInitContext* ri : r->recordInit()) {
        std::string key = ri->ident() != nullptr ? Text(ri->ident()) : StringLiteral(ri->STRING(), false);
        Span ks = ri->ident() != nullptr ? CtxSpan(ri->ident()) : TermSpan(ri->STRING());
        if (!keys.insert(key).second) {
          Error("E0110", ks, "duplicate record key `" + key + "`", "give each key once");
        }
        out->keys.push_back(key);
        out->key_spans.push_back(ks);
        out->kids.push_back(ExprOf(ri->expr()));
      }
    }
    symbol_ok_ = sym;
    return out;
  }

  ExprPtr Literal(G::LiteralContext* l) {
    Span span = CtxSpan(l);
    if (l->TRUE() != nullptr || l->FALSE() != nullptr) {
      auto x = Make(ExprKind::kBool, span);
      x->b = l->TRUE() != nullptr;
      return x;
    }
    if (l->INT() != nullptr) return IntLiteral(Text(l->INT()), span);
    if (l->SUFFIXED_INT() != nullptr) return DurationLiteral(Text(l->SUFFIXED_INT()), span);
    auto x = Make(ExprKind::kString, span);
    x->str = StringLiteral(l->STRING(), false);
    return x;
  }

  ExprPtr IntLiteral(const std::string& text, Span span) {
    auto x = Make(ExprKind::kLong, span);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      Error("E0110", span, "integer literal out of range",
            "integers are 64-bit: from -9223372036854775808 to 9223372036854775807");
    }
    x->i = v;
    return x;
  }

  // Durations: one or more <digits><unit> with units d h m s ms, largest first: 1h30m.
  ExprPtr DurationLiteral(const std::string& text, Span span) {
    auto x = Make(ExprKind::kDuration, span);
    x->str = text;
    static const std::pair<const char*, int64_t> kUnits[] = {
        {"d", 86400000}, {"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000}};
    size_t i = 0;
    int64_t total = 0;
    int last_rank = -1;
    auto fail = [&](const std::string& msg) {
      Error("E0110", span, msg,
            "a duration is a number with a unit: `500ms`, `30s`, `15m`, `2h`, `1d`, or a "
            "combination largest first such as `1h30m`");
      return std::move(x);
    };
    while (i < text.size()) {
      size_t j = i;
      while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
      if (j == i) return fail("invalid duration `" + text + "`");
      int64_t n = 0;
      auto [p, ec] = std::from_chars(text.data() + i, text.data() + j, n);
      if (ec != std::errc()) return fail("duration `" + text + "` is out of range");
      size_t k = j;
      while (k < text.size() && !(text[k] >= '0' && text[k] <= '9')) ++k;
      std::string unit = text.substr(j, k - j);
      int rank = -1;
      int64_t mult = 0;
      static const char* kOrder[] = {"d", "h", "m", "s", "ms"};
      for (int r = 0; r < 5; ++r) {
        if (unit == kOrder[r]) rank = r;
      }
      for (auto& [u, m] : kUnits) {
        if (unit == u) mult = m;
      }
      if (rank < 0) return fail("unknown duration unit `" + unit + "` in `" + text + "`");
      if (rank <= last_rank) return fail("duration units must go from largest to smallest");
      last_rank = rank;
      if (__builtin_mul_overflow(n, mult, &n) || __builtin_add_overflow(total, n, &total)) {
        return fail("duration `" + text + "` is out of range");
      }
      i = k;
    }
    x->i = total;
    return x;
  }

  std::string StringLiteral(antlr4::tree::TerminalNode* t, bool like) {
    std::string text = Text(t);
    std::string body = text.size() >= 2 ? text.substr(1, text.size() - 2) : std::string();
    std::string out;
    size_t bad_off = 0, bad_len = 0;
    if (!Unescape(body, like, &out, &bad_off, &bad_len)) ReportBadEscape(t, body, bad_off, bad_len, like);
    return out;
  }

  // `bad_off` is relative to the literal's body (after the opening quote).
  void ReportBadEscape(antlr4::tree::TerminalNode* t, std::string_view body, size_t bad_off,
                       size_t bad_len, bool like) {
    Span s = TermSpan(t);
    uint32_t b = s.begin + 1 + static_cast<uint32_t>(bad_off);
    const std::string bad(body.substr(bad_off, bad_len));
    std::string msg = "invalid escape `" + bad + "` in string";
    std::string help = like ? "escapes: \\\" \\\\ \\n \\r \\t \\0 \\' \\u{hex} and, in `like` patterns, \\*"
                            : "escapes: \\\" \\\\ \\n \\r \\t \\0 \\' \\u{hex}";
    if (bad.rfind("\\u", 0) == 0) {
      msg = "invalid unicode escape `" + bad + "` in string";
      help = "write `\\u{...}` with 1 to 6 hex digits naming a code point up to 10FFFF that is "
             "not a surrogate (D800-DFFF), e.g. `\\u{e9}`";
    } else if (bad == "\\*") {
      help = "`\\*` is an escape only in `like` patterns; elsewhere write `*`";
    }
    Error("E0110", Span{file_, b, b + static_cast<uint32_t>(bad_len)}, msg, help);
  }

  std::string PathText(G::PathContext* p) {
    std::string out;
    for (auto* id : p->IDENT()) out += (out.empty() ? "" : "::") + Text(id);
    return out;
  }

  // Rejects expression trees deeper than kMaxExprDepth (iteratively, so any depth is safe).
  bool CheckDepth(const ast::Statement& st) {
    std::vector<std::pair<const Expr*, int>> stack;
    auto push_root = [&](const Expr* e) {
      if (e != nullptr) stack.push_back({e, 1});
    };
    for (const auto& c : st.conditions) push_root(c.expr.get());
    push_root(st.rule_condition.get());
    for (const auto& o : st.obligations) {
      for (const auto& a : o.args) push_root(a.value.get());
    }
    while (!stack.empty()) {
      auto [e, d] = stack.back();
      stack.pop_back();
      if (d > ast::kMaxExprDepth) {
        Error("E0111", e->span, "expression nests too deeply",
              "writ allows expressions " + std::to_string(ast::kMaxExprDepth) +
                  " levels deep; split the condition into several statements");
        return false;
      }
      for (const auto& k : e->kids) stack.push_back({k.get(), d + 1});
    }
    return true;
  }

  const SourceMap& sources_;
  uint32_t file_;
  Diagnostics* diags_;
  TokenOffsets offsets_;
  std::string stem_;
  bool symbol_ok_ = false;  // converting the top of an obligation argument
};

}  // namespace

bool Unescape(std::string_view body, bool like_pattern, std::string* out, size_t* bad_offset,
              size_t* bad_len) {
  bool ok = true;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\') {
      *out += c;
      continue;
    }
    if (i + 1 >= body.size()) {
      if (ok) *bad_offset = i, *bad_len = 1;
      ok = false;
      break;
    }
    char n = body[i + 1];
    switch (n) {
      case 'n': *out += '\n'; ++i; continue;
      case 'r': *out += '\r'; ++i; continue;
      case 't': *out += '\t'; ++i; continue;
      case '0': *out += '\0'; ++i; continue;
      case '\\': *out += '\\'; ++i; continue;
      case '"': *out += '"'; ++i; continue;
      case '\'': *out += '\''; ++i; continue;
      case '*':
        if (like_pattern) {
          *out += '*';
          ++i;
          continue;
        }
        break;
      case 'u': {
        size_t close = body.find('}', i);
        if (i + 2 < body.size() && body[i + 2] == '{' && close != std::string_view::npos &&
            close > i + 3 && close - (i + 3) <= 6) {
          uint32_t cp = 0;
          bool hex = true;
          for (size_t k = i + 3; k < close; ++k) {
            char h = body[k];
            int v = (h >= '0' && h <= '9')   ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (v < 0) hex = false;
            cp = cp * 16 + static_cast<uint32_t>(v < 0 ? 0 : v);
          }
          if (hex && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF)) {
            if (cp < 0x80) {
              *out += static_cast<char>(cp);
            } else if (cp < 0x800) {
              *out += static_cast<char>(0xC0 | (cp >> 6));
              *out += static_cast<char>(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
              *out += static_cast<char>(0xE0 | (cp >> 12));
              *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              *out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              *out += static_cast<char>(0xF0 | (cp >> 18));
              *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
              *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              *out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            i = close;
            continue;
          }
        }
        if (ok) {
          // Underline the whole `\u{...}` when it is closed nearby, else just `\u`.
          size_t len = 2;
          if (i + 2 < body.size() && body[i + 2] == '{' && close != std::string_view::npos &&
              close - i < 16) {
            len = close - i + 1;
          }
          *bad_offset = i, *bad_len = len;
        }
        ok = false;
        ++i;
        continue;
      }
      default:
        break;
    }
    if (ok) *bad_offset = i, *bad_len = 2;
    ok = false;
    ++i;
  }
  return ok;
}

void CstToAst(const SourceMap& sources, uint32_t file, writgen::WritParser::FileContext* cst,
              ast::PolicyFile* out, Diagnostics* diags) {
  Converter(sources, file, diags).Run(cst, out);
}

}  // namespace writ::parse
