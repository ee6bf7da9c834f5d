// corrupt_bundle_test.cc -- nothing in a bundle is trusted: truncated, bit-flipped and
// hostile bundles (checksum recomputed so that the verifier itself is exercised) must be
// rejected by Bundle::Load with a non-empty error, never crash (CI runs this under ASan), and
// a bundle that does load must evaluate requests without crashing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "runtime/bundle.h"
#include "runtime/evaluator.h"

namespace writ::runtime {
namespace {

using nlohmann::json;

constexpr const char* kPolicies = R"(
@id("a") permit (principal in Role::"analyst", action == Action::"tools/call",
                 resource in Server::"stripe")
when { args.amount < 50000 && args.currency like "u*" && context.ip.isInRange(ip("10.0.0.0/8")) }
then rate_limit(key: [principal, args.currency], limit: 5, per: 1m), log(info);
@id("b") forbid (principal, action, resource == Tool::"stripe__refund_create")
when { args.note matches "(?i)drop" || args.items.contains({a: 1, b: "x"}) } then reason("no");
@id("c") rule if principal.clearance + 1 > 3 || -args.amount < 0
then require_approval(approvers: "x", timeout: 5m);
@id("d") permit (principal, action in [Action::"resources/read", Action::"prompts/get"], resource)
unless { if principal has mfa then !principal.mfa else true };
@id("e") permit (principal == User::"bob", action, resource) when { [1, 2].containsAny(args.items) };
)";

std::string CompiledBundle() {
  std::string bytes, error;
  REQUIRE_MESSAGE(CompileText("corrupt.writ", kPolicies, &bytes, &error), error);
  return bytes;
}

json SampleRequest(int n) {
  json r = {{"principal", {{"uid", "User::\"alice\""}, {"attrs", {{"clearance", 3}, {"mfa", true}}},
                           {"parents", {"Role::\"analyst\""}}}},
            {"action", n % 2 ? "tools/call" : "resources/read"},
            {"resource", {{"uid", "Tool::\"stripe__refund_create\""},
                          {"parents", {"Server::\"stripe\""}}}},
            {"args", {{"amount", n * 20000}, {"currency", "usd"}, {"note", "DROP x"},
                      {"items", {1, {{"a", 1}, {"b", "x"}}}}}},
            {"context", {{"ip", "10.0.0.1"}}}};
  return r;
}

// ---- the container format (bundle.h), parsed and re-serialized by hand ----

struct RawSection {
  uint32_t kind = 0;
  uint32_t elem_size = 0;
  uint64_t count = 0;
  std::string data;
};

struct RawBundle {
  std::string magic = std::string(kMagic, 8);
  uint32_t version = kFormatVersion;
  std::array<uint8_t, 32> source_hash{};
  std::vector<RawSection> sections;
  // Overrides for hostile headers (0 = computed).
  bool fix_count = false, fix_size = false, fix_checksum = false;
  uint32_t section_count = 0;
  uint64_t payload_size = 0, checksum = 0;

  template <typename T>
  std::vector<T> Get(Section kind) const {
    for (const auto& s : sections) {
      if (s.kind == static_cast<uint32_t>(kind) && s.elem_size == sizeof(T)) {
        std::vector<T> v(s.count);
        if (!v.empty()) std::memcpy(v.data(), s.data.data(), s.data.size());
        return v;
      }
    }
    return {};
  }
  template <typename T>
  void Put(Section kind, const std::vector<T>& v) {
    for (auto& s : sections) {
      if (s.kind == static_cast<uint32_t>(kind)) {
        s.elem_size = sizeof(T);
        s.count = v.size();
        s.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
        return;
      }
    }
    sections.push_back({static_cast<uint32_t>(kind), sizeof(T), v.size(),
                        std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T))});
  }
  RawSection* Find(Section kind) {
    for (auto& s : sections) {
      if (s.kind == static_cast<uint32_t>(kind)) return &s;
    }
    return nullptr;
  }
};

