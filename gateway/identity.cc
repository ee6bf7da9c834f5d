// identity.cc -- the `identity:` configuration, API keys, JWT claim mapping, RFC 9728
// metadata. Entry points: Authenticator::Create / Authenticate (see identity.h).
#include "gateway/identity.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "runtime/request.h"

namespace writ::gateway {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxApiKeyBytes = 4096;
constexpr int64_t kMaxLeeway = 3600;

bool Fail(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
}

std::string Sha256(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof md);
}

bool HexDecode(std::string_view hex, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = val(hex[i]), lo = val(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

// Only the listed members may appear in `obj` (catches typos in config).
bool OnlyKeys(const json& obj, std::initializer_list<std::string_view> allowed,
              const std::string& where, std::string* error) {
  for (const auto& [k, v] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return Fail(error, where + ": unknown key `" + k + "`");
    }
  }
  return true;
}

bool GetString(const json& obj, const char* name, const std::string& where, std::string* out,
               std::string* error) {
  auto it = obj.find(name);
  if (it == obj.end()) return true;
  if (!it->is_string()) return Fail(error, where + "." + name + " must be a string");
  *out = it->get<std::string>();
  return true;
}

bool GetStrings(const json& obj, const char* name, const std::string& where,
                std::vector<std::string>* out, std::string* error) {
  auto it = obj.find(name);
  if (it == obj.end()) return true;
  if (!it->is_array()) return Fail(error, where + "." + name + " must be a list of strings");
  for (const auto& s : *it) {
    if (!s.is_string()) return Fail(error, where + "." + name + " must be a list of strings");
    out->push_back(s.get<std::string>());
  }
  return true;
}

bool CanonicalUid(std::string_view text, std::string* out) {
  size_t type_len = 0;
  return runtime::ParseEntityUid(text, out, &type_len);
}

// uid, attrs, parents of a configured principal (API key entry or stdio).
bool ParsePrincipal(const json& obj, const char* uid_key, const std::string& where,
                    Principal* p, std::string* error) {
  std::string uid;
  if (!GetString(obj, uid_key, where, &uid, error)) return false;
  if (!CanonicalUid(uid, &p->uid)) {
    return Fail(error, where + "." + uid_key + " must be an entity uid like User::\"alice\"");
  }
  if (auto it = obj.find("attrs"); it != obj.end()) {
    if (!it->is_object()) return Fail(error, where + ".attrs must be a map");
    p->attrs = *it;
  }
  std::vector<std::string> parents;
  if (!GetStrings(obj, "parents", where, &parents, error)) return false;
  for (const auto& s : parents) {
    std::string canon;
    if (!CanonicalUid(s, &canon)) {
      return Fail(error, where + ".parents must hold entity uids like Group::\"eng\"");
    }
    p->parents.push_back(std::move(canon));
  }
  std::sort(p->parents.begin(), p->parents.end());
  p->parents.erase(std::unique(p->parents.begin(), p->parents.end()), p->parents.end());
  return true;
}

bool ParseTarget(std::string_view to, ClaimMapping* m) {
  if (to == "uid") m->target = ClaimMapping::Target::kUid;
  else if (to == "parents") m->target = ClaimMapping::Target::kParents;
  else if (to == "client") m->target = ClaimMapping::Target::kClient;
  else if (to == "on_behalf_of") m->target = ClaimMapping::Target::kOnBehalfOf;
  else if (to.substr(0, 6) == "attrs." && to.size() > 6) {
    m->target = ClaimMapping::Target::kAttr;
    m->attr = std::string(to.substr(6));
  } else {
    return false;
  }
  return true;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// One mapping, either {claim:, to:, template:, split:, required:} or the short string form
// `claim -> target [as template]`.
bool ParseMapping(const json& m, const std::string& where, ClaimMapping* out,
                  std::string* error) {
  std::string to;
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t arrow = s.find("->");
    if (arrow == std::string::npos) {
      return Fail(error, where + ": expected `claim -> target [as template]`");
    }
    out->claim = Trim(std::string_view(s).substr(0, arrow));
    std::string rest = Trim(std::string_view(s).substr(arrow + 2));
    size_t as = rest.find(" as ");
    to = Trim(std::string_view(rest).substr(0, as));
    if (as != std::string::npos) out->uid_template = Trim(std::string_view(rest).substr(as + 4));
  } else if (m.is_object()) {
    if (!OnlyKeys(m, {"claim", "to", "template", "split", "required"}, where, error) ||
        !GetString(m, "claim", where, &out->claim, error) ||
        !GetString(m, "to", where, &to, error) ||
        !GetString(m, "template", where, &out->uid_template, error) ||
        !GetString(m, "split", where, &out->split, error)) {
      return false;
    }
    if (auto it = m.find("required"); it != m.end()) {
      if (!it->is_boolean()) return Fail(error, where + ".required must be true or false");
      out->required = it->get<bool>();
    }
  } else {
    return Fail(error, where + " must be a map or a `claim -> target` string");
  }
  if (out->claim.empty()) return Fail(error, where + ": claim is empty");
  if (out->claim[0] == '/') {
    try {
      json::json_pointer ptr(out->claim);
      (void)ptr;
    } catch (const json::exception&) {
      return Fail(error, where + ": claim `" + out->claim + "` is not a valid JSON pointer");
    }
  }
  if (!ParseTarget(to, out)) {
    return Fail(error, where + ": target must be uid, parents, client, on_behalf_of or "
                       "attrs.<name>, not `" + to + "`");
  }
  bool needs_template = out->target == ClaimMapping::Target::kUid ||
                        out->target == ClaimMapping::Target::kParents;
  if (needs_template && out->uid_template.empty()) {
    return Fail(error, where + ": mapping to " + to + " needs a template such as "
                       "User::\"{value}\"");
  }
  if (!out->uid_template.empty()) {
    // The template must form a uid for a plain value.
    std::string probe = out->uid_template, canon;
    for (std::string ph : {std::string("{value}"), "{" + out->claim + "}"}) {
      for (size_t p; (p = probe.find(ph)) != std::string::npos;) probe.replace(p, ph.size(), "x");
    }
    if (probe == out->uid_template || !CanonicalUid(probe, &canon)) {
      return Fail(error, where + ": template `" + out->uid_template +
                         "` must look like Type::\"{value}\"");
    }
  }
  if (out->target == ClaimMapping::Target::kUid) out->required = true;
  return true;
}

// Claim value -> string for uid templates: strings as is, integers in decimal.
bool ScalarText(const json& v, std::string* out) {
  if (v.is_string()) *out = v.get<std::string>();
  else if (v.is_number_integer()) *out = v.dump();
  else return false;
  return true;
}

bool ApplyTemplate(const ClaimMapping& m, const std::string& value, std::string* uid) {
  std::string escaped;
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20) return false;  // no control characters in ids
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  std::string text = m.uid_template;
  for (std::string ph : {std::string("{value}"), "{" + m.claim + "}"}) {
    for (size_t p = 0; (p = text.find(ph, p)) != std::string::npos; p += escaped.size()) {
      text.replace(p, ph.size(), escaped);
    }
  }
  return CanonicalUid(text, uid);
}

