// secrets.cc -- see secrets.h. Startup/reload code (file I/O, yaml-cpp, which throws: caught
// here) plus the scrubber, which runs on the request path and never throws.
#include "gateway/secrets.h"

#include <re2/re2.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace writ::gateway {
namespace {

constexpr std::string_view kOpen = "${secret:";
constexpr size_t kMaxSecretsFileBytes = 1 << 20;

bool ValidSecretName(std::string_view n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string Octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

}  // namespace

bool FindSecretRefs(std::string_view value, std::vector<std::string>* names,
                    std::string* error) {
  size_t pos = 0;
  while ((pos = value.find(kOpen, pos)) != std::string_view::npos) {
    size_t start = pos + kOpen.size();
    size_t close = value.find('}', start);
    if (close == std::string_view::npos) {
      *error = "`${secret:` without a closing `}`";
      return false;
    }
    std::string_view name = value.substr(start, close - start);
    if (!ValidSecretName(name)) {
      *error = "`${secret:" + std::string(name) + "}` is not a valid reference";
      return false;
    }
    names->emplace_back(name);
    pos = close + 1;
  }
  return true;
}

std::unique_ptr<SecretStore> SecretStore::Open(const SecretsConfig& config, std::string* error) {
  std::unique_ptr<SecretStore> s(new SecretStore(config));
  if (!config.file.empty() && !ReadFile(config.file, &s->file_values_, error)) return nullptr;
  return s;
}

bool SecretStore::Reload(std::string* error) {
  if (config_.file.empty()) return true;
  std::map<std::string, std::string> fresh;
  if (!ReadFile(config_.file, &fresh, error)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  file_values_ = std::move(fresh);
  return true;
}

bool SecretStore::ReadFile(const std::string& path, std::map<std::string, std::string>* out,
                           std::string* error) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    *error = path + ": cannot read the secrets file: " + std::strerror(errno) +
             "\nhelp: create it (a YAML map NAME: value) with mode 0600, or fix `secrets.file`";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = path + ": the secrets file is not a regular file\nhelp: point `secrets.file` at a file";
    return false;
  }
  if ((st.st_mode & 0027) != 0) {
    *error = path + ": the secrets file has mode " + Octal(st.st_mode) +
             ", so other users can read or change it; refusing to use it\nhelp: chmod 600 " +
             path + " (at most 0640)";
    return false;
  }
  if (st.st_size > static_cast<off_t>(kMaxSecretsFileBytes)) {
    *error = path + ": the secrets file is larger than 1 MiB\nhelp: keep only NAME: value pairs";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    *error = path + ": cannot read the secrets file\nhelp: check its permissions";
    return false;
  }
  YAML::Node root;
  try {
    root = YAML::Load(ss.str());
  } catch (const YAML::Exception& e) {
    *error = path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
             ": invalid YAML in the secrets file: " + e.msg + "\nhelp: write NAME: value lines";
    return false;
  }
  out->clear();
  if (root.IsNull()) return true;  // an empty file
  if (!root.IsMap()) {
    *error = path + ": the secrets file must be a YAML mapping\nhelp: write NAME: value lines";
    return false;
  }
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
    YAML::Mark m = it->first.Mark();
    std::string where = path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    if (!ValidSecretName(name)) {
      *error = where + ": `" + name + "` is not a secret name\nhelp: use letters, digits and _";
      return false;
    }
    if (!it->second.IsScalar()) {
      *error = where + ": " + name + ": expected a string value\nhelp: NAME: value";
      return false;
    }
    (*out)[name] = it->second.Scalar();
  }
  return true;
}

bool SecretStore::Lookup(const std::string& name, std::string* value) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = file_values_.find(name);
    if (it != file_values_.end()) {
      *value = it->second;
      return true;
    }
  }
  if (config_.env) {
    const char* v = std::getenv(name.c_str());
    if (v != nullptr) {
      *value = v;
      return true;
    }
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> SecretStore::FileSecrets() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {file_values_.begin(), file_values_.end()};
}

bool SecretStore::Expand(std::string_view value, std::string* out, std::string* missing) const {
  out->clear();
  size_t pos = 0;
  while (true) {
    size_t at = value.find(kOpen, pos);
    if (at == std::string_view::npos) break;
    size_t close = value.find('}', at);
    if (close == std::string_view::npos) break;  // rejected by config validation
    std::string name(value.substr(at + kOpen.size(), close - at - kOpen.size()));
    std::string v;
    if (!Lookup(name, &v)) {
      *missing = name;
      return false;
    }
    out->append(value.substr(pos, at - pos));
    out->append(v);
    pos = close + 1;
  }
  out->append(value.substr(pos));
  return true;
}