template <typename T>
void PutLe(std::string* out, T v) {
  for (size_t k = 0; k < sizeof(T); ++k) out->push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}
template <typename T>
T GetLe(const std::string& in, size_t at) {
  T v = 0;
  for (size_t k = 0; k < sizeof(T); ++k) {
    v |= static_cast<T>(static_cast<uint8_t>(in[at + k])) << (8 * k);
  }
  return v;
}

RawBundle Parse(const std::string& bytes) {
  RawBundle b;
  REQUIRE(bytes.size() >= kHeaderSize);
  b.magic = bytes.substr(0, 8);
  b.version = GetLe<uint32_t>(bytes, 8);
  uint32_t count = GetLe<uint32_t>(bytes, 12);
  std::memcpy(b.source_hash.data(), bytes.data() + 32, 32);
  size_t at = kHeaderSize;
  for (uint32_t k = 0; k < count; ++k) {
    RawSection s;
    s.kind = GetLe<uint32_t>(bytes, at);
    s.elem_size = GetLe<uint32_t>(bytes, at + 4);
    s.count = GetLe<uint64_t>(bytes, at + 8);
    s.data = bytes.substr(at + 16, s.elem_size * s.count);
    at += 16 + s.data.size();
    b.sections.push_back(std::move(s));
  }
  REQUIRE(at == bytes.size());
  return b;
}

std::string Serialize(const RawBundle& b) {
  std::string payload;
  for (const auto& s : b.sections) {
    PutLe<uint32_t>(&payload, s.kind);
    PutLe<uint32_t>(&payload, s.elem_size);
    PutLe<uint64_t>(&payload, s.count);
    payload += s.data;
  }
  std::string out = b.magic;
  PutLe<uint32_t>(&out, b.version);
  PutLe<uint32_t>(&out, b.fix_count ? b.section_count : static_cast<uint32_t>(b.sections.size()));
  PutLe<uint64_t>(&out, b.fix_size ? b.payload_size : payload.size());
  PutLe<uint64_t>(&out, b.fix_checksum ? b.checksum : Fnv1a64(payload));
  out.append(reinterpret_cast<const char*>(b.source_hash.data()), 32);
  return out + payload;
}

// Loads `bytes`; if it loads, exercises it. Returns the load error ("" if it loaded).
std::string LoadAndUse(const std::string& bytes) {
  std::string error;
  auto bundle = Bundle::Load(bytes, &error);
  if (bundle == nullptr) {
    CHECK_MESSAGE(!error.empty(), "rejected without an error message");
    return error.empty() ? "<empty>" : error;
  }
  for (int n = 0; n < 4; ++n) {
    json doc = SampleRequest(n);
    PreparedRequest req;
    std::string perr;
    if (!PrepareRequest(*bundle, doc, &req, &perr)) continue;
    Decision d = Evaluate(*bundle, req);
    (void)DecisionToJson(*bundle, req, d);
    (void)Explain(*bundle, req);
    const StatementPlan plan(*bundle);
    PlanScratch scratch;
    std::vector<uint32_t> planned, whole;
    DeterminingStatements(plan, req, d, &scratch, &planned);
    DeterminingStatements(*bundle, req, d, &whole);
    CHECK(planned == whole);
    req.args_unknown = true;
    (void)ListVisibility(*bundle, req);
  }
  (void)Disassemble(*bundle);
  return "";
}

void ExpectRejected(const RawBundle& b, const std::string& what) {
  INFO(what);
  std::string error;
  auto bundle = Bundle::Load(Serialize(b), &error);
  CHECK_MESSAGE(bundle == nullptr, "accepted: " << what);
  CHECK_MESSAGE(!error.empty(), "no error message: " << what);
  if (bundle != nullptr) LoadAndUse(Serialize(b));
}

