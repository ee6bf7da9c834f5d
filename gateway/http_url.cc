// http_url.cc -- parsing http(s) URLs for the gateway's HTTP clients (see http_url.h).
#include "gateway/http_url.h"

#include <cctype>
#include <string>

namespace writ::gateway {
namespace {

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace

bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error) {
  HttpUrl u;
  std::string lower = Lower(url.substr(0, 8));
  size_t rest_at;
  if (lower.rfind("https://", 0) == 0) {
    u.tls = true;
    rest_at = 8;
  } else if (lower.rfind("http://", 0) == 0) {
    rest_at = 7;
  } else {
    *error = "`" + std::string(url.substr(0, url.find(':'))) +
             "` is not a supported URL scheme (use http:// or https://)";
    return false;
  }
  std::string_view rest = url.substr(rest_at);
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!target.empty() && target[0] == '?') target = "/" + target;
  if (size_t hash = target.find('#'); hash != std::string::npos) target.resize(hash);
  if (target.empty()) target = "/";
  if (authority.find('@') != std::string_view::npos) {
    *error = "credentials in the URL are not supported (use a header)";
    return false;
  }
  u.port = u.tls ? "443" : "80";
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "unterminated IPv6 address in the URL";
      return false;
    }
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "malformed host in the URL";
        return false;
      }
      u.port = std::string(after.substr(1));
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
  }
  if (u.host.empty()) {
    *error = "the URL has no host";
    return false;
  }
  bool port_ok = !u.port.empty() && u.port.size() <= 5;
  for (char c : u.port) port_ok = port_ok && std::isdigit(static_cast<unsigned char>(c));
  if (!port_ok || std::stoi(u.port) > 65535 || std::stoi(u.port) == 0) {
    *error = "`" + u.port + "` is not a port";
    return false;
  }
  for (char c : u.host + target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      *error = "the URL contains spaces or control characters";
      return false;
    }
  }
  u.target = target;
  u.host_header = std::string(authority);
  *out = std::move(u);
  return true;
}

}  // namespace writ::gateway
