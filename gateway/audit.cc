// audit.cc -- AuditLog: append-only hash-chained JSONL writer (see audit.h, audit_format.h).
#include "gateway/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>

#include "gateway/audit_format.h"
#include "gateway/log.h"
#include "gateway/metrics.h"

namespace writ::gateway {
namespace {

using nlohmann::json;
using Code = AuditStatus::Code;

constexpr const char* kRedacted = "[REDACTED]";

std::string ErrnoText(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

std::string_view Alg(const std::string& key) {
  return key.empty() ? kAuditAlgSha256 : kAuditAlgHmacSha256;
}

// Replaces every occurrence of each secret in *s; returns whether anything changed.
// `secrets` is sorted longest first, so a secret containing another is replaced whole.
bool ScrubString(std::string* s, const std::vector<std::string>& secrets) {
  bool changed = false;
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    size_t pos = 0;
    while ((pos = s->find(secret, pos)) != std::string::npos) {
      s->replace(pos, secret.size(), kRedacted);
      pos += std::strlen(kRedacted);
      changed = true;
    }
  }
  return changed;
}

// What Open learns from the last bytes of an existing file.
struct Tail {
  bool corrupt = false;
  std::string problem;    // when corrupt
  bool has_last = false;  // a well-formed last complete record was found
  uint64_t seq = 0;       // of that record
  std::string hash;       // of that record
};

// Checks one complete line as the chain's last record, under `key`.
bool CheckTailRecord(std::string_view line, const std::string& key, uint64_t* seq,
                     std::string* hash, std::string* problem) {
  json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *problem = "last record is not valid JSON";
    return false;
  }
  auto v = j.find("v");
  auto s = j.find("seq");
  auto h = j.find("hash");
  auto a = j.find("alg");
  if (v == j.end() || *v != kAuditFormatVersion || s == j.end() || !s->is_number_unsigned() ||
      h == j.end() || !h->is_string() || !IsAuditHashHex(h->get_ref<const std::string&>()) ||
      a == j.end() || !a->is_string()) {
    *problem = "last record lacks v, seq, alg or hash";
    return false;
  }
  if (a->get_ref<const std::string&>() != Alg(key)) {
    *problem = "last record uses alg " + a->get<std::string>() + " but the log is configured for " +
               std::string(Alg(key)) + (key.empty() ? " (no key)" : " (a key is set)");
    return false;
  }
  if (AuditRecordHash(j, &key) != h->get_ref<const std::string&>()) {
    *problem = "last record's hash does not match" +
               std::string(key.empty() ? "" : " under the configured key");
    return false;
  }
  *seq = s->get<uint64_t>();
  *hash = h->get<std::string>();
  return true;
}

Tail ReadTail(int fd, uint64_t size, const std::string& key) {
  Tail t;
  if (size == 0) return t;
  const uint64_t window = std::min<uint64_t>(size, 2 * (kAuditMaxRecordBytes + 1));
  std::string buf(window, '\0');
  uint64_t got = 0;
  while (got < window) {
    ssize_t n = pread(fd, buf.data() + got, window - got, size - window + got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      t.corrupt = true;
      t.problem = std::string("cannot read the end of the file: ") + std::strerror(errno);
      return t;
    }
    got += static_cast<uint64_t>(n);
  }
  const bool whole = window == size;
  std::string_view complete = buf;
  if (buf.back() != '\n') {
    t.corrupt = true;
    t.problem = "torn last line (no trailing newline; a crash mid-write?)";
    size_t nl = buf.rfind('\n');
    if (nl == std::string::npos) return t;  // no complete line in the window
    complete = std::string_view(buf).substr(0, nl + 1);
  }
  // The last complete line: between the newline before the final one and the final one.
  std::string_view body = complete.substr(0, complete.size() - 1);
  size_t start = body.rfind('\n');
  if (start == std::string_view::npos) {
    if (!whole) {
      t.corrupt = true;
      t.problem = "last record is longer than the format allows";
      return t;
    }
    start = 0;
  } else {
    start += 1;
  }
  std::string problem;
  if (CheckTailRecord(body.substr(start), key, &t.seq, &t.hash, &problem)) {
    t.has_last = true;
  } else if (!t.corrupt) {
    t.corrupt = true;
    t.problem = problem;
  }
  return t;
}

void SyncDir(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string CompactUtc(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

std::string FormatAuditTime(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1000000;
  int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  // The date and time to the second are formatted once per second per thread (two records
  // per call); the microseconds every time.
  struct Cache {
    int64_t secs = INT64_MIN;
    char text[48] = {};
    size_t n = 0;
  };
  thread_local Cache cache;
  if (cache.secs != secs) {
    std::time_t tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    cache.n = std::strftime(cache.text, sizeof cache.text, "%Y-%m-%dT%H:%M:%S", &tm);
    cache.secs = secs;
  }
  char buf[64];
  std::memcpy(buf, cache.text, cache.n);
  size_t n = cache.n;
  buf[n++] = '.';
  for (int i = 5; i >= 0; --i) {
    buf[n + static_cast<size_t>(i)] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  n += 6;
  buf[n++] = 'Z';
  return std::string(buf, n);
}

json AuditRecordToJson(const AuditRecord& r, bool store_args) {
  json j = json::object();
  j["kind"] = r.kind;
  j["time"] = FormatAuditTime(r.time == std::chrono::system_clock::time_point{}
                                  ? std::chrono::system_clock::now()
                                  : r.time);
  j["decision_id"] = r.decision_id;
  j["principal"] = r.principal;
  j["on_behalf_of"] = r.on_behalf_of;
  j["session"] = r.session;
  j["client"] = r.client;
  j["method"] = r.method;
  j["server"] = r.server;
  j["tool"] = r.tool;
  if (r.args.has_value()) {
    j["args_digest"] = Sha256Hex(AuditCanonicalBytes(*r.args));
    if (store_args) j["args"] = *r.args;
  }
  j["decision"] = r.decision;
  j["determining"] = r.determining;
  j["bundle_hash"] = r.bundle_hash;
  if (r.upstream.has_value()) {
    json u = {{"outcome", r.upstream->outcome}, {"latency_us", r.upstream->latency_us}};
    if (!r.upstream->error.empty()) u["error"] = r.upstream->error;
    j["upstream"] = std::move(u);
  }
  if (!r.detail.is_null()) j["detail"] = r.detail;
  return j;
}

json AuditReloadToJson(const AuditReload& r) {
  json j = json::object();
  j["kind"] = "reload";
  j["time"] = FormatAuditTime(r.time == std::chrono::system_clock::time_point{}
                                  ? std::chrono::system_clock::now()
                                  : r.time);
  j["bundle_hash"] = r.result == "ok" ? r.new_bundle_hash : r.old_bundle_hash;
  json rl = {{"trigger", r.trigger}, {"result", r.result}, {"old_bundle_hash", r.old_bundle_hash}};
  if (!r.new_bundle_hash.empty()) rl["new_bundle_hash"] = r.new_bundle_hash;
  if (!r.error.empty()) rl["error"] = r.error.size() > 4096 ? r.error.substr(0, 4096) : r.error;
  j["reload"] = std::move(rl);
  return j;
}

namespace {

// The non-empty secrets, longest first (the order ScrubString replaces them in).
std::vector<std::string> SortedSecrets(const std::vector<std::string>& secrets_in) {
  std::vector<std::string> secrets;
  for (const auto& s : secrets_in) {
    if (!s.empty()) secrets.push_back(s);
  }
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return secrets;
}

}  // namespace

void ScrubSecrets(json* root, const std::vector<std::string>& secrets_in) {
  std::vector<std::string> secrets = SortedSecrets(secrets_in);
  if (secrets.empty()) return;
  std::vector<json*> stack{root};
  while (!stack.empty()) {
    json* n = stack.back();
    stack.pop_back();
    if (n->is_string()) {
      ScrubString(&n->get_ref<std::string&>(), secrets);
    } else if (n->is_array()) {
      for (auto& e : *n) stack.push_back(&e);
    } else if (n->is_object()) {
      std::vector<std::pair<std::string, std::string>> renames;
      for (auto it = n->begin(); it != n->end(); ++it) {
        std::string k = it.key();
        if (ScrubString(&k, secrets)) renames.emplace_back(it.key(), std::move(k));
      }
      for (auto& [from, to] : renames) {
        json v = std::move((*n)[from]);
        n->erase(from);
        std::string key = to;
        for (int i = 2; n->contains(key); ++i) key = to + "#" + std::to_string(i);
        (*n)[key] = std::move(v);
      }
      for (auto& [k, v] : n->items()) stack.push_back(&v);
    }
  }
}

AuditLog::AuditLog(AuditOptions options)
    : options_(std::move(options)),
      hash_(kAuditGenesisHash),
      last_sync_(std::chrono::steady_clock::now()) {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) {
    std::random_device rd;
    for (auto& x : b) x = static_cast<unsigned char>(rd());
  }
  static const char* kHex = "0123456789abcdef";
  for (unsigned char x : b) {
    placeholder_.push_back(kHex[x >> 4]);
    placeholder_.push_back(kHex[x & 15]);
  }
  secrets_sorted_ = SortedSecrets(options_.secrets);
}

void AuditLog::StartIntervalSync() {
  if (options_.fsync == AuditFsync::kInterval && !interval_thread_.joinable())
    interval_thread_ = std::thread([this] { IntervalLoop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(interval_mu_);
    interval_stop_ = true;
  }
  interval_cv_.notify_all();
  if (interval_thread_.joinable()) interval_thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) {
    if (options_.fsync != AuditFsync::kNever && dirty_ && !failed_) SyncLocked();
    ::close(fd_);
  }
}

AuditStatus AuditLog::Open(const AuditOptions& options, std::unique_ptr<AuditLog>* out) {
  out->reset();
  if (options.path.empty()) return AuditStatus::Error(Code::kInvalid, "audit path is empty");
  std::unique_ptr<AuditLog> log(new AuditLog(options));
  const std::string& path = options.path;
  bool existed = ::access(path.c_str(), F_OK) == 0;
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return AuditStatus::Error(Code::kIoError, ErrnoText("cannot open", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    AuditStatus s = AuditStatus::Error(Code::kIoError, ErrnoText("cannot stat", path));
    ::close(fd);
    return s;
  }
  Tail tail = ReadTail(fd, static_cast<uint64_t>(st.st_size), options.key);
  if (!tail.corrupt) {
    log->fd_ = fd;
    log->size_ = static_cast<uint64_t>(st.st_size);
    if (tail.has_last) {
      log->seq_ = tail.seq;
      log->hash_ = tail.hash;
    }
    if (!existed && options.fsync != AuditFsync::kNever) SyncDir(path);
    log->StartIntervalSync();  // after fd_ and the chain are set
    *out = std::move(log);
    return AuditStatus::Ok();
  }
  ::close(fd);
  if (options.on_corrupt_tail == AuditCorruptTail::kRefuse) {
    return AuditStatus::Error(
        Code::kCorruptTail,
        path + ": " + tail.problem +
            "; refusing to append (run `writ audit verify`, then move the file aside or set "
            "audit.on_corrupt_tail: new_segment)");
  }
  // New segment: keep the damaged file as evidence, start a fresh chain that names it.
  std::string damaged = path + ".damaged-" + CompactUtc(std::chrono::system_clock::now());
  for (int i = 2; ::access(damaged.c_str(), F_OK) == 0; ++i) {
    damaged =
        path + ".damaged-" + CompactUtc(std::chrono::system_clock::now()) + "-" + std::to_string(i);
  }
  if (::rename(path.c_str(), damaged.c_str()) != 0) {
    return AuditStatus::Error(Code::kIoError, ErrnoText("cannot move aside", path));
  }
  fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return AuditStatus::Error(Code::kIoError, ErrnoText("cannot create", path));
  SyncDir(path);
  log->fd_ = fd;
  log->damaged_path_ = damaged;
  json start = json::object();
  start["kind"] = "segment_start";
  start["time"] = FormatAuditTime(std::chrono::system_clock::now());
  json prev = {{"file", damaged}, {"problem", tail.problem}};
  if (tail.has_last) {
    prev["last_good_seq"] = tail.seq;
    prev["last_good_hash"] = tail.hash;
  }
  start["previous_segment"] = std::move(prev);
  std::lock_guard<std::mutex> lock(log->mu_);
  AuditStatus s = log->AppendJsonLocked(std::move(start));
  if (s.ok() && options.fsync == AuditFsync::kAlways) s = log->SyncLocked();
  if (!s.ok()) return s;
  log->StartIntervalSync();
  *out = std::move(log);
  return AuditStatus::Ok();
}

AuditStatus AuditLog::AppendBody(const std::function<nlohmann::json()>& build) {
  try {
    json body = build();
    ScrubSecrets(&body, options_.secrets);
    if (auto extra = extra_secrets_.load()) ScrubSecrets(&body, *extra);
    uint64_t seq;
    {
      std::lock_guard<std::mutex> lock(mu_);
      AuditStatus st = AppendJsonLocked(std::move(body));
      if (!st.ok()) {
        Metrics::Global().audit_failures().Inc();
        return st;
      }
      seq = seq_;
    }
    return AfterAppend(seq);
  } catch (const std::exception& e) {
    Metrics::Global().audit_failures().Inc();
    return AuditStatus::Error(Code::kInvalid,
                              std::string("cannot build audit record: ") + e.what());
  }
}

// ---- Direct serialization ----
//
// Append's usual path writes an AuditRecord without building a nlohmann::json object and
// dumping it: the members are written in canonical order (sorted by key, as dump() emits them)
// with dump()'s escaping, so the bytes equal AuditCanonicalBytes of AuditRecordToJson(record)
// plus the chain members, scrubbed (tests/audit/audit_test.cc compares the two paths). Where
// that equality is not plain the record takes the general path instead: a string whose dump()
// holds U+FFFD (dump() replaced invalid UTF-8, or the text had one: FastLine's rule), a
// secret that occurs in a member name (the scrubber would rename the member), and records near
// the size limit (args may need truncating). The record is assembled outside mu_; only the
// chain members, the hash and the write happen under it.

namespace {

// The member names of AuditRecordToJson (a secret inside one of them renames it).
constexpr std::string_view kRecordKeys[] = {
    "kind",   "time",    "decision_id", "principal",   "on_behalf_of", "session", "client",
    "method", "server",  "tool",        "args_digest", "args",         "decision",
    "determining", "bundle_hash", "upstream", "outcome", "latency_us", "error", "detail"};

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Appends `s` as a JSON string exactly as dump() writes it (ensure_ascii off). False if the
// result holds U+FFFD (see above).
bool AppendJsonString(std::string* out, std::string_view s) {
  bool ascii = true;
  for (unsigned char c : s) ascii = ascii && c < 0x80;
  if (!ascii) {
    std::string d = AuditCanonicalBytes(json(std::string(s)));
    if (d.find(kReplacementChar) != std::string::npos) return false;
    out->append(d);
    return true;
  }
  out->push_back('"');
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\t': out->append("\\t"); break;
      case '\n': out->append("\\n"); break;
      case '\f': out->append("\\f"); break;
      case '\r': out->append("\\r"); break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        out->append(buf);
      }
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
  return true;
}

}  // namespace

struct AuditLog::RecordParts {
  // The canonical record is head + "," + mid + ",\"prev\":..." + principal + ",\"seq\":N," +
  // rest; the line has "\"hash\":\"H\"," after head's comma (hash sorts between determining,
  // the last member of head, and kind, the first of mid).
  std::string head, mid, principal, rest;
};

bool AuditLog::BuildParts(const AuditRecord& r, RecordParts* p) const {
  std::shared_ptr<const std::vector<std::string>> extra_in = extra_secrets_.load();
  std::vector<std::string> extra;
  if (extra_in != nullptr) extra = SortedSecrets(*extra_in);
  const bool scrub = !secrets_sorted_.empty() || !extra.empty();
  if (scrub) {
    const std::vector<std::string>* lists[] = {&secrets_sorted_, &extra};
    for (const std::vector<std::string>* list : lists)
      for (const auto& secret : *list)
        for (std::string_view key : kRecordKeys)
          if (key.find(secret) != std::string_view::npos) return false;
  }
  bool ok = true;
  // A string member value, scrubbed as ScrubSecrets would (its two passes, in order).
  auto str = [&](std::string* out, std::string_view v) {
    if (!scrub) {
      ok = AppendJsonString(out, v) && ok;
      return;
    }
    std::string copy(v);
    ScrubString(&copy, secrets_sorted_);
    ScrubString(&copy, extra);
    ok = AppendJsonString(out, copy) && ok;
  };
  // `canonical`: v's canonical bytes when the caller has them already (unscrubbed).
  auto value = [&](std::string* out, const json& v, const std::string* canonical = nullptr) {
    std::string d;
    if (!scrub && canonical != nullptr) {
      d = *canonical;
    } else if (scrub) {
      json copy = v;
      ScrubSecrets(&copy, options_.secrets);
      if (extra_in != nullptr) ScrubSecrets(&copy, *extra_in);
      d = AuditCanonicalBytes(copy);
    } else {
      d = AuditCanonicalBytes(v);
    }
    if (d.find(kReplacementChar) != std::string::npos) ok = false;
    out->append(d);
  };
  auto member = [&](std::string* out, const char* key) {
    out->push_back('"');
    out->append(key);
    out->append("\":");
  };
  // ,"key":"value" for a string member after the first.
  auto comma_str = [&](std::string* out, const char* key, std::string_view v) {
    out->push_back(',');
    member(out, key);
    str(out, v);
  };

  std::string& h = p->head;
  h.reserve(512);
  h.append("{\"alg\":\"");
  h.append(Alg(options_.key));
  h.push_back('"');
  if (r.args.has_value()) {
    const std::string canonical = AuditCanonicalBytes(*r.args);  // digest (and stored args)
    if (options_.record_args && !r.redact_args) {
      h.push_back(',');
      member(&h, "args");
      value(&h, *r.args, &canonical);
    }
    h.push_back(',');
    member(&h, "args_digest");
    str(&h, Sha256Hex(canonical));
  }
  comma_str(&h, "bundle_hash", r.bundle_hash);
  comma_str(&h, "client", r.client);
  comma_str(&h, "decision", r.decision);
  comma_str(&h, "decision_id", r.decision_id);
  if (!r.detail.is_null()) {
    h.push_back(',');
    member(&h, "detail");
    value(&h, r.detail);
  }
  h.push_back(',');
  member(&h, "determining");
  h.push_back('[');
  for (size_t i = 0; i < r.determining.size(); ++i) {
    if (i > 0) h.push_back(',');
    str(&h, r.determining[i]);
  }
  h.push_back(']');

  std::string& m = p->mid;
  member(&m, "kind");
  str(&m, r.kind);
  comma_str(&m, "method", r.method);
  comma_str(&m, "on_behalf_of", r.on_behalf_of);

  member(&p->principal, "principal");
  str(&p->principal, r.principal);

  std::string& t = p->rest;
  member(&t, "server");
  str(&t, r.server);
  comma_str(&t, "session", r.session);
  comma_str(&t, "time",
            FormatAuditTime(r.time == std::chrono::system_clock::time_point{}
                                ? std::chrono::system_clock::now()
                                : r.time));
  comma_str(&t, "tool", r.tool);
  if (r.upstream.has_value()) {
    t.push_back(',');
    member(&t, "upstream");
    t.push_back('{');
    if (!r.upstream->error.empty()) {
      member(&t, "error");
      str(&t, r.upstream->error);
      t.push_back(',');
    }
    member(&t, "latency_us");
    t.append(std::to_string(r.upstream->latency_us));
    t.push_back(',');
    member(&t, "outcome");
    str(&t, r.upstream->outcome);
    t.push_back('}');
  }
  t.push_back(',');
  member(&t, "v");
  t.append(std::to_string(kAuditFormatVersion));
  t.push_back('}');
  // Room for prev, seq, hash and punctuation; beyond, args may need truncating (general path).
  size_t size = h.size() + m.size() + p->principal.size() + t.size() + 256;
  return ok && size <= kAuditMaxRecordBytes - 100;
}

AuditStatus AuditLog::AppendParts(const RecordParts& p) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_ || fd_ < 0) {
      Metrics::Global().audit_failures().Inc();
      return AuditStatus::Error(Code::kFailed,
                                "audit log " + options_.path + " failed earlier; reopen it");
    }
    std::string tail;
    tail.reserve(p.principal.size() + p.rest.size() + 120);
    tail.append(",\"prev\":\"");
    tail.append(hash_);
    tail.append("\",");
    tail.append(p.principal);
    tail.append(",\"seq\":");
    tail.append(std::to_string(seq_ + 1));
    tail.push_back(',');
    tail.append(p.rest);
    std::string canonical;
    canonical.reserve(p.head.size() + p.mid.size() + tail.size() + 1);
    canonical.append(p.head).append(",").append(p.mid).append(tail);
    std::string hash =
        options_.key.empty() ? Sha256Hex(canonical) : HmacSha256Hex(options_.key, canonical);
    if (hash.size() != placeholder_.size()) {
      Metrics::Global().audit_failures().Inc();
      return AuditStatus::Error(Code::kInvalid, "hashing the audit record failed");
    }
    std::string line;
    line.reserve(canonical.size() + hash.size() + 12);
    line.append(p.head).append(",\"hash\":\"").append(hash).append("\",").append(p.mid);
    line.append(tail).push_back('\n');
    AuditStatus st = WriteLineLocked(line, std::move(hash));
    if (!st.ok()) {
      Metrics::Global().audit_failures().Inc();
      return st;
    }
    seq = seq_;
  }
  return AfterAppend(seq);
}

