// audit_test.cc -- the audit trail: AuditLog writes a chain that VerifyAuditFile accepts;
// every kind of tampering (edit, delete, reorder, duplicate, insert, torn tail, wrong or
// missing key) is reported at the right line and record; restarts continue the chain;
// secrets never reach the file; concurrent appends stay one valid chain; `writ audit verify`
// exit codes.
#include "gateway/audit.h"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/audit_format.h"
#include "gateway/audit_verify.h"

namespace writ::gateway {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Kind = AuditVerifyResult::Kind;

constexpr const char* kKey = "0123456789abcdef0123456789abcdef";

// A fresh, empty directory for one test case.
fs::path TestDir(const std::string& name) {
  fs::path dir = fs::path(WRIT_BINARY_DIR) / "tests" / "audit_tmp" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

AuditRecord Sample(int i) {
  AuditRecord r;
  r.decision_id = "d-" + std::to_string(i);
  r.principal = "User::\"alice\"";
  r.on_behalf_of = "User::\"bob\"";
  r.session = "s-1";
  r.client = "claude-code";
  r.method = "tools/call";
  r.server = "stripe";
  r.tool = "refund_create";
  r.args = json{{"amount", 100 * i}, {"currency", "usd"}};
  r.decision = i % 2 ? "allow" : "deny";
  r.determining = {"stmt-" + std::to_string(i)};
  r.bundle_hash = "b0";
  return r;
}

AuditOptions Options(const fs::path& path, std::string key = "") {
  AuditOptions o;
  o.path = path.string();
  o.key = std::move(key);
  o.fsync = AuditFsync::kNever;
  return o;
}

// Writes records 1..n to a new log at `path`.
void WriteLog(const fs::path& path, int n, const std::string& key = "") {
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(Options(path, key), &log).ok());
  for (int i = 1; i <= n; ++i) REQUIRE(log->Append(Sample(i)).ok());
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> Lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(ReadAll(path));
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

void WriteLines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  WriteAll(path, text);
}

AuditVerifyResult Verify(const fs::path& path, const std::string& key = "") {
  return VerifyAuditFile(path.string(), key.empty() ? nullptr : &key);
}

void ExpectBad(const AuditVerifyResult& r, uint64_t line, uint64_t seq, const std::string& part) {
  INFO(r.Format("log"));
  CHECK(r.kind == Kind::kBad);
  CHECK(r.line == line);
  CHECK(r.seq == seq);
  CHECK(r.message.find(part) != std::string::npos);
}

TEST_CASE("append then verify: a chain from the genesis hash") {
  fs::path p = TestDir("roundtrip") / "audit.jsonl";
  WriteLog(p, 5);
  AuditVerifyResult r = Verify(p);
  INFO(r.Format(p.string()));
  REQUIRE(r.kind == Kind::kOk);
  CHECK(r.records == 5);
  std::vector<std::string> lines = Lines(p);
  REQUIRE(lines.size() == 5);
  json first = json::parse(lines[0]);
  CHECK(first["seq"] == 1);
  CHECK(first["prev"] == std::string(kAuditGenesisHash));
  CHECK(first["alg"] == "sha256");
  CHECK(first["v"] == 1);
  CHECK(first["kind"] == "decision");
  CHECK(first["principal"] == "User::\"alice\"");
  CHECK(json::parse(lines[1])["prev"] == first["hash"]);
  CHECK(r.last_hash == json::parse(lines[4])["hash"]);
  CHECK(r.Format("f") == "ok: 5 records, last hash " + r.last_hash);
  // Each line is canonical: re-dumping the parsed line gives the same bytes.
  for (const auto& l : lines) CHECK(AuditCanonicalBytes(json::parse(l)) == l);
  // The hash is plain SHA-256 over the canonical record without "hash".
  json without = first;
  without.erase("hash");
  CHECK(first["hash"] == Sha256Hex(without.dump()));
}

TEST_CASE("keyed log: HMAC-SHA-256, verifies only with the same key") {
  fs::path p = TestDir("keyed") / "audit.jsonl";
  WriteLog(p, 3, kKey);
  json first = json::parse(Lines(p)[0]);
  CHECK(first["alg"] == "hmac-sha256");
  json without = first;
  without.erase("hash");
  CHECK(first["hash"] == HmacSha256Hex(kKey, without.dump()));
  CHECK(Verify(p, kKey).kind == Kind::kOk);
  ExpectBad(Verify(p, "another key, 32 bytes long......"), 1, 1, "key is wrong");
  ExpectBad(Verify(p), 1, 1, "no key was given");

  // Downgrading a record to alg sha256 (rehashed without the key) is caught with the key.
  std::vector<std::string> l = Lines(p);
  json j = json::parse(l[1]);
  j["alg"] = "sha256";
  j["decision"] = "allow";
  j["hash"] = AuditRecordHash(j, nullptr);
  l[1] = j.dump();
  WriteLines(p, l);
  ExpectBad(Verify(p, kKey), 2, 2, "not keyed");

  fs::path q = TestDir("keyed") / "unkeyed.jsonl";
  WriteLog(q, 2);
  ExpectBad(Verify(q, kKey), 1, 1, "not keyed");
}

TEST_CASE("tampering is reported at the first bad record") {
  fs::path dir = TestDir("tamper");
  fs::path p = dir / "audit.jsonl";
  WriteLog(p, 5);
  const std::vector<std::string> orig = Lines(p);

  SUBCASE("edit a field") {
    std::vector<std::string> l = orig;
    size_t at = l[2].find("\"decision\":\"allow\"");
    REQUIRE(at != std::string::npos);
    l[2].replace(at, 18, "\"decision\":\"deny\"");
    WriteLines(p, l);
    ExpectBad(Verify(p), 3, 3, "hash mismatch");
  }
  SUBCASE("edit a field and recompute its hash (unkeyed): the next prev breaks") {
    std::vector<std::string> l = orig;
    json j = json::parse(l[2]);
    j["decision"] = "deny";
    j["hash"] = AuditRecordHash(j, nullptr);
    l[2] = j.dump();
    WriteLines(p, l);
    ExpectBad(Verify(p), 4, 4, "prev does not match the hash of record 3");
  }
  SUBCASE("delete a middle record") {
    std::vector<std::string> l = orig;
    l.erase(l.begin() + 2);
    WriteLines(p, l);
    ExpectBad(Verify(p), 3, 4, "seq 4 where 3 was expected");
  }
  SUBCASE("delete the first record") {
    std::vector<std::string> l = orig;
    l.erase(l.begin());
    WriteLines(p, l);
    ExpectBad(Verify(p), 1, 2, "head of the log was removed");
  }
  SUBCASE("swap two records") {
    std::vector<std::string> l = orig;
    std::swap(l[1], l[2]);
    WriteLines(p, l);
    ExpectBad(Verify(p), 2, 3, "seq 3 where 2 was expected");
  }
  SUBCASE("duplicate a record") {
    std::vector<std::string> l = orig;
    l.insert(l.begin() + 2, l[1]);
    WriteLines(p, l);
    ExpectBad(Verify(p), 3, 2, "duplicate of the record on line 2");
  }
  SUBCASE("insert a forged record with the right seq and prev (unkeyed needs a rechain)") {
    std::vector<std::string> l = orig;
    json forged = json::parse(l[1]);
    forged["seq"] = 3;
    forged["prev"] = forged["hash"];
    forged["decision_id"] = "forged";
    forged["hash"] = AuditRecordHash(forged, nullptr);
    l.insert(l.begin() + 2, forged.dump());
    WriteLines(p, l);
    // The forged record itself checks; the original record 3 after it does not.
    ExpectBad(Verify(p), 4, 3, "a record was duplicated or moved");
  }
  SUBCASE("garbage in the middle") {
    std::vector<std::string> l = orig;
    l[2] = "{not json";
    WriteLines(p, l);
    ExpectBad(Verify(p), 3, 3, "not valid JSON");
  }
  SUBCASE("truncate mid-line: torn last line") {
    std::string text = ReadAll(p);
    WriteAll(p, text.substr(0, text.size() - 20));
    AuditVerifyResult r = Verify(p);
    ExpectBad(r, 5, 5, "torn last line");
    CHECK(r.torn);
    CHECK(r.records == 4);
  }
  SUBCASE("drop only the final newline: still torn") {
    std::string text = ReadAll(p);
    WriteAll(p, text.substr(0, text.size() - 1));
    ExpectBad(Verify(p), 5, 5, "no trailing newline");
  }
  SUBCASE("truncate at a record boundary: verifies, but the last hash moves") {
    std::vector<std::string> l = orig;
    std::string anchored = Verify(p).last_hash;
    l.pop_back();
    WriteLines(p, l);
    AuditVerifyResult r = Verify(p);
    CHECK(r.kind == Kind::kOk);
    CHECK(r.records == 4);
    CHECK(r.last_hash != anchored);
  }
  SUBCASE("a garbled final line is reported as torn") {
    std::vector<std::string> l = orig;
    l[4] = l[4].substr(0, 40);
    WriteLines(p, l);
    AuditVerifyResult r = Verify(p);
    ExpectBad(r, 5, 5, "torn last line (not valid JSON)");
    CHECK(r.torn);
  }
  SUBCASE("hostile lines: deep nesting, overlong line, empty line") {
    std::vector<std::string> l = orig;
    l[1] = std::string(100000, '[') + std::string(100000, ']');
    WriteLines(p, l);
    ExpectBad(Verify(p), 2, 2, "nested deeper");
    l[1] = "\"" + std::string(kAuditMaxRecordBytes + 10, 'x') + "\"";
    WriteLines(p, l);
    ExpectBad(Verify(p), 2, 2, "longer than");
    l[1] = "";
    WriteLines(p, l);
    ExpectBad(Verify(p), 2, 2, "empty line");
  }
  SUBCASE("unreadable file") { CHECK(Verify(dir / "missing.jsonl").kind == Kind::kIoError); }
}

TEST_CASE("restart continues the chain") {
  fs::path p = TestDir("restart") / "audit.jsonl";
  WriteLog(p, 3, kKey);
  {
    std::unique_ptr<AuditLog> log;
    REQUIRE(AuditLog::Open(Options(p, kKey), &log).ok());
    CHECK(log->last_seq() == 3);
    REQUIRE(log->Append(Sample(4)).ok());
    REQUIRE(log->Append(Sample(5)).ok());
    CHECK(log->last_seq() == 5);
  }
  AuditVerifyResult r = Verify(p, kKey);
  INFO(r.Format(p.string()));
  CHECK(r.kind == Kind::kOk);
  CHECK(r.records == 5);

  // Reopening with a different key (or none) refuses: the chain would change alg/key.
  std::unique_ptr<AuditLog> log;
  CHECK(AuditLog::Open(Options(p), &log).code == AuditStatus::Code::kCorruptTail);
  CHECK(AuditLog::Open(Options(p, "some other key of 32 bytes......"), &log).code ==
        AuditStatus::Code::kCorruptTail);
  CHECK(log == nullptr);
}

TEST_CASE("a torn tail: refuse by default, or move aside and start a new segment") {
  fs::path dir = TestDir("torn");
  fs::path p = dir / "audit.jsonl";
  WriteLog(p, 3);
  std::string text = ReadAll(p);
  WriteAll(p, text + "{\"v\":1,\"seq\":4,\"alg\"");  // crash mid-write

  std::unique_ptr<AuditLog> log;
  AuditStatus st = AuditLog::Open(Options(p), &log);
  CHECK(st.code == AuditStatus::Code::kCorruptTail);
  CHECK(st.message.find("torn last line") != std::string::npos);
  CHECK(log == nullptr);
  CHECK(ReadAll(p).size() == text.size() + 20);  // untouched

  AuditOptions o = Options(p);
  o.on_corrupt_tail = AuditCorruptTail::kNewSegment;
  REQUIRE(AuditLog::Open(o, &log).ok());
  REQUIRE(!log->damaged_path().empty());
  CHECK(fs::exists(log->damaged_path()));
  CHECK(log->last_seq() == 1);
  REQUIRE(log->Append(Sample(1)).ok());
  log.reset();

  AuditVerifyResult r = Verify(p);
  INFO(r.Format(p.string()));
  CHECK(r.kind == Kind::kOk);
  CHECK(r.records == 2);
  json start = json::parse(Lines(p)[0]);
  CHECK(start["kind"] == "segment_start");
  CHECK(start["previous_segment"]["last_good_seq"] == 3);
  std::vector<std::string> old = Lines(start["previous_segment"]["file"].get<std::string>());
  REQUIRE(old.size() == 4);
  CHECK(start["previous_segment"]["last_good_hash"] == json::parse(old[2])["hash"]);
  CHECK(start["previous_segment"]["problem"].get<std::string>().find("torn") != std::string::npos);
  // The damaged file itself still reports its torn line.
  ExpectBad(Verify(start["previous_segment"]["file"].get<std::string>()), 4, 4, "torn last line");
}

TEST_CASE("secrets never reach the file; args stored only when asked and not redacted") {
  fs::path dir = TestDir("secrets");
  const std::string token = "ghp_SuperSecretToken123";
  AuditRecord r = Sample(1);
  r.principal = "User::\"" + token + "\"";
  r.args = json{{"auth", "Bearer " + token}, {token, 1}, {"nested", {{"list", {"x", token}}}}};
  r.detail = json{{"reason", "header had " + token}};
  r.upstream = AuditUpstream{"error", 1234, "401 for token " + token};
  const std::string digest = Sha256Hex(AuditCanonicalBytes(*r.args));

  SUBCASE("record_args on") {
    fs::path p = dir / "on.jsonl";
    AuditOptions o = Options(p);
    o.record_args = true;
    o.secrets = {token, ""};
    std::unique_ptr<AuditLog> log;
    REQUIRE(AuditLog::Open(o, &log).ok());
    REQUIRE(log->Append(r).ok());
    std::string text = ReadAll(p);
    CHECK(text.find(token) == std::string::npos);
    CHECK(text.find("SuperSecret") == std::string::npos);
    json j = json::parse(Lines(p)[0]);
    CHECK(j["args"]["auth"] == "Bearer [REDACTED]");
    CHECK(j["args"].contains("[REDACTED]"));
    CHECK(j["args"]["nested"]["list"][1] == "[REDACTED]");
    CHECK(j["principal"] == "User::\"[REDACTED]\"");
    CHECK(j["detail"]["reason"] == "header had [REDACTED]");
    CHECK(j["upstream"]["error"] == "401 for token [REDACTED]");
    CHECK(j["upstream"]["latency_us"] == 1234);
    CHECK(j["args_digest"] == digest);
    CHECK(Verify(p).kind == Kind::kOk);
  }
  SUBCASE("record_args on, but the policy redacts this call") {
    fs::path p = dir / "redact.jsonl";
    AuditOptions o = Options(p);
    o.record_args = true;
    o.secrets = {token};
    std::unique_ptr<AuditLog> log;
    REQUIRE(AuditLog::Open(o, &log).ok());
    r.redact_args = true;
    REQUIRE(log->Append(r).ok());
    json j = json::parse(Lines(p)[0]);
    CHECK_FALSE(j.contains("args"));
    CHECK(j["args_digest"] == digest);
  }
  SUBCASE("record_args off (default)") {
    fs::path p = dir / "off.jsonl";
    AuditOptions o = Options(p);
    std::unique_ptr<AuditLog> log;
    REQUIRE(AuditLog::Open(o, &log).ok());
    AuditRecord plain = Sample(2);
    REQUIRE(log->Append(plain).ok());
    json j = json::parse(Lines(p)[0]);
    CHECK_FALSE(j.contains("args"));
    CHECK(j["args_digest"] == Sha256Hex(AuditCanonicalBytes(*plain.args)));
  }
}

TEST_CASE("awkward values round-trip through the canonical form") {
  fs::path p = TestDir("values") / "audit.jsonl";
  AuditOptions o = Options(p);
  o.record_args = true;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  AuditRecord r = Sample(1);
  r.args = json{{"f", 0.1},
                {"big", 1e300},
                {"neg", -7},
                {"u", "h\u00e9llo \u2603"},
                {"bad_utf8", std::string("a\xff\xfe")},
                {"nan", std::nan("")},
                {"ctl", std::string("x\0y\n")}};
  REQUIRE(log->Append(r).ok());
  REQUIRE(log->Append(Sample(2)).ok());
  log.reset();
  AuditVerifyResult v = Verify(p);
  INFO(v.Format(p.string()));
  CHECK(v.kind == Kind::kOk);
}

TEST_CASE("each line is the canonical form of itself, hash member included") {
  // AuditLog serializes a record once, with a placeholder for its hash (audit.cc, FastLine):
  // the line must still be exactly what parse-and-dump gives, and verify, whatever the args
  // hold -- including a member named "hash" with a hash-like value, and keys that sort around
  // the top-level "hash".
  fs::path p = TestDir("canonical") / "audit.jsonl";
  AuditOptions o = Options(p, kKey);
  o.record_args = true;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  AuditRecord r = Sample(1);
  r.args = json{{"hash", std::string(64, 'a')},
                {"nested", {{"hash", "x"}, {"kind", "y"}, {"list", {1, 2.5, -0.0, "z"}}}},
                {"f", 1e-7},
                {"s", "quote \" backslash \\ tab \t"}};
  r.detail = {{"hash", "in detail"}, {"zz", nullptr}};
  REQUIRE(log->Append(r).ok());
  REQUIRE(log->Append(Sample(2)).ok());
  AuditRecord big = Sample(3);  // args over the size limit: truncated, still canonical
  big.args = json{{"blob", std::string(kAuditMaxRecordBytes, 'b')}};
  REQUIRE(log->Append(big).ok());
  log.reset();
  std::vector<std::string> lines = Lines(p);
  REQUIRE(lines.size() == 3);
  for (const auto& line : lines) {
    json j = json::parse(line);
    CHECK(AuditCanonicalBytes(j) == line);
    std::string hash = j["hash"];
    const std::string key = kKey;
    CHECK(AuditRecordHash(j, &key) == hash);
  }
  CHECK(json::parse(lines[0])["args"]["hash"] == std::string(64, 'a'));
  CHECK(json::parse(lines[2]).value("args_truncated", false));
  AuditVerifyResult v = Verify(p, kKey);
  INFO(v.Format(p.string()));
  CHECK(v.kind == Kind::kOk);
}

TEST_CASE("Append's direct serialization writes exactly what the JSON object path gives") {
  // Append writes most records without building a JSON object (audit.cc, "Direct
  // serialization"). Each line must be byte for byte the canonical dump of
  // AuditRecordToJson(record), scrubbed, plus the chain members -- for awkward strings,
  // secrets (in values and in detail's keys), stored or redacted args, and every optional
  // member present or absent. Records the direct path leaves to the general one (invalid
  // UTF-8, a secret inside a member name) must still verify.
  const std::string token = "tok_3xAmple";
  auto make = [&](int i) {
    AuditRecord r = Sample(i);
    r.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1700000000123456));
    return r;
  };
  std::vector<AuditRecord> records;
  records.push_back(make(1));
  {
    AuditRecord r = make(2);
    r.client = "h\u00e9 \u2603 \U0001F600 \x01\"";
    r.tool = std::string("ctl \x01\x1f\x7f \b\f\n\r\t \" \\ / ") + std::string(1, '\0');
    r.determining = {};
    r.detail = nullptr;
    r.args.reset();
    records.push_back(r);
  }
  {
    AuditRecord r = make(3);
    r.principal = "User::\"" + token + "\"";
    r.args = json{{"auth", "Bearer " + token}, {token, 1}, {"n", {{"l", {1.5, token}}}}};
    r.detail = json{{"why", "had " + token}, {token + "_key", true}, {"empty", json::object()}};
    r.upstream = AuditUpstream{"error", 42, "401 for " + token};
    r.determining = {"a", token, "c"};
    records.push_back(r);
  }
  {
    AuditRecord r = make(4);
    r.redact_args = true;
    r.detail = json::object();
    r.upstream = AuditUpstream{"ok", 0, ""};
    records.push_back(r);
  }
  for (bool store_args : {false, true}) {
    for (const std::string& key : {std::string(), std::string(kKey)}) {
      CAPTURE(store_args);
      CAPTURE(key.size());
      fs::path p = TestDir("direct") / "audit.jsonl";
      AuditOptions o = Options(p, key);
      o.record_args = store_args;
      o.secrets = {token, "", "zz-never-present"};
      std::unique_ptr<AuditLog> log;
      REQUIRE(AuditLog::Open(o, &log).ok());
      for (const auto& r : records) REQUIRE(log->Append(r).ok());
      log->AddSecrets({"Bearer"});  // the second scrub pass (rotation)
      REQUIRE(log->Append(records[2]).ok());
      log.reset();
      std::vector<std::string> lines = Lines(p);
      REQUIRE(lines.size() == records.size() + 1);
      std::string prev(kAuditGenesisHash);
      for (size_t i = 0; i < lines.size(); ++i) {
        CAPTURE(i);
        const AuditRecord& r = i < records.size() ? records[i] : records[2];
        json want = AuditRecordToJson(r, store_args && !r.redact_args);
        ScrubSecrets(&want, o.secrets);
        if (i == records.size()) ScrubSecrets(&want, {"Bearer"});
        want["v"] = kAuditFormatVersion;
        want["alg"] = key.empty() ? std::string(kAuditAlgSha256) : std::string(kAuditAlgHmacSha256);
        want["seq"] = i + 1;
        want["prev"] = prev;
        want["hash"] = AuditRecordHash(want, &key);
        CHECK(lines[i] == AuditCanonicalBytes(want));
        prev = want["hash"];
      }
      CHECK(lines[2].find(token) == std::string::npos);
      CHECK(lines[4].find("Bearer") == std::string::npos);
      CHECK(Verify(p, key).kind == Kind::kOk);
    }
  }
  // Left to the general path: invalid UTF-8 (replaced), a secret inside a member name.
  fs::path p = TestDir("direct_general") / "audit.jsonl";
  AuditOptions o = Options(p);
  o.secrets = {"ool"};  // in the member name "tool"
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  AuditRecord bad = make(5);
  bad.client = std::string("a\xff\xfe");
  REQUIRE(log->Append(bad).ok());
  REQUIRE(log->Append(make(6)).ok());
  log.reset();
  std::vector<std::string> lines = Lines(p);
  REQUIRE(lines.size() == 2);
  CHECK(json::parse(lines[0])["client"] == "a\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(json::parse(lines[1]).contains("t[REDACTED]"));
  CHECK(Verify(p).kind == Kind::kOk);
}

