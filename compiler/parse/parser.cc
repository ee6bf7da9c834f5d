// parser.cc -- ParseFile(): lexing, the depth pre-scan, ANTLR parsing with Writ diagnostics
// in place of ANTLR's console printer, then cst_to_ast.
#include "compiler/parse/parser.h"

#include <filesystem>
#include <set>

#include "WritLexer.h"
#include "WritParser.h"
#include "antlr4-runtime.h"
#include "base/utf8.h"
#include "compiler/parse/cst_to_ast.h"
#include "compiler/parse/token_offsets.h"

namespace writ {
namespace {

using writgen::WritLexer;
using writgen::WritParser;

// A friendly name for a token type in "expected ..." lists.
std::string TokenName(const antlr4::dfa::Vocabulary& vocab, size_t type) {
  if (type == antlr4::Token::EOF) return "end of file";
  switch (type) {
    case WritLexer::IDENT: return "a name";
    case WritLexer::INT: return "a number";
    case WritLexer::SUFFIXED_INT: return "a duration";
    case WritLexer::STRING: return "a string";
    default: break;
  }
  std::string lit = vocab.getLiteralName(type);
  if (lit.size() >= 2 && lit.front() == '\'') return "`" + lit.substr(1, lit.size() - 2) + "`";
  return vocab.getDisplayName(type);
}

std::string DescribeToken(antlr4::Token* t) {
  if (t->getType() == antlr4::Token::EOF) return "end of file";
  return "`" + t->getText() + "`";
}

bool IsStatementStart(size_t type) {
  return type == WritLexer::PERMIT || type == WritLexer::FORBID || type == WritLexer::RULE ||
         type == WritLexer::AT || type == antlr4::Token::EOF;
}

// Replaces ANTLR's printing with Writ diagnostics; at most one syntax error per statement.
class ErrorStrategy : public antlr4::DefaultErrorStrategy {
 public:
  ErrorStrategy(const TokenOffsets& offsets, uint32_t file, Diagnostics* diags,
                antlr4::CommonTokenStream* tokens, std::vector<uint32_t>* error_offsets)
      : offsets_(offsets), file_(file), diags_(diags), tokens_(tokens),
        error_offsets_(error_offsets) {}

 protected:
  void reportNoViableAlternative(antlr4::Parser* p, const antlr4::NoViableAltException& e) override {
    Report(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) override {
    Report(p, e.getOffendingToken(), e.getExpectedTokens());
  }
  void reportFailedPredicate(antlr4::Parser* p, const antlr4::FailedPredicateException& e) override {
    Report(p, e.getOffendingToken(), p->getExpectedTokens());
  }
  void reportUnwantedToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    Report(p, p->getCurrentToken(), getExpectedTokens(p));
  }
  void reportMissingToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    Report(p, p->getCurrentToken(), getExpectedTokens(p));
  }

