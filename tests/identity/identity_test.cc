// identity_test.cc -- gateway/identity and gateway/jwt: keys are generated here with OpenSSL
// (RSA 2048, EC P-256, an HMAC secret), written to a JWKS file, and tokens are signed by a small
// helper below. Every rejection listed in docs/identity.md has a case.
#include <doctest/doctest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gateway/identity.h"
#include "gateway/jwt.h"
#include "runtime/request.h"

namespace {

using json = nlohmann::json;
using namespace writ::gateway;

constexpr int64_t kNow = 1'750'000'000;
constexpr const char* kResource = "https://mcp.example.com/mcp";
constexpr const char* kIssuer = "https://auth.example.com";
constexpr const char* kApiKey = "wk_live_3f9a8c1e5b7d2a4c6e8f0a1b3c5d7e9f";

using PkeyPtr = std::shared_ptr<EVP_PKEY>;

std::string Bytes(const BIGNUM* bn, int pad = 0) {
  std::string out(pad ? pad : BN_num_bytes(bn), '\0');
  if (pad) BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  else BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string BnParam(EVP_PKEY* k, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
  std::string s = Bytes(bn, pad);
  BN_free(bn);
  return s;
}

std::string DigestSign(EVP_PKEY* k, std::string_view data) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, k) == 1);
  size_t len = 0;
  auto in = reinterpret_cast<const unsigned char*>(data.data());
  REQUIRE(EVP_DigestSign(md, nullptr, &len, in, data.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                         data.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(md);
  return sig;
}

// DER ECDSA-Sig-Value -> JWS R||S.
std::string DerToRaw(const std::string& der) {
  auto p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(s != nullptr);
  const BIGNUM *r = nullptr, *ss = nullptr;
  ECDSA_SIG_get0(s, &r, &ss);
  std::string out = Bytes(r, 32) + Bytes(ss, 32);
  ECDSA_SIG_free(s);
  return out;
}

std::string Hmac(const std::string& key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

struct Keys {
  PkeyPtr rsa{EVP_RSA_gen(2048), EVP_PKEY_free};
  PkeyPtr rsa_other{EVP_RSA_gen(2048), EVP_PKEY_free};
  PkeyPtr ec{EVP_EC_gen("P-256"), EVP_PKEY_free};
  std::string hmac = std::string(48, '\0');
  std::filesystem::path dir;
  std::string jwks_path;

  Keys() {
    REQUIRE(rsa);
    REQUIRE(ec);
    RAND_bytes(reinterpret_cast<unsigned char*>(hmac.data()), static_cast<int>(hmac.size()));
    dir = std::filesystem::temp_directory_path() /
          ("writ_identity_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    jwks_path = (dir / "jwks.json").string();
    std::ofstream(jwks_path) << Jwks().dump(2);
  }
  ~Keys() { std::filesystem::remove_all(dir); }

  json Jwks() const {
    // rsa1 has no "alg": only its kty keeps HS256 away from it (the confusion attack).
    return json{{"keys",
                 {{{"kty", "RSA"}, {"kid", "rsa1"}, {"use", "sig"},
                   {"n", Base64UrlEncode(BnParam(rsa.get(), OSSL_PKEY_PARAM_RSA_N))},
                   {"e", Base64UrlEncode(BnParam(rsa.get(), OSSL_PKEY_PARAM_RSA_E))}},
                  {{"kty", "EC"}, {"kid", "ec1"}, {"crv", "P-256"}, {"alg", "ES256"},
                   {"x", Base64UrlEncode(BnParam(ec.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))},
                   {"y", Base64UrlEncode(BnParam(ec.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32))}},
                  {{"kty", "oct"}, {"kid", "hs1"}, {"k", Base64UrlEncode(hmac)}},
                  // Skipped: an encryption key and an unsupported key type.
                  {{"kty", "RSA"}, {"kid", "enc1"}, {"use", "enc"}, {"n", "AQAB"}, {"e", "AQAB"}},
                  {{"kty", "OKP"}, {"kid", "ed1"}, {"crv", "Ed25519"}, {"x", "AAAA"}}}}};
  }

  // The DER SubjectPublicKeyInfo of the RSA key: what an attacker feeds HS256 as the secret.
  std::string RsaPublicDer() const {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(rsa.get(), &der);
    std::string s(reinterpret_cast<char*>(der), len);
    OPENSSL_free(der);
    return s;
  }
  std::string RsaPublicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string s(data, len);
    BIO_free(bio);
    return s;
  }
};

Keys& K() {
  static Keys keys;
  return keys;
}

// Signs header.payload. `alg` picks the algorithm actually used, independent of the header.
std::string Sign(const json& header, const json& claims, std::string_view alg,
                 EVP_PKEY* pkey = nullptr, const std::string* secret = nullptr) {
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  std::string sig;
  if (alg == "RS256") sig = DigestSign(pkey ? pkey : K().rsa.get(), input);
  else if (alg == "ES256") sig = DerToRaw(DigestSign(pkey ? pkey : K().ec.get(), input));
  else if (alg == "HS256") sig = Hmac(secret ? *secret : K().hmac, input);
  return input + "." + Base64UrlEncode(sig);
}

json Claims() {
  return json{{"iss", kIssuer},       {"aud", kResource},          {"sub", "alice"},
              {"exp", kNow + 300},    {"iat", kNow - 10},          {"nbf", kNow - 10},
              {"azp", "claude-code"}, {"groups", {"ops", "eng"}}, {"department", "eng"},
              {"scope", "mcp:tools mcp:read"}};
}

std::string Rs(const json& claims, std::string kid = "rsa1") {
  return Sign({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid}}, claims, "RS256");
}
std::string Es(const json& claims) {
  return Sign({{"alg", "ES256"}, {"kid", "ec1"}}, claims, "ES256");
}
std::string Hs(const json& claims) {
  return Sign({{"alg", "HS256"}, {"kid", "hs1"}}, claims, "HS256");
}

json Config() {
  return json{
      {"resource", kResource},
      {"authorization_servers", {kIssuer}},
      {"scopes_supported", {"mcp:tools", "mcp:read"}},
      {"api_keys",
       {{{"name", "ci"},
         {"hash", HashApiKey(kApiKey)},
         {"principal", "Agent::\"ci-bot\""},
         {"attrs", {{"team", "platform"}}},
         {"parents", {"Group::\"bots\"", "Group::\"bots\""}}}}},
      {"jwt",
       {{"issuer", kIssuer},
        {"jwks_file", K().jwks_path},
        {"leeway_seconds", 60},
        {"algorithms", {"RS256", "ES256", "HS256"}},
        {"claims",
         {"sub -> uid as User::\"{sub}\"", "groups -> parents as Group::\"{value}\"",
          "department -> attrs.department",
          {{"claim", "scope"}, {"to", "attrs.scopes"}, {"split", " "}}}}}},
      {"stdio", {{"principal", "User::\"local\""}, {"parents", {"Role::\"dev\""}}}}};
}

const Authenticator& Auth() {
  static std::unique_ptr<Authenticator> a = [] {
    std::string error;
    auto p = Authenticator::Create(Config(), "", &error);
    INFO(error);
    REQUIRE(p);
    return p;
  }();
  return *a;
}

AuthResult Bearer(std::string_view token, int64_t now = kNow) {
  return Auth().Authenticate("Bearer " + std::string(token), now);
}

// Rejected with 401 invalid_token, a description containing `why`, no part of the token in the
// description, and a WWW-Authenticate carrying error and resource_metadata.
void Rejects(const std::string& token, std::string_view why, int64_t now = kNow) {
  AuthResult r = Bearer(token, now);
  REQUIRE_FALSE(r.ok());
  const AuthError& e = r.error();
  INFO("description: " << e.description);
  CHECK(e.http_status == 401);
  CHECK(e.error == "invalid_token");
  CHECK(e.description.find(why) != std::string::npos);
  for (size_t i = 0; i + 12 <= token.size(); i += 12) {
    CHECK(e.description.find(token.substr(i, 12)) == std::string::npos);
  }
  CHECK(e.www_authenticate.rfind("Bearer resource_metadata=\"https://mcp.example.com/"
                                 ".well-known/oauth-protected-resource/mcp\", error=\"invalid_token\", "
                                 "error_description=\"",
                                 0) == 0);
}

}  // namespace

