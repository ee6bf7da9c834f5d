// http_url.h -- the http(s) URLs of webhook channels (notify.h), Streamable HTTP upstreams
// (http_upstream.h) and the admin client. Entry point: ParseHttpUrl. Errors never echo the
// URL itself (webhook URLs often carry a secret in their path).
#pragma once

#include <string>
#include <string_view>

namespace writ::gateway {

struct HttpUrl {
  bool tls = false;
  std::string host;         // without brackets for IPv6
  std::string port;         // "80" / "443" by default
  std::string target;       // path and query, at least "/"; a #fragment is dropped
  std::string host_header;  // host[:port] as written, for the Host header
};

// Parses an http:// or https:// URL (scheme case-insensitive; no user info; no spaces or
// control characters). False with *error (lowercase).
bool ParseHttpUrl(std::string_view url, HttpUrl* out, std::string* error);

}  // namespace writ::gateway
