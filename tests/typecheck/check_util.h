// check_util.h -- helpers for the type checker tests: run the checker on policy text against
// a fixture schema and look at each diagnostic's code, message, help and underlined text.
#pragma once

#include <string>
#include <vector>

#include "base/diagnostic.h"
#include "base/source.h"

namespace writ::testing {

struct Found {
  std::string code, message, help;
  std::string underlined;  // the source text of the span
  uint32_t line = 0, col = 0;
};

std::string Fixture(const std::string& name);  // path under tests/typecheck/fixtures/

// Type checks `policy` against fixtures/`schema` ("" = no schema).
std::vector<Found> CheckText(const std::string& policy, const std::string& schema = "schema.yaml");

// Loads schema text; returns the diagnostics (empty if it loaded).
std::vector<Found> LoadSchemaDiags(const std::string& schema_text);

}  // namespace writ::testing