TEST_CASE("base64url is strict") {
  std::string out;
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\xfe", 3)}) {
    std::string enc = Base64UrlEncode(s);
    CHECK(enc.find('=') == std::string::npos);
    REQUIRE(Base64UrlDecode(enc, &out));
    CHECK(out == s);
  }
  CHECK(Base64UrlEncode("\xfb\xff") == "-_8");
  CHECK_FALSE(Base64UrlDecode("Zg==", &out));  // padding
  CHECK_FALSE(Base64UrlDecode("+/8", &out));   // standard alphabet
  CHECK_FALSE(Base64UrlDecode("Zm 9v", &out));  // whitespace
  CHECK_FALSE(Base64UrlDecode("Z", &out));      // impossible length
  CHECK_FALSE(Base64UrlDecode("Zh", &out));     // non-zero unused bits ("Zg" is canonical)
  CHECK(Base64UrlDecode("Zg", &out));
}

TEST_CASE("JSON parsing limits depth and duplicate names") {
  json j;
  std::string error;
  CHECK(ParseJsonStrict(R"({"a":[1,{"b":2}]})", 3, &j, &error));
  CHECK_FALSE(ParseJsonStrict(R"({"a":[1,{"b":2}]})", 2, &j, &error));
  CHECK(error.find("deeper") != std::string::npos);
  CHECK_FALSE(ParseJsonStrict(R"({"a":1,"a":2})", 4, &j, &error));
  CHECK(error.find("duplicate") != std::string::npos);
  CHECK(ParseJsonStrict(R"({"a":{"a":1}})", 4, &j, &error));  // same name, different objects
  CHECK_FALSE(ParseJsonStrict("{\"a\":\"\xff\"}", 4, &j, &error));  // bad UTF-8
  CHECK_FALSE(ParseJsonStrict("{\"a\":1} x", 4, &j, &error));
  CHECK_FALSE(ParseJsonStrict(std::string(100000, '['), 16, &j, &error));
}

