// jwt.cc -- JWKS parsing and JWS compact verification (RS256, ES256, HS256) on OpenSSL 3.
// Entry points: JwkSet::Parse/LoadFile and VerifyJwt (see jwt.h).
#include "gateway/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace writ::gateway {
namespace {

constexpr size_t kMaxJwksFileBytes = 1 << 20;
constexpr int kMaxJwksDepth = 8;
constexpr size_t kMinRsaBits = 2048;
constexpr size_t kMaxRsaBits = 16384;
constexpr size_t kMinHmacKeyBytes = 32;
constexpr int64_t kMaxLeewaySeconds = 24 * 3600;

struct BnFree { void operator()(BIGNUM* p) const { BN_free(p); } };
struct BldFree { void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); } };
struct ParamFree { void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct SigFree { void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); } };
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

const unsigned char* U(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::shared_ptr<EVP_PKEY> FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return nullptr;
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) return nullptr;
  std::shared_ptr<EVP_PKEY> pkey(raw, EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return pkey;
}

// Reads an optional string member; false if present and not a string.
bool OptString(const nlohmann::json& obj, const char* name, std::string* out) {
  auto it = obj.find(name);
  if (it == obj.end()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

bool DecodeMember(const nlohmann::json& k, const char* name, std::string* out) {
  auto it = k.find(name);
  return it != k.end() && it->is_string() && Base64UrlDecode(it->get<std::string>(), out) &&
         !out->empty();
}

// Parses one JWK. *skip is set for keys that are valid JSON but not for us (other kty, curve
// or alg; use != sig).
bool ParseKey(const nlohmann::json& k, Jwk* out, bool* skip, std::string* error) {
  *skip = false;
  std::string kty, use, alg, crv;
  if (!k.is_object()) {
    *error = "each key must be a JSON object";
    return false;
  }
  if (!OptString(k, "kty", &kty) || kty.empty() || !OptString(k, "use", &use) ||
      !OptString(k, "alg", &alg) || !OptString(k, "kid", &out->kid) ||
      !OptString(k, "crv", &crv)) {
    *error = "key needs a string kty; use, alg, kid and crv must be strings when present";
    return false;
  }
  std::string where = out->kid.empty() ? std::string("key without kid")
                                       : "key \"" + out->kid + "\"";
  if (!use.empty() && use != "sig") {
    *skip = true;
    return true;
  }
  if (!alg.empty()) {
    out->alg = JwtAlgFromName(alg);
    if (!out->alg) {
      *skip = true;  // pinned to an algorithm we do not implement: never usable here
      return true;
    }
  }
  if (kty == "RSA") {
    out->kty = Jwk::Kty::kRsa;
    std::string n, e;
    if (!DecodeMember(k, "n", &n) || !DecodeMember(k, "e", &e)) {
      *error = where + ": RSA key needs base64url n and e";
      return false;
    }
    size_t z = n.find_first_not_of('\0');
    n.erase(0, z == std::string::npos ? n.size() : z);
    if (n.size() * 8 < kMinRsaBits || n.size() * 8 > kMaxRsaBits || e.size() > 8) {
      *error = where + ": RSA modulus must be 2048 to 16384 bits";
      return false;
    }
    BnPtr bn_n(BN_bin2bn(U(n), static_cast<int>(n.size()), nullptr));
    BnPtr bn_e(BN_bin2bn(U(e), static_cast<int>(e.size()), nullptr));
    std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1 ||
        !(out->pkey = FromParams("RSA", bld.get()))) {
      *error = where + ": not a valid RSA public key";
      return false;
    }
  } else if (kty == "EC") {
    out->kty = Jwk::Kty::kEc;
    if (crv != "P-256") {
      *skip = true;
      return true;
    }
    std::string x, y;
    if (!DecodeMember(k, "x", &x) || !DecodeMember(k, "y", &y) || x.size() != 32 ||
        y.size() != 32) {
      *error = where + ": P-256 key needs base64url x and y of 32 bytes each";
      return false;
    }
    std::string point = "\x04" + x + y;
    std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1 ||
        !(out->pkey = FromParams("EC", bld.get()))) {
      *error = where + ": not a valid P-256 public key (point not on the curve?)";
      return false;
    }
  } else if (kty == "oct") {
    out->kty = Jwk::Kty::kOct;
    if (!DecodeMember(k, "k", &out->secret) || out->secret.size() < kMinHmacKeyBytes) {
      *error = where + ": oct key needs a base64url k of at least 32 bytes";
      return false;
    }
  } else {
    *skip = true;
    return true;
  }
  if (out->alg) {
    bool fits = (*out->alg == JwtAlg::kRS256 && out->kty == Jwk::Kty::kRsa) ||
                (*out->alg == JwtAlg::kES256 && out->kty == Jwk::Kty::kEc) ||
                (*out->alg == JwtAlg::kHS256 && out->kty == Jwk::Kty::kOct);
    if (!fits) {
      *error = where + ": alg " + alg + " does not fit kty " + kty;
      return false;
    }
  }
  return true;
}