const json* FindClaim(const json& claims, const std::string& name) {
  if (name[0] == '/') {
    // The pointer was validated at config time, but an array index it names may still be out
    // of range for this token's shape: nlohmann reports that by throwing.
    try {
      json::json_pointer ptr(name);
      return claims.contains(ptr) ? &claims.at(ptr) : nullptr;
    } catch (const json::exception&) {
      return nullptr;
    }
  }
  auto it = claims.find(name);
  return it == claims.end() ? nullptr : &*it;
}

// The scopes a token grants: `scope` (space separated, RFC 8693/9068) or `scp` (list).
std::set<std::string> TokenScopes(const json& claims) {
  std::set<std::string> out;
  auto add_text = [&](const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find(' ', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) out.insert(s.substr(i, j - i));
      i = j + 1;
    }
  };
  for (const char* name : {"scope", "scp"}) {
    auto it = claims.find(name);
    if (it == claims.end()) continue;
    if (it->is_string()) add_text(it->get<std::string>());
    if (it->is_array()) {
      for (const auto& s : *it) {
        if (s.is_string()) out.insert(s.get<std::string>());
      }
    }
  }
  return out;
}

// Quoted-string content for WWW-Authenticate: RFC 6750 §3 allows %x20-21 / %x23-5B / %x5D-7E.
std::string HeaderSafe(std::string_view s) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u > 0x7E || c == '"' || c == '\\') ? (c == '"' ? '\'' : '?') : c;
  }
  return out;
}

}  // namespace

