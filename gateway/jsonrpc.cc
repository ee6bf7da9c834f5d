// jsonrpc.cc -- see jsonrpc.h.
#include "gateway/jsonrpc.h"

#include <utility>
#include <vector>

namespace writ::gateway {

namespace {

struct Batch {
  int depth = 0;
  std::vector<std::pair<const void*, std::function<void()>>> flushes;
};
thread_local Batch t_batch;

}  // namespace

bool DeferFlush(const void* key, const std::function<void()>& flush) {
  if (t_batch.depth == 0) return false;
  for (const auto& f : t_batch.flushes)
    if (f.first == key) return true;
  t_batch.flushes.emplace_back(key, flush);
  return true;
}

FlushBatch::FlushBatch() { ++t_batch.depth; }

FlushBatch::~FlushBatch() {
  if (--t_batch.depth > 0) return;
  // A flush may write (and so defer) again only outside the batch: depth is 0 here.
  std::vector<std::pair<const void*, std::function<void()>>> flushes;
  flushes.swap(t_batch.flushes);
  for (auto& f : flushes) {
    try {
      f.second();
    } catch (...) {
      // A flush never takes the reader down.
    }
  }
}

void LineSplitter::Feed(std::string_view bytes) {
  FlushBatch batch;
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view part = bytes.substr(0, nl);
    if (!skipping_) {
      if (buf_.size() + part.size() > max_) {
        skipping_ = true;
        buf_.clear();
        buf_.shrink_to_fit();
      } else {
        buf_.append(part);
      }
    }
    if (nl == std::string_view::npos) return;
    bytes.remove_prefix(nl + 1);
    if (skipping_) {
      skipping_ = false;
      on_line_({}, true);
    } else {
      std::string line;
      line.swap(buf_);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      on_line_(line, false);
    }
  }
}

void LineSplitter::Finish() {
  if (skipping_) {
    skipping_ = false;
    on_line_({}, true);
  } else if (!buf_.empty()) {
    std::string line;
    line.swap(buf_);
    on_line_(line, false);
  }
}

int JsonDepth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) max_depth = depth;
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

namespace {

bool ValidId(const nlohmann::json& id) { return id.is_string() || id.is_number_integer(); }

}  // namespace

ParsedMessage ParseMessage(std::string_view line, size_t max_bytes, int max_depth) {
  ParsedMessage out;
  if (line.size() > max_bytes) {
    out.error_code = kParseError;
    out.error = "message larger than limits.max_message_bytes (" + std::to_string(max_bytes) + ")";
    return out;
  }
  // Depth is checked before parsing; a JSON-RPC message sits at depth 1, so its params may
  // nest max_depth levels below it.
  if (JsonDepth(line, max_depth + 1) > max_depth + 1) {
    out.error_code = kParseError;
    out.error = "message nested deeper than limits.max_depth (" + std::to_string(max_depth) + ")";
    return out;
  }
  nlohmann::json m = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded()) {
    out.error_code = kParseError;
    out.error = "parse error: not valid JSON";
    return out;
  }
  if (m.is_array()) {
    out.error_code = kInvalidRequest;
    out.error = "JSON-RPC batches are not supported by MCP 2025-06-18 and later";
    return out;
  }
  if (!m.is_object()) {
    out.error_code = kInvalidRequest;
    out.error = "a JSON-RPC message must be an object";
    return out;
  }
  auto id = m.find("id");
  if (id != m.end() && ValidId(*id)) out.id = *id;
  auto v = m.find("jsonrpc");
  if (v == m.end() || *v != "2.0") {
    out.error_code = kInvalidRequest;
    out.error = "missing \"jsonrpc\": \"2.0\"";
    return out;
  }
  auto method = m.find("method");
  if (method != m.end()) {
    if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
      out.error_code = kInvalidRequest;
      out.error = "\"method\" must be a non-empty string";
      return out;
    }
    if (id != m.end() && !ValidId(*id)) {
      out.error_code = kInvalidRequest;
      out.error = "\"id\" must be a string or an integer";
      return out;
    }
    auto params = m.find("params");
    if (params != m.end() && !params->is_object()) {
      out.error_code = kInvalidRequest;
      out.error = "\"params\" must be an object";
      return out;
    }
  } else {
    bool has_result = m.contains("result"), has_error = m.contains("error");
    if (has_result == has_error || id == m.end() || !(ValidId(*id) || id->is_null())) {
      out.error_code = kInvalidRequest;
      out.error = "not a request, notification or response";
      return out;
    }
  }
  out.msg = std::move(m);
  return out;
}

nlohmann::json ErrorReply(const nlohmann::json& id, int code, std::string message,
                          nlohmann::json data) {
  nlohmann::json err = {{"code", code}, {"message", std::move(message)}};
  if (!data.is_null()) err["data"] = std::move(data);
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

nlohmann::json ResultReply(const nlohmann::json& id, nlohmann::json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

std::string ToLine(const nlohmann::json& m) {
  return m.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace writ::gateway
