// schema.h -- the schema policies are checked against: entity types with attributes and
// hierarchy, the context and call records, and per-tool `args` types. Format: docs/schema.md.
#pragma once

#include <memory>
#include <string>

#include "base/diagnostic.h"
#include "base/source.h"

namespace writ {

class Schema {
 public:
  virtual ~Schema() = default;
};

// Loads a schema file (YAML or JSON). The file is added to `sources` so diagnostics can
// point into it. Returns null (with diagnostics) on error.
std::unique_ptr<Schema> LoadSchema(const std::string& path, SourceMap* sources,
                                   Diagnostics* diags, std::string* io_error);

}  // namespace writ