json Principal::ToEntityJson() const {
  return json{{"uid", uid}, {"attrs", attrs.is_object() ? attrs : json::object()},
              {"parents", parents}};
}

json Principal::ToContextJson() const {
  json j = json::object();
  if (!method.empty()) j["auth"] = method;
  if (!client.empty()) j["client"] = client;
  if (!on_behalf_of.empty()) j["on_behalf_of"] = on_behalf_of;
  return j;
}

std::string HashApiKey(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned char c : Sha256(key)) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string ProtectedResourceMetadataUrl(std::string_view resource) {
  size_t scheme = resource.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view s = resource.substr(0, scheme);
  if (s != "https" && s != "http") return "";
  size_t path = resource.find_first_of("/?#", scheme + 3);
  if (path == scheme + 3) return "";  // no host
  if (path != std::string_view::npos && resource[path] == '#') return "";
  std::string_view origin = resource.substr(0, path);
  std::string_view rest = path == std::string_view::npos ? "" : resource.substr(path);
  if (rest == "/") rest = "";
  return std::string(origin) + "/.well-known/oauth-protected-resource" + std::string(rest);
}

bool ParseIdentityConfig(const json& identity, const std::string& base_dir, IdentityConfig* out,
                         std::string* error) {
  *out = IdentityConfig{};
  if (!identity.is_object()) return Fail(error, "identity must be a map");
  const std::string w = "identity";
  if (!OnlyKeys(identity,
                {"resource", "authorization_servers", "scopes_supported",
                 "resource_metadata_url", "api_keys", "jwt", "stdio"},
                w, error) ||
      !GetString(identity, "resource", w, &out->resource, error) ||
      !GetStrings(identity, "authorization_servers", w, &out->authorization_servers, error) ||
      !GetStrings(identity, "scopes_supported", w, &out->scopes_supported, error) ||
      !GetString(identity, "resource_metadata_url", w, &out->resource_metadata_url, error)) {
    return false;
  }
  if (!out->resource.empty() && ProtectedResourceMetadataUrl(out->resource).empty()) {
    return Fail(error, "identity.resource must be the gateway's absolute http(s) URL");
  }

  if (auto it = identity.find("api_keys"); it != identity.end()) {
    if (!it->is_array()) return Fail(error, "identity.api_keys must be a list");
    std::set<std::string> seen;
    for (size_t i = 0; i < it->size(); ++i) {
      const json& k = (*it)[i];
      std::string where = "identity.api_keys[" + std::to_string(i) + "]";
      if (!k.is_object()) return Fail(error, where + " must be a map");
      ApiKeyEntry e;
      std::string hash;
      if (!OnlyKeys(k, {"name", "hash", "principal", "attrs", "parents"}, where, error) ||
          !GetString(k, "name", where, &e.name, error) ||
          !GetString(k, "hash", where, &hash, error)) {
        return false;
      }
      if (hash.rfind("sha256:", 0) != 0 || !HexDecode(hash.substr(7), &e.sha256) ||
          e.sha256.size() != 32) {
        return Fail(error, where + ".hash must be sha256:<64 hex digits> (the key itself is "
                           "never stored; see `writ` docs/identity.md)");
      }
      if (!seen.insert(e.sha256).second) return Fail(error, where + ": duplicate hash");
      if (!ParsePrincipal(k, "principal", where, &e.principal, error)) return false;
      e.principal.method = "api_key";
      e.principal.client = e.name;
      out->api_keys.push_back(std::move(e));
    }
  }

  if (auto it = identity.find("jwt"); it != identity.end()) {
    const json& j = *it;
    std::string where = "identity.jwt";
    if (!j.is_object()) return Fail(error, where + " must be a map");
    if (!OnlyKeys(j,
                  {"issuer", "audience", "jwks_file", "jwks", "leeway_seconds", "algorithms",
                   "max_token_bytes", "require_exp", "claims", "required_scopes"},
                  where, error) ||
        !GetString(j, "issuer", where, &out->jwt.issuer, error) ||
        !GetString(j, "audience", where, &out->jwt.audience, error) ||
        !GetStrings(j, "required_scopes", where, &out->required_scopes, error)) {
      return false;
    }
    out->jwt_enabled = true;
    if (out->jwt.issuer.empty()) return Fail(error, where + ".issuer is required");
    if (out->jwt.audience.empty()) out->jwt.audience = out->resource;
    if (out->jwt.audience.empty()) {
      return Fail(error, where + ".audience (or identity.resource) is required: the gateway's "
                         "own URL, so tokens meant for other resources are refused");
    }
    if (auto l = j.find("leeway_seconds"); l != j.end()) {
      if (!l->is_number_integer() || l->get<int64_t>() < 0 || l->get<int64_t>() > kMaxLeeway) {
        return Fail(error, where + ".leeway_seconds must be an integer from 0 to 3600");
      }
      out->jwt.leeway_seconds = l->get<int64_t>();
    }
    if (auto m = j.find("max_token_bytes"); m != j.end()) {
      if (!m->is_number_integer() || m->get<int64_t>() < 256 || m->get<int64_t>() > 65536) {
        return Fail(error, where + ".max_token_bytes must be an integer from 256 to 65536");
      }
      out->jwt.max_token_bytes = m->get<size_t>();
    }
    if (auto r = j.find("require_exp"); r != j.end()) {
      if (!r->is_boolean()) return Fail(error, where + ".require_exp must be true or false");
      out->jwt.require_exp = r->get<bool>();
    }
    std::vector<std::string> algs{"RS256", "ES256"};
    if (j.contains("algorithms")) {
      algs.clear();
      if (!GetStrings(j, "algorithms", where, &algs, error)) return false;
    }
    for (const auto& a : algs) {
      auto alg = JwtAlgFromName(a);
      if (!alg) return Fail(error, where + ".algorithms: `" + a + "` is not RS256, ES256 or HS256");
      out->jwt.algorithms.push_back(*alg);
    }
    if (out->jwt.algorithms.empty()) return Fail(error, where + ".algorithms is empty");

    std::string file;
    if (!GetString(j, "jwks_file", where, &file, error)) return false;
    if (!file.empty() && j.contains("jwks")) {
      return Fail(error, where + ": give jwks_file or jwks, not both");
    }
    if (!file.empty()) {
      std::filesystem::path p(file);
      if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
      if (!JwkSet::LoadFile(p.string(), &out->jwks, error)) return false;
    } else if (auto k = j.find("jwks"); k != j.end()) {
      std::string why;
      if (!JwkSet::Parse(*k, &out->jwks, &why)) return Fail(error, where + ".jwks: " + why);
    } else {
      return Fail(error, where + ".jwks_file is required");
    }
    if (out->jwks.empty()) return Fail(error, where + ": the JWKS holds no usable signing key");

    if (auto c = j.find("claims"); c != j.end()) {
      if (!c->is_array()) return Fail(error, where + ".claims must be a list");
      std::set<std::string> attrs;
      for (size_t i = 0; i < c->size(); ++i) {
        ClaimMapping m;
        std::string mw = where + ".claims[" + std::to_string(i) + "]";
        if (!ParseMapping((*c)[i], mw, &m, error)) return false;
        if (m.target == ClaimMapping::Target::kAttr && !attrs.insert(m.attr).second) {
          return Fail(error, mw + ": attrs." + m.attr + " is mapped twice");
        }
        out->claims.push_back(std::move(m));
      }
    }
    auto count = [&](ClaimMapping::Target t) {
      return std::count_if(out->claims.begin(), out->claims.end(),
                           [t](const ClaimMapping& m) { return m.target == t; });
    };
    if (out->claims.empty()) {
      ClaimMapping sub;
      sub.claim = "sub";
      sub.target = ClaimMapping::Target::kUid;
      sub.uid_template = "User::\"{value}\"";
      sub.required = true;
      out->claims.push_back(sub);
    } else if (count(ClaimMapping::Target::kUid) != 1) {
      return Fail(error, where + ".claims must map exactly one claim to uid");
    }
    if (count(ClaimMapping::Target::kClient) > 1 || count(ClaimMapping::Target::kOnBehalfOf) > 1) {
      return Fail(error, where + ".claims maps client or on_behalf_of twice");
    }
  }

  if (auto it = identity.find("stdio"); it != identity.end()) {
    if (!it->is_object()) return Fail(error, "identity.stdio must be a map");
    Principal p;
    if (!OnlyKeys(*it, {"principal", "attrs", "parents"}, "identity.stdio", error) ||
        !ParsePrincipal(*it, "principal", "identity.stdio", &p, error)) {
      return false;
    }
    p.method = "stdio";
    out->stdio = std::move(p);
  }
  return true;
}