AuditStatus AuditLog::Append(const AuditRecord& record) {
  RecordParts parts;
  bool direct = false;
  try {
    direct = BuildParts(record, &parts);
  } catch (const std::exception&) {
    // (Only allocation can throw here.) Nothing was written; the general path reports it.
  }
  if (direct) {
    // Not retried on the general path: the line may already be written, and a second copy
    // would be a second record. A failure here is reported (the call fails closed).
    try {
      return AppendParts(parts);
    } catch (const std::exception& e) {
      Metrics::Global().audit_failures().Inc();
      return AuditStatus::Error(Code::kIoError,
                                std::string("audit record not confirmed: ") + e.what());
    }
  }
  return AppendBody(
      [&] { return AuditRecordToJson(record, options_.record_args && !record.redact_args); });
}


void AuditLog::AddSecrets(const std::vector<std::string>& secrets) {
  std::lock_guard<std::mutex> lock(mu_);  // serializes writers; readers load lock-free
  auto next = std::make_shared<std::vector<std::string>>();
  if (auto cur = extra_secrets_.load()) *next = *cur;
  for (const auto& v : secrets)
    if (!v.empty() && std::find(next->begin(), next->end(), v) == next->end()) next->push_back(v);
  extra_secrets_.store(std::move(next));
}

