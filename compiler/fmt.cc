// fmt.cc -- the canonical printer behind `writ fmt`. Entry points: Format(), FormatSource().
//
// How it works, in three steps:
//   1. Layout: each statement is printed into a list of Lines. Every Line remembers the source
//      byte range it prints ([start, end)), so comments can be placed afterwards.
//   2. Comments: comments that sit on one source line with only blanks between them form a
//      group. A group that follows code on its source line is *trailing* and is appended to
//      the printed line holding that code. Any other group is *own-line*: it goes on its own
//      line before the first printed line that ends after it, or, if it sits inside that
//      line's source range (inside an expression printed on one line), at the end of that line.
//   3. Render: indentation, one blank line between statements, blank lines kept (collapsed to
//      one) between top-level comments and what follows them.
//
// Invariants that make the output stable (Format(Format(x)) == Format(x)): a construct is
// broken over lines only for its width or for comments that stay inside it after formatting
// (a scope or condition containing a comment; an `&&`/`||` chain with a comment before its
// last operand), and comments only ever move to the end of a line or before a line, never
// into or out of such a construct.
//
// Expression printing recurses over Expr; cst_to_ast bounds depth by ast::kMaxExprDepth.
#include "compiler/fmt.h"

#include <algorithm>
#include <set>

#include "compiler/ast_dump.h"
#include "compiler/parse/parser.h"