std::unique_ptr<Authenticator> Authenticator::Create(const json& identity,
                                                     const std::string& base_dir,
                                                     std::string* error) {
  IdentityConfig config;
  if (!ParseIdentityConfig(identity, base_dir, &config, error)) return nullptr;
  return std::make_unique<Authenticator>(std::move(config));
}

Authenticator::Authenticator(IdentityConfig config) : config_(std::move(config)) {
  metadata_url_ = !config_.resource_metadata_url.empty()
                      ? config_.resource_metadata_url
                      : ProtectedResourceMetadataUrl(config_.resource);
}

std::string Authenticator::MetadataPath() const {
  size_t scheme = metadata_url_.find("://");
  if (scheme == std::string::npos) return "";
  size_t path = metadata_url_.find('/', scheme + 3);
  return path == std::string::npos ? "/" : metadata_url_.substr(path);
}

json Authenticator::ProtectedResourceMetadata() const {
  json j = {{"resource", config_.resource}, {"bearer_methods_supported", {"header"}}};
  if (!config_.authorization_servers.empty()) {
    j["authorization_servers"] = config_.authorization_servers;
  }
  if (!config_.scopes_supported.empty()) j["scopes_supported"] = config_.scopes_supported;
  return j;
}

std::string Authenticator::WwwAuthenticate(std::string_view error,
                                            std::string_view description) const {
  std::string h = "Bearer";
  std::string sep = " ";
  if (!metadata_url_.empty()) {
    h += sep + "resource_metadata=\"" + HeaderSafe(metadata_url_) + "\"";
    sep = ", ";
  }
  if (!error.empty()) {
    h += sep + "error=\"" + HeaderSafe(error) + "\"";
    sep = ", ";
    if (!description.empty()) {
      h += sep + "error_description=\"" + HeaderSafe(description) + "\"";
    }
  }
  return h;
}