AuditStatus AuditLog::AppendReload(const AuditReload& reload) {
  return AppendBody([&] { return AuditReloadToJson(reload); });
}

// The fast path of AppendJsonLocked: one serialization instead of three plus a parse. The
// record is dumped once with `hash` set to placeholder_ (64 random hex digits fixed at Open, so
// no string in a record can imitate it); the bytes that get hashed are that line without the
// `"hash":"..."` member, which is exactly the canonical form of the record without `hash`
// (members are sorted and comma-separated), and the placeholder is then overwritten in place.
// This equals the general path because dump(parse(dump(x))) == dump(x) for nlohmann::json
// (shortest round-trip doubles, NaN/Inf as null) except where invalid UTF-8 was replaced by
// U+FFFD: two keys may then collide after parsing, so any line with U+FFFD bytes, an oversized
// record (args to truncate) or an unexpected layout goes the general path (returns false).
bool AuditLog::FastLine(json* body, std::string* line, std::string* hash) {
  (*body)["hash"] = placeholder_;
  *line = AuditCanonicalBytes(*body);
  if (line->find("\xEF\xBF\xBD") != std::string::npos) return false;
  const std::string member = "\"hash\":\"" + placeholder_ + "\"";
  size_t at = line->find(member);
  if (at == std::string::npos || line->find(member, at + 1) != std::string::npos) return false;
  // The member and the comma that joins it to its neighbour.
  size_t from = at, len = member.size();
  if (at + len < line->size() && (*line)[at + len] == ',') {
    len += 1;
  } else if (at > 0 && (*line)[at - 1] == ',') {
    from -= 1;
    len += 1;
  }
  std::string canonical = line->substr(0, from) + line->substr(from + len);
  if (canonical.size() > kAuditMaxRecordBytes - 100) return false;  // args may be truncated
  *hash = options_.key.empty() ? Sha256Hex(canonical) : HmacSha256Hex(options_.key, canonical);
  if (hash->size() != placeholder_.size()) return false;
  line->replace(at + member.size() - 1 - placeholder_.size(), placeholder_.size(), *hash);
  return true;
}

