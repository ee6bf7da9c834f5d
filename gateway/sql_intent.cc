// sql_intent.cc -- see sql_intent.h.
#include "gateway/sql_intent.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

namespace writ::gateway {
namespace {

enum class Tok { kWord, kIdent, kString, kNumber, kPunct, kSemi };

struct Token {
  Tok kind;
  std::string upper;  // kWord: the word in upper case; kPunct: the character; kNumber: digits
};

// Lexes `s`. `backslash`: a backslash escapes the next character inside '...' and "...".
// Stops after kMaxTokens tokens (sets *truncated).
constexpr size_t kMaxTokens = 200000;

std::vector<Token> Lex(std::string_view s, bool backslash, bool* truncated,
                       size_t max_tokens = kMaxTokens) {
  std::vector<Token> out;
  size_t i = 0, n = s.size();
  auto at = [&](size_t k) -> char { return k < n ? s[k] : '\0'; };
  while (i < n) {
    if (out.size() >= max_tokens) {
      *truncated = true;
      break;
    }
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '-' && at(i + 1) == '-' &&
        (i + 2 >= n || std::isspace(static_cast<unsigned char>(at(i + 2))))) {
      while (i < n && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && at(i + 1) == '*') {
      if (at(i + 2) == '!') {  // MySQL executable comment: its text runs; skip the version
        i += 3;
        while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        continue;
      }
      size_t end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? n : end + 2;
      continue;
    }
    if (c == '*' && at(i + 1) == '/') {  // the end of an executable comment
      i += 2;
      continue;
    }
    if (c == '\'' || c == '"' || c == '`') {
      char q = c;
      ++i;
      while (i < n) {
        if (backslash && s[i] == '\\' && q != '`') {
          i += 2;
          continue;
        }
        if (s[i] == q) {
          if (at(i + 1) == q) {
            i += 2;
            continue;
          }
          break;
        }
        ++i;
      }
      i = std::min(n, i + 1);
      out.push_back({q == '\'' ? Tok::kString : Tok::kIdent, ""});
      continue;
    }
    if (c == '$') {  // $tag$ ... $tag$ (PostgreSQL), or a parameter $1
      size_t j = i + 1;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_') &&
             !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        ++j;
      if (j < n && s[j] == '$') {
        std::string_view tag = s.substr(i, j - i + 1);
        size_t end = s.find(tag, j + 1);
        i = end == std::string_view::npos ? n : end + tag.size();
        out.push_back({Tok::kString, ""});
        continue;
      }
      ++i;
      while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      out.push_back({Tok::kPunct, "$"});
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
        static_cast<unsigned char>(c) >= 0x80) {
      size_t j = i;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' ||
                       s[j] == '$' || static_cast<unsigned char>(s[j]) >= 0x80))
        ++j;
      std::string w(s.substr(i, j - i));
      for (auto& ch : w) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      out.push_back({Tok::kWord, std::move(w)});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      out.push_back({Tok::kNumber, std::string(s.substr(i, j - i))});
      i = j;
      continue;
    }
    out.push_back({c == ';' ? Tok::kSemi : Tok::kPunct, std::string(1, c)});
    ++i;
  }
  return out;
}

bool IsWord(const std::vector<Token>& t, size_t i, std::string_view w) {
  return i < t.size() && t[i].kind == Tok::kWord && t[i].upper == w;
}
bool IsPunct(const std::vector<Token>& t, size_t i, char c) {
  return i < t.size() && t[i].kind == Tok::kPunct && t[i].upper.size() == 1 && t[i].upper[0] == c;
}
bool IsName(const std::vector<Token>& t, size_t i) {
  return i < t.size() && (t[i].kind == Tok::kWord || t[i].kind == Tok::kIdent);
}

// A number token as an integer (saturating); -1 if it is not a plain integer.
int64_t AsInt(const Token& t) {
  if (t.kind != Tok::kNumber || t.upper.empty()) return -1;
  int64_t v = 0;
  for (char c : t.upper) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (c - '0');
  }
  return v;
}