TEST_CASE("valid RS256, ES256 and HS256 tokens map claims to the principal") {
  for (const std::string& token : {Rs(Claims()), Es(Claims()), Hs(Claims())}) {
    AuthResult r = Bearer(token);
    INFO((r.ok() ? "" : r.error().description));
    REQUIRE(r.ok());
    const Principal& p = r.principal();
    CHECK(p.uid == "User::\"alice\"");
    CHECK(p.parents == std::vector<std::string>{"Group::\"eng\"", "Group::\"ops\""});
    CHECK(p.attrs == json{{"department", "eng"}, {"scopes", {"mcp:tools", "mcp:read"}}});
    CHECK(p.client == "claude-code");
    CHECK(p.method == "jwt");
    CHECK(p.ToEntityJson() ==
          json{{"uid", "User::\"alice\""},
               {"attrs", p.attrs},
               {"parents", {"Group::\"eng\"", "Group::\"ops\""}}});
    CHECK(p.ToContextJson() == json{{"auth", "jwt"}, {"client", "claude-code"}});
  }
  // Scheme is case-insensitive; aud may be an array holding our URL.
  json c = Claims();
  c["aud"] = {"https://other.example.com", kResource};
  CHECK(Auth().Authenticate("bearer   " + Rs(c), kNow).ok());
}

TEST_CASE("claim values are escaped into uids, never spliced") {
  json c = Claims();
  c["sub"] = "eve\" || true || \"";
  c["groups"] = "admins";  // a single string is one parent
  AuthResult r = Bearer(Rs(c));
  REQUIRE(r.ok());
  CHECK(r.principal().uid == "User::\"eve\\\" || true || \\\"\"");
  std::string canon;
  size_t tl = 0;
  CHECK(writ::runtime::ParseEntityUid(r.principal().uid, &canon, &tl));
  CHECK(canon == r.principal().uid);
  CHECK(r.principal().parents == std::vector<std::string>{"Group::\"admins\""});
  c["sub"] = "";
  Rejects(Rs(c), "does not form a valid entity uid");
  c["sub"] = json::object();
  Rejects(Rs(c), "does not form a valid entity uid");
  c = Claims();
  c["groups"] = {"ok", 1.5};
  Rejects(Rs(c), "claim groups does not form a valid entity uid");
  c = Claims();
  c.erase("sub");
  Rejects(Rs(c), "token has no sub claim");
}