AuditStatus AuditLog::AppendJsonLocked(json body) {
  if (failed_ || fd_ < 0) {
    return AuditStatus::Error(Code::kFailed,
                              "audit log " + options_.path + " failed earlier; reopen it");
  }
  body["v"] = kAuditFormatVersion;
  body["alg"] = std::string(Alg(options_.key));
  body["seq"] = seq_ + 1;
  body["prev"] = hash_;
  std::string line, hash;
  if (!FastLine(&body, &line, &hash)) {
    // The general path: hash the record as the verifier will see it after parsing the line.
    body.erase("hash");
    std::string canonical = AuditCanonicalBytes(body);
    if (canonical.size() > kAuditMaxRecordBytes - 100 && body.contains("args")) {
      body.erase("args");
      body["args_truncated"] = true;
      canonical = AuditCanonicalBytes(body);
    }
    // Normalize by one round trip so the verifier, which hashes the parsed line, sees exactly
    // what was hashed here (see audit_format.h).
    json normalized = json::parse(canonical, nullptr, /*allow_exceptions=*/false);
    if (normalized.is_discarded()) {
      return AuditStatus::Error(Code::kInvalid, "audit record does not round-trip as JSON");
    }
    hash = AuditRecordHash(normalized, &options_.key);
    if (hash.empty()) return AuditStatus::Error(Code::kInvalid, "hashing the audit record failed");
    normalized["hash"] = hash;
    line = AuditCanonicalBytes(normalized);
  }
  if (line.size() > kAuditMaxRecordBytes) {
    return AuditStatus::Error(Code::kInvalid, "audit record is longer than the format allows");
  }
  line.push_back('\n');
  return WriteLineLocked(line, std::move(hash));
}