const std::set<std::string, std::less<>>& ObjectKinds() {
  static const auto* k = new std::set<std::string, std::less<>>{
      "TABLE",        "DATABASE",     "SCHEMA",    "INDEX",      "VIEW",        "USER",
      "ROLE",         "FUNCTION",     "PROCEDURE", "TRIGGER",    "SEQUENCE",    "TYPE",
      "EXTENSION",    "MATERIALIZED", "TEMPORARY", "TEMP",       "OR",          "UNIQUE",
      "COLUMN",       "CONSTRAINT",   "DOMAIN",    "POLICY",     "OWNED",       "COLLECTION",
      "KEYSPACE",     "EVENT",        "SERVER",    "TABLESPACE", "PUBLICATION", "SUBSCRIPTION",
      "RULE",         "AGGREGATE",    "UNLOGGED",  "VIRTUAL",    "IF",          "CLUSTERED",
      "NONCLUSTERED", "FOREIGN",      "EXTERNAL",  "STAGE",      "WAREHOUSE",   "STREAM"};
  return *k;
}

struct Verdict {
  Intent intent = Intent::kRead;
  std::string why;
  // Keeps the first reason of the strongest intent.
  void Raise(Intent i, std::string w) {
    if (why.empty() || static_cast<int>(i) > static_cast<int>(intent)) {
      intent = i;
      why = std::move(w);
    }
  }
};

class Classifier {
 public:
  Classifier(const std::vector<Token>& t, int64_t bulk) : t_(t), bulk_(bulk) {}

  // Does [b, e) have the shape of a statement of its leading keyword?
  bool Shaped(size_t b, size_t e) const {
    while (b < e && IsPunct(t_, b, '(')) ++b;
    if (b >= e || t_[b].kind != Tok::kWord) return false;
    const std::string& k = t_[b].upper;
    auto has0 = [&](std::string_view w) { return FindDepth0(b + 1, e, w) != e; };
    if (k == "SELECT") return has0("FROM") || (b + 1 < e && t_[b + 1].kind != Tok::kWord);
    if (k == "WITH") {
      size_t i = b + 1;
      if (IsWord(t_, i, "RECURSIVE")) ++i;
      return IsName(t_, i) && (IsWord(t_, i + 1, "AS") || IsPunct(t_, i + 1, '('));
    }
    if (k == "INSERT" || k == "REPLACE" || k == "MERGE")
      return IsWord(t_, b + 1, "INTO") || IsWord(t_, b + 2, "INTO") ||
             (k == "INSERT" && IsWord(t_, b + 1, "OVERWRITE"));
    if (k == "UPDATE") return IsName(t_, b + 1) && has0("SET");
    if (k == "DELETE") {
      // DELETE [t] FROM name[.name] [[AS] alias WHERE|USING] [WHERE|USING|RETURNING|...]
      size_t i = b + 1;
      if (!IsWord(t_, i, "FROM") && IsWord(t_, i + 1, "FROM")) ++i;  // MySQL DELETE t FROM
      if (!IsWord(t_, i, "FROM") || !IsName(t_, i + 1)) return false;
      i += 2;
      while (IsPunct(t_, i, '.') && IsName(t_, i + 1)) i += 2;
      auto clause = [&](size_t j) {
        return j >= e || IsWord(t_, j, "WHERE") || IsWord(t_, j, "USING") ||
               IsWord(t_, j, "RETURNING") || IsWord(t_, j, "ORDER") || IsWord(t_, j, "LIMIT") ||
               IsWord(t_, j, "JOIN") || IsPunct(t_, j, ',');
      };
      if (clause(i)) return true;
      if (IsWord(t_, i, "AS")) ++i;
      return IsName(t_, i) && i + 1 < e && clause(i + 1);
    }
    if (k == "DROP" || k == "CREATE" || k == "ALTER")
      return b + 1 < e && t_[b + 1].kind == Tok::kWord && ObjectKinds().count(t_[b + 1].upper);
    if (k == "TRUNCATE") {
      if (IsWord(t_, b + 1, "TABLE")) return true;
      size_t i = b + 1;
      if (!IsName(t_, i)) return false;
      ++i;
      while (IsPunct(t_, i, '.') && IsName(t_, i + 1)) i += 2;
      return i >= e || IsPunct(t_, i, ',') || IsWord(t_, i, "CASCADE") ||
             IsWord(t_, i, "RESTRICT") || IsWord(t_, i, "RESTART") || IsWord(t_, i, "CONTINUE");
    }
    if (k == "GRANT" || k == "REVOKE") return has0("ON") && (has0("TO") || has0("FROM"));
    if (k == "COPY")
      return (IsName(t_, b + 1) || IsPunct(t_, b + 1, '(')) && (has0("TO") || has0("FROM"));
    if (k == "UNLOAD") return IsPunct(t_, b + 1, '(');
    if (k == "SHOW" || k == "EXPLAIN" || k == "DESCRIBE" || k == "PRAGMA") return b + 1 < e;
    return false;
  }

