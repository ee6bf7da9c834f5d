// audit_format.cc -- canonical bytes and hashes of audit records (format: audit_format.h).
#include "gateway/audit_format.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>

namespace writ::gateway {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

// SHA-256 fetched once. EVP_sha256() makes every EVP_Digest/HMAC call look the
// implementation up again in OpenSSL 3 (an implicit fetch, with a lock); two or three hashes
// per audited call made that visible in profiles.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    const EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return m != nullptr ? m : EVP_sha256();
  }();
  return md;
}

}  // namespace

std::string AuditCanonicalBytes(const nlohmann::json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, Sha256Md(), nullptr) != 1) return "";
  return Hex(md, len);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(Sha256Md(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr) {
    return "";
  }
  return Hex(md, len);
}

std::string AuditRecordHash(const nlohmann::json& record, const std::string* key) {
  std::string bytes;
  if (record.is_object() && record.contains("hash")) {
    nlohmann::json copy = record;
    copy.erase("hash");
    bytes = AuditCanonicalBytes(copy);
  } else {
    bytes = AuditCanonicalBytes(record);
  }
  if (key != nullptr && !key->empty()) return HmacSha256Hex(*key, bytes);
  return Sha256Hex(bytes);
}

bool IsAuditHashHex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool ReadAuditKeyFile(const std::string& path, std::string* key, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read key file " + path;
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string k = ss.str();
  if (!k.empty() && k.back() == '\n') k.pop_back();
  if (!k.empty() && k.back() == '\r') k.pop_back();
  if (k.size() < 16) {
    *error = "key file " + path + " holds " + std::to_string(k.size()) +
             " bytes; an audit key needs at least 16 (use 32 random bytes)";
    return false;
  }
  *key = std::move(k);
  return true;
}

}  // namespace writ::gateway
