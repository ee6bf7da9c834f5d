// token_offsets.h -- ANTLR's C++ runtime indexes input by code point; Writ spans are bytes.
// TokenOffsets converts one to the other for one file. Internal to compiler/parse/.
#pragma once

#include <string_view>
#include <vector>

#include "Token.h"
#include "base/span.h"

namespace writ {

class TokenOffsets {
 public:
  // REQUIRES: text is valid UTF-8.
  explicit TokenOffsets(std::string_view text) : size_(static_cast<uint32_t>(text.size())) {
    bool ascii = true;
    for (unsigned char c : text) ascii &= c < 0x80;
    if (ascii) return;
    for (uint32_t i = 0; i < text.size(); ++i) {
      if ((static_cast<unsigned char>(text[i]) >> 6) != 0x2) bytes_.push_back(i);
    }
    bytes_.push_back(size_);
  }

  uint32_t Byte(size_t code_point) const {
    if (bytes_.empty()) return code_point > size_ ? size_ : static_cast<uint32_t>(code_point);
    return code_point < bytes_.size() ? bytes_[code_point] : size_;
  }

  // The byte span of a token; conjured tokens (invalid indices) give an empty span at 0.
  Span TokenSpan(uint32_t file, const antlr4::Token* t) const {
    if (t == nullptr || t->getStartIndex() == INVALID_INDEX) return Span{file, 0, 0};
    if (t->getType() == antlr4::Token::EOF) return Span{file, size_, size_};
    uint32_t b = Byte(t->getStartIndex());
    uint32_t e = t->getStopIndex() == INVALID_INDEX ? b : Byte(t->getStopIndex() + 1);
    if (e < b) e = b;
    return Span{file, b, e};
  }

 private:
  uint32_t size_;
  std::vector<uint32_t> bytes_;  // code point index -> byte offset; empty when all ASCII
};

}  // namespace writ