TEST_CASE("the compiled bundle round-trips through the hand parser and BundleWriter") {
  std::string bytes = CompiledBundle();
  RawBundle b = Parse(bytes);
  CHECK(Serialize(b) == bytes);
  BundleWriter w;
  for (const auto& s : b.sections) {
    w.AddSection(static_cast<Section>(s.kind), s.elem_size, s.count, s.data.data());
  }
  CHECK(w.Finish(b.source_hash) == bytes);
  CHECK(LoadAndUse(bytes) == "");
}

TEST_CASE("truncated at every length") {
  std::string bytes = CompiledBundle();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string error;
    auto bundle = Bundle::Load(std::string_view(bytes).substr(0, n), &error);
    CHECK_MESSAGE(bundle == nullptr, "accepted a bundle truncated to " << n);
    CHECK(!error.empty());
  }
  std::string longer = bytes + std::string(1, '\0');
  std::string error;
  CHECK(Bundle::Load(longer, &error) == nullptr);
  CHECK(!error.empty());
}

TEST_CASE("every single byte flipped") {
  std::string bytes = CompiledBundle();
  for (size_t at = 0; at < bytes.size(); ++at) {
    // The source hash (header bytes 32..63) is metadata outside the checksummed payload.
    if (at >= 32 && at < 64) continue;
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
      std::string bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      std::string error;
      auto bundle = Bundle::Load(bad, &error);
      CHECK_MESSAGE(bundle == nullptr, "accepted a flip of byte " << at << " by " << int(mask));
      CHECK(!error.empty());
    }
  }
}

TEST_CASE("hostile headers") {
  RawBundle good = Parse(CompiledBundle());
  {
    RawBundle b = good;
    b.magic = "WRITBNDX";
    ExpectRejected(b, "bad magic");
  }
  for (uint32_t v : {0u, kFormatVersion + 1, 0xFFFFFFFFu}) {
    RawBundle b = good;
    b.version = v;
    ExpectRejected(b, "version " + std::to_string(v));
  }
  for (uint32_t c : {0u, static_cast<uint32_t>(good.sections.size() + 1), 0xFFFFFFFFu}) {
    RawBundle b = good;
    b.fix_count = true;
    b.section_count = c;
    ExpectRejected(b, "section count " + std::to_string(c));
  }
  for (uint64_t s : {uint64_t{0}, uint64_t{1} << 62, ~uint64_t{0}}) {
    RawBundle b = good;
    b.fix_size = true;
    b.payload_size = s;
    ExpectRejected(b, "payload size " + std::to_string(s));
  }
  {
    RawBundle b = good;
    b.fix_checksum = true;
    b.checksum = 0;
    ExpectRejected(b, "checksum 0");
  }
}

TEST_CASE("hostile section tables") {
  RawBundle good = Parse(CompiledBundle());
  int applied = 0;
  for (size_t k = 0; k < good.sections.size(); ++k) {
    const std::string name = "section kind " + std::to_string(good.sections[k].kind);
    {
      RawBundle b = good;  // a required section missing
      b.sections.erase(b.sections.begin() + static_cast<long>(k));
      ExpectRejected(b, name + " removed");
    }
    {
      RawBundle b = good;  // duplicated
      b.sections.push_back(b.sections[k]);
      ExpectRejected(b, name + " duplicated");
    }
    {
      RawBundle b = good;  // wrong element size, same bytes
      RawSection& s = b.sections[k];
      if (s.elem_size > 1 && s.count > 0) {
        s.elem_size += 1;
        s.count = s.data.size() / s.elem_size;
        s.data.resize(s.elem_size * s.count);
        ExpectRejected(b, name + " with a wrong element size");
        ++applied;
      }
    }
    {
      RawBundle b = good;  // zero element size with a count
      b.sections[k].elem_size = 0;
      b.sections[k].count = 5;
      b.sections[k].data.clear();
      ExpectRejected(b, name + " with zero element size");
    }
    {
      RawBundle b = good;  // a huge count whose bytes are not there
      b.sections[k].count = uint64_t{1} << 40;
      std::string bytes = Serialize(b);
      std::string error;
      CHECK_MESSAGE(Bundle::Load(bytes, &error) == nullptr, name << " with a huge count");
      CHECK(!error.empty());
    }
  }
  {
    RawBundle b = good;  // an unknown section kind
    b.sections.push_back({999, 4, 1, std::string(4, '\0')});
    ExpectRejected(b, "unknown section kind");
  }
  CHECK(applied > 3);
}