  // Classifies the statement [b, e); `depth` bounds the recursion into sub-statements.
  Verdict Statement(size_t b, size_t e, int depth) const {
    Verdict v;
    while (b < e && IsPunct(t_, b, '(')) ++b;
    if (b >= e) {
      v.Raise(Intent::kRead, "an empty statement");
      return v;
    }
    if (t_[b].kind != Tok::kWord) {
      v.Raise(Intent::kWrite, "unrecognized statement");
      return v;
    }
    const std::string& k = t_[b].upper;
    if (k == "SELECT" || k == "VALUES" || k == "TABLE" || k == "SHOW" || k == "DESCRIBE" ||
        k == "DESC") {
      v.Raise(Intent::kRead, k);
      if (k == "SELECT") Select(b, e, &v);
    } else if (k == "WITH") {
      // The main statement follows the CTE list at depth 0.
      size_t main = e;
      int d = 0;
      for (size_t i = b + 1; i < e; ++i) {
        if (IsPunct(t_, i, '(')) ++d;
        if (IsPunct(t_, i, ')')) --d;
        if (d == 0 && t_[i].kind == Tok::kWord && IsStatementWord(t_[i].upper)) {
          main = i;
          break;
        }
      }
      v.Raise(Intent::kRead, "WITH");
      if (main < e && depth < 8) Merge(&v, Statement(main, e, depth + 1));
    } else if (k == "EXPLAIN") {
      v.Raise(Intent::kRead, "EXPLAIN");
      bool analyze = FindAny(b + 1, std::min(e, b + 8), "ANALYZE") < e ||
                     FindAny(b + 1, std::min(e, b + 8), "ANALYSE") < e;
      if (analyze && depth < 8) {
        for (size_t i = b + 1; i < e; ++i) {
          if (t_[i].kind == Tok::kWord && IsStatementWord(t_[i].upper) && t_[i].upper != "WITH") {
            Merge(&v, Statement(i, e, depth + 1), "EXPLAIN ANALYZE runs ");
            break;
          }
        }
      }
    } else if (k == "INSERT" || k == "REPLACE" || k == "UPSERT" || k == "CREATE" || k == "CALL" ||
               k == "EXEC" || k == "EXECUTE" || k == "DO" || k == "LOAD" || k == "ATTACH" ||
               k == "DETACH" || k == "VACUUM" || k == "REINDEX" || k == "CLUSTER" ||
               k == "OPTIMIZE" || k == "LOCK" || k == "ANALYZE" || k == "IMPORT" ||
               k == "REFRESH" || k == "COMMENT" || k == "PUT") {
      v.Raise(Intent::kWrite, k);
    } else if (k == "MERGE") {
      v.Raise(Intent::kWrite, "MERGE");
      if (FindDepth0(b + 1, e, "DELETE") != e) v.Raise(Intent::kDestructive, "MERGE ... DELETE");
    } else if (k == "UPDATE") {
      size_t w = FindDepth0(b + 1, e, "WHERE");
      if (w == e) {
        v.Raise(Intent::kDestructive, "UPDATE without WHERE");
      } else if (Tautology(w + 1, e)) {
        v.Raise(Intent::kDestructive, "UPDATE with an always-true WHERE");
      } else {
        v.Raise(Intent::kWrite, "UPDATE with WHERE");
      }
    } else if (k == "DELETE" || k == "DROP" || k == "TRUNCATE" || k == "ALTER" || k == "GRANT" ||
               k == "REVOKE" || k == "RENAME" || k == "DISCARD" || k == "REMOVE" || k == "PURGE") {
      std::string what = k;
      if ((k == "DROP" || k == "ALTER") && b + 1 < e && t_[b + 1].kind == Tok::kWord)
        what += " " + t_[b + 1].upper;
      v.Raise(Intent::kDestructive, what);
    } else if (k == "COPY") {
      if (FindDepth0(b + 1, e, "TO") != e) {
        v.Raise(Intent::kExfiltrative, "COPY ... TO");
      } else {
        v.Raise(Intent::kWrite, "COPY ... FROM");
      }
    } else if (k == "UNLOAD" || k == "EXPORT" || k == "BACKUP" || k == "GET") {
      v.Raise(Intent::kExfiltrative, k);
    } else if (k == "PRAGMA") {
      v.Raise(FindPunct(b + 1, e, '=') != e ? Intent::kWrite : Intent::kRead, "PRAGMA");
    } else if (k == "BEGIN" || k == "START" || k == "COMMIT" || k == "ROLLBACK" || k == "END" ||
               k == "SAVEPOINT" || k == "RELEASE" || k == "SET" || k == "RESET" || k == "USE" ||
               k == "DECLARE" || k == "FETCH" || k == "CLOSE" || k == "PREPARE" ||
               k == "DEALLOCATE" || k == "LISTEN" || k == "UNLISTEN" || k == "CHECKPOINT" ||
               k == "ABORT") {
      v.Raise(Intent::kRead, k);
    } else {
      v.Raise(Intent::kWrite, "unrecognized statement " + k);
    }
    // Data-modifying sub-statements: `( DELETE ...`, `( UPDATE ...` (PostgreSQL CTEs and
    // subqueries).
    if (depth < 8) {
      for (size_t i = b + 1; i + 1 < e; ++i) {
        if (!IsPunct(t_, i, '(') || t_[i + 1].kind != Tok::kWord) continue;
        const std::string& w = t_[i + 1].upper;
        if (w != "DELETE" && w != "UPDATE" && w != "INSERT" && w != "MERGE" && w != "DROP" &&
            w != "TRUNCATE" && w != "COPY")
          continue;
        size_t close = Close(i, e);
        Merge(&v, Statement(i + 1, close, depth + 1), "a sub-statement is ");
        i = close;  // its own sub-statements were classified by that call: linear per level
      }
    }
    return v;
  }