bool KeyServes(const Jwk& key, JwtAlg alg) {
  if (key.alg && *key.alg != alg) return false;
  switch (alg) {
    case JwtAlg::kRS256: return key.kty == Jwk::Kty::kRsa;
    case JwtAlg::kES256: return key.kty == Jwk::Kty::kEc;
    case JwtAlg::kHS256: return key.kty == Jwk::Kty::kOct;
  }
  return false;
}

const char* KtyName(Jwk::Kty kty) {
  switch (kty) {
    case Jwk::Kty::kRsa: return "RSA";
    case Jwk::Kty::kEc: return "EC";
    case Jwk::Kty::kOct: return "oct";
  }
  return "?";
}

bool DigestVerify(EVP_PKEY* pkey, std::string_view data, const unsigned char* sig,
                  size_t sig_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, pkey) != 1) {
    return false;
  }
  return EVP_DigestVerify(md.get(), sig, sig_len,
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

bool VerifySignature(const Jwk& key, JwtAlg alg, std::string_view signing_input,
                     const std::string& sig) {
  switch (alg) {
    case JwtAlg::kRS256:
      return key.pkey && EVP_PKEY_is_a(key.pkey.get(), "RSA") &&
             DigestVerify(key.pkey.get(), signing_input, U(sig), sig.size());
    case JwtAlg::kES256: {
      // JWS carries R||S (RFC 7518 §3.4); OpenSSL wants a DER ECDSA-Sig-Value.
      if (!key.pkey || !EVP_PKEY_is_a(key.pkey.get(), "EC") || sig.size() != 64) return false;
      std::unique_ptr<ECDSA_SIG, SigFree> es(ECDSA_SIG_new());
      BnPtr r(BN_bin2bn(U(sig), 32, nullptr));
      BnPtr s(BN_bin2bn(U(sig) + 32, 32, nullptr));
      if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1) return false;
      r.release();  // owned by es now
      s.release();
      int len = i2d_ECDSA_SIG(es.get(), nullptr);
      if (len <= 0) return false;
      std::string der(static_cast<size_t>(len), '\0');
      unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_ECDSA_SIG(es.get(), &p) != len) return false;
      return DigestVerify(key.pkey.get(), signing_input, U(der), der.size());
    }
    case JwtAlg::kHS256: {
      if (key.kty != Jwk::Kty::kOct || key.secret.empty() || sig.size() != 32) return false;
      unsigned char mac[EVP_MAX_MD_SIZE];
      unsigned int mac_len = 0;
      if (HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
               reinterpret_cast<const unsigned char*>(signing_input.data()),
               signing_input.size(), mac, &mac_len) == nullptr ||
          mac_len != 32) {
        return false;
      }
      return CRYPTO_memcmp(mac, sig.data(), 32) == 0;
    }
  }
  return false;
}

// NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional. Saturates to the
// int64 range; false for non-numbers and non-finite values.
bool NumericDate(const nlohmann::json& v, int64_t* out) {
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    *out = u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d)) return false;
    d = std::floor(d);
    if (d >= 9.2e18) *out = INT64_MAX;
    else if (d <= -9.2e18) *out = INT64_MIN;
    else *out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

bool Fail(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
}

}  // namespace

bool Base64UrlDecode(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64UrlValue(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
      acc &= (1u << bits) - 1;
    }
  }
  return acc == 0;  // leftover bits of the last character must be zero (canonical encoding)
}

std::string Base64UrlEncode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

