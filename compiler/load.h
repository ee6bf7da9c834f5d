// load.h -- finding and reading policy files: a PATH argument is a `.writ` file or a
// directory searched recursively for `*.writ` (sorted, so runs are deterministic).
#pragma once

#include <string>
#include <vector>

#include "base/source.h"

namespace writ {

// Expands paths to policy files. Returns false with *error set for a missing path, or when
// no policy file is found at all.
bool FindPolicyFiles(const std::vector<std::string>& paths, std::vector<std::string>* files,
                     std::string* error);

// Reads each file into `sources`. Returns false with *error on I/O failure.
bool LoadSources(const std::vector<std::string>& files, SourceMap* sources, std::string* error);

}  // namespace writ