TEST_CASE("exp, nbf and iat honour the leeway at its edges") {
  json c = Claims();
  c["exp"] = kNow - 59;
  CHECK(Bearer(Rs(c)).ok());
  c["exp"] = kNow - 60;
  Rejects(Rs(c), "token has expired");
  c["exp"] = kNow - 3600;
  Rejects(Rs(c), "token has expired");
  c["exp"] = "soon";
  Rejects(Rs(c), "token exp is not a number");
  c.erase("exp");
  Rejects(Rs(c), "token has no exp");

  c = Claims();
  c["nbf"] = kNow + 60;
  CHECK(Bearer(Rs(c)).ok());
  c["nbf"] = kNow + 61;
  Rejects(Rs(c), "token is not valid yet");
  c = Claims();
  c["iat"] = kNow + 60;
  CHECK(Bearer(Rs(c)).ok());
  c["iat"] = kNow + 61;
  Rejects(Rs(c), "issued in the future");
  c = Claims();
  c["exp"] = 1e300;  // saturates, does not overflow
  CHECK(Bearer(Rs(c)).ok());
  c["exp"] = kNow + 0.5;  // fractional NumericDate
  CHECK(Bearer(Rs(c)).ok());
}

TEST_CASE("issuer and audience must be ours") {
  json c = Claims();
  c["iss"] = "https://evil.example.com";
  Rejects(Rs(c), "token issuer (iss) is not https://auth.example.com");
  c["iss"] = "https://auth.example.com/";  // exact match only
  Rejects(Rs(c), "token issuer");
  c.erase("iss");
  Rejects(Rs(c), "token issuer");

  c = Claims();
  c["aud"] = "https://other-server.example.com/mcp";
  Rejects(Rs(c), "audience (aud) does not include https://mcp.example.com/mcp");
  c["aud"] = {"https://other-server.example.com/mcp"};
  Rejects(Rs(c), "issued for another resource");
  c["aud"] = "https://mcp.example.com";  // prefix of ours is not ours
  Rejects(Rs(c), "audience");
  c["aud"] = {kResource, 7};
  Rejects(Rs(c), "aud holds a value that is not a string");
  c.erase("aud");
  Rejects(Rs(c), "audience");
}

TEST_CASE("signatures: bad, tampered, wrong key, wrong encoding") {
  // Signed by another RSA key under our kid.
  Rejects(Sign({{"alg", "RS256"}, {"kid", "rsa1"}}, Claims(), "RS256", K().rsa_other.get()),
          "token signature does not verify");
  // Payload swapped after signing.
  std::string good = Rs(Claims());
  json c = Claims();
  c["sub"] = "admin";
  std::string forged = Rs(c);
  size_t a = good.find('.'), b = good.rfind('.');
  size_t fa = forged.find('.'), fb = forged.rfind('.');
  Rejects(good.substr(0, a) + forged.substr(fa, fb - fa) + good.substr(b),
          "token signature does not verify");
  // One flipped bit in the signature.
  std::string sig;
  REQUIRE(Base64UrlDecode(good.substr(b + 1), &sig));
  sig[10] ^= 1;
  Rejects(good.substr(0, b + 1) + Base64UrlEncode(sig), "token signature does not verify");
  // HS256 with the wrong secret.
  std::string wrong(48, 'x');
  Rejects(Sign({{"alg", "HS256"}, {"kid", "hs1"}}, Claims(), "HS256", nullptr, &wrong),
          "token signature does not verify");
  // ES256 with the DER signature OpenSSL produces instead of raw R||S.
  std::string input = Base64UrlEncode(json{{"alg", "ES256"}, {"kid", "ec1"}}.dump()) + "." +
                      Base64UrlEncode(Claims().dump());
  Rejects(input + "." + Base64UrlEncode(DigestSign(K().ec.get(), input)),
          "token signature does not verify");
  // ES256 token presented under the RSA kid.
  Rejects(Sign({{"alg", "ES256"}, {"kid", "rsa1"}}, Claims(), "ES256"),
          "token algorithm ES256 does not match key \"rsa1\" (kty RSA)");
  // An empty signature.
  Rejects(good.substr(0, b + 1), "token signature does not verify");
}

