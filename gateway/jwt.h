// jwt.h -- verification of JSON Web Tokens (RFC 7519, JWS compact form RFC 7515) with OpenSSL
// alone. The one entry point is VerifyJwt(); keys come from a JSON Web Key Set (RFC 7517) parsed
// once by JwkSet::Parse / JwkSet::LoadFile. docs/identity.md lists every rejection.
//
// Supported algorithms: RS256 (RSA >= 2048 bits, PKCS#1 v1.5), ES256 (P-256; the JWS signature
// is raw R||S, converted to DER for OpenSSL), HS256 (oct key >= 32 bytes). Everything else,
// `none` included, is rejected.
//
// Thread safety: a JwkSet is immutable after parsing; VerifyJwt on a shared const JwkSet from
// many threads is safe (OpenSSL 3 verification on a shared EVP_PKEY only reads it).
//
// Nothing here throws, logs, or copies the token into an error message: error descriptions are
// fixed text plus configuration values, safe to send to a client.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace writ::gateway {

// Strict base64url (RFC 4648 §5) without padding, as JWS requires: only [A-Za-z0-9_-], no '=',
// no whitespace, length % 4 != 1, and the unused low bits of the last character must be zero
// (so each byte string has exactly one encoding). Returns false on any violation.
bool Base64UrlDecode(std::string_view in, std::string* out);
std::string Base64UrlEncode(std::string_view in);

// Parses untrusted JSON text. Rejects invalid JSON (including ill-formed UTF-8), nesting deeper
// than `max_depth`, and objects with a duplicate member name (RFC 7515 §5.2 allows rejecting
// them; accepting the last would let two parsers disagree). Never throws.
bool ParseJsonStrict(std::string_view text, int max_depth, nlohmann::json* out,
                     std::string* error);

enum class JwtAlg : uint8_t {
  kRS256,  // RSASSA-PKCS1-v1_5 with SHA-256; key kty "RSA"
  kES256,  // ECDSA P-256 with SHA-256; key kty "EC", crv "P-256"; signature R||S, 64 bytes
  kHS256,  // HMAC-SHA-256; key kty "oct"
};
std::optional<JwtAlg> JwtAlgFromName(std::string_view name);
std::string_view JwtAlgName(JwtAlg alg);

// One verification key from a JWKS.
struct Jwk {
  enum class Kty : uint8_t { kRsa, kEc, kOct };
  std::string kid;                 // may be empty
  Kty kty = Kty::kRsa;
  std::optional<JwtAlg> alg;       // the JWK's own "alg", when given: the only alg it serves
  std::shared_ptr<EVP_PKEY> pkey;  // RSA and EC public keys
  std::string secret;              // oct: the raw HMAC key
};

// Invariants: every key is well formed and usable (RSA >= 2048 bits, EC point on P-256, oct
// >= 32 bytes); kids are unique. Keys whose kty is unsupported (e.g. OKP) or whose "use" is not
// "sig" are skipped, so a provider's full JWKS can be used as is.
class JwkSet {
 public:
  // `jwks` is {"keys": [...]}. False with *error if it is malformed or a supported key is bad.
  static bool Parse(const nlohmann::json& jwks, JwkSet* out, std::string* error);
  // Reads and parses a JWKS file (at most 1 MiB).
  static bool LoadFile(const std::string& path, JwkSet* out, std::string* error);

  const std::vector<Jwk>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<Jwk> keys_;
};

struct JwtOptions {
  std::string issuer;                 // `iss` must equal this exactly
  std::string audience;               // `aud` (string or array) must contain this exactly
  std::vector<JwtAlg> algorithms;     // header `alg` must be one of these
  int64_t leeway_seconds = 60;        // clock skew allowed on exp, nbf, iat
  size_t max_token_bytes = 8192;      // whole compact token
  int max_json_depth = 16;            // header and claims
  bool require_exp = true;            // a token without `exp` is rejected
};

// Verifies `token` (compact JWS: header.payload.signature) at time `now` (Unix seconds):
// size, shape, base64url, header JSON, alg allowed, key selection by kid (and kty/alg match),
// signature, then claims: exp/nbf/iat with leeway, iss, aud. Claims are checked only after the
// signature, so unauthenticated content never shapes the answer beyond "bad signature".
// On success fills *claims with the payload object; on failure *error is a description safe to
// return to the client (it never quotes the token).
bool VerifyJwt(std::string_view token, const JwkSet& keys, const JwtOptions& options,
               int64_t now, nlohmann::json* claims, std::string* error);

// True if `token` is meant as a compact JWS: exactly two dots, not at the start. Used to tell
// a JWT (verified, with precise errors) from an opaque API key; API keys must not have this
// shape.
bool LooksLikeJwt(std::string_view token);

}  // namespace writ::gateway