// Hostile values inside well-formed tables.
TEST_CASE("hostile table contents") {
  const RawBundle good = Parse(CompiledBundle());
  const uint32_t strings = static_cast<uint32_t>(good.Get<uint32_t>(Section::kStringOffsets).size());
  const auto insns = good.Get<Insn>(Section::kInsns);
  const auto programs = good.Get<Program>(Section::kPrograms);
  const auto nodes = good.Get<Node>(Section::kNodes);
  const auto outcomes = good.Get<Outcome>(Section::kOutcomes);
  const auto stmt_pool = good.Get<uint32_t>(Section::kStmtPool);
  const auto partitions = good.Get<Partition>(Section::kPartitions);
  const auto partition_pool = good.Get<uint32_t>(Section::kPartitionPool);
  const auto switches = good.Get<SwitchEntry>(Section::kSwitch);
  const auto statements = good.Get<StatementMeta>(Section::kStatements);
  const auto offsets = good.Get<uint32_t>(Section::kStringOffsets);
  REQUIRE(!insns.empty());
  REQUIRE(!programs.empty());
  REQUIRE(!outcomes.empty());
  REQUIRE(!statements.empty());
  REQUIRE(!partitions.empty());
  int applied = 0;
  auto with = [&](auto edit, const std::string& what) {
    RawBundle b = good;
    edit(b);
    ExpectRejected(b, what);
    ++applied;
  };

  // Strings.
  if (offsets.size() >= 2) {
    with([&](RawBundle& b) {
      auto o = offsets;
      o.back() = o.back() + 1;  // past the blob
      b.Put(Section::kStringOffsets, o);
    }, "string offset past the blob");
    with([&](RawBundle& b) {
      auto o = offsets;
      std::swap(o.front(), o.back());  // not monotonic
      b.Put(Section::kStringOffsets, o);
    }, "string offsets not monotonic");
  }

  // Instructions: every operand that indexes a table, made out of range.
  for (size_t i = 0; i < insns.size(); ++i) {
    Insn in = insns[i];
    uint32_t bad = 0;
    switch (in.op) {
      case Op::kPushString: case Op::kPushEntity: case Op::kGetAttr: case Op::kHas:
      case Op::kIs: bad = strings; break;
      case Op::kPushLong: case Op::kPushDuration:
        bad = static_cast<uint32_t>(good.Get<int64_t>(Section::kLongs).size()); break;
      case Op::kPushConst: bad = static_cast<uint32_t>(good.Get<uint32_t>(Section::kConstants).size()); break;
      case Op::kPushSlot: bad = static_cast<uint32_t>(good.Get<Slot>(Section::kSlots).size()); break;
      case Op::kLike: bad = static_cast<uint32_t>(good.Get<uint32_t>(Section::kLikes).size()); break;
      case Op::kMatches: bad = static_cast<uint32_t>(good.Get<uint32_t>(Section::kRegexes).size()); break;
      default: continue;
    }
    for (uint32_t c : {bad, bad + 1000, 0xFFFFFFFFu}) {
      with([&](RawBundle& b) {
        auto v = insns;
        v[i].c = c;
        b.Put(Section::kInsns, v);
      }, std::string("insn ") + std::to_string(i) + " " + OpName(in.op) + " operand " +
             std::to_string(c));
    }
  }
  // Bad opcodes.
  for (uint8_t op : {static_cast<uint8_t>(Op::kCount), uint8_t{200}, uint8_t{255}}) {
    with([&](RawBundle& b) {
      auto v = insns;
      std::memcpy(&v[0].op, &op, 1);
      b.Put(Section::kInsns, v);
    }, "bad opcode " + std::to_string(op));
  }
  // kPushVar with a variable out of range.
  with([&](RawBundle& b) {
    auto v = insns;
    v[programs[0].begin] = Insn{Op::kPushVar, 7, 0, 0};
    b.Put(Section::kInsns, v);
  }, "kPushVar 7");
  // Stack underflow: a program that starts with a binary operator.
  with([&](RawBundle& b) {
    auto v = insns;
    v[programs[0].begin] = Insn{Op::kAdd, 0, 0, 0};
    b.Put(Section::kInsns, v);
  }, "stack underflow");
  with([&](RawBundle& b) {
    auto v = insns;
    v[programs[0].begin] = Insn{Op::kMakeSet, 0, 0, 1000};
    b.Put(Section::kInsns, v);
  }, "kMakeSet popping more than the stack holds");
  // Stack overflow: a program pushing kMaxStack + 1 values.
  with([&](RawBundle& b) {
    auto v = insns;
    auto p = programs;
    p[0].begin = static_cast<uint32_t>(v.size());
    p[0].count = kMaxStack + 1;
    for (uint32_t k = 0; k <= kMaxStack; ++k) v.push_back(Insn{Op::kPushBool, 1, 0, 0});
    b.Put(Section::kInsns, v);
    b.Put(Section::kPrograms, p);
  }, "stack overflow");
  // A program leaving two values, or none.
  with([&](RawBundle& b) {
    auto v = insns;
    auto p = programs;
    p[0].begin = static_cast<uint32_t>(v.size());
    p[0].count = 2;
    v.push_back(Insn{Op::kPushBool, 1, 0, 0});
    v.push_back(Insn{Op::kPushBool, 1, 0, 0});
    b.Put(Section::kInsns, v);
    b.Put(Section::kPrograms, p);
  }, "program leaving two values");
  with([&](RawBundle& b) {
    auto p = programs;
    p[0].count = 0;
    b.Put(Section::kPrograms, p);
  }, "empty program");
  // Programs past the instructions.
  for (uint32_t begin : {static_cast<uint32_t>(insns.size()), 0xFFFFFFF0u}) {
    with([&](RawBundle& b) {
      auto p = programs;
      p[0].begin = begin;
      b.Put(Section::kPrograms, p);
    }, "program begin " + std::to_string(begin));
  }
  with([&](RawBundle& b) {
    auto p = programs;
    p[0].count = 0xFFFFFFFFu;
    b.Put(Section::kPrograms, p);
  }, "program count huge");

  // DAG nodes: atoms out of range, edges backwards (cycles) or out of range.
  for (size_t n = 0; n < nodes.size(); ++n) {
    with([&](RawBundle& b) {
      auto v = nodes;
      v[n].atom = static_cast<uint32_t>(programs.size());
      b.Put(Section::kNodes, v);
    }, "node " + std::to_string(n) + " atom out of range");
    for (int e = 0; e < 3; ++e) {
      for (uint32_t to : {static_cast<uint32_t>(n), static_cast<uint32_t>(nodes.size()),
                          kLeafBit | static_cast<uint32_t>(outcomes.size()), 0x7FFFFFFFu}) {
        with([&](RawBundle& b) {
          auto v = nodes;
          v[n].next[e] = to;
          b.Put(Section::kNodes, v);
        }, "node " + std::to_string(n) + " edge " + std::to_string(e) + " to " +
               std::to_string(to));
      }
      if (n > 0) {
        with([&](RawBundle& b) {
          auto v = nodes;
          v[n].next[e] = 0;  // backwards
          b.Put(Section::kNodes, v);
        }, "node " + std::to_string(n) + " edge backwards");
      }
    }
  }

  // Outcomes past the statement pool.
  for (size_t o = 0; o < outcomes.size(); ++o) {
    with([&](RawBundle& b) {
      auto v = outcomes;
      v[o].matched_begin = static_cast<uint32_t>(stmt_pool.size());
      v[o].matched_count = 1;
      b.Put(Section::kOutcomes, v);
    }, "outcome matched range past the pool");
    with([&](RawBundle& b) {
      auto v = outcomes;
      v[o].errored_begin = 0xFFFFFFFFu;
      v[o].errored_count = 2;  // wraps around
      b.Put(Section::kOutcomes, v);
    }, "outcome errored range wrapping around");
  }
  for (size_t k = 0; k < stmt_pool.size(); ++k) {
    with([&](RawBundle& b) {
      auto v = stmt_pool;
      v[k] = static_cast<uint32_t>(statements.size());
      b.Put(Section::kStmtPool, v);
    }, "statement pool entry out of range");
  }

  // Partitions and the switch.
  for (size_t k = 0; k < partitions.size(); ++k) {
    with([&](RawBundle& b) {
      auto v = partitions;
      v[k].root[0] = static_cast<uint32_t>(nodes.size());
      b.Put(Section::kPartitions, v);
    }, "partition root out of range");
    with([&](RawBundle& b) {
      auto v = partitions;
      v[k].root[1] = kLeafBit | static_cast<uint32_t>(outcomes.size());
      b.Put(Section::kPartitions, v);
    }, "partition leaf out of range");
  }
  for (size_t k = 0; k < partition_pool.size(); ++k) {
    with([&](RawBundle& b) {
      auto v = partition_pool;
      v[k] = static_cast<uint32_t>(partitions.size());
      b.Put(Section::kPartitionPool, v);
    }, "partition pool entry out of range");
  }
  for (size_t k = 0; k < switches.size(); ++k) {
    with([&](RawBundle& b) {
      auto v = switches;
      v[k].partition_begin = static_cast<uint32_t>(partition_pool.size());
      v[k].partition_count = 1;
      b.Put(Section::kSwitch, v);
    }, "switch partitions past the pool");
    if (switches[k].action != kAnyKey) {
      with([&](RawBundle& b) {
        auto v = switches;
        v[k].action = strings;
        b.Put(Section::kSwitch, v);
      }, "switch action key out of range");
    }
  }
  // Entries sharing pool ranges would let a small bundle expand into a huge switch index.
  for (size_t k = 0; k < switches.size(); ++k) {
    if (partition_pool.empty()) break;
    with([&](RawBundle& b) {
      auto v = switches;
      v[k].partition_begin = 0;
      v[k].partition_count = static_cast<uint32_t>(partition_pool.size());
      b.Put(Section::kSwitch, v);
    }, "switch entries listing more partitions than the pool holds");
  }
  if (switches.size() >= 2) {
    auto v = switches;
    std::reverse(v.begin(), v.end());
    if (std::memcmp(&v[0], &switches[0], sizeof(SwitchEntry)) != 0) {
      with([&](RawBundle& b) { b.Put(Section::kSwitch, v); }, "switch not sorted");
    }
  }

  // Statement metadata.
  for (size_t k = 0; k < statements.size(); ++k) {
    with([&](RawBundle& b) {
      auto v = statements;
      v[k].id = strings;
      b.Put(Section::kStatements, v);
    }, "statement id out of range");
    with([&](RawBundle& b) {
      auto v = statements;
      v[k].obligations = strings + 5;
      b.Put(Section::kStatements, v);
    }, "statement obligations out of range");
    with([&](RawBundle& b) {
      auto v = statements;
      v[k].rate_key_begin = 0xFFFFFFFFu;
      v[k].rate_key_count = 1;
      b.Put(Section::kStatements, v);
    }, "statement rate-key programs out of range");
    with([&](RawBundle& b) {
      auto v = statements;
      v[k].effect = 9;
      b.Put(Section::kStatements, v);
    }, "statement effect 9");
  }
  // String-id tables pointing past the strings.
  for (Section s : {Section::kConstants, Section::kPathPool, Section::kRegexes, Section::kLikes,
                    Section::kRecordKeys}) {
    auto v = good.Get<uint32_t>(s);
    if (v.empty()) continue;
    with([&](RawBundle& b) {
      auto w = v;
      w[0] = strings;
      b.Put(s, w);
    }, "string id table " + std::to_string(static_cast<uint32_t>(s)) + " out of range");
  }
  auto slots = good.Get<Slot>(Section::kSlots);
  if (!slots.empty()) {
    with([&](RawBundle& b) {
      auto w = slots;
      w[0].root = static_cast<SlotRoot>(9);
      b.Put(Section::kSlots, w);
    }, "slot root 9");
    with([&](RawBundle& b) {
      auto w = slots;
      w[0].path = 0xFFFFFFF0u;
      w[0].depth = 100;
      b.Put(Section::kSlots, w);
    }, "slot path out of range");
  }
  MESSAGE(applied << " hostile edits, all rejected");
  CHECK(applied > 50);
}