AuditStatus AuditLog::WriteLineLocked(const std::string& line, std::string hash) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      AuditStatus s = AuditStatus::Error(Code::kIoError, ErrnoText("cannot write", options_.path));
      if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) failed_ = true;
      return s;
    }
    done += static_cast<size_t>(n);
  }
  size_ += line.size();
  seq_ += 1;
  hash_ = std::move(hash);
  dirty_ = true;
  // kAlways: the caller waits in WaitDurable, after releasing mu_ (group commit); kInterval:
  // IntervalLoop syncs.
  return AuditStatus::Ok();
}

// Group commit (audit.fsync: always). Whoever finds no fdatasync running becomes the leader: it
// notes how many records are written, syncs without holding any lock (writers keep appending
// meanwhile), publishes that count as durable and wakes the others. A waiter whose record is
// not covered yet leads the next round, which then covers every record written during the
// previous one: N concurrent calls share about two fsyncs instead of N in a row.
AuditStatus AuditLog::AfterAppend(uint64_t seq) {
  return options_.fsync == AuditFsync::kAlways ? WaitDurable(seq) : AuditStatus::Ok();
}

AuditStatus AuditLog::WaitDurable(uint64_t seq) {
  std::unique_lock<std::mutex> lk(sync_mu_);
  for (;;) {
    if (sync_failed_)
      return AuditStatus::Error(Code::kIoError, "cannot fsync " + options_.path + ": " +
                                                    sync_error_);
    if (durable_seq_ >= seq) return AuditStatus::Ok();
    if (syncing_) {
      sync_cv_.wait(lk);
      continue;
    }
    syncing_ = true;
    lk.unlock();
    uint64_t target;
    int fd;
    bool failed_before;
    {
      std::lock_guard<std::mutex> lock(mu_);
      target = seq_;
      fd = fd_;
      failed_before = failed_;
    }
    // A failure seen by another path (Sync, a write) is not reported twice by the kernel
    // (a writeback error is returned once per file), so it fails this round too.
    int rc = failed_before ? -1 : fd >= 0 ? ::fdatasync(fd) : -1;
    std::string error = failed_before ? "the audit log failed earlier"
                        : rc != 0     ? std::strerror(errno)
                                      : "";
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (rc != 0) {
        // As in SyncLocked: durability of what was written is unknown; stop.
        failed_ = true;
      } else if (seq_ == target) {
        dirty_ = false;  // nothing was written during this sync
      }
    }
    lk.lock();
    syncing_ = false;
    if (rc != 0) {
      sync_failed_ = true;
      sync_error_ = error;
      Metrics::Global().audit_failures().Inc();
    } else {
      durable_seq_ = std::max(durable_seq_, target);
    }
    sync_cv_.notify_all();
  }
}

