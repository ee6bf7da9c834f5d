// frontend.h -- the front end in one call: find and read policy files, parse, load the
// schema, type check. Used by `writ check`, `build`, `eval`, `test` and the gateway.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/diagnostic.h"
#include "base/source.h"
#include "compiler/ast.h"

namespace writ {

class Schema;

struct FrontEnd {
  SourceMap sources;
  ast::PolicySet policies;
  std::shared_ptr<Schema> schema;  // null when no schema was given
  Diagnostics diags;
  std::string io_error;  // set when a file could not be found or read (exit code 2)

  FrontEnd();
  ~FrontEnd();
  FrontEnd(FrontEnd&&) noexcept;
};

// `schema_path` may be empty. Parse errors and type errors land in result.diags (sorted).
FrontEnd RunFrontEnd(const std::vector<std::string>& paths, const std::string& schema_path);

// Parses policy text held in memory without type checking: for the formatter and for tests of
// run-time semantics, which must also cover expressions a type checker would reject.
FrontEnd ParseText(const std::string& name, const std::string& text);

// Parses and checks policy text held in memory (tests, fuzzing, docs examples).
FrontEnd RunFrontEndOnText(const std::string& name, const std::string& text,
                           const Schema* schema = nullptr);

}  // namespace writ