// Constants and obligations are JSON texts and regexes are RE2 patterns: replacing the bytes
// of such a string with garbage must be caught by the loader (not at evaluation time).
TEST_CASE("garbage in JSON and regex strings") {
  const RawBundle good = Parse(CompiledBundle());
  const auto offsets = good.Get<uint32_t>(Section::kStringOffsets);
  REQUIRE(RawBundle(good).Find(Section::kStrings) != nullptr);
  auto rewrite = [&](uint32_t id, const std::string& text) {
    RawBundle b = good;
    RawSection* s = b.Find(Section::kStrings);
    std::string data = s->data;
    std::string before = data.substr(0, offsets[id]);
    std::string after = data.substr(offsets[id + 1]);
    s->data = before + text + after;
    s->count = s->data.size();
    auto o = offsets;
    int64_t delta = static_cast<int64_t>(text.size()) - (offsets[id + 1] - offsets[id]);
    for (size_t k = id + 1; k < o.size(); ++k) o[k] = static_cast<uint32_t>(o[k] + delta);
    b.Put(Section::kStringOffsets, o);
    return b;
  };
  int applied = 0;
  for (uint32_t id : good.Get<uint32_t>(Section::kConstants)) {
    ExpectRejected(rewrite(id, "{not json"), "constant that is not JSON");
    ++applied;
  }
  for (uint32_t id : good.Get<uint32_t>(Section::kRegexes)) {
    ExpectRejected(rewrite(id, "(unclosed"), "regex RE2 rejects");
    ++applied;
  }
  for (const auto& st : good.Get<StatementMeta>(Section::kStatements)) {
    ExpectRejected(rewrite(st.obligations, "[{\"kind\":"), "obligations that are not JSON");
    ++applied;
  }
  CHECK(applied >= 3);
}

