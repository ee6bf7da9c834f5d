// span.h -- byte-offset source spans, the one way every layer of Writ points into a policy
// file. A Span names a file by its index in a SourceMap and a half-open byte range.
#pragma once

#include <cstdint>

namespace writ {

struct Span {
  uint32_t file = 0;   // index into SourceMap::files()
  uint32_t begin = 0;  // first byte
  uint32_t end = 0;    // one past the last byte; end == begin for a point

  bool operator==(const Span&) const = default;
  // The smallest span covering both. REQUIRES: a.file == b.file.
  static Span Join(Span a, Span b) {
    return Span{a.file, a.begin < b.begin ? a.begin : b.begin, a.end > b.end ? a.end : b.end};
  }
};

}  // namespace writ