bool ParseJsonStrict(std::string_view text, int max_depth, nlohmann::json* out,
                     std::string* error) {
  bool too_deep = false, duplicate = false;
  std::vector<std::set<std::string>> keys;  // member names of each open object
  auto cb = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        if (depth + 1 > max_depth) {
          too_deep = true;
          return false;  // skip the subtree: nothing deeper is ever built
        }
        if (event == E::object_start) keys.emplace_back();
        return true;
      case E::object_end:
        if (!keys.empty()) keys.pop_back();
        return true;
      case E::key:
        if (!keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
        }
        return true;
      default: return true;
    }
  };
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), cb,
                                           /*allow_exceptions=*/false);
  if (too_deep) return Fail(error, "is nested deeper than " + std::to_string(max_depth) + " levels");
  if (j.is_discarded()) return Fail(error, "is not valid JSON");
  if (duplicate) return Fail(error, "has a duplicate member name");
  *out = std::move(j);
  return true;
}

std::optional<JwtAlg> JwtAlgFromName(std::string_view name) {
  if (name == "RS256") return JwtAlg::kRS256;
  if (name == "ES256") return JwtAlg::kES256;
  if (name == "HS256") return JwtAlg::kHS256;
  return std::nullopt;
}

std::string_view JwtAlgName(JwtAlg alg) {
  switch (alg) {
    case JwtAlg::kRS256: return "RS256";
    case JwtAlg::kES256: return "ES256";
    case JwtAlg::kHS256: return "HS256";
  }
  return "?";
}

bool JwkSet::Parse(const nlohmann::json& jwks, JwkSet* out, std::string* error) {
  out->keys_.clear();
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array()) {
    return Fail(error, "a JWKS must be an object with a \"keys\" array");
  }
  std::set<std::string> kids;
  for (const auto& k : jwks["keys"]) {
    Jwk key;
    bool skip = false;
    if (!ParseKey(k, &key, &skip, error)) return false;
    if (skip) continue;
    if (!key.kid.empty() && !kids.insert(key.kid).second) {
      return Fail(error, "two keys share kid \"" + key.kid + "\"");
    }
    out->keys_.push_back(std::move(key));
  }
  return true;
}

bool JwkSet::LoadFile(const std::string& path, JwkSet* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(error, "cannot read JWKS file " + path);
  std::string text;
  text.resize(kMaxJwksFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxJwksFileBytes) return Fail(error, "JWKS file " + path + " exceeds 1 MiB");
  nlohmann::json j;
  std::string why;
  if (!ParseJsonStrict(text, kMaxJwksDepth, &j, &why)) {
    return Fail(error, "JWKS file " + path + " " + why);
  }
  if (!Parse(j, out, &why)) return Fail(error, "JWKS file " + path + ": " + why);
  return true;
}

bool LooksLikeJwt(std::string_view token) {
  return std::count(token.begin(), token.end(), '.') == 2 && token.front() != '.';
}