AuthError Authenticator::Error(int status, std::string error, std::string description) const {
  AuthError e;
  e.http_status = status;
  e.www_authenticate = WwwAuthenticate(error, description);
  e.error = std::move(error);
  e.description = std::move(description);
  return e;
}

AuthResult Authenticator::Authenticate(std::string_view header) const {
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return Authenticate(header, now);
}

AuthResult Authenticator::Authenticate(std::string_view header, int64_t now) const {
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) {
    header.remove_prefix(1);
  }
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) {
    header.remove_suffix(1);
  }
  if (header.empty()) {
    return Error(401, "", "no credentials: send Authorization: Bearer <token>");
  }
  size_t limit = std::max(config_.jwt.max_token_bytes, kMaxApiKeyBytes);
  if (header.size() > limit + 16) {
    return Error(401, "invalid_token",
                 "token is larger than " + std::to_string(limit) + " bytes");
  }
  size_t sp = header.find_first_of(" \t");
  std::string scheme(header.substr(0, sp));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer") {
    return Error(401, "", "unsupported authorization scheme: use Authorization: Bearer <token>");
  }
  std::string_view token = sp == std::string_view::npos ? "" : header.substr(sp);
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  bool clean = !token.empty();
  for (char c : token) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) clean = false;
  }
  if (!clean) {
    return Error(400, "invalid_request",
                 "malformed Authorization header: expected Bearer followed by one token");
  }
  if (LooksLikeJwt(token)) {
    if (config_.jwt_enabled) return FromJwt(token, now);
    if (config_.api_keys.empty()) {
      return Error(401, "invalid_token", "this gateway accepts no JWTs");
    }
  }
  return FromApiKey(token);
}