TEST_CASE("alg none and the HS256-with-RSA-public-key confusion are refused") {
  std::string h = Base64UrlEncode(json{{"alg", "none"}, {"typ", "JWT"}}.dump());
  std::string p = Base64UrlEncode(Claims().dump());
  Rejects(h + "." + p + ".", "alg none");
  Rejects(h + "." + p + "." + Base64UrlEncode("sig"), "alg none");
  Rejects(Sign({{"alg", "RS512"}, {"kid", "rsa1"}}, Claims(), "RS256"),
          "token algorithm is not allowed (allowed: RS256, ES256, HS256)");
  Rejects(Sign({{"kid", "rsa1"}}, Claims(), "RS256"), "token header has no string alg");

  // The attacker signs HS256 with the RSA public key (as published) as the HMAC secret.
  for (const std::string& secret : {K().RsaPublicDer(), K().RsaPublicPem(),
                                    BnParam(K().rsa.get(), OSSL_PKEY_PARAM_RSA_N)}) {
    Rejects(Sign({{"alg", "HS256"}, {"kid", "rsa1"}}, Claims(), "HS256", nullptr, &secret),
            "token algorithm HS256 does not match key \"rsa1\" (kty RSA)");
  }
  // Without a kid, HS256 can only pick the oct key; the RSA key never serves it.
  std::string der = K().RsaPublicDer();
  Rejects(Sign({{"alg", "HS256"}}, Claims(), "HS256", nullptr, &der),
          "token signature does not verify");
  // A key pinned to ES256 refuses other algorithms.
  Rejects(Sign({{"alg", "HS256"}, {"kid", "ec1"}}, Claims(), "HS256"), "does not match key");
}

TEST_CASE("key selection") {
  Rejects(Rs(Claims(), "rsa-rotated-away"), "token kid names no key in the configured JWKS");
  Rejects(Sign({{"alg", "RS256"}, {"kid", 5}}, Claims(), "RS256"), "kid is not a string");
  Rejects(Rs(Claims(), "enc1"), "token kid names no key");  // use: enc keys are not loaded
  // No kid: the only key that serves the algorithm is used.
  CHECK(Bearer(Sign({{"alg", "RS256"}}, Claims(), "RS256")).ok());
  CHECK(Bearer(Sign({{"alg", "ES256"}}, Claims(), "ES256")).ok());
  // A key embedded in the token is never trusted.
  json jwk = {{"kty", "RSA"}, {"n", Base64UrlEncode(BnParam(K().rsa_other.get(), OSSL_PKEY_PARAM_RSA_N))},
              {"e", "AQAB"}};
  Rejects(Sign({{"alg", "RS256"}, {"jwk", jwk}}, Claims(), "RS256", K().rsa_other.get()),
          "token signature does not verify");
  // Unknown critical extensions and foreign typ values.
  Rejects(Sign({{"alg", "RS256"}, {"kid", "rsa1"}, {"crit", {"b64"}}, {"b64", false}}, Claims(),
               "RS256"),
          "critical extensions");
  Rejects(Sign({{"alg", "RS256"}, {"kid", "rsa1"}, {"typ", "dpop+jwt"}}, Claims(), "RS256"),
          "token typ must be JWT or at+jwt");
  CHECK(Bearer(Sign({{"alg", "RS256"}, {"kid", "rsa1"}, {"typ", "at+jwt"}}, Claims(), "RS256"))
            .ok());
}

