// secrets.h -- upstream credentials (docs/credentials.md): `${secret:NAME}` references in
// upstream `env` (and `headers`) values, resolved from a secrets file or the environment, and
// the scrubber that removes every resolved value from whatever the gateway passes on.
//
// Entry points:
//   auto store = SecretStore::Open(config.secrets, &error);      // reads + checks the file
//   ResolvedUpstreams r;
//   if (!ResolveUpstreamSecrets(config, *store, &r, &errors)) exit 2;  // file:line per ref
//   spawn r.upstreams[i] (env with values substituted) ...
//   auto scrubber = std::make_shared<const SecretScrubber>(r.secrets);
//   audit_options.secrets += values of r.secrets;
//   scrubber->ScrubJson(&result);            // "[REDACTED:secret:NAME]" for each occurrence
// HTTP upstream `headers:` (another branch): the config parser already records and checks
// `${secret:NAME}` there (SecretsConfig::refs); substitute with SecretStore::Expand at
// connect time and add the values to the scrubber the same way.
// Rotation (SIGHUP): gateway/rotation.h resolves again from a fresh store and swaps the
// ScrubberHolder's scrubber for one over the union of the old and new secrets (old values may
// still be in flight).
//
// Thread safety: SecretStore is internally synchronized (Reload may run while other threads
// Lookup). SecretScrubber is immutable after construction and safe to share. Nothing throws.
#pragma once

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/config.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace writ::gateway {

// `${secret:NAME}` syntax: NAME is [A-Za-z_][A-Za-z0-9_]*. Appends every name referenced in
// `value` to *names; false with *error on a malformed reference (`${secret:}`, no `}`, ...).
bool FindSecretRefs(std::string_view value, std::vector<std::string>* names, std::string* error);

// The secret values: the file's map, plus (if enabled) the environment as a fallback.
class SecretStore {
 public:
  // Reads config.file if set. Fails if it is missing, not a regular file, readable or
  // writable by others or writable by its group (mode must be at most 0640), not a YAML
  // mapping of NAME: scalar, or larger than 1 MiB.
  static std::unique_ptr<SecretStore> Open(const SecretsConfig& config, std::string* error);

  // Re-reads the file (rotation). On failure the previous values stay and *error says why.
  bool Reload(std::string* error);

  // The value for NAME: the file first, then (with env: true) the environment; false if none.
  bool Lookup(const std::string& name, std::string* value) const;

  // Every (NAME, value) of the file: all of them are scrubbed, referenced or not.
  std::vector<std::pair<std::string, std::string>> FileSecrets() const;

  // Replaces each `${secret:NAME}` in `value`. False with *missing = NAME if one is unknown.
  bool Expand(std::string_view value, std::string* out, std::string* missing) const;

  const SecretsConfig& config() const { return config_; }

 private:
  explicit SecretStore(SecretsConfig config) : config_(std::move(config)) {}
  static bool ReadFile(const std::string& path, std::map<std::string, std::string>* out,
                       std::string* error);

  const SecretsConfig config_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> file_values_;  // guarded by mu_
};

struct ResolvedUpstreams {
  std::vector<UpstreamConfig> upstreams;  // env values with every reference substituted
  // Every secret to scrub: the file's entries plus environment values that were used.
  std::vector<std::pair<std::string, std::string>> secrets;
};

// Substitutes every reference in config.upstreams using `store`. False with *errors listing
// each unresolved one as "file:line:col: upstreams[i].env.KEY: secret `NAME` is not defined"
// plus a help line.
bool ResolveUpstreamSecrets(const Config& config, const SecretStore& store, ResolvedUpstreams* out,
                            std::string* errors);

// Replaces exact secret values with "[REDACTED:secret:NAME]" in one pass (an RE2 alternation
// of the quoted values, leftmost-longest, so a secret containing another is replaced whole).
// Values shorter than kMinSecretBytes are not scrubbed (see skipped()): a short value such as
// "true", "prod" or "8080" occurs in ordinary output, masking it everywhere would corrupt
// results and tell a reader which common word is the secret; a credential that short is not a
// credential. Use longer values.
class SecretScrubber {
 public:
  static constexpr size_t kMinSecretBytes = 8;

  // (NAME, value) pairs; duplicates of a value keep the first name.
  explicit SecretScrubber(const std::vector<std::pair<std::string, std::string>>& secrets);
  ~SecretScrubber();
  SecretScrubber(const SecretScrubber&) = delete;
  SecretScrubber& operator=(const SecretScrubber&) = delete;

  // Returns how many occurrences were replaced.
  size_t ScrubString(std::string* s) const;
  // Every string and object key of *j (explicit stack: depth is not a recursion hazard).
  size_t ScrubJson(nlohmann::json* j) const;

  // Names whose values were too short to scrub (log them at start).
  const std::vector<std::string>& skipped() const { return skipped_; }
  size_t size() const { return names_.size(); }

 private:
  std::unique_ptr<re2::RE2> re_;  // null when there is nothing to scrub
  std::map<std::string, std::string, std::less<>> names_;  // value -> NAME
  std::vector<std::string> skipped_;
};

// The scrubber every session uses, swappable on credential rotation (gateway/rotation.h):
// readers load it lock-free (one atomic shared_ptr load per message), Set replaces it whole.
// Thread safety: every method may be called from any thread.
class ScrubberHolder {
 public:
  explicit ScrubberHolder(std::shared_ptr<const SecretScrubber> s) : s_(std::move(s)) {}
  std::shared_ptr<const SecretScrubber> Get() const { return s_.load(); }
  void Set(std::shared_ptr<const SecretScrubber> s) { s_.store(std::move(s)); }
  size_t ScrubString(std::string* s) const {
    auto p = Get();
    return p != nullptr ? p->ScrubString(s) : 0;
  }
  size_t ScrubJson(nlohmann::json* j) const {
    auto p = Get();
    return p != nullptr ? p->ScrubJson(j) : 0;
  }

 private:
  std::atomic<std::shared_ptr<const SecretScrubber>> s_;
};

}  // namespace writ::gateway