TEST_CASE("fsync always: concurrent appends share fsyncs and every record is durable") {
  fs::path p = TestDir("group") / "audit.jsonl";
  AuditOptions o = Options(p);
  o.fsync = AuditFsync::kAlways;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  constexpr int kThreads = 4, kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        if (!log->Append(Sample(t * kEach + i)).ok()) failures++;
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(log->last_seq() == kThreads * kEach);
  log.reset();
  AuditVerifyResult v = Verify(p);
  CHECK(v.kind == Kind::kOk);
  CHECK(v.records == kThreads * kEach);
}

TEST_CASE("concurrent appends produce one valid chain") {
  fs::path p = TestDir("threads") / "audit.jsonl";
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(Options(p, kKey), &log).ok());
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!log->Append(Sample(t * kEach + i)).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(log->last_seq() == kThreads * kEach);
  AuditVerifyResult r = Verify(p, kKey);
  INFO(r.Format(p.string()));
  CHECK(r.kind == Kind::kOk);
  CHECK(r.records == kThreads * kEach);
  CHECK(r.last_hash == log->last_hash());
}

TEST_CASE("fsync always: every record synced; write failures are errors, never throws") {
  fs::path p = TestDir("fsync") / "audit.jsonl";
  AuditOptions o = Options(p);
  o.fsync = AuditFsync::kAlways;
  std::unique_ptr<AuditLog> log;
  REQUIRE(AuditLog::Open(o, &log).ok());
  CHECK(log->Append(Sample(1)).ok());
  CHECK(log->Sync().ok());
  log.reset();
  CHECK(Verify(p).kind == Kind::kOk);

  AuditOptions bad = Options(TestDir("fsync") / "no" / "such" / "dir.jsonl");
  CHECK(AuditLog::Open(bad, &log).code == AuditStatus::Code::kIoError);
  CHECK(AuditLog::Open(AuditOptions{}, &log).code == AuditStatus::Code::kInvalid);

  if (fs::exists("/dev/full")) {  // every write fails with ENOSPC
    AuditOptions full;
    full.path = "/dev/full";
    full.fsync = AuditFsync::kNever;
    REQUIRE(AuditLog::Open(full, &log).ok());
    AuditStatus st = log->Append(Sample(1));
    CHECK(st.code == AuditStatus::Code::kIoError);
    CHECK(st.message.find("cannot write") != std::string::npos);
    CHECK_FALSE(log->Append(Sample(2)).ok());
    CHECK(log->last_seq() == 0);
  }
}

