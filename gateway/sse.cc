// sse.cc -- see sse.h.
#include "gateway/sse.h"

#include <utility>

namespace writ::gateway {

std::string SseEvent(std::string_view data, std::string_view event, std::string_view id) {
  std::string out;
  out.reserve(data.size() + event.size() + id.size() + 32);
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  if (!id.empty()) {
    out += "id: ";
    out += id;
    out += '\n';
  }
  size_t start = 0;
  for (;;) {
    size_t nl = data.find('\n', start);
    std::string_view line = data.substr(start, nl == std::string_view::npos ? nl : nl - start);
    out += "data: ";
    for (char c : line)
      if (c != '\r') out += c;
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

std::string SseComment(std::string_view text) {
  std::string out = ": ";
  for (char c : text)
    if (c != '\r' && c != '\n') out += c;
  out += "\n\n";
  return out;
}

SseParser::SseParser(EventFn on_event, size_t max_event_bytes)
    : on_event_(std::move(on_event)), max_(max_event_bytes) {}

bool SseParser::Feed(std::string_view bytes) {
  if (failed_) return false;
  for (char c : bytes) {
    if (!bom_checked_) {
      // The BOM (EF BB BF) may arrive split over chunks: hold up to 3 bytes in line_.
      static constexpr char kBom[] = "\xEF\xBB\xBF";
      line_ += c;
      if (line_.size() <= 3 && line_ == std::string_view(kBom, line_.size())) {
        if (line_.size() == 3) {
          line_.clear();
          bom_checked_ = true;
        }
        continue;
      }
      bom_checked_ = true;
      std::string held = std::move(line_);
      line_.clear();
      if (!Feed(held)) return false;
      continue;
    }
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // the LF of a CRLF
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      Line(line_);
      line_.clear();
      if (failed_) return false;
      continue;
    }
    line_ += c;
    if (line_.size() + data_.size() > max_) {
      failed_ = true;
      return false;
    }
  }
  return true;
}

void SseParser::Line(std::string_view line) {
  if (line.empty()) {  // dispatch
    if (data_.empty()) {
      event_.clear();
      return;
    }
    SseMessage m;
    m.data = std::move(data_);
    m.data.pop_back();  // the final '\n'
    m.event = event_.empty() ? "message" : std::move(event_);
    m.id = last_id_;
    data_.clear();
    event_.clear();
    if (on_event_) on_event_(m);
    return;
  }
  if (line.front() == ':') return;  // a comment
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_) {
      failed_ = true;
      return;
    }
    data_.append(value);
    data_ += '\n';
  } else if (field == "event") {
    event_ = std::string(value.substr(0, 256));
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = std::string(value.substr(0, 1024));
  } else if (field == "retry") {
    if (value.empty() || value.size() > 12) return;
    int64_t v = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return;
      v = v * 10 + (c - '0');
    }
    retry_ms_ = v;
  }
}

}  // namespace writ::gateway