 private:
  static bool IsStatementWord(const std::string& w) {
    static const auto* k = new std::set<std::string, std::less<>>{
        "SELECT",  "INSERT", "UPDATE",   "DELETE", "MERGE", "WITH", "VALUES", "TABLE",
        "REPLACE", "DROP",   "TRUNCATE", "CREATE", "ALTER", "COPY", "GRANT",  "REVOKE"};
    return k->count(w) > 0;
  }
  static void Merge(Verdict* v, const Verdict& sub, const std::string& prefix = "") {
    v->Raise(sub.intent, prefix + sub.why);
  }

  void Select(size_t b, size_t e, Verdict* v) const {
    int d = 0;
    for (size_t i = b + 1; i < e; ++i) {
      if (IsPunct(t_, i, '(')) ++d;
      if (IsPunct(t_, i, ')')) --d;
      if (t_[i].kind != Tok::kWord) continue;
      const std::string& w = t_[i].upper;
      if (w == "INTO" && d == 0) {
        if (IsWord(t_, i + 1, "OUTFILE") || IsWord(t_, i + 1, "DUMPFILE")) {
          v->Raise(Intent::kExfiltrative, "SELECT ... INTO " + t_[i + 1].upper);
        } else if (IsName(t_, i + 1) && !IsPunct(t_, i + 1, '@')) {
          v->Raise(Intent::kWrite, "SELECT ... INTO a table");
        }
      } else if ((w == "LIMIT" || w == "TOP" || w == "FIRST" || w == "NEXT") && i + 1 < e) {
        size_t j = i + 1;
        if (IsPunct(t_, j, '(')) ++j;
        int64_t n = j < e ? AsInt(t_[j]) : -1;
        if (n > bulk_) v->Raise(Intent::kExfiltrative, w + " " + t_[j].upper + " rows");
      } else if (w == "LOAD_FILE" || w == "PG_READ_FILE" || w == "PG_READ_BINARY_FILE" ||
                 w == "LO_EXPORT" || w == "PG_LS_DIR") {
        v->Raise(Intent::kExfiltrative, w + "()");
      }
    }
  }

  // `WHERE` clause [b, e) that is trivially true: `1=1`, `TRUE`, `1`, `'a'='a'`.
  bool Tautology(size_t b, size_t e) const {
    size_t end = b;
    while (end < e && !IsWord(t_, end, "RETURNING") && !IsWord(t_, end, "LIMIT")) ++end;
    size_t n = end - b;
    if (n == 1) return IsWord(t_, b, "TRUE") || AsInt(t_[b]) > 0;
    if (n == 3 && IsPunct(t_, b + 1, '=') && t_[b].kind == t_[b + 2].kind &&
        (t_[b].kind == Tok::kNumber) && t_[b].upper == t_[b + 2].upper)
      return true;
    if (n == 3 && IsPunct(t_, b + 1, '=') && t_[b].kind == Tok::kString &&
        t_[b + 2].kind == Tok::kString)
      return true;  // conservative: strings are not compared
    return false;
  }