TEST_CASE("key files") {
  fs::path dir = TestDir("keyfile");
  std::string key, err;
  WriteAll(dir / "k", std::string(kKey) + "\n");
  REQUIRE(ReadAuditKeyFile((dir / "k").string(), &key, &err));
  CHECK(key == kKey);
  WriteAll(dir / "short", "abc\n");
  CHECK_FALSE(ReadAuditKeyFile((dir / "short").string(), &key, &err));
  CHECK(err.find("at least 16") != std::string::npos);
  CHECK_FALSE(ReadAuditKeyFile((dir / "missing").string(), &key, &err));
}

// Runs the built `writ` binary; returns its exit code and puts stdout+stderr in *out.
int RunWrit(const std::string& args, std::string* out) {
  fs::path capture = fs::path(WRIT_BINARY_DIR) / "tests" / "audit_tmp" / "cli_output.txt";
  std::string cmd =
      std::string(WRIT_BINARY_DIR) + "/cli/writ " + args + " > " + capture.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  *out = ReadAll(capture);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST_CASE("writ audit verify: exit codes and messages") {
  fs::path dir = TestDir("cli");
  fs::path p = dir / "audit.jsonl";
  WriteLog(p, 4, kKey);
  WriteAll(dir / "key", kKey);
  WriteAll(dir / "wrong", "a different key of 32 bytes.....");
  const std::string file = p.string();
  std::string out;

  CHECK(RunWrit("audit verify " + file + " --key-file " + (dir / "key").string(), &out) == 0);
  CHECK(out.find("ok: 4 records, last hash ") == 0);

  CHECK(RunWrit("audit verify " + file, &out) == 1);
  CHECK(out.find(file + ":1: record 1: record is keyed") == 0);

  CHECK(RunWrit("audit verify " + file + " --key-file " + (dir / "wrong").string(), &out) == 1);
  CHECK(out.find(file + ":1: record 1: hash mismatch") == 0);

  std::vector<std::string> l = Lines(p);
  l.erase(l.begin() + 1);
  WriteLines(p, l);
  CHECK(RunWrit("audit verify " + file + " -k " + (dir / "key").string(), &out) == 1);
  CHECK(out.find(file + ":2: record 3: seq 3 where 2 was expected") == 0);

  std::string text = ReadAll(p);
  WriteAll(p, text.substr(0, text.size() - 5));
  WriteLog(dir / "torn.jsonl", 2);
  std::string torn = ReadAll(dir / "torn.jsonl");
  WriteAll(dir / "torn.jsonl", torn.substr(0, torn.size() - 5));
  CHECK(RunWrit("audit verify " + (dir / "torn.jsonl").string(), &out) == 1);
  CHECK(out.find(":2: record 2: torn last line") != std::string::npos);

  CHECK(RunWrit("audit verify " + (dir / "missing.jsonl").string(), &out) == 2);
  CHECK(RunWrit("audit verify " + file + " --key-file " + (dir / "nokey").string(), &out) == 2);
  CHECK(RunWrit("audit verify", &out) == 2);
}

}  // namespace
}  // namespace writ::gateway