TEST_CASE("malformed tokens") {
  std::string good = Rs(Claims());
  size_t a = good.find('.'), b = good.rfind('.');
  std::string h = good.substr(0, a), p = good.substr(a + 1, b - a - 1), s = good.substr(b + 1);
  Rejects(h + "=." + p + "." + s, "token header is not valid base64url");  // padding
  Rejects("eyJ!." + p + "." + s, "token header is not valid base64url");
  // Base64url problems inside a JWT-shaped token: impossible length, non-canonical bits.
  Rejects("Z." + p + "." + s, "token header is not valid base64url");   // length % 4 == 1
  Rejects("Zh." + p + "." + s, "token header is not valid base64url");  // non-zero unused bits
  Rejects(h + ".Zh." + s, "token payload is not valid base64url");
  Rejects(h + "." + p + ".Zh", "token signature is not valid base64url");
  // JSON problems.
  Rejects(Base64UrlEncode("{\"alg\":") + "." + p + "." + s, "token header is not valid JSON");
  Rejects(Base64UrlEncode("[\"RS256\"]") + "." + p + "." + s, "token header is not a JSON object");
  Rejects(Base64UrlEncode(R"({"alg":"RS256","alg":"none"})") + "." + p + "." + s,
          "token header has a duplicate member name");
  std::string deep = "{\"alg\":\"RS256\",\"x\":" + std::string(40, '[') + std::string(40, ']') + "}";
  Rejects(Base64UrlEncode(deep) + "." + p + "." + s, "token header is nested deeper than 16");
  // Payload problems are reported only once the signature holds.
  auto signed_raw = [](const std::string& payload) {
    std::string in = Base64UrlEncode(json{{"alg", "HS256"}, {"kid", "hs1"}}.dump()) + "." +
                     Base64UrlEncode(payload);
    return in + "." + Base64UrlEncode(Hmac(K().hmac, in));
  };
  Rejects(signed_raw("{\"sub\":"), "token payload is not valid JSON");
  Rejects(signed_raw("\"alice\""), "token payload is not a JSON object");
  Rejects(signed_raw(R"({"sub":"alice","exp":1e400})"), "token payload is not valid JSON");
  Rejects(signed_raw(R"({"sub":"alice","sub":"admin"})"), "token payload has a duplicate");
  Rejects("a.b.c.d", "unknown API key");  // not JWT-shaped: tried as an API key
  json claims;
  std::string error;
  JwtOptions opts{kIssuer, kResource, {JwtAlg::kRS256}};
  CHECK_FALSE(VerifyJwt("a.b.c.d", JwkSet(), opts, kNow, &claims, &error));
  CHECK(error == "token is not a compact JWS (header.payload.signature)");
  Rejects(".a.b", "unknown API key");
}

TEST_CASE("oversized tokens are refused before parsing") {
  json c = Claims();
  c["pad"] = std::string(9000, 'x');
  Rejects(Rs(c), "token is larger than 8192 bytes");
  c["pad"] = std::string(100000, 'x');
  Rejects(Rs(c), "token is larger than 8192 bytes");
}