namespace writ {
namespace {

using ast::Expr;
using ast::ExprKind;

constexpr size_t kWidth = 100;  // columns, as in the house C++ style
constexpr int kIndent = 4;

// ---- expressions on one line ----

bool IsKeyword(const std::string& s) {
  static const std::set<std::string> k{"permit", "forbid", "rule",  "when", "unless", "if",
                                       "then",   "else",   "in",    "has",  "like",   "matches",
                                       "is",     "true",   "false", "and",  "or"};
  return k.count(s) > 0;
}

// A name printable bare after `.`, `has` or as a record key.
bool IsPlainName(const std::string& s) {
  if (s.empty() || IsKeyword(s)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Binding strength, loosest first; mirrors the grammar.
enum Prec : int {
  kPrecIf = 0,
  kPrecOr = 1,
  kPrecAnd = 2,
  kPrecRel = 3,  // == != < <= > >= in has like matches is (non-associative)
  kPrecAdd = 4,
  kPrecMul = 5,
  kPrecUnary = 6,   // ! - and negative literals
  kPrecMember = 7,  // .a ["a"] .m()
  kPrecPrimary = 8,
};

int PrecOf(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kIf: return kPrecIf;
    case ExprKind::kOr: return kPrecOr;
    case ExprKind::kAnd: return kPrecAnd;
    case ExprKind::kHas:
    case ExprKind::kLike:
    case ExprKind::kMatches:
    case ExprKind::kIs: return kPrecRel;
    case ExprKind::kBinary:
      if (e.op == ast::BinOp::kAdd || e.op == ast::BinOp::kSub) return kPrecAdd;
      if (e.op == ast::BinOp::kMul) return kPrecMul;
      return kPrecRel;
    case ExprKind::kNot:
    case ExprKind::kNeg: return kPrecUnary;
    case ExprKind::kLong: return e.i < 0 ? kPrecUnary : kPrecPrimary;
    case ExprKind::kAttr:
    case ExprKind::kMethod: return kPrecMember;
    default: return kPrecPrimary;
  }
}

bool IsChain(const Expr& e) { return e.kind == ExprKind::kAnd || e.kind == ExprKind::kOr; }

std::string Flat(const Expr& e);

// `e` printed where the grammar needs at least precedence `min`.
std::string Wrapped(const Expr& e, int min) {
  return PrecOf(e) < min ? "(" + Flat(e) + ")" : Flat(e);
}

std::string Joined(const std::vector<ast::ExprPtr>& kids, size_t from) {
  std::string out;
  for (size_t i = from; i < kids.size(); ++i) out += (i > from ? ", " : "") + Flat(*kids[i]);
  return out;
}

std::string Name(const std::string& s) { return IsPlainName(s) ? s : ast::Quote(s); }

// A like pattern: chunks escaped as strings, literal stars as `\*`, wildcards as `*`.
std::string LikeText(const ast::LikePattern& p) {
  std::string out = "\"";
  for (size_t i = 0; i < p.chunks.size(); ++i) {
    if (i > 0) out += '*';
    std::string q = ast::Quote(p.chunks[i]);
    for (size_t k = 1; k + 1 < q.size(); ++k) {
      if (q[k] == '*') out += '\\';
      out += q[k];
    }
  }
  return out + "\"";
}

std::string Flat(const Expr& e) {
  const auto& k = e.kids;
  switch (e.kind) {
    case ExprKind::kBool: return e.b ? "true" : "false";
    case ExprKind::kLong: return std::to_string(e.i);
    case ExprKind::kString: return ast::Quote(e.str);
    case ExprKind::kDuration: return e.str;  // source spelling, e.g. 1h30m
    case ExprKind::kEntity: return e.type + "::" + ast::Quote(e.str);
    case ExprKind::kVar:
    case ExprKind::kSymbol: return e.str;
    case ExprKind::kSet: return "[" + Joined(k, 0) + "]";
    case ExprKind::kRecord: {
      std::string out = "{";
      for (size_t i = 0; i < k.size(); ++i) {
        out += (i ? ", " : "") + Name(e.keys[i]) + ": " + Flat(*k[i]);
      }
      return out + "}";
    }
    case ExprKind::kAttr:
      return Wrapped(*k[0], kPrecMember) +
             (IsPlainName(e.str) ? "." + e.str : "[" + ast::Quote(e.str) + "]");
    case ExprKind::kHas: return Wrapped(*k[0], kPrecAdd) + " has " + Name(e.str);
    case ExprKind::kLike: return Wrapped(*k[0], kPrecAdd) + " like " + LikeText(e.pattern);
    case ExprKind::kMatches: return Wrapped(*k[0], kPrecAdd) + " matches " + ast::Quote(e.str);
    case ExprKind::kIs:
      return Wrapped(*k[0], kPrecAdd) + " is " + e.type +
             (k.size() > 1 ? " in " + Wrapped(*k[1], kPrecAdd) : "");
    case ExprKind::kMethod:
      return Wrapped(*k[0], kPrecMember) + "." + e.str + "(" + Joined(k, 1) + ")";
    case ExprKind::kCall: return e.str + "(" + Joined(k, 0) + ")";
    case ExprKind::kNot: return "!" + Wrapped(*k[0], kPrecUnary);
    case ExprKind::kNeg:
      // `-5` would read back as the literal -5, not as negation of 5: keep `-(5)`.
      if (k[0]->kind == ExprKind::kLong && k[0]->i >= 0) return "-(" + Flat(*k[0]) + ")";
      return "-" + Wrapped(*k[0], kPrecUnary);
    case ExprKind::kBinary: {
      int prec = PrecOf(e);
      // Left-associative + - *: the left operand may share the level, the right may not.
      int left = prec == kPrecRel ? kPrecAdd : prec;
      int right = prec + 1;
      return Wrapped(*k[0], left) + " " + ast::BinOpSpelling(e.op) + " " + Wrapped(*k[1], right);
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      bool is_and = e.kind == ExprKind::kAnd;
      std::string out;
      for (size_t i = 0; i < k.size(); ++i) {
        out += (i ? (is_and ? " && " : " || ") : "") +
               Wrapped(*k[i], is_and ? kPrecRel : kPrecAnd);
      }
      return out;
    }
    case ExprKind::kIf:
      return "if " + Flat(*k[0]) + " then " + Flat(*k[1]) + " else " + Flat(*k[2]);
  }
  return "";
}

std::string ObligationText(const ast::Obligation& o) {
  std::string out = std::string(ast::ObligationName(o.kind)) + "(";
  for (size_t i = 0; i < o.args.size(); ++i) {
    const auto& a = o.args[i];
    out += (i ? ", " : "") + (a.name.empty() ? "" : a.name + ": ") + Flat(*a.value);
  }
  return out + ")";
}

std::string ScopeText(const ast::Scope& s) {
  std::string out = ast::ScopeVarName(s.var);  // `tool` is printed `resource`
  auto entities = [&] {
    std::string list;
    for (size_t i = 0; i < s.entities.size(); ++i) {
      list += (i ? ", " : "") + s.entities[i].type + "::" + ast::Quote(s.entities[i].id);
    }
    return s.set_syntax ? "[" + list + "]" : list;
  };
  switch (s.op) {
    case ast::ScopeOp::kAny: break;
    case ast::ScopeOp::kEq: out += " == " + entities(); break;
    case ast::ScopeOp::kIn: out += " in " + entities(); break;
    case ast::ScopeOp::kIs: out += " is " + s.is_type; break;
    case ast::ScopeOp::kIsIn: out += " is " + s.is_type + " in " + entities(); break;
  }
  return out;
}

// ---- layout ----

struct Line {
  int indent = 0;
  std::string text;
  uint32_t start = 0;  // source offset of the first thing printed on this line
  uint32_t end = 0;    // source offset just past the last thing printed on this line
  int comment_indent = 0;
  bool stmt_first = false;            // first line of a statement
  std::vector<size_t> before, after;  // comment groups placed here
};

struct CommentGroup {
  uint32_t begin = 0, end = 0;
  std::string text;  // the comments joined by one space
  bool line_comment_last = false;
};

class Printer {
 public:
  Printer(const SourceMap& sources, const ast::PolicyFile& file)
      : text_(sources.file(file.file).text()), file_(file) {}

  std::string Run() {
    for (const auto& s : file_.statements) Statement(s);
    GroupComments();
    PlaceComments();
    return Render();
  }

 private:
  void Add(int indent, std::string text, uint32_t start, uint32_t end, int comment_indent = -1) {
    Line l;
    l.indent = indent;
    l.text = std::move(text);
    l.start = start;
    l.end = end;
    l.comment_indent = comment_indent < 0 ? indent : comment_indent;
    lines_.push_back(std::move(l));
  }

  // The first source offset at or after `pos` that is not blank and not in a comment.
  uint32_t NextToken(uint32_t pos) const {
    const uint32_t n = static_cast<uint32_t>(text_.size());
    while (pos < n) {
      char c = text_[pos];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') {
        ++pos;
      } else if (c == '/' && pos + 1 < n && text_[pos + 1] == '/') {
        while (pos < n && text_[pos] != '\n') ++pos;
      } else if (c == '/' && pos + 1 < n && text_[pos + 1] == '*') {
        size_t close = text_.find("*/", pos + 2);
        pos = close == std::string::npos ? n : static_cast<uint32_t>(close + 2);
      } else {
        break;
      }
    }
    return pos;
  }

  // The `then` keyword after `pos`, skipping the `)` of parenthesized expressions.
  uint32_t FindThen(uint32_t pos) const {
    pos = NextToken(pos);
    while (pos < text_.size() && text_[pos] == ')') pos = NextToken(pos + 1);
    return pos;
  }

  bool HasComment(uint32_t begin, uint32_t end) const {
    for (const auto& c : file_.comments) {
      if (c.span.begin >= begin && c.span.begin < end) return true;
    }
    return false;
  }

  // A chain holding a comment before its last operand is broken one operand per line, so the
  // comment keeps its place between operands.
  bool ForcedBreak(const Expr& e) const {
    return IsChain(e) && HasComment(e.kids.front()->span.begin, e.kids.back()->span.begin);
  }

  // Prints `e` starting with `prefix` at `indent`. Only `&&` / `||` chains are ever broken:
  // one operand per line, the operator leading; a broken chain nested in another one is
  // wrapped in `(` ... `)` and indented one more level.
  void EmitExpr(const Expr& e, int indent, const std::string& prefix, int min_prec, bool nested,
                size_t extra) {
    std::string flat = Wrapped(e, min_prec);
    if (!IsChain(e) ||
        (!ForcedBreak(e) && indent + prefix.size() + flat.size() + extra <= kWidth)) {
      Add(indent, prefix + flat, e.span.begin, e.span.end);
      return;
    }
    int inner = indent;
    if (nested) {
      Add(indent, prefix + "(", e.span.begin, e.span.begin);
      inner += kIndent;
    }
    bool is_and = e.kind == ExprKind::kAnd;
    for (size_t i = 0; i < e.kids.size(); ++i) {
      EmitExpr(*e.kids[i], inner, i ? (is_and ? "&& " : "|| ") : "",
               is_and ? kPrecRel : kPrecAnd, true, nested ? 0 : extra);
    }
    if (nested) {
      // Anchor `)` on the source's closing parenthesis when there is one, so a comment before
      // it stays inside the parentheses on the next run too.
      uint32_t close = NextToken(e.span.end);
      bool paren = close < text_.size() && text_[close] == ')';
      Add(indent, ")", paren ? close : e.span.end, paren ? close + 1 : e.span.end, inner);
    }
  }

  bool ExprNeedsBlock(const Expr& e, size_t extra) const {
    return ForcedBreak(e) || kIndent + Flat(e).size() + extra > kWidth;
  }

  void Statement(const ast::Statement& s) {
    size_t first = lines_.size();
    for (const auto& a : s.annotations) {
      Add(0, "@" + a.name + (a.has_value ? "(" + ast::Quote(a.value) + ")" : ""), a.span.begin,
          a.span.end);
    }
    const bool has_obligations = !s.obligations.empty();
    uint32_t after_head;  // where the text after the scope / rule condition begins
    if (s.effect == ast::Effect::kRule) {
      const Expr& cond = *s.rule_condition;
      uint32_t if_pos = NextToken(s.effect_span.end);
      uint32_t then_pos = FindThen(cond.span.end);
      std::string one = "rule if " + Flat(cond);
      // A comment anywhere between `rule` and `then` selects the block form, which keeps it
      // there (a flat line would move it after the condition).
      if (one.size() <= kWidth && !ForcedBreak(cond) &&
          !HasComment(s.effect_span.end, then_pos)) {
        Add(0, one, s.effect_span.begin, cond.span.end);
      } else {
        Add(0, "rule if", s.effect_span.begin, if_pos + 2);
        EmitExpr(cond, kIndent, "", kPrecIf, false, 0);
      }
      after_head = then_pos;
    } else {
      std::string effect = ast::EffectName(s.effect);
      const ast::Scope* items[3] = {&s.principal, &s.action, &s.resource};
      uint32_t open = NextToken(s.effect_span.end);
      uint32_t close = NextToken(s.resource.span.end);
      if (close < text_.size() && text_[close] == ',') close = NextToken(close + 1);
      std::string one = effect + " (";
      for (int i = 0; i < 3; ++i) one += (i ? ", " : "") + ScopeText(*items[i]);
      one += ")";
      size_t extra = s.conditions.empty() && !has_obligations ? 1 : 0;  // the `;`
      if (one.size() + extra <= kWidth && !HasComment(open + 1, close)) {
        Add(0, one, s.effect_span.begin, close + 1);
      } else {
        Add(0, effect + " (", s.effect_span.begin, open + 1);
        for (int i = 0; i < 3; ++i) {
          Add(kIndent, ScopeText(*items[i]) + (i < 2 ? "," : ""), items[i]->span.begin,
              items[i]->span.end);
        }
        Add(0, ")", close, close + 1, kIndent);
      }
      for (size_t ci = 0; ci < s.conditions.size(); ++ci) {
        const ast::Condition& c = s.conditions[ci];
        std::string kw = c.unless ? "unless" : "when";
        extra = ci + 1 == s.conditions.size() && !has_obligations ? 1 : 0;
        std::string one_cond = kw + " { " + Flat(*c.expr) + " }";
        if (one_cond.size() + extra <= kWidth && !ExprNeedsBlock(*c.expr, 0) &&
            !HasComment(c.span.begin + 1, c.span.end - 1)) {
          Add(0, one_cond, c.span.begin, c.span.end);
        } else {
          uint32_t brace = NextToken(c.span.begin + static_cast<uint32_t>(kw.size()));
          Add(0, kw + " {", c.span.begin, brace + 1);
          EmitExpr(*c.expr, kIndent, "", kPrecIf, false, 0);
          Add(0, "}", c.span.end - 1, c.span.end, kIndent);
        }
      }
      after_head = FindThen(s.conditions.empty() ? close + 1 : s.conditions.back().span.end);
    }
    if (has_obligations) {
      std::string one = "then " + ObligationText(s.obligations[0]);
      if (s.obligations.size() == 1 && one.size() + 1 <= kWidth) {
        Add(0, one, after_head, s.obligations[0].span.end);
      } else {
        Add(0, "then", after_head, after_head + 4);
        for (size_t i = 0; i < s.obligations.size(); ++i) {
          const auto& o = s.obligations[i];
          Add(kIndent, ObligationText(o) + (i + 1 < s.obligations.size() ? "," : ""),
              o.span.begin, o.span.end);
        }
      }
    }
    lines_.back().text += ";";
    lines_.back().end = std::max(lines_.back().end, s.span.end);
    lines_[first].stmt_first = true;
  }

  // ---- comments ----

  void GroupComments() {
    for (const auto& c : file_.comments) {
      bool is_line = c.text.rfind("//", 0) == 0;
      if (!groups_.empty() && !groups_.back().line_comment_last) {
        CommentGroup& g = groups_.back();
        bool blank_gap = true;
        for (uint32_t p = g.end; p < c.span.begin; ++p) {
          if (text_[p] != ' ' && text_[p] != '\t') blank_gap = false;
        }
        if (blank_gap) {
          g.text += " " + c.text;
          g.end = c.span.end;
          g.line_comment_last = is_line;
          continue;
        }
      }
      groups_.push_back({c.span.begin, c.span.end, c.text, is_line});
    }
  }

  // If code precedes `pos` on its source line, returns the offset just past that code.
  bool CodeBefore(uint32_t pos, uint32_t* code_end) const {
    uint32_t p = pos;
    while (p > 0 && text_[p - 1] != '\n') {
      char c = text_[p - 1];
      if (c != ' ' && c != '\t' && c != '\r' && c != '\f') {
        *code_end = p;
        return true;
      }
      --p;
    }
    return false;
  }

  void PlaceComments() {
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const CommentGroup& g = groups_[gi];
      uint32_t code_end = 0;
      if (!lines_.empty() && CodeBefore(g.begin, &code_end)) {
        // Trailing: the last line that starts before the code the comment follows.
        auto it = std::partition_point(lines_.begin(), lines_.end(),
                                       [&](const Line& l) { return l.start < code_end; });
        size_t idx = it == lines_.begin() ? 0 : static_cast<size_t>(it - lines_.begin()) - 1;
        lines_[idx].after.push_back(gi);
        continue;
      }
      auto it = std::partition_point(lines_.begin(), lines_.end(),
                                     [&](const Line& l) { return l.end <= g.begin; });
      if (it == lines_.end()) {
        eof_.push_back(gi);
      } else if (g.begin > it->start) {
        it->after.push_back(gi);  // inside an expression printed on one line
      } else {
        it->before.push_back(gi);
      }
    }
    // A `//` comment ends its line: comments that would follow it there go on their own
    // lines before the next line instead (exactly where a second run would put them).
    for (size_t i = lines_.size(); i-- > 0;) {
      std::vector<size_t>& after = lines_[i].after;
      auto cut = std::find_if(after.begin(), after.end(),
                              [&](size_t g) { return groups_[g].line_comment_last; });
      if (cut == after.end() || cut + 1 == after.end()) continue;
      std::vector<size_t> moved(cut + 1, after.end());
      after.erase(cut + 1, after.end());
      std::vector<size_t>& dest = i + 1 < lines_.size() ? lines_[i + 1].before : eof_;
      dest.insert(dest.begin(), moved.begin(), moved.end());
    }
  }