TEST_CASE("audit time: RFC 3339 UTC with microseconds; the per-second cache follows the clock") {
  using namespace std::chrono;
  using writ::gateway::FormatAuditTime;
  auto at = [](int64_t us) { return system_clock::time_point(microseconds(us)); };
  // 2023-11-14T22:13:20Z is 1700000000 s.
  CHECK(FormatAuditTime(at(1700000000000000)) == "2023-11-14T22:13:20.000000Z");
  CHECK(FormatAuditTime(at(1700000000000007)) == "2023-11-14T22:13:20.000007Z");
  CHECK(FormatAuditTime(at(1700000000999999)) == "2023-11-14T22:13:20.999999Z");
  // The next second, then back (out of order), then a different day: never a stale prefix.
  CHECK(FormatAuditTime(at(1700000001000000)) == "2023-11-14T22:13:21.000000Z");
  CHECK(FormatAuditTime(at(1700000000123456)) == "2023-11-14T22:13:20.123456Z");
  CHECK(FormatAuditTime(at(1700086400500000)) == "2023-11-15T22:13:20.500000Z");
  // Before the epoch: the fraction is still positive, the second rounds down.
  CHECK(FormatAuditTime(at(-1)) == "1969-12-31T23:59:59.999999Z");
  // Another thread has its own cache.
  std::string other;
  std::thread t([&] { other = FormatAuditTime(at(1700000000000001)); });
  t.join();
  CHECK(other == "2023-11-14T22:13:20.000001Z");
}
