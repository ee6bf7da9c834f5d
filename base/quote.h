// quote.h -- how Writ writes a string literal: double quotes, escapes for `"` `\` and control
// characters (`\n \r \t \0`, others `\u{hex}`). Used by the AST dump, the formatter, the
// runtime's rendering of rate-limit keys, and tests.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace writ {

inline std::string QuoteWrit(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\0': out += "\\0"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[12];
          std::snprintf(buf, sizeof buf, "\\u{%x}", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace writ