AuditStatus AuditLog::Sync() {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_ || fd_ < 0) {
      return AuditStatus::Error(Code::kFailed,
                                "audit log " + options_.path + " failed earlier; reopen it");
    }
    seq = seq_;
  }
  if (options_.fsync != AuditFsync::kAlways) return SyncUnlocked();
  // fsync: always: through the group commit, so every fsync result lands in one state and this
  // returns only once a sync that started after the last write has succeeded.
  return WaitDurable(seq);
}

AuditStatus AuditLog::SyncLocked() {
  if (!dirty_) return AuditStatus::Ok();
  if (::fdatasync(fd_) != 0) {
    // After a failed fsync the kernel may have dropped the dirty pages: durability of what
    // was written is unknown, so stop rather than chain onto it.
    failed_ = true;
    return AuditStatus::Error(Code::kIoError, ErrnoText("cannot fsync", options_.path));
  }
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
  return AuditStatus::Ok();
}

AuditStatus AuditLog::SyncUnlocked() {
  std::lock_guard<std::mutex> serial(fsync_mu_);
  int fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_ || fd_ < 0) {
      return AuditStatus::Error(Code::kFailed,
                                "audit log " + options_.path + " failed earlier; reopen it");
    }
    if (!dirty_) return AuditStatus::Ok();
    dirty_ = false;  // a record written during the fdatasync sets it again
    fd = fd_;        // fixed until the destructor, which joins IntervalLoop first
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  std::lock_guard<std::mutex> lock(mu_);
  if (rc != 0) {
    // As in SyncLocked: durability of what was written is unknown; stop.
    failed_ = true;
    errno = err;
    return AuditStatus::Error(Code::kIoError, ErrnoText("cannot fsync", options_.path));
  }
  last_sync_ = std::chrono::steady_clock::now();
  return AuditStatus::Ok();
}

void AuditLog::IntervalLoop() {
  const auto period = std::max(options_.fsync_interval, std::chrono::milliseconds(1));
  std::unique_lock<std::mutex> lk(interval_mu_);
  while (!interval_stop_) {
    interval_cv_.wait_for(lk, period, [this] { return interval_stop_; });
    if (interval_stop_) break;
    lk.unlock();
    // A failure marks the log failed for good; the next Append reports it (fail closed).
    // Counted and logged once; there is nothing left for this thread to sync.
    AuditStatus st = SyncUnlocked();
    if (!st.ok()) {
      Metrics::Global().audit_failures().Inc();
      LogError("audit: " + st.message + "; every later record fails (fail closed)");
      return;
    }
    lk.lock();
  }
}

uint64_t AuditLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seq_;
}

std::string AuditLog::last_hash() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hash_;
}

}  // namespace writ::gateway