  // Is there a blank line between the end of group `gi` and the next non-blank text?
  bool BlankAfter(size_t gi) const {
    int newlines = 0;
    for (size_t p = groups_[gi].end; p < text_.size(); ++p) {
      char c = text_[p];
      if (c == '\n') {
        ++newlines;
      } else if (c != ' ' && c != '\t' && c != '\r' && c != '\f') {
        break;
      }
    }
    return newlines >= 2;
  }

  std::string Render() const {
    std::string out;
    auto emit = [&](int indent, const std::string& s) {
      out.append(static_cast<size_t>(indent), ' ');
      out += s;
      out += '\n';
    };
    for (const Line& l : lines_) {
      if (l.stmt_first && !out.empty()) out += '\n';
      for (size_t gi : l.before) {
        emit(l.comment_indent, groups_[gi].text);
        if (l.stmt_first && BlankAfter(gi)) out += '\n';
      }
      std::string text = l.text;
      for (size_t gi : l.after) text += " " + groups_[gi].text;
      emit(l.indent, text);
    }
    for (size_t i = 0; i < eof_.size(); ++i) {
      if (i == 0 && !out.empty()) out += '\n';
      emit(0, groups_[eof_[i]].text);
      if (i + 1 < eof_.size() && BlankAfter(eof_[i])) out += '\n';
    }
    return out;
  }

