// identity.h -- who is calling: the gateway's authenticate + resolve-principal stages, free of
// any transport. The HTTP layer passes the Authorization header to Authenticator::Authenticate
// and gets back a Principal or an AuthError it turns into a 401/403 response; the stdio
// transport asks for StdioPrincipal(). docs/identity.md documents the `identity:` config.
//
// Credentials accepted on `Authorization: Bearer <token>`:
//   - API keys, stored in config only as SHA-256 hashes, compared in constant time;
//   - JWTs (RS256, ES256, HS256) verified against a JWKS file (gateway/jwt.h), with their
//     claims mapped to the principal's uid, parents and attributes by config.
//
// Thread safety: an Authenticator is immutable once created; all const methods may be called
// from any number of threads. Nothing here throws, and no token or key ever reaches an error
// message (errors carry fixed text and configuration values only).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gateway/jwt.h"

namespace writ::gateway {

// The authenticated caller, in the entity form of docs/semantics.md.
struct Principal {
  std::string uid;                                  // canonical Type::"id"
  nlohmann::json attrs = nlohmann::json::object();  // always an object
  std::vector<std::string> parents;                 // canonical uids, sorted, unique
  std::string on_behalf_of;  // the user an agent acts for (claim mapping), or empty
  std::string client;        // OAuth client (azp / client_id) or API key name, or empty
  std::string method;        // "api_key", "jwt" or "stdio"

  // {"uid": ..., "attrs": {...}, "parents": [...]}: the request's `principal` entity.
  nlohmann::json ToEntityJson() const;
  // {"auth": method, "client": ..., "on_behalf_of": ...} (empty fields omitted), for the
  // request's `context.identity`.
  nlohmann::json ToContextJson() const;
};

struct AuthError {
  int http_status = 401;  // 401: no or bad credentials; 403: valid token, insufficient scope
  std::string error;      // RFC 6750 code: "" (no credentials), "invalid_token",
                          // "invalid_request", "insufficient_scope"
  std::string description;       // for the client and the log; never contains the token
  std::string www_authenticate;  // value of the WWW-Authenticate response header
};

// Either a Principal or an AuthError.
class AuthResult {
 public:
  AuthResult(Principal p) : v_(std::move(p)) {}
  AuthResult(AuthError e) : v_(std::move(e)) {}
  bool ok() const { return std::holds_alternative<Principal>(v_); }
  // REQUIRES: ok()
  const Principal& principal() const { return std::get<Principal>(v_); }
  // REQUIRES: !ok()
  const AuthError& error() const { return std::get<AuthError>(v_); }

 private:
  std::variant<Principal, AuthError> v_;
};

// One rule turning a JWT claim into part of the principal.
struct ClaimMapping {
  enum class Target : uint8_t { kUid, kParents, kAttr, kClient, kOnBehalfOf };
  std::string claim;            // top-level claim name, or a JSON pointer starting with '/'
  Target target = Target::kAttr;
  std::string attr;             // kAttr: attribute name
  std::string uid_template;     // kUid/kParents/kOnBehalfOf: e.g. User::"{value}"; {value} and
                                // {<claim>} are replaced by the claim (quotes escaped)
  std::string split;            // a string claim is split on this separator into a list
  bool required = false;        // a token without the claim is rejected
};

struct ApiKeyEntry {
  std::string name;                   // label for audit (Principal::client)
  std::string sha256;                 // 32 raw bytes
  Principal principal;
};

struct IdentityConfig {
  std::string resource;                 // the gateway's own URL (RFC 9728 `resource`)
  std::vector<std::string> authorization_servers;
  std::vector<std::string> scopes_supported;
  std::string resource_metadata_url;    // default: derived from `resource` (RFC 9728 §3.1)
  std::vector<ApiKeyEntry> api_keys;
  bool jwt_enabled = false;
  JwtOptions jwt;                       // audience defaults to `resource`
  JwkSet jwks;
  std::vector<ClaimMapping> claims;
  std::vector<std::string> required_scopes;  // all must be in `scope`/`scp`, else 403
  std::optional<Principal> stdio;
};

// Parses the `identity:` section (as JSON; the YAML loader converts). Relative jwks_file paths
// resolve against `base_dir`. False with *error naming the offending key.
bool ParseIdentityConfig(const nlohmann::json& identity, const std::string& base_dir,
                         IdentityConfig* out, std::string* error);

class Authenticator {
 public:
  // nullptr with *error if the configuration is invalid.
  static std::unique_ptr<Authenticator> Create(const nlohmann::json& identity,
                                               const std::string& base_dir, std::string* error);
  explicit Authenticator(IdentityConfig config);

  // `authorization_header` is the raw header value ("" when absent). Uses the system clock.
  AuthResult Authenticate(std::string_view authorization_header) const;
  // Same at a given time (Unix seconds); for tests and replay.
  AuthResult Authenticate(std::string_view authorization_header, int64_t now) const;

  // The principal of a stdio downstream (from config); an AuthError if none is configured.
  AuthResult StdioPrincipal() const;

  // RFC 9728 protected resource metadata, served at MetadataPath().
  nlohmann::json ProtectedResourceMetadata() const;
  const std::string& MetadataUrl() const { return metadata_url_; }
  // The path component of MetadataUrl(), e.g. "/.well-known/oauth-protected-resource".
  std::string MetadataPath() const;

  // `Bearer resource_metadata="..."`, plus error= and error_description= when `error` is
  // non-empty. Values are sanitised to the RFC 6750 quoted-string character set.
  std::string WwwAuthenticate(std::string_view error, std::string_view description) const;

  const IdentityConfig& config() const { return config_; }

 private:
  AuthError Error(int status, std::string error, std::string description) const;
  AuthResult FromApiKey(std::string_view key) const;
  AuthResult FromJwt(std::string_view token, int64_t now) const;

  IdentityConfig config_;
  std::string metadata_url_;
};

// "sha256:<64 lowercase hex>" of `key`: the form stored in config.
std::string HashApiKey(std::string_view key);

// Constant-time equality (CRYPTO_memcmp); lengths are not secret.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

// RFC 9728 §3.1: the metadata URL for `resource`: the well-known path is inserted between the
// origin and the resource's path ("https://h/mcp" -> "https://h/.well-known/
// oauth-protected-resource/mcp"). Empty if `resource` is not an absolute http(s) URL.
std::string ProtectedResourceMetadataUrl(std::string_view resource);

}  // namespace writ::gateway
