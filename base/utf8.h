// utf8.h -- UTF-8 validation, shared by the policy parser (source files) and the bundle
// verifier (every string a bundle carries must be valid UTF-8 before it reaches JSON output).
#pragma once

#include <string_view>

namespace writ {

// Byte offset of the first invalid UTF-8 sequence in `s`, or std::string_view::npos.
inline size_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return i;
    }
    unsigned char c1 = n > 1 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (n == 2 && c < 0xC2) return i;                               // overlong
    if (n == 3 && c == 0xE0 && c1 < 0xA0) return i;                 // overlong
    if (n == 3 && c == 0xED && c1 >= 0xA0) return i;                // surrogate
    if (n == 4 && (c > 0xF4 || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90))) return i;
    i += n;
  }
  return std::string_view::npos;
}

}  // namespace writ