bool VerifyJwt(std::string_view token, const JwkSet& keys, const JwtOptions& options,
               int64_t now, nlohmann::json* claims, std::string* error) {
  if (options.issuer.empty() || options.audience.empty()) {
    return Fail(error, "the gateway has no JWT issuer or audience configured");
  }
  // 1. Size and shape.
  if (token.size() > options.max_token_bytes) {
    return Fail(error, "token is larger than " + std::to_string(options.max_token_bytes) +
                           " bytes");
  }
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return Fail(error, "token is not a compact JWS (header.payload.signature)");
  }
  std::string_view h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1),
                   s64 = token.substr(d2 + 1);
  std::string header_text, payload_text, sig;
  if (h64.empty() || !Base64UrlDecode(h64, &header_text)) {
    return Fail(error, "token header is not valid base64url");
  }
  if (p64.empty() || !Base64UrlDecode(p64, &payload_text)) {
    return Fail(error, "token payload is not valid base64url");
  }
  if (!Base64UrlDecode(s64, &sig)) return Fail(error, "token signature is not valid base64url");

  // 2. Header.
  nlohmann::json header;
  std::string why;
  if (!ParseJsonStrict(header_text, options.max_json_depth, &header, &why)) {
    return Fail(error, "token header " + why);
  }
  if (!header.is_object()) return Fail(error, "token header is not a JSON object");
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) {
    return Fail(error, "token header has no string alg");
  }
  const std::string& alg_name = alg_it->get_ref<const std::string&>();
  std::optional<JwtAlg> alg = JwtAlgFromName(alg_name);
  bool allowed = alg && std::find(options.algorithms.begin(), options.algorithms.end(), *alg) !=
                            options.algorithms.end();
  if (!allowed) {
    std::string list;
    for (JwtAlg a : options.algorithms) list += (list.empty() ? "" : ", ") + std::string(JwtAlgName(a));
    if (alg_name == "none" || alg_name == "None" || alg_name == "NONE") {
      return Fail(error, "unsigned tokens (alg none) are never accepted");
    }
    return Fail(error, "token algorithm is not allowed (allowed: " + list + ")");
  }
  if (header.contains("crit")) {
    return Fail(error, "token header lists critical extensions (crit) this gateway does not "
                       "implement");
  }
  if (auto typ = header.find("typ"); typ != header.end()) {
    std::string t = typ->is_string() ? typ->get<std::string>() : std::string();
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (t != "jwt" && t != "at+jwt" && t != "application/at+jwt" && t != "application/jwt") {
      return Fail(error, "token typ must be JWT or at+jwt");
    }
  }

  // 3. Key: by kid when given, else the only key that serves the algorithm. Keys embedded in
  // the token (jwk, jku, x5u, x5c) are ignored: trust comes from configuration only.
  const Jwk* key = nullptr;
  if (auto kid = header.find("kid"); kid != header.end()) {
    if (!kid->is_string()) return Fail(error, "token header kid is not a string");
    for (const Jwk& k : keys.keys()) {
      if (!k.kid.empty() && k.kid == kid->get_ref<const std::string&>()) key = &k;
    }
    if (key == nullptr) return Fail(error, "token kid names no key in the configured JWKS");
    if (!KeyServes(*key, *alg)) {
      return Fail(error, "token algorithm " + alg_name + " does not match key \"" + key->kid +
                             "\" (kty " + KtyName(key->kty) +
                             (key->alg ? ", alg " + std::string(JwtAlgName(*key->alg)) : "") +
                             ")");
    }
  } else {
    int n = 0;
    for (const Jwk& k : keys.keys()) {
      if (KeyServes(k, *alg)) {
        key = &k;
        ++n;
      }
    }
    if (n == 0) return Fail(error, "no configured key serves algorithm " + alg_name);
    if (n > 1) return Fail(error, "token has no kid and several configured keys could verify it");
  }

  // 4. Signature over the ASCII of header.payload.
  if (!VerifySignature(*key, *alg, token.substr(0, d2), sig)) {
    return Fail(error, "token signature does not verify");
  }

  // 5. Claims (authenticated from here on).
  nlohmann::json c;
  if (!ParseJsonStrict(payload_text, options.max_json_depth, &c, &why)) {
    return Fail(error, "token payload " + why);
  }
  if (!c.is_object()) return Fail(error, "token payload is not a JSON object");
  int64_t leeway = std::clamp<int64_t>(options.leeway_seconds, 0, kMaxLeewaySeconds);
  int64_t t = 0;
  if (auto it = c.find("exp"); it != c.end()) {
    if (!NumericDate(*it, &t)) return Fail(error, "token exp is not a number");
    if (now - leeway >= t) return Fail(error, "token has expired");
  } else if (options.require_exp) {
    return Fail(error, "token has no exp (expiry) claim");
  }
  if (auto it = c.find("nbf"); it != c.end()) {
    if (!NumericDate(*it, &t)) return Fail(error, "token nbf is not a number");
    if (t > now + leeway) return Fail(error, "token is not valid yet (nbf is in the future)");
  }
  if (auto it = c.find("iat"); it != c.end()) {
    if (!NumericDate(*it, &t)) return Fail(error, "token iat is not a number");
    if (t > now + leeway) return Fail(error, "token was issued in the future (iat)");
  }
  auto iss = c.find("iss");
  if (iss == c.end() || !iss->is_string() || iss->get_ref<const std::string&>() != options.issuer) {
    return Fail(error, "token issuer (iss) is not " + options.issuer);
  }
  bool aud_ok = false;
  if (auto aud = c.find("aud"); aud != c.end()) {
    if (aud->is_string()) {
      aud_ok = aud->get_ref<const std::string&>() == options.audience;
    } else if (aud->is_array()) {
      for (const auto& a : *aud) {
        if (!a.is_string()) return Fail(error, "token aud holds a value that is not a string");
        if (a.get_ref<const std::string&>() == options.audience) aud_ok = true;
      }
    }
  }
  if (!aud_ok) {
    return Fail(error, "token audience (aud) does not include " + options.audience +
                           ": it was issued for another resource");
  }
  *claims = std::move(c);
  return true;
}

}  // namespace writ::gateway
