// schema.cc -- schema loading (see schema.h).
#include "compiler/schema.h"

namespace writ {

std::unique_ptr<Schema> LoadSchema(const std::string& path, SourceMap* sources,
                                   Diagnostics* diags, std::string* io_error) {
  *io_error = "schema support is not built yet";
  return nullptr;
}

}  // namespace writ
