// sql_intent.h -- the intent of a SQL text: a small tokenizer (comments, string literals,
// quoted identifiers, dollar quotes) and a per-statement classifier, used by the intent
// classifier (intent.h) on string arguments. Entry point: AnalyzeSql.
//
// Not a SQL parser: it finds statement kinds and a few clauses, and where dialects disagree
// it errs toward the stronger intent. Text is lexed twice -- with backslash escapes in string
// literals (MySQL) and without (PostgreSQL, SQLite, standard SQL) -- and the stronger result
// wins, so `'x\'; DROP TABLE t; --'` is destructive. A block comment ends at the first `*/`
// (MySQL does not nest), MySQL's executable comments `/*! ... */` are read as code, and `--`
// not followed by a space is not taken as a comment (MySQL), all of which can only reveal
// more statements, never hide one.
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/intent.h"

namespace writ::gateway {

struct SqlAnalysis {
  bool is_sql = false;  // the text was recognized as SQL
  Intent intent = Intent::kRead;
  std::string why;  // e.g. "statement 2 is DROP TABLE"
  int statements = 0;
};

// `declared`: the argument is known to hold SQL (its name or schema says so), so the first
// statement is classified by its leading keyword alone; otherwise the first statement must
// also have the shape of its kind (`UPDATE x SET`, `DELETE FROM`, `DROP TABLE`, ...) so
// that prose such as "update the docs" is not taken for SQL. Rows above `bulk_threshold` in
// LIMIT / TOP / FETCH FIRST make a SELECT exfiltrative. At most `max_bytes` of `text` are
// read; a longer text counts as destructive (fail closed) when it is SQL.
SqlAnalysis AnalyzeSql(std::string_view text, bool declared, int64_t bulk_threshold,
                       size_t max_bytes = 1 << 20);

}  // namespace writ::gateway