// Random hostile edits with the checksum recomputed: whatever the loader decides, it must
// not crash, and whatever it accepts must evaluate without crashing (ASan in CI).
TEST_CASE("random edits never crash the loader or the evaluator") {
  const std::string bytes = CompiledBundle();
  const RawBundle good = Parse(bytes);
  std::mt19937_64 rng(7);
  int accepted = 0;
  for (int n = 0; n < 20000; ++n) {
    RawBundle b = good;
    RawSection& s = b.sections[rng() % b.sections.size()];
    if (s.data.empty()) continue;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % s.data.size();
      switch (rng() % 4) {
        case 0: s.data[at] = static_cast<char>(rng()); break;
        case 1: s.data[at] = static_cast<char>(s.data[at] + 1); break;
        case 2: s.data[at] = static_cast<char>(s.data[at] - 1); break;
        default: s.data[at] = static_cast<char>(0xFF); break;
      }
    }
    accepted += LoadAndUse(Serialize(b)).empty();
  }
  MESSAGE(accepted << " of 20000 random edits were accepted (and evaluated safely)");
}

// The run layout the loader derives (Bundle::BuildRunLayout) copies each chunk's DAG and turns
// chains of `slot == "s"` into switch records; a bundle whose chunks share nodes heavily must
// not make that large. Here: a chain of kChain nodes testing one `slot == "s"` atom, and one
// extra chunk rooted at each of its nodes. Per chunk that would be ~kChain^2/64 copies; shared
// with switches, ~32 cases per node; both pass the bound, so the loader falls back to one
// plain record per node. The extra chunks are in no switch entry, so decisions are those of
// the compiled bundle.
TEST_CASE("the run layout stays within its bound when chunks share a long chain") {
  const std::string bytes = CompiledBundle();
  RawBundle b = Parse(bytes);
  auto insns = b.Get<Insn>(Section::kInsns);
  auto programs = b.Get<Program>(Section::kPrograms);
  auto program_text = b.Get<uint32_t>(Section::kProgramText);
  auto nodes = b.Get<Node>(Section::kNodes);
  auto partitions = b.Get<Partition>(Section::kPartitions);
  const auto outcomes = b.Get<Outcome>(Section::kOutcomes);
  REQUIRE(!b.Get<Slot>(Section::kSlots).empty());
  uint32_t yes = UINT32_MAX, no = UINT32_MAX;  // a forbid outcome and an empty one
  for (uint32_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    if (o.forbid && yes == UINT32_MAX) yes = i;
    if (!o.forbid && !o.permit && !o.approval && no == UINT32_MAX) no = i;
  }
  REQUIRE(yes != UINT32_MAX);
  REQUIRE(no != UINT32_MAX);
  // Program: $0 == string 0.
  const uint32_t atom = static_cast<uint32_t>(programs.size());
  programs.push_back(Program{static_cast<uint32_t>(insns.size()), 3, 0, 1});
  insns.push_back(Insn{Op::kPushSlot, 0, 0, 0});
  insns.push_back(Insn{Op::kPushString, 0, 0, 0});
  insns.push_back(Insn{Op::kEq, 0, 0, 0});
  program_text.push_back(0);
  constexpr uint32_t kChain = 3000;
  const uint32_t base = static_cast<uint32_t>(nodes.size());
  for (uint32_t i = 0; i < kChain; ++i) {
    const uint32_t next = i + 1 < kChain ? base + i + 1 : (kLeafBit | no);
    nodes.push_back(Node{atom, {kLeafBit | yes, next, kLeafBit | yes}});
    partitions.push_back(Partition{{base + i, kLeafBit | no, kLeafBit | no}, 0, 0});
  }
  b.Put(Section::kInsns, insns);
  b.Put(Section::kPrograms, programs);
  b.Put(Section::kProgramText, program_text);
  b.Put(Section::kNodes, nodes);
  b.Put(Section::kPartitions, partitions);
  std::string error;
  auto hostile = Bundle::Load(Serialize(b), &error);
  REQUIRE_MESSAGE(hostile != nullptr, error);
  CHECK(hostile->run_layout_shared());
  CHECK(hostile->run_nodes_.size() <= hostile->nodes_.size());
  CHECK(hostile->switch_ids_.empty());
  for (const auto& n : hostile->run_nodes_) CHECK(n.fast.shape != Bundle::kSlotSwitch);
  // The compiled bundle itself gets the per-chunk layout, and both decide alike.
  auto compiled = Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(compiled != nullptr, error);
  CHECK(!compiled->run_layout_shared());
  for (int n = 0; n < 8; ++n) {
    const json doc = SampleRequest(n);
    PreparedRequest r1, r2;
    REQUIRE(PrepareRequest(*compiled, doc, &r1, &error));
    REQUIRE(PrepareRequest(*hostile, doc, &r2, &error));
    CHECK(DecisionToJson(*compiled, r1, Evaluate(*compiled, r1)) ==
          DecisionToJson(*hostile, r2, Evaluate(*hostile, r2)));
  }
}

}  // namespace
}  // namespace writ::runtime
