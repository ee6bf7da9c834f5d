// dag_to_bytecode.h -- serializes BundleTables into the bundle file format of
// runtime/bundle.h (the one header the writer and the loader share).
#pragma once

#include <array>
#include <string>

#include "compiler/ast_to_dag.h"

namespace writ {

std::string SerializeBundle(const BundleTables& t, const std::array<uint8_t, 32>& source_hash);

}  // namespace writ