TEST_CASE("API keys are matched by SHA-256 in constant time") {
  AuthResult r = Auth().Authenticate(std::string("Bearer ") + kApiKey, kNow);
  REQUIRE(r.ok());
  CHECK(r.principal().uid == "Agent::\"ci-bot\"");
  CHECK(r.principal().parents == std::vector<std::string>{"Group::\"bots\""});
  CHECK(r.principal().attrs == json{{"team", "platform"}});
  CHECK(r.principal().method == "api_key");
  CHECK(r.principal().client == "ci");

  AuthResult bad = Auth().Authenticate(std::string("Bearer ") + kApiKey + "x", kNow);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().http_status == 401);
  CHECK(bad.error().error == "invalid_token");
  CHECK(bad.error().description == "unknown API key");

  CHECK(HashApiKey("abc") ==
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(ConstantTimeEqual("abc", "abc"));
  CHECK_FALSE(ConstantTimeEqual("abc", "abd"));
  CHECK_FALSE(ConstantTimeEqual("abc", "ab"));
  // The comparison in identity.cc goes through CRYPTO_memcmp, never memcmp or ==.
  std::ifstream src(std::string(WRIT_SOURCE_DIR) + "/gateway/identity.cc");
  std::string text((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
  CHECK(text.find("CRYPTO_memcmp(a.data(), b.data(), a.size())") != std::string::npos);
  CHECK(text.find("ConstantTimeEqual(digest, e.sha256)") != std::string::npos);
}

TEST_CASE("missing, foreign and malformed Authorization headers") {
  AuthResult r = Auth().Authenticate("", kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().http_status == 401);
  CHECK(r.error().error.empty());  // RFC 6750 §3.1: no error code without credentials
  CHECK(r.error().www_authenticate ==
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/"
        "oauth-protected-resource/mcp\"");
  r = Auth().Authenticate("Basic YWxpY2U6c2VjcmV0", kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().http_status == 401);
  CHECK(r.error().description.find("unsupported authorization scheme") != std::string::npos);
  for (const char* h : {"Bearer", "Bearer    ", "Bearer a b", "Bearer a\x01"}) {
    r = Auth().Authenticate(h, kNow);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().http_status == 400);
    CHECK(r.error().error == "invalid_request");
  }
  r = Auth().Authenticate("Bearer " + std::string(20000, 'k'), kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().description.find("larger than") != std::string::npos);
  // An opaque bearer that is neither a known key nor a JWT.
  r = Auth().Authenticate("Bearer opaque-token-from-elsewhere", kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().http_status == 401);
  CHECK(r.error().error == "invalid_token");
}

TEST_CASE("JWT-only and key-only configurations") {
  std::string error;
  json cfg = Config();
  cfg.erase("api_keys");
  auto jwt_only = Authenticator::Create(cfg, "", &error);
  REQUIRE(jwt_only);
  AuthResult r = jwt_only->Authenticate("Bearer not-a-jwt", kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().description == "the bearer token is neither an API key nor a JWT");

  cfg = Config();
  cfg.erase("jwt");
  cfg["api_keys"] = json::array();
  auto none = Authenticator::Create(cfg, "", &error);
  REQUIRE(none);
  r = none->Authenticate("Bearer " + Rs(Claims()), kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().description == "this gateway accepts no JWTs");
}

TEST_CASE("nested claims by JSON pointer") {
  json cfg = Config();
  cfg["jwt"]["claims"] = {"sub -> uid as User::\"{value}\"",
                          {{"claim", "/realm_access/roles"}, {"to", "parents"},
                           {"template", "Role::\"{value}\""}},
                          {{"claim", "/act/sub"}, {"to", "on_behalf_of"},
                           {"template", "User::\"{value}\""}},
                          {{"claim", "/groups/7"}, {"to", "attrs.g7"}}};
  std::string error;
  auto a = Authenticator::Create(cfg, "", &error);
  INFO(error);
  REQUIRE(a);
  json c = Claims();
  c["realm_access"] = {{"roles", {"admin", "dev"}}};
  c["act"] = {{"sub", "bob"}};
  AuthResult r = a->Authenticate("Bearer " + Rs(c), kNow);
  REQUIRE(r.ok());
  CHECK(r.principal().parents == std::vector<std::string>{"Role::\"admin\"", "Role::\"dev\""});
  CHECK(r.principal().on_behalf_of == "User::\"bob\"");
  CHECK_FALSE(r.principal().attrs.contains("g7"));
  c["realm_access"] = {1, 2};  // wrong shape: the claim is simply absent
  c["groups"] = {{"7", "x"}};
  r = a->Authenticate("Bearer " + Rs(c), kNow);
  REQUIRE(r.ok());
  CHECK(r.principal().parents.empty());
  CHECK(r.principal().attrs["g7"] == "x");
}

TEST_CASE("required scopes give 403 insufficient_scope") {
  json cfg = Config();
  cfg["jwt"]["required_scopes"] = {"mcp:tools"};
  std::string error;
  auto a = Authenticator::Create(cfg, "", &error);
  REQUIRE(a);
  CHECK(a->Authenticate("Bearer " + Rs(Claims()), kNow).ok());
  json c = Claims();
  c["scope"] = "mcp:read";
  AuthResult r = a->Authenticate("Bearer " + Rs(c), kNow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().http_status == 403);
  CHECK(r.error().error == "insufficient_scope");
  CHECK(r.error().www_authenticate.find("scope=\"mcp:tools\"") != std::string::npos);
  c.erase("scope");
  c["scp"] = {"mcp:tools"};
  CHECK(a->Authenticate("Bearer " + Rs(c), kNow).ok());
}

TEST_CASE("RFC 9728 protected resource metadata") {
  CHECK(Auth().ProtectedResourceMetadata() ==
        json{{"resource", kResource},
             {"authorization_servers", {kIssuer}},
             {"bearer_methods_supported", {"header"}},
             {"scopes_supported", {"mcp:tools", "mcp:read"}}});
  CHECK(Auth().MetadataUrl() ==
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
  CHECK(Auth().MetadataPath() == "/.well-known/oauth-protected-resource/mcp");
  CHECK(ProtectedResourceMetadataUrl("https://mcp.example.com") ==
        "https://mcp.example.com/.well-known/oauth-protected-resource");
  CHECK(ProtectedResourceMetadataUrl("https://mcp.example.com/") ==
        "https://mcp.example.com/.well-known/oauth-protected-resource");
  CHECK(ProtectedResourceMetadataUrl("http://localhost:8080/a/b") ==
        "http://localhost:8080/.well-known/oauth-protected-resource/a/b");
  CHECK(ProtectedResourceMetadataUrl("mcp.example.com").empty());
  CHECK(ProtectedResourceMetadataUrl("ftp://x/").empty());
  // error_description is kept to the RFC 6750 character set.
  CHECK(Auth().WwwAuthenticate("invalid_token", "bad \"x\"\r\nSet-Cookie: y") ==
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/"
        "oauth-protected-resource/mcp\", error=\"invalid_token\", "
        "error_description=\"bad 'x'??Set-Cookie: y\"");
}

TEST_CASE("stdio principal comes from config") {
  AuthResult r = Auth().StdioPrincipal();
  REQUIRE(r.ok());
  CHECK(r.principal().ToEntityJson() ==
        json{{"uid", "User::\"local\""}, {"attrs", json::object()}, {"parents", {"Role::\"dev\""}}});
  CHECK(r.principal().method == "stdio");
  json cfg = Config();
  cfg.erase("stdio");
  std::string error;
  auto a = Authenticator::Create(cfg, "", &error);
  REQUIRE(a);
  CHECK_FALSE(a->StdioPrincipal().ok());
}

TEST_CASE("configuration errors name the offending key") {
  auto err = [](json cfg) {
    std::string error;
    auto a = Authenticator::Create(cfg, "", &error);
    CHECK_FALSE(a);
    return error;
  };
  json c = Config();
  c["api_keys"][0]["hash"] = "md5:abcd";
  CHECK(err(c).find("identity.api_keys[0].hash must be sha256:") == 0);
  c = Config();
  c["api_keys"][0]["principal"] = "alice";
  CHECK(err(c).find("identity.api_keys[0].principal must be an entity uid") == 0);
  c = Config();
  c["api_keys"].push_back(c["api_keys"][0]);
  CHECK(err(c).find("duplicate hash") != std::string::npos);
  c = Config();
  c["jwt"]["isuer"] = "typo";
  CHECK(err(c) == "identity.jwt: unknown key `isuer`");
  c = Config();
  c["jwt"].erase("issuer");
  CHECK(err(c) == "identity.jwt.issuer is required");
  c = Config();
  c["jwt"]["algorithms"] = {"RS256", "none"};
  CHECK(err(c).find("`none` is not RS256, ES256 or HS256") != std::string::npos);
  c = Config();
  c["jwt"]["claims"] = {"department -> attrs.department"};
  CHECK(err(c) == "identity.jwt.claims must map exactly one claim to uid");
  c = Config();
  c["jwt"]["claims"] = {"sub -> uid"};
  CHECK(err(c).find("needs a template") != std::string::npos);
  c = Config();
  c["jwt"]["claims"] = {"sub -> uid as alice"};
  CHECK(err(c).find("must look like Type::\"{value}\"") != std::string::npos);
  c = Config();
  c["jwt"]["claims"] = {"sub -> roles"};
  CHECK(err(c).find("target must be uid, parents") != std::string::npos);
  c = Config();
  c["jwt"]["jwks_file"] = "/nonexistent/jwks.json";
  CHECK(err(c).find("cannot read JWKS file") == 0);
  c = Config();
  c["jwt"].erase("jwks_file");
  c["jwt"]["jwks"] = {{"keys", {{{"kty", "oct"}, {"kid", "short"}, {"k", Base64UrlEncode("short")}}}}};
  CHECK(err(c).find("at least 32 bytes") != std::string::npos);
  c["jwt"]["jwks"] = {{"keys", {{{"kty", "RSA"}, {"kid", "small"}, {"n", Base64UrlEncode(std::string(128, '\x7f'))}, {"e", "AQAB"}}}}};
  CHECK(err(c).find("2048 to 16384 bits") != std::string::npos);
  c["jwt"]["jwks"] = {{"keys", {{{"kty", "EC"}, {"crv", "P-256"}, {"x", Base64UrlEncode(std::string(32, '\1'))}, {"y", Base64UrlEncode(std::string(32, '\2'))}}}}};
  CHECK(err(c).find("not a valid P-256 public key") != std::string::npos);
  c["jwt"]["jwks"] = {{"keys", json::array()}};
  CHECK(err(c).find("no usable signing key") != std::string::npos);
  c = Config();
  c["jwt"]["leeway_seconds"] = 86400;
  CHECK(err(c).find("leeway_seconds") != std::string::npos);
  c = Config();
  c["resource"] = "mcp.example.com";
  CHECK(err(c).find("absolute http(s) URL") != std::string::npos);
  c = Config();
  c.erase("resource");
  CHECK(err(c).find("identity.jwt.audience (or identity.resource) is required") == 0);
}
