// yaml_check.h -- located error reporting and value checks for YAML inputs that users write:
// the gateway configuration (config*.cc) and `writ test` files (harness/test_file.cc). Every
// problem becomes "file:line:col: key: message" plus a "help:" line; a checker collects all of
// them (several errors per run, never only the first). Entry points: YamlChecker, YamlToJson.
//
// Thread safety: a YamlChecker belongs to one parse on one thread. Nothing here throws.
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace writ::gateway {

class YamlChecker {
 public:
  // `name` is the file name messages start with.
  explicit YamlChecker(std::string name) : name_(std::move(name)) {}

  void Error(const YAML::Node& at, const std::string& key, const std::string& msg,
             const std::string& help);
  // line/col are 0-based as in YAML::Mark; line < 0: no location.
  void ErrorAt(int line, int col, const std::string& key, const std::string& msg,
               const std::string& help);

  int count() const { return count_; }
  std::string text() const { return out_.str(); }

  // Every key of `map` must be in `allowed` (unknown keys get a did-you-mean hint).
  void Keys(const YAML::Node& map, const std::string& prefix,
            const std::vector<std::string>& allowed);
  bool Map(const YAML::Node& n, const std::string& key, const std::string& help);
  bool String(const YAML::Node& n, const std::string& key, std::string* out,
              const std::string& help);
  bool Int(const YAML::Node& n, const std::string& key, long long lo, long long hi,
           long long* out);
  // A string or a list of strings; *out is replaced. Reports every bad element.
  bool StringList(const YAML::Node& n, const std::string& key, std::vector<std::string>* out,
                  const std::string& help);

 private:
  std::string name_;
  std::ostringstream out_;
  int count_ = 0;
};

// YAML -> JSON for user values (attributes, args, context): plain `true`/`false` -> bool, plain
// integers -> integer, plain null/`~`/empty -> null, everything else (any quoted scalar) a
// string. Errors (into `c`) past 32 levels of nesting, counting from `depth`.
nlohmann::json YamlToJson(const YAML::Node& n, YamlChecker* c, const std::string& key,
                          int depth);

}  // namespace writ::gateway
