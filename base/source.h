// source.h -- the text of every policy file a run reads, with line lookup for diagnostics.
//
// Thread safety: a SourceMap is filled once and then only read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/span.h"

namespace writ {

struct LineCol {
  uint32_t line = 1;  // 1-based
  uint32_t col = 1;   // 1-based, in bytes
};

class SourceFile {
 public:
  SourceFile(std::string path, std::string text);
  const std::string& path() const { return path_; }
  const std::string& text() const { return text_; }
  LineCol Locate(uint32_t offset) const;
  // The text of 1-based line `line`, without its newline.
  std::string_view Line(uint32_t line) const;
  uint32_t line_count() const { return static_cast<uint32_t>(line_starts_.size()); }

 private:
  std::string path_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

class SourceMap {
 public:
  // Adds a file and returns its index for Span::file.
  uint32_t Add(std::string path, std::string text);
  const SourceFile& file(uint32_t index) const { return files_[index]; }
  const std::vector<SourceFile>& files() const { return files_; }
  std::string_view Text(Span span) const;

 private:
  std::vector<SourceFile> files_;
};

// Reads a whole file; returns false and sets *error on failure.
bool ReadFile(const std::string& path, std::string* out, std::string* error);

}  // namespace writ