  const std::string& text_;
  const ast::PolicyFile& file_;
  std::vector<Line> lines_;
  std::vector<CommentGroup> groups_;
  std::vector<size_t> eof_;
};

// Copies a dump, dropping ` [b,e)` spans and spelling attributes one way: `(attr "name"`.
std::string Normalize(const std::string& dump) {
  std::string out;
  size_t i = 0, n = dump.size();
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  bool close_bracket = false;  // after the string of `(attr ["x"]`, drop the `]`
  while (i < n) {
    char c = dump[i];
    if (c == '"') {  // a quoted string: copy verbatim up to the unescaped closing quote
      size_t j = i + 1;
      while (j < n && dump[j] != '"') j += dump[j] == '\\' ? 2 : 1;
      out.append(dump, i, j + 1 - i);
      i = j + 1;
      if (close_bracket && i < n && dump[i] == ']') ++i;
      close_bracket = false;
      continue;
    }
    if (c == ' ' && i + 1 < n && dump[i + 1] == '[' && i + 2 < n && is_digit(dump[i + 2])) {
      size_t j = i + 2;
      while (j < n && (is_digit(dump[j]) || dump[j] == ',')) ++j;
      if (j < n && dump[j] == ')') {
        i = j + 1;
        continue;
      }
    }
    if (dump.compare(i, 7, "(attr .") == 0) {
      size_t j = i + 7;
      while (j < n && dump[j] != ' ' && dump[j] != '\n' && dump[j] != ')') ++j;
      out += "(attr " + ast::Quote(dump.substr(i + 7, j - i - 7));
      i = j;
      continue;
    }
    if (dump.compare(i, 7, "(attr [") == 0) {
      out += "(attr ";
      i += 7;
      close_bracket = true;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

std::vector<std::string> CommentTexts(const ast::PolicyFile& f) {
  std::vector<std::string> out;
  for (const auto& c : f.comments) out.push_back(c.text);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string Format(const SourceMap& sources, const ast::PolicyFile& file) {
  return Printer(sources, file).Run();
}

std::string MeaningDump(const ast::PolicyFile& file) {
  std::string out;
  for (const auto& s : file.statements) out += ast::DumpStatement(s);
  return Normalize(out);
}

FormatResult FormatSource(const std::string& path, const std::string& text, SourceMap* sources,
                          Diagnostics* diags) {
  FormatResult r;
  uint32_t id = sources->Add(path, text);
  ast::PolicyFile in = ParseFile(*sources, id, diags);
  if (diags->has_errors()) {
    r.status = FormatStatus::kParseError;
    return r;
  }
  r.text = Format(*sources, in);
  SourceMap again;
  Diagnostics again_diags;
  ast::PolicyFile out = ParseFile(again, again.Add(path, r.text), &again_diags);
  if (again_diags.has_errors()) {
    r.status = FormatStatus::kInternal;
    r.detail = "the formatted text does not parse:\n" +
               Render(again, again_diags.items(), DiagnosticFormat::kText);
  } else if (MeaningDump(in) != MeaningDump(out)) {
    r.status = FormatStatus::kInternal;
    r.detail = "the formatted text parses to a different AST";
  } else if (CommentTexts(in) != CommentTexts(out)) {
    r.status = FormatStatus::kInternal;
    r.detail = "the formatted text does not keep every comment";
  }
  return r;
}

}  // namespace writ
