// audit_verify.cc -- the audit log checker (see audit_verify.h; format: audit_format.h).
#include "gateway/audit_verify.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gateway/audit_format.h"

namespace writ::gateway {
namespace {

using nlohmann::json;

// Reads '\n'-terminated lines with a length cap, so a hostile file cannot make one line
// take unbounded memory.
class LineReader {
 public:
  explicit LineReader(std::istream& in) : in_(in) {}

  // False at end of input. *terminated: the line ended in '\n'. *too_long: it was longer
  // than kAuditMaxRecordBytes (its content is then cut).
  bool Next(std::string* line, bool* terminated, bool* too_long) {
    line->clear();
    *terminated = false;
    *too_long = false;
    bool any = false;
    for (;;) {
      if (pos_ == len_ && !Fill()) return any;
      any = true;
      const char* start = buf_ + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      size_t n = nl ? static_cast<const char*>(nl) - start : len_ - pos_;
      if (line->size() + n > kAuditMaxRecordBytes) {
        *too_long = true;
        n = std::min(n, kAuditMaxRecordBytes - std::min(line->size(), kAuditMaxRecordBytes));
        line->append(start, n);
        pos_ = nl ? static_cast<size_t>(static_cast<const char*>(nl) - buf_) : len_;
      } else {
        line->append(start, n);
        pos_ += n;
      }
      if (nl) {
        pos_ += 1;
        *terminated = true;
        return true;
      }
    }
  }

  // True when no bytes remain.
  bool AtEnd() { return pos_ == len_ && !Fill(); }
  bool bad() const { return in_.bad(); }

 private:
  bool Fill() {
    if (!in_) return false;
    in_.read(buf_, sizeof buf_);
    len_ = static_cast<size_t>(in_.gcount());
    pos_ = 0;
    return len_ > 0;
  }

  std::istream& in_;
  char buf_[1 << 16];
  size_t pos_ = 0;
  size_t len_ = 0;
};

// Nesting depth of JSON text (brackets outside strings), without building anything.
int MaxDepth(std::string_view s) {
  int depth = 0, max = 0;
  bool in_string = false, escape = false;
  for (char c : s) {
    if (in_string) {
      if (escape)
        escape = false;
      else if (c == '\\')
        escape = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max = std::max(max, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max;
}

const std::string* StringField(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

}  // namespace

std::string AuditVerifyResult::Format(const std::string& path) const {
  switch (kind) {
    case Kind::kOk:
      return "ok: " + std::to_string(records) + " record" + (records == 1 ? "" : "s") +
             ", last hash " + last_hash;
    case Kind::kBad:
      return path + ":" + std::to_string(line) + ": record " + std::to_string(seq) + ": " + message;
    case Kind::kIoError:
      return path + ": " + message;
  }
  return message;
}

AuditVerifyResult VerifyAuditStream(std::istream& in, const std::string* key) {
  AuditVerifyResult r;
  r.last_hash = std::string(kAuditGenesisHash);
  const bool keyed = key != nullptr && !key->empty();
  LineReader reader(in);
  std::string line;
  bool terminated = false, too_long = false;
  uint64_t line_no = 0;
  uint64_t last_seq = 0;
  auto bad = [&](uint64_t seq, std::string message) {
    r.kind = AuditVerifyResult::Kind::kBad;
    r.line = line_no;
    r.seq = seq;
    r.message = std::move(message);
    return r;
  };
  while (reader.Next(&line, &terminated, &too_long)) {
    ++line_no;
    const uint64_t expected = last_seq + 1;
    if (!terminated) {
      r.torn = true;
      return bad(expected,
                 "torn last line (no trailing newline): the writer stopped mid-record or the "
                 "file was cut");
    }
    if (too_long) {
      return bad(expected,
                 "line is longer than " + std::to_string(kAuditMaxRecordBytes) + " bytes");
    }
    if (line.empty()) return bad(expected, "empty line");
    if (MaxDepth(line) > kAuditMaxDepth) {
      return bad(expected, "json nested deeper than " + std::to_string(kAuditMaxDepth));
    }
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (reader.AtEnd()) {
        r.torn = true;
        return bad(expected, "torn last line (not valid JSON): the writer stopped mid-record");
      }
      return bad(expected, "not valid JSON");
    }
    if (!j.is_object()) return bad(expected, "not a JSON object");
    auto v = j.find("v");
    if (v == j.end() || !v->is_number_integer() || *v != kAuditFormatVersion) {
      return bad(expected, "missing or unknown format version \"v\" (expected " +
                               std::to_string(kAuditFormatVersion) + ")");
    }
    auto s = j.find("seq");
    if (s == j.end() || !s->is_number_unsigned()) {
      return bad(expected, "missing or non-integer \"seq\"");
    }
    const uint64_t seq = s->get<uint64_t>();
    const std::string* hash = StringField(j, "hash");
    if (hash == nullptr || !IsAuditHashHex(*hash)) {
      return bad(seq, "missing or malformed \"hash\" (64 lowercase hex digits)");
    }
    if (seq != expected) {
      if (line_no == 1) {
        return bad(seq, "first record has seq " + std::to_string(seq) +
                            ", not 1: the head of the log was removed");
      }
      if (seq == last_seq && *hash == r.last_hash) {
        return bad(seq, "duplicate of the record on line " + std::to_string(line_no - 1));
      }
      std::string why = seq < expected
                            ? "a record was duplicated or moved"
                            : "record " + std::to_string(expected) +
                                  (seq == expected + 1 ? "" : " to " + std::to_string(seq - 1)) +
                                  " missing, or records reordered";
      return bad(seq, "seq " + std::to_string(seq) + " where " + std::to_string(expected) +
                          " was expected (" + why + ")");
    }
    const std::string* prev = StringField(j, "prev");
    if (prev == nullptr) return bad(seq, "missing \"prev\"");
    if (*prev != r.last_hash) {
      if (seq == 1) return bad(seq, "prev is not the genesis hash");
      return bad(seq, "prev does not match the hash of record " + std::to_string(last_seq) +
                          " (a record was removed, inserted or replaced)");
    }
    const std::string* alg = StringField(j, "alg");
    if (alg == nullptr) return bad(seq, "missing \"alg\"");
    if (*alg == kAuditAlgHmacSha256) {
      if (!keyed) {
        return bad(seq,
                   "record is keyed (alg hmac-sha256) but no key was given; verify with "
                   "--key-file");
      }
    } else if (*alg == kAuditAlgSha256) {
      if (keyed) {
        return bad(seq,
                   "record is not keyed (alg sha256) but a key was given: an unkeyed record "
                   "could have been written by anyone");
      }
    } else {
      return bad(seq, "unknown alg \"" + *alg + "\"");
    }
    if (AuditRecordHash(j, keyed ? key : nullptr) != *hash) {
      return bad(seq, keyed ? "hash mismatch: the record was altered, or the key is wrong"
                            : "hash mismatch: the record was altered");
    }
    last_seq = seq;
    r.last_hash = *hash;
    r.records += 1;
  }
  if (reader.bad()) {
    r.kind = AuditVerifyResult::Kind::kIoError;
    r.message = "read error";
  }
  return r;
}

AuditVerifyResult VerifyAuditFile(const std::string& path, const std::string* key) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    AuditVerifyResult r;
    r.kind = AuditVerifyResult::Kind::kIoError;
    r.message = "is a directory";
    return r;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    AuditVerifyResult r;
    r.kind = AuditVerifyResult::Kind::kIoError;
    r.message = "cannot open file";
    return r;
  }
  return VerifyAuditStream(in, key);
}

}  // namespace writ::gateway
