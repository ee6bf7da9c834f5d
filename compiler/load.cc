// load.cc -- policy file discovery and reading.
#include "compiler/load.h"

#include <algorithm>
#include <filesystem>

namespace writ {

bool FindPolicyFiles(const std::vector<std::string>& paths, std::vector<std::string>* files,
                     std::string* error) {
  namespace fs = std::filesystem;
  for (const std::string& p : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(p, ec);
    if (ec || !fs::exists(st)) {
      *error = "no such file or directory: " + p;
      return false;
    }
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      for (fs::recursive_directory_iterator it(p, ec), end; it != end && !ec; it.increment(ec)) {
        if (it->is_regular_file() && it->path().extension() == ".writ") {
          found.push_back(it->path().string());
        }
      }
      if (ec) {
        *error = "cannot read directory " + p + ": " + ec.message();
        return false;
      }
      std::sort(found.begin(), found.end());
      files->insert(files->end(), found.begin(), found.end());
    } else {
      files->push_back(p);
    }
  }
  if (files->empty()) {
    *error = "no .writ files found in the given paths";
    return false;
  }
  return true;
}

bool LoadSources(const std::vector<std::string>& files, SourceMap* sources, std::string* error) {
  for (const std::string& f : files) {
    std::string text;
    if (!ReadFile(f, &text, error)) return false;
    sources->Add(f, std::move(text));
  }
  return true;
}

}  // namespace writ