AuthResult Authenticator::FromApiKey(std::string_view key) const {
  if (key.size() > kMaxApiKeyBytes) {
    return Error(401, "invalid_token",
                 "token is larger than " + std::to_string(kMaxApiKeyBytes) + " bytes");
  }
  std::string digest = Sha256(key);
  // Compare against every entry without stopping early: the time taken does not depend on
  // which stored hash (if any) shares a prefix with the digest.
  const ApiKeyEntry* found = nullptr;
  for (const ApiKeyEntry& e : config_.api_keys) {
    bool eq = ConstantTimeEqual(digest, e.sha256);
    if (eq) found = &e;
  }
  if (found != nullptr) return found->principal;
  if (config_.api_keys.empty()) {
    return Error(401, "invalid_token", "the bearer token is neither an API key nor a JWT");
  }
  return Error(401, "invalid_token", "unknown API key");
}

AuthResult Authenticator::FromJwt(std::string_view token, int64_t now) const {
  json claims;
  std::string why;
  if (!VerifyJwt(token, config_.jwks, config_.jwt, now, &claims, &why)) {
    return Error(401, "invalid_token", why);
  }
  if (!config_.required_scopes.empty()) {
    std::set<std::string> granted = TokenScopes(claims);
    for (const std::string& s : config_.required_scopes) {
      if (!granted.count(s)) {
        AuthError e = Error(403, "insufficient_scope", "token lacks scope " + s);
        std::string all;
        for (const auto& r : config_.required_scopes) all += (all.empty() ? "" : " ") + r;
        e.www_authenticate += ", scope=\"" + HeaderSafe(all) + "\"";
        return e;
      }
    }
  }
  Principal p;
  p.method = "jwt";
  bool client_mapped = false;
  for (const ClaimMapping& m : config_.claims) {
    const json* v = FindClaim(claims, m.claim);
    if (v == nullptr || v->is_null()) {
      if (m.required) return Error(401, "invalid_token", "token has no " + m.claim + " claim");
      continue;
    }
    // A string claim with `split` becomes a list.
    json value = *v;
    if (!m.split.empty() && value.is_string()) {
      json list = json::array();
      const std::string& s = v->get_ref<const std::string&>();
      for (size_t i = 0; i <= s.size();) {
        size_t j = s.find(m.split, i);
        if (j == std::string::npos) j = s.size();
        if (j > i) list.push_back(s.substr(i, j - i));
        i = j + m.split.size();
      }
      value = std::move(list);
    }
    std::string text, uid;
    std::string bad = "token claim " + m.claim + " does not form a valid entity uid";
    switch (m.target) {
      case ClaimMapping::Target::kUid:
        if (!ScalarText(value, &text) || text.empty() || !ApplyTemplate(m, text, &uid)) {
          return Error(401, "invalid_token", bad);
        }
        p.uid = std::move(uid);
        break;
      case ClaimMapping::Target::kOnBehalfOf:
        if (!ScalarText(value, &text) || text.empty() || !ApplyTemplate(m, text, &uid)) {
          return Error(401, "invalid_token", bad);
        }
        p.on_behalf_of = std::move(uid);
        break;
      case ClaimMapping::Target::kParents: {
        // A parent that cannot be mapped rejects the token rather than being dropped: dropping
        // it could let a caller escape a `forbid ... principal in Group::"..."`.
        json items = value.is_array() ? value : json::array({value});
        for (const auto& item : items) {
          if (!ScalarText(item, &text) || text.empty() || !ApplyTemplate(m, text, &uid)) {
            return Error(401, "invalid_token", bad);
          }
          p.parents.push_back(std::move(uid));
        }
        break;
      }
      case ClaimMapping::Target::kClient:
        if (!ScalarText(value, &p.client)) {
          return Error(401, "invalid_token", "token claim " + m.claim + " is not a string");
        }
        client_mapped = true;
        break;
      case ClaimMapping::Target::kAttr: p.attrs[m.attr] = std::move(value); break;
    }
  }
  if (!client_mapped) {
    for (const char* name : {"azp", "client_id"}) {
      auto it = claims.find(name);
      if (it != claims.end() && it->is_string()) {
        p.client = it->get<std::string>();
        break;
      }
    }
  }
  std::sort(p.parents.begin(), p.parents.end());
  p.parents.erase(std::unique(p.parents.begin(), p.parents.end()), p.parents.end());
  return p;
}

AuthResult Authenticator::StdioPrincipal() const {
  if (config_.stdio) return *config_.stdio;
  return Error(401, "", "no identity.stdio principal is configured for stdio clients");
}

}  // namespace writ::gateway
