// ast_dump.cc -- S-expression dump of the AST with spans.
#include "compiler/ast_dump.h"

#include "base/quote.h"

#include <cstdio>

namespace writ::ast {
namespace {

std::string SpanText(Span s) {
  return "[" + std::to_string(s.begin) + "," + std::to_string(s.end) + ")";
}

const char* KindName(ExprKind k) {
  switch (k) {
    case ExprKind::kBool: return "bool";
    case ExprKind::kLong: return "long";
    case ExprKind::kString: return "string";
    case ExprKind::kDuration: return "duration";
    case ExprKind::kEntity: return "entity";
    case ExprKind::kVar: return "var";
    case ExprKind::kSymbol: return "symbol";
    case ExprKind::kSet: return "set";
    case ExprKind::kRecord: return "record";
    case ExprKind::kAttr: return "attr";
    case ExprKind::kHas: return "has";
    case ExprKind::kLike: return "like";
    case ExprKind::kMatches: return "matches";
    case ExprKind::kIs: return "is";
    case ExprKind::kMethod: return "method";
    case ExprKind::kCall: return "call";
    case ExprKind::kNot: return "not";
    case ExprKind::kNeg: return "neg";
    case ExprKind::kBinary: return "binary";
    case ExprKind::kAnd: return "and";
    case ExprKind::kOr: return "or";
    case ExprKind::kIf: return "if";
  }
  return "?";
}

void Dump(const Expr& e, int indent, std::string& out) {
  out.append(indent, ' ');
  out += "(";
  out += KindName(e.kind);
  switch (e.kind) {
    case ExprKind::kBool: out += e.b ? " true" : " false"; break;
    case ExprKind::kLong: out += " " + std::to_string(e.i); break;
    case ExprKind::kString: out += " " + Quote(e.str); break;
    case ExprKind::kDuration: out += " " + e.str + " ms=" + std::to_string(e.i); break;
    case ExprKind::kEntity: out += " " + EntityUid{e.type, e.str, {}}.ToString(); break;
    case ExprKind::kVar:
    case ExprKind::kSymbol:
    case ExprKind::kMethod:
    case ExprKind::kCall: out += " " + e.str; break;
    case ExprKind::kAttr: out += (e.bracket ? " [" + Quote(e.str) + "]" : " ." + e.str); break;
    case ExprKind::kHas: out += " " + Quote(e.str); break;
    case ExprKind::kLike: {
      out += " chunks=[";
      for (size_t i = 0; i < e.pattern.chunks.size(); ++i) {
        out += (i ? "," : "") + Quote(e.pattern.chunks[i]);
      }
      out += "]";
      break;
    }
    case ExprKind::kMatches: out += " " + Quote(e.str); break;
    case ExprKind::kIs: out += " " + e.type; break;
    case ExprKind::kBinary: out += std::string(" ") + BinOpSpelling(e.op); break;
    default: break;
  }
  out += " " + SpanText(e.span);
  if (e.kids.empty()) {
    out += ")";
    return;
  }
  for (size_t i = 0; i < e.kids.size(); ++i) {
    out += "\n";
    if (e.kind == ExprKind::kRecord) {
      out.append(indent + 2, ' ');
      out += Quote(e.keys[i]) + ":\n";
      Dump(*e.kids[i], indent + 4, out);
    } else {
      Dump(*e.kids[i], indent + 2, out);
    }
  }
  out += ")";
}

std::string ScopeText(const Scope& s) {
  std::string out = std::string("(scope ") + ScopeVarName(s.var);
  switch (s.op) {
    case ScopeOp::kAny: break;
    case ScopeOp::kEq: out += " =="; break;
    case ScopeOp::kIn: out += " in"; break;
    case ScopeOp::kIs: out += " is " + s.is_type; break;
    case ScopeOp::kIsIn: out += " is " + s.is_type + " in"; break;
  }
  if (s.set_syntax) out += " [";
  for (size_t i = 0; i < s.entities.size(); ++i) {
    out += (i && s.set_syntax ? ", " : " ") + s.entities[i].ToString();
  }
  if (s.set_syntax) out += "]";
  return out + " " + SpanText(s.span) + ")";
}

}  // namespace

std::string Quote(const std::string& s) { return QuoteWrit(s); }

std::string DumpExpr(const Expr& e) {
  std::string out;
  Dump(e, 0, out);
  return out;
}

std::string DumpStatement(const Statement& s) {
  std::string out = std::string("(statement ") + EffectName(s.effect) + " id=" + Quote(s.id) +
                    " " + SpanText(s.span) + "\n";
  for (const auto& a : s.annotations) {
    out += "  (annotation " + a.name + (a.has_value ? " " + Quote(a.value) : "") + " " +
           SpanText(a.span) + ")\n";
  }
  if (s.effect != Effect::kRule) {
    out += "  " + ScopeText(s.principal) + "\n";
    out += "  " + ScopeText(s.action) + "\n";
    out += "  " + ScopeText(s.resource) + "\n";
    for (const auto& c : s.conditions) {
      out += std::string("  (") + (c.unless ? "unless" : "when") + " " + SpanText(c.span) + "\n";
      Dump(*c.expr, 4, out);
      out += ")\n";
    }
  } else {
    out += "  (if\n";
    Dump(*s.rule_condition, 4, out);
    out += ")\n";
  }
  for (const auto& o : s.obligations) {
    out += std::string("  (obligation ") + ObligationName(o.kind) + " " + SpanText(o.span);
    for (const auto& a : o.args) {
      out += "\n    (arg" + (a.name.empty() ? std::string() : " " + a.name) + "\n";
      Dump(*a.value, 6, out);
      out += ")";
    }
    out += ")\n";
  }
  out += ")\n";
  return out;
}

std::string DumpPolicySet(const PolicySet& set) {
  std::string out;
  for (const auto& f : set.files) {
    for (const auto& s : f.statements) out += DumpStatement(s);
  }
  return out;
}

}  // namespace writ::ast