  size_t FindDepth0(size_t b, size_t e, std::string_view w) const {
    int d = 0;
    for (size_t i = b; i < e; ++i) {
      if (IsPunct(t_, i, '(')) ++d;
      if (IsPunct(t_, i, ')')) --d;
      if (d <= 0 && IsWord(t_, i, w)) return i;
    }
    return e;
  }
  size_t FindAny(size_t b, size_t e, std::string_view w) const {
    for (size_t i = b; i < e; ++i)
      if (IsWord(t_, i, w)) return i;
    return e;
  }
  size_t FindPunct(size_t b, size_t e, char c) const {
    for (size_t i = b; i < e; ++i)
      if (IsPunct(t_, i, c)) return i;
    return e;
  }
  // The index of the `)` closing the `(` at `open`, or e.
  size_t Close(size_t open, size_t e) const {
    int d = 0;
    for (size_t i = open; i < e; ++i) {
      if (IsPunct(t_, i, '(')) ++d;
      if (IsPunct(t_, i, ')') && --d == 0) return i;
    }
    return e;
  }

  const std::vector<Token>& t_;
  int64_t bulk_;
};

SqlAnalysis AnalyzeLexed(const std::vector<Token>& toks, bool declared, int64_t bulk) {
  SqlAnalysis r;
  Classifier c(toks, bulk);
  Verdict all;
  size_t b = 0;
  int index = 0;
  while (b < toks.size()) {
    size_t e = b;
    while (e < toks.size() && toks[e].kind != Tok::kSemi) ++e;
    if (e > b) {
      ++index;
      if (index == 1 && !declared && !c.Shaped(b, e)) return r;  // not SQL
      Verdict v = c.Statement(b, e, 0);
      std::string why = v.why;
      if (index > 1 || e < toks.size()) why = "statement " + std::to_string(index) + " is " + why;
      all.Raise(v.intent, why);
    }
    b = e + 1;
  }
  if (index == 0) return r;
  r.is_sql = true;
  r.intent = all.intent;
  r.why = all.why;
  r.statements = index;
  return r;
}

// Words that can start a statement whose shape Classifier::Shaped checks.
bool CanStartSql(std::string_view s) {
  static const auto* k = new std::set<std::string, std::less<>>{
      "SELECT", "WITH",   "INSERT",  "REPLACE",  "MERGE", "UPDATE", "DELETE",
      "DROP",   "CREATE", "ALTER",   "TRUNCATE", "GRANT", "REVOKE", "COPY",
      "UNLOAD", "SHOW",   "EXPLAIN", "DESCRIBE", "PRAGMA"};
  bool unused = false;
  std::vector<Token> first = Lex(s, false, &unused, 4);
  size_t i = 0;
  while (i < first.size() && first[i].kind == Tok::kPunct && first[i].upper == "(") ++i;
  return i < first.size() && first[i].kind == Tok::kWord && k->count(first[i].upper) > 0;
}

}  // namespace

SqlAnalysis AnalyzeSql(std::string_view text, bool declared, int64_t bulk_threshold,
                       size_t max_bytes) {
  // Cheap exit for prose, file contents and the like: only a statement keyword starts SQL.
  if (!declared && !CanStartSql(text)) return {};
  bool truncated = text.size() > max_bytes;
  std::string_view s = text.substr(0, std::min(text.size(), max_bytes));
  bool t1 = false, t2 = false;
  SqlAnalysis a = AnalyzeLexed(Lex(s, false, &t1), declared, bulk_threshold);
  SqlAnalysis b = AnalyzeLexed(Lex(s, true, &t2), declared, bulk_threshold);
  SqlAnalysis r = static_cast<int>(b.intent) > static_cast<int>(a.intent) || !a.is_sql ? b : a;
  if (!a.is_sql && !b.is_sql) return r;
  r.is_sql = true;
  if (truncated || t1 || t2) {
    r.intent = Intent::kDestructive;
    r.why = "SQL too long to analyze fully (fail closed)";
  }
  return r;
}

}  // namespace writ::gateway