bool ResolveUpstreamSecrets(const Config& config, const SecretStore& store,
                            ResolvedUpstreams* out, std::string* errors) {
  out->upstreams = config.upstreams;
  out->secrets = store.FileSecrets();
  std::ostringstream err;
  int count = 0;
  auto report = [&](const SecretRef* ref, const std::string& fallback_key,
                    const std::string& name) {
    err << config.secrets.config_name;
    if (ref && ref->line >= 0) err << ":" << ref->line + 1 << ":" << ref->col + 1;
    err << ": " << (ref ? ref->key : fallback_key) << ": secret `" << name
        << "` is not defined\nhelp: add `" << name << ": ...` to "
        << (config.secrets.file.empty() ? "a secrets file (secrets: {file: secrets.yaml})"
                                        : config.secrets.file)
        << (config.secrets.env ? " or set the environment variable " + name
                               : std::string(" (or allow the environment with "
                                             "`secrets: {env: true}`)"))
        << "\n";
    ++count;
  };
  for (size_t i = 0; i < out->upstreams.size(); ++i) {
    UpstreamConfig& u = out->upstreams[i];
    for (auto& [k, v] : u.env) {
      std::string expanded, missing;
      if (v.find(kOpen) == std::string::npos) continue;
      if (!store.Expand(v, &expanded, &missing)) {
        std::string key = "upstreams[" + std::to_string(i) + "].env." + k;
        const SecretRef* ref = nullptr;
        for (const auto& r : config.secrets.refs)
          if (r.key == key && r.name == missing) ref = &r;
        report(ref, key, missing);
        continue;
      }
      // Values that came from the environment are secrets too.
      std::vector<std::string> names;
      std::string ignored;
      FindSecretRefs(v, &names, &ignored);
      for (const auto& n : names) {
        std::string value;
        if (store.Lookup(n, &value) &&
            std::find(out->secrets.begin(), out->secrets.end(), std::pair(n, value)) ==
                out->secrets.end())
          out->secrets.emplace_back(n, value);
      }
      v = std::move(expanded);
    }
  }
  *errors = err.str();
  return count == 0;
}

SecretScrubber::SecretScrubber(const std::vector<std::pair<std::string, std::string>>& secrets) {
  for (const auto& [name, value] : secrets) {
    if (value.size() < kMinSecretBytes) {
      if (!value.empty()) skipped_.push_back(name);
      continue;
    }
    names_.emplace(value, name);  // keeps the first name of a repeated value
  }
  if (names_.empty()) return;
  std::vector<std::string> values;
  for (const auto& [v, n] : names_) values.push_back(v);
  // Longest first, so even leftmost-first would prefer a containing secret; longest_match
  // makes it certain.
  std::sort(values.begin(), values.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::string pattern;
  for (const auto& v : values) pattern += (pattern.empty() ? "" : "|") + RE2::QuoteMeta(v);
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);  // exact bytes
  o.set_longest_match(true);
  o.set_log_errors(false);
  o.set_max_mem(256 << 20);
  re_ = std::make_unique<RE2>("(" + pattern + ")", o);
  if (!re_->ok()) re_.reset();
}

SecretScrubber::~SecretScrubber() = default;

size_t SecretScrubber::ScrubString(std::string* s) const {
  if (re_ == nullptr || s->empty()) return 0;
  re2::StringPiece text(*s), m;
  if (!re_->Match(text, 0, s->size(), RE2::UNANCHORED, &m, 1)) return 0;
  std::string out;
  size_t pos = 0, n = 0;
  do {
    size_t b = static_cast<size_t>(m.data() - s->data());
    out.append(*s, pos, b - pos);
    auto it = names_.find(std::string_view(m.data(), m.size()));
    out += "[REDACTED:secret:" + (it == names_.end() ? std::string("?") : it->second) + "]";
    pos = b + m.size();
    ++n;
  } while (pos < s->size() && re_->Match(text, pos, s->size(), RE2::UNANCHORED, &m, 1));
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
  return n;
}

size_t SecretScrubber::ScrubJson(nlohmann::json* root) const {
  if (re_ == nullptr) return 0;
  size_t n = 0;
  std::vector<nlohmann::json*> stack{root};
  while (!stack.empty()) {
    nlohmann::json* j = stack.back();
    stack.pop_back();
    if (j->is_string()) {
      n += ScrubString(&j->get_ref<std::string&>());
    } else if (j->is_array()) {
      for (auto& e : *j) stack.push_back(&e);
    } else if (j->is_object()) {
      // Rename keys first: moving a member invalidates pointers to it.
      std::vector<std::pair<std::string, std::string>> renames;
      for (auto it = j->begin(); it != j->end(); ++it) {
        std::string k = it.key();
        if (size_t c = ScrubString(&k); c > 0) {
          n += c;
          renames.emplace_back(it.key(), std::move(k));
        }
      }
      for (auto& [from, to] : renames) {
        nlohmann::json v = std::move((*j)[from]);
        j->erase(from);
        (*j)[to] = std::move(v);
      }
      for (auto it = j->begin(); it != j->end(); ++it) stack.push_back(&it.value());
    }
  }
  return n;
}

}  // namespace writ::gateway