 private:
  void Report(antlr4::Parser* p, antlr4::Token* tok, const antlr4::misc::IntervalSet& expected) {
    if (tok == nullptr) return;
    const ssize_t index = static_cast<ssize_t>(tok->getTokenIndex());
    if (index <= suppress_through_) return;
    // Suppress further errors up to the end of this statement (the next `;`).
    suppress_through_ = index;
    for (size_t i = static_cast<size_t>(index); i < tokens_->size(); ++i) {
      size_t ty = tokens_->get(i)->getType();
      suppress_through_ = static_cast<ssize_t>(i);
      if (ty == WritLexer::SEMI || ty == antlr4::Token::EOF) break;
      // A statement keyword at the start of a line begins the next statement (the `;` was
      // probably forgotten): report errors there again.
      if (i > static_cast<size_t>(index) && IsStatementStart(ty) &&
          tokens_->get(i)->getCharPositionInLine() == 0) {
        suppress_through_ = static_cast<ssize_t>(i) - 1;
        break;
      }
    }
    Span at = offsets_.TokenSpan(file_, tok);
    error_offsets_->push_back(at.begin);
    const auto& vocab = p->getVocabulary();
    const size_t type = tok->getType();

    // Missing `;` between statements.
    if (expected.contains(static_cast<size_t>(WritLexer::SEMI)) && IsStatementStart(type)) {
      Span prev = PreviousTokenEnd(tok);
      diags_->Error("E0103", prev, "missing `;` after statement",
                    "end every statement with `;`");
      return;
    }
    if (antlr4::Token* open = UnclosedBracket(tok)) {
      const std::string o = open->getText();
      const std::string c = o == "(" ? ")" : o == "[" ? "]" : "}";
      diags_->Error("E0100", offsets_.TokenSpan(file_, open), "unclosed `" + o + "`",
                    "add the matching `" + c + "` before " + DescribeToken(tok) + " on line " +
                        std::to_string(tok->getLine()));
      return;
    }
    if (expected.contains(static_cast<size_t>(WritLexer::LBRACE)) && type == WritLexer::LPAREN) {
      diags_->Error("E0100", at, "expected `{` after `when` / `unless`",
                    "conditions go in braces: `when { ... }`");
      return;
    }
    if (type == WritLexer::ASSIGN) {
      diags_->Error("E0104", at, "`=` is not an operator in writ", "use `==` to compare values");
      return;
    }
    std::vector<std::string> names;
    for (ssize_t t : expected.toList()) {
      if (t < 0 && t != static_cast<ssize_t>(antlr4::Token::EOF)) continue;
      std::string n = TokenName(vocab, static_cast<size_t>(t));
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    std::string help;
    if (names.empty()) {
      help = "check the statement against the examples in docs/language.md";
    } else if (names.size() <= 6) {
      help = "expected ";
      for (size_t i = 0; i < names.size(); ++i) {
        if (i > 0) help += i + 1 == names.size() ? " or " : ", ";
        help += names[i];
      }
    } else if (expected.contains(static_cast<size_t>(WritLexer::INT)) &&
               expected.contains(static_cast<size_t>(WritLexer::IDENT))) {
      help = "expected an expression, such as `args.amount`, `10` or `\"text\"`";
    } else {
      // After a complete operand: name the closing brackets and keywords that could follow.
      std::vector<std::string> closers;
      for (size_t c : {WritLexer::RPAREN, WritLexer::RBRACK, WritLexer::RBRACE, WritLexer::THEN,
                       WritLexer::ELSE, WritLexer::SEMI}) {
        if (expected.contains(c)) closers.push_back(TokenName(vocab, c));
      }
      if (closers.empty()) {
        help = "this token cannot appear here; check the statement against docs/language.md";
      } else {
        help = "expected an operator or ";
        for (size_t i = 0; i < closers.size(); ++i) {
          if (i > 0) help += i + 1 == closers.size() ? " or " : ", ";
          help += closers[i];
        }
      }
    }
    diags_->Error("E0100", at, "unexpected " + DescribeToken(tok), help);
  }

  // If `tok` is a closing bracket that does not match the innermost open bracket of its
  // statement, or a `;` / end of file while a bracket is open, returns that open bracket.
  antlr4::Token* UnclosedBracket(antlr4::Token* tok) {
    const size_t type = tok->getType();
    const bool closer = type == WritLexer::RPAREN || type == WritLexer::RBRACK ||
                        type == WritLexer::RBRACE;
    if (!closer && type != WritLexer::SEMI && type != antlr4::Token::EOF) return nullptr;
    size_t begin = tok->getTokenIndex();
    while (begin > 0 && tokens_->get(begin - 1)->getType() != WritLexer::SEMI) --begin;
    std::vector<antlr4::Token*> stack;
    for (size_t i = begin; i < tok->getTokenIndex(); ++i) {
      antlr4::Token* t = tokens_->get(i);
      switch (t->getType()) {
        case WritLexer::LPAREN: case WritLexer::LBRACK: case WritLexer::LBRACE:
          stack.push_back(t);
          break;
        case WritLexer::RPAREN: case WritLexer::RBRACK: case WritLexer::RBRACE:
          if (stack.empty()) return nullptr;  // some other problem; let the generic path speak
          stack.pop_back();
          break;
        default:
          break;
      }
    }
    if (stack.empty()) return nullptr;
    if (!closer) return stack.back();
    const size_t open = stack.back()->getType();
    const bool match = (open == WritLexer::LPAREN && type == WritLexer::RPAREN) ||
                       (open == WritLexer::LBRACK && type == WritLexer::RBRACK) ||
                       (open == WritLexer::LBRACE && type == WritLexer::RBRACE);
    return match ? nullptr : stack.back();
  }

  Span PreviousTokenEnd(antlr4::Token* tok) {
    for (ssize_t i = static_cast<ssize_t>(tok->getTokenIndex()) - 1; i >= 0; --i) {
      antlr4::Token* t = tokens_->get(static_cast<size_t>(i));
      if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
      Span s = offsets_.TokenSpan(file_, t);
      return Span{file_, s.end, s.end};
    }
    return offsets_.TokenSpan(file_, tok);
  }

  const TokenOffsets& offsets_;
  uint32_t file_;
  Diagnostics* diags_;
  antlr4::CommonTokenStream* tokens_;
  std::vector<uint32_t>* error_offsets_;
  ssize_t suppress_through_ = -1;
};

// Reports lexical errors and nesting beyond kMaxNesting. Returns false if parsing must not
// run. Collects comments for the formatter.
bool PreScan(antlr4::CommonTokenStream& tokens, const TokenOffsets& offsets, uint32_t file,
             Diagnostics* diags, std::vector<ast::Comment>* comments) {
  bool ok = true;
  int depth = 0, ifs = 0;
  bool reported_depth = false;
  for (antlr4::Token* t : tokens.getTokens()) {
    Span s = offsets.TokenSpan(file, t);
    switch (t->getType()) {
      case WritLexer::LINE_COMMENT:
      case WritLexer::BLOCK_COMMENT:
        comments->push_back({s, t->getText()});
        break;
      case WritLexer::UNTERMINATED_STRING:
        diags->Error("E0101", s, "unterminated string", "add the closing `\"` on the same line");
        ok = false;
        break;
      case WritLexer::SQ_STRING:
        diags->Error("E0102", s, "strings use double quotes, not `'`",
                     "write \"" + t->getText().substr(1, t->getText().size() - 2) + "\"");
        ok = false;
        break;
      case WritLexer::UNTERMINATED_COMMENT:
        diags->Error("E0115", Span{file, s.begin, s.begin + 2}, "unterminated block comment",
                     "close the comment with `*/`");
        ok = false;
        break;
      case WritLexer::ERROR_CHAR: {
        std::string text = t->getText();
        std::string help = "remove this character";
        if (text == "&") help = "use `&&` for logical and";
        if (text == "|") help = "use `||` for logical or";
        if (text == "'") help = "strings use double quotes: \"...\"";
        if (text == "#") help = "comments start with `//`";
        diags->Error("E0102", s, "unexpected character `" + text + "`", help);
        ok = false;
        break;
      }
      case WritLexer::LPAREN:
      case WritLexer::LBRACK:
      case WritLexer::LBRACE:
        ++depth;
        break;
      case WritLexer::RPAREN:
      case WritLexer::RBRACK:
      case WritLexer::RBRACE:
        if (depth > 0) --depth;
        break;
      case WritLexer::IF:
        ++ifs;
        break;
      case WritLexer::SEMI:
        ifs = 0;
        break;
      default:
        break;
    }
    if (depth + ifs > kMaxNesting && !reported_depth) {
      diags->Error("E0111", s, "expression nests too deeply",
                   "writ allows at most " + std::to_string(kMaxNesting) +
                       " nested brackets and `if`s in a statement; split the condition");
      reported_depth = true;
      ok = false;
    }
  }
  return ok;
}

}  // namespace

ast::PolicyFile ParseFile(const SourceMap& sources, uint32_t file, Diagnostics* diags) {
  ast::PolicyFile out;
  out.file = file;
  const std::string& text = sources.file(file).text();
  if (text.size() > kMaxPolicyFileBytes) {
    diags->Error("E0100", Span{file, 0, 0}, "policy file is larger than 16 MiB",
                 "split the policies into several files");
    return out;
  }
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    uint32_t b = static_cast<uint32_t>(bad);
    diags->Error("E0102", Span{file, b, b + 1}, "file is not valid utf-8",
                 "save the file as UTF-8");
    return out;
  }
  try {
    TokenOffsets offsets(text);
    antlr4::ANTLRInputStream input(text);
    WritLexer lexer(&input);
    lexer.removeErrorListeners();
    antlr4::CommonTokenStream tokens(&lexer);
    tokens.fill();
    if (!PreScan(tokens, offsets, file, diags, &out.comments)) return out;

    WritParser parser(&tokens);
    parser.removeErrorListeners();
    std::vector<uint32_t> error_offsets;
    parser.setErrorHandler(
        std::make_shared<ErrorStrategy>(offsets, file, diags, &tokens, &error_offsets));
    WritParser::FileContext* tree = parser.file();
    parse::CstToAst(sources, file, tree, &out, diags);
  } catch (const std::exception& e) {
    diags->Error("E0100", Span{file, 0, 0}, std::string("internal parser error: ") + e.what(),
                 "please report this input as a bug");
  }
  return out;
}

ast::PolicySet ParseAll(const SourceMap& sources, Diagnostics* diags) {
  ast::PolicySet set;
  for (uint32_t i = 0; i < sources.files().size(); ++i) {
    set.files.push_back(ParseFile(sources, i, diags));
  }
  return set;
}

}  // namespace writ
