// random_gen.h -- deterministic random policy sets (Writ source text) and requests (JSON) over
// one small shared vocabulary, so that random requests actually hit random statements. Used by
// the differential test (VM vs reference evaluator) and the oracle's own tests.
//
// The .cc is random_gen_util.cc (globbed into writ_reference_tests); other test folders include
// it through their own *_util.cc, see tests/differential/.
//
// Everything generated from a seed is a pure function of the seed (std::mt19937_64 and no
// unordered containers), on every platform.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace writ::reference {

// 1..max_statements statements: permits, forbids and rules with random scopes, conditions
// using every operator, and obligations. Always parses and type checks (without a schema).
std::string RandomPolicySet(uint64_t seed, int max_statements = 8);

// A request in the JSON form of docs/semantics.md: principal/resource with attributes and
// parents, args with wrong-typed and missing values, nulls, fractions, entity refs, nested
// records and huge integers. Always well formed at the top level.
nlohmann::json RandomRequest(uint64_t seed);

}  // namespace writ::reference
