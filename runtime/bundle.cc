// bundle.cc -- bundle serialization, loading and verification (format in bundle.h and
// docs/bytecode.md). Load() trusts nothing: every size, index and edge is checked.
#include "runtime/bundle.h"

#include "base/utf8.h"

#include <re2/re2.h>

#include <cstring>
#include <map>
#include <set>
#include <sstream>

namespace writ::runtime {

const char* OpName(Op op) {
  switch (op) {
#define WRIT_X(name, pops, pushes, doc) \
  case Op::name:                        \
    return #name + 1;
    WRIT_OPCODES(WRIT_X)
#undef WRIT_X
    case Op::kCount:
      break;
  }
  return "?";
}

namespace {
struct OpInfo {
  int pops;
  int pushes;
};
constexpr OpInfo kOpInfo[] = {
#define WRIT_X(name, pops, pushes, doc) {pops, pushes},
    WRIT_OPCODES(WRIT_X)
#undef WRIT_X
};

template <typename T>
void PutLe(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
template <typename T>
T GetLe(const unsigned char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}

// Nesting depth of a JSON text, counted without recursion (constants are parsed by nlohmann,
// which recurses, so hostile depth is rejected first).
bool JsonDepthOk(std::string_view s, int limit) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    }
    if (c == ']' || c == '}') --depth;
  }
  return true;
}

bool ParseJson(std::string_view s, nlohmann::json* out) {
  if (!JsonDepthOk(s, 64)) return false;
  *out = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

}  // namespace

uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void BundleWriter::AddSection(Section kind, uint32_t elem_size, uint64_t count, const void* data) {
  PutLe<uint32_t>(payload_, static_cast<uint32_t>(kind));
  PutLe<uint32_t>(payload_, elem_size);
  PutLe<uint64_t>(payload_, count);
  if (count > 0) payload_.append(static_cast<const char*>(data), elem_size * count);
  ++sections_;
}

std::string BundleWriter::Finish(const std::array<uint8_t, 32>& source_hash) const {
  std::string out(kMagic, 8);
  PutLe<uint32_t>(out, kFormatVersion);
  PutLe<uint32_t>(out, sections_);
  PutLe<uint64_t>(out, payload_.size());
  PutLe<uint64_t>(out, Fnv1a64(payload_));
  out.append(reinterpret_cast<const char*>(source_hash.data()), 32);
  out += payload_;
  return out;
}

Bundle::Bundle() = default;
Bundle::~Bundle() = default;

uint32_t Bundle::Find(std::string_view s) const {
  auto it = index_.find(s);
  return it == index_.end() ? kAnyKey : it->second;
}


namespace {

struct SectionSpec {
  Section kind;
  uint32_t elem_size;
};
constexpr SectionSpec kSpecs[] = {
    {Section::kStrings, 1},         {Section::kStringOffsets, 4}, {Section::kLongs, 8},
    {Section::kConstants, 4},       {Section::kPathPool, 4},      {Section::kSlots, sizeof(Slot)},
    {Section::kInsns, sizeof(Insn)}, {Section::kPrograms, sizeof(Program)},
    {Section::kNodes, sizeof(Node)}, {Section::kOutcomes, sizeof(Outcome)},
    {Section::kStmtPool, 4},        {Section::kPartitions, sizeof(Partition)},
    {Section::kPartitionPool, 4},   {Section::kSwitch, sizeof(SwitchEntry)},
    {Section::kStatements, sizeof(StatementMeta)}, {Section::kRegexes, 4},
    {Section::kLikes, 4},           {Section::kRecordKeys, 4},     {Section::kProgramPool, 4},
    {Section::kProgramText, 4},
};

template <typename T>
void CopyInto(std::vector<T>* v, const unsigned char* data, uint64_t count) {
  v->resize(count);
  if (count > 0) std::memcpy(v->data(), data, count * sizeof(T));
}

}  // namespace

std::shared_ptr<const Bundle> Bundle::Load(std::string_view bytes, std::string* error) {
  auto fail = [&](std::string msg) -> std::shared_ptr<const Bundle> {
    *error = "invalid bundle: " + msg;
    return nullptr;
  };
  if (bytes.size() < kHeaderSize) return fail("file is shorter than the header (truncated?)");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (std::memcmp(p, kMagic, 8) != 0) return fail("bad magic: not a Writ bundle");
  uint32_t version = GetLe<uint32_t>(p + 8);
  if (version != kFormatVersion) {
    return fail("format version " + std::to_string(version) + ", this runtime reads version " +
                std::to_string(kFormatVersion) + "; rebuild it with this writ");
  }
  uint32_t section_count = GetLe<uint32_t>(p + 12);
  uint64_t payload_size = GetLe<uint64_t>(p + 16);
  uint64_t checksum = GetLe<uint64_t>(p + 24);
  if (payload_size != bytes.size() - kHeaderSize) {
    return fail("payload size " + std::to_string(payload_size) + " does not match file (" +
                std::to_string(bytes.size() - kHeaderSize) + " bytes): truncated or padded");
  }
  std::string_view payload = bytes.substr(kHeaderSize);
  if (Fnv1a64(payload) != checksum) return fail("checksum mismatch: the file is corrupted");

  std::shared_ptr<Bundle> b(new Bundle());
  std::memcpy(b->source_hash_.data(), p + 32, 32);
  static const char* kHex = "0123456789abcdef";
  for (uint8_t x : b->source_hash_) {
    b->source_hash_hex_ += kHex[x >> 4];
    b->source_hash_hex_ += kHex[x & 15];
  }
  std::set<uint32_t> seen;
  const unsigned char* q = p + kHeaderSize;
  uint64_t left = payload.size();
  for (uint32_t s = 0; s < section_count; ++s) {
    if (left < 16) return fail("section header " + std::to_string(s) + " is truncated");
    uint32_t kind = GetLe<uint32_t>(q);
    uint32_t elem = GetLe<uint32_t>(q + 4);
    uint64_t count = GetLe<uint64_t>(q + 8);
    q += 16;
    left -= 16;
    const SectionSpec* spec = nullptr;
    for (const auto& sp : kSpecs) {
      if (static_cast<uint32_t>(sp.kind) == kind) spec = &sp;
    }
    if (spec == nullptr) return fail("unknown section kind " + std::to_string(kind));
    if (!seen.insert(kind).second) return fail("section " + std::to_string(kind) + " repeated");
    if (elem != spec->elem_size) {
      return fail("section " + std::to_string(kind) + " has element size " +
                  std::to_string(elem) + ", expected " + std::to_string(spec->elem_size));
    }
    if (count > left / elem) return fail("section " + std::to_string(kind) + " overruns the file");
    switch (spec->kind) {
      case Section::kStrings: b->blob_.assign(reinterpret_cast<const char*>(q), count); break;
      case Section::kStringOffsets: CopyInto(&b->offsets_, q, count); break;
      case Section::kLongs: CopyInto(&b->longs_, q, count); break;
      case Section::kConstants: CopyInto(&b->constants_, q, count); break;
      case Section::kPathPool: CopyInto(&b->path_pool_, q, count); break;
      case Section::kSlots: CopyInto(&b->slots_, q, count); break;
      case Section::kInsns: CopyInto(&b->insns_, q, count); break;
      case Section::kPrograms: CopyInto(&b->programs_, q, count); break;
      case Section::kNodes: CopyInto(&b->nodes_, q, count); break;
      case Section::kOutcomes: CopyInto(&b->outcomes_, q, count); break;
      case Section::kStmtPool: CopyInto(&b->stmt_pool_, q, count); break;
      case Section::kPartitions: CopyInto(&b->partitions_, q, count); break;
      case Section::kPartitionPool: CopyInto(&b->partition_pool_, q, count); break;
      case Section::kSwitch: CopyInto(&b->switch_, q, count); break;
      case Section::kStatements: CopyInto(&b->statements_, q, count); break;
      case Section::kRegexes: CopyInto(&b->regexes_, q, count); break;
      case Section::kLikes: CopyInto(&b->likes_, q, count); break;
      case Section::kRecordKeys: CopyInto(&b->record_keys_, q, count); break;
      case Section::kProgramPool: CopyInto(&b->program_pool_, q, count); break;
      case Section::kProgramText: CopyInto(&b->program_text_, q, count); break;
    }
    q += count * elem;
    left -= count * elem;
  }
  if (left != 0) return fail(std::to_string(left) + " trailing bytes after the last section");
  if (seen.size() != std::size(kSpecs)) return fail("missing sections");
  if (!b->Verify(error)) {
    *error = "invalid bundle: " + *error;
    return nullptr;
  }
  return b;
}

bool Bundle::Verify(std::string* error) {
  auto fail = [&](std::string msg) {
    *error = std::move(msg);
    return false;
  };
  // Strings.
  if (offsets_.empty() || offsets_[0] != 0 || offsets_.back() != blob_.size()) {
    return fail("string table offsets do not cover the string blob");
  }
  for (size_t i = 1; i < offsets_.size(); ++i) {
    if (offsets_[i] < offsets_[i - 1]) return fail("string offsets are not ascending");
  }
  if (offsets_.size() > static_cast<size_t>(kMaxStrings)) return fail("too many strings");
  const uint32_t nstr = string_count();
  auto str_ok = [&](uint32_t id) { return id < nstr; };
  for (uint32_t i = 0; i < nstr; ++i) {
    if (FindInvalidUtf8(str(i)) != std::string_view::npos) {
      return fail("string " + std::to_string(i) + " is not valid UTF-8");
    }
    index_.emplace(str(i), i);
  }
  // Constants.
  for (uint32_t id : constants_) {
    if (!str_ok(id)) return fail("constant refers to string " + std::to_string(id) + " out of range");
    nlohmann::json j;
    if (!ParseJson(str(id), &j)) return fail("constant " + std::to_string(id) + " is not valid JSON");
    constant_values_.push_back(std::move(j));
  }
  for (uint32_t id : path_pool_) {
    if (!str_ok(id)) return fail("slot path refers to a string out of range");
  }
  for (const Slot& s : slots_) {
    if (static_cast<uint8_t>(s.root) > static_cast<uint8_t>(SlotRoot::kCall)) return fail("bad slot root");
    if (static_cast<uint64_t>(s.path) + s.depth > path_pool_.size()) return fail("slot path out of range");
  }
  for (uint32_t id : regexes_) {
    if (!str_ok(id)) return fail("regex refers to a string out of range");
    RE2::Options o;
    o.set_log_errors(false);
    auto re = std::make_unique<RE2>(re2::StringPiece(str(id).data(), str(id).size()), o);
    if (!re->ok()) return fail("regex does not compile: " + re->error());
    compiled_regexes_.push_back(std::move(re));
  }
  for (uint32_t id : likes_) {
    if (!str_ok(id)) return fail("like pattern refers to a string out of range");
    nlohmann::json j;
    if (!ParseJson(str(id), &j) || !j.is_array() || j.empty()) return fail("bad like pattern");
    std::vector<std::string> chunks;
    for (const auto& c : j) {
      if (!c.is_string()) return fail("bad like pattern chunk");
      chunks.push_back(c.get<std::string>());
    }
    like_chunks_.push_back(std::move(chunks));
  }
  for (uint32_t id : record_keys_) {
    if (!str_ok(id)) return fail("record key refers to a string out of range");
  }
  // Programs: operands and stack discipline.
  for (size_t pi = 0; pi < programs_.size(); ++pi) {
    const Program& pr = programs_[pi];
    if (static_cast<uint64_t>(pr.begin) + pr.count > insns_.size() || pr.count == 0) {
      return fail("program " + std::to_string(pi) + " out of range");
    }
    int depth = 0;
    for (uint32_t k = pr.begin; k < pr.begin + pr.count; ++k) {
      const Insn& in = insns_[k];
      if (static_cast<uint8_t>(in.op) >= static_cast<uint8_t>(Op::kCount)) {
        return fail("program " + std::to_string(pi) + ": bad opcode " +
                    std::to_string(static_cast<int>(in.op)));
      }
      int pops = kOpInfo[static_cast<int>(in.op)].pops;
      bool ok = true;
      switch (in.op) {
        case Op::kPushLong:
        case Op::kPushDuration: ok = in.c < longs_.size(); break;
        case Op::kPushString:
        case Op::kPushEntity:
        case Op::kGetAttr:
        case Op::kHas:
        case Op::kIs: ok = str_ok(in.c); break;
        case Op::kPushConst: ok = in.c < constant_values_.size(); break;
        case Op::kPushVar: ok = in.a <= 2; break;
        case Op::kPushSlot: ok = in.c < slots_.size(); break;
        case Op::kLike: ok = in.c < like_chunks_.size(); break;
        case Op::kMatches: ok = in.c < compiled_regexes_.size(); break;
        case Op::kMakeSet: pops = static_cast<int>(in.c); ok = in.c <= kMaxStack; break;
        case Op::kMakeRecord:
          pops = static_cast<int>(in.c);
          ok = in.c <= kMaxStack && static_cast<uint64_t>(in.b) + in.c <= record_keys_.size();
          break;
        default: break;
      }
      if (!ok) return fail("program " + std::to_string(pi) + ": operand out of range at " + std::to_string(k));
      if (depth < pops) return fail("program " + std::to_string(pi) + ": stack underflow");
      depth += kOpInfo[static_cast<int>(in.op)].pushes - pops;
      if (depth > static_cast<int>(kMaxStack)) return fail("program " + std::to_string(pi) + ": stack overflow");
    }
    if (depth != 1) return fail("program " + std::to_string(pi) + " leaves " + std::to_string(depth) + " values");
  }
  // Statements and their obligations.
  for (size_t i = 0; i < statements_.size(); ++i) {
    const StatementMeta& s = statements_[i];
    if (!str_ok(s.id) || !str_ok(s.file) || !str_ok(s.obligations) || s.effect > 2) {
      return fail("statement " + std::to_string(i) + " metadata out of range");
    }
    if (s.formula >= programs_.size()) return fail("statement " + std::to_string(i) + " formula out of range");
    if (static_cast<uint64_t>(s.rate_key_begin) + s.rate_key_count > program_pool_.size()) {
      return fail("statement " + std::to_string(i) + " rate-limit keys out of range");
    }
    nlohmann::json j;
    if (!ParseJson(str(s.obligations), &j) || !j.is_array()) {
      return fail("statement " + std::to_string(i) + " obligations are not a JSON array");
    }
    uint8_t approval = 0;
    for (const auto& ob : j) approval |= ob.is_object() && ob.value("kind", "") == "require_approval";
    statement_approval_.push_back(approval);
    statement_obligations_.push_back(std::move(j));
  }
  for (uint32_t p : program_pool_) {
    if (p >= programs_.size()) return fail("program pool entry out of range");
  }
  if (program_text_.size() != programs_.size()) return fail("program text table does not match programs");
  for (uint32_t id : program_text_) {
    if (!str_ok(id)) return fail("program text refers to a string out of range");
  }
  for (uint32_t s : stmt_pool_) {
    if (s >= statements_.size()) return fail("statement pool entry out of range");
  }
  for (size_t i = 0; i < outcomes_.size(); ++i) {
    const Outcome& o = outcomes_[i];
    if (static_cast<uint64_t>(o.matched_begin) + o.matched_count > stmt_pool_.size() ||
        static_cast<uint64_t>(o.errored_begin) + o.errored_count > stmt_pool_.size()) {
      return fail("outcome " + std::to_string(i) + " out of range");
    }
  }
  // Nodes: edges point to a later node or to an outcome, so the graph is acyclic.
  auto ref_ok = [&](uint32_t ref, uint64_t after) {
    if (ref & kLeafBit) return (ref & ~kLeafBit) < outcomes_.size();
    return ref > after && ref < nodes_.size();
  };
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.atom >= programs_.size()) return fail("node " + std::to_string(i) + " tests a missing program");
    for (uint32_t r : n.next) {
      if (!ref_ok(r, i)) return fail("node " + std::to_string(i) + " has an edge out of range or backwards");
    }
  }
  for (size_t i = 0; i < partitions_.size(); ++i) {
    for (uint32_t r : partitions_[i].root) {
      bool ok = (r & kLeafBit) ? (r & ~kLeafBit) < outcomes_.size() : r < nodes_.size();
      if (!ok) return fail("partition " + std::to_string(i) + " root out of range");
    }
    if (static_cast<uint64_t>(partitions_[i].stmt_begin) + partitions_[i].stmt_count > stmt_pool_.size()) {
      return fail("partition " + std::to_string(i) + " statements out of range");
    }
  }
  for (uint32_t p : partition_pool_) {
    if (p >= partitions_.size()) return fail("partition pool entry out of range");
  }
  uint64_t listed = 0;
  for (size_t i = 0; i < switch_.size(); ++i) {
    const SwitchEntry& e = switch_[i];
    auto key_ok = [&](uint32_t k) { return k == kAnyKey || str_ok(k); };
    if (!key_ok(e.action) || !key_ok(e.resource) || !key_ok(e.principal) || e.resource_in > 1 ||
        e.principal_in > 1 ||
        static_cast<uint64_t>(e.partition_begin) + e.partition_count > partition_pool_.size()) {
      return fail("switch entry " + std::to_string(i) + " out of range");
    }
    if (i > 0 && !(switch_[i - 1].Key() < e.Key())) return fail("switch table is not sorted");
    listed += e.partition_count;
  }
  // The compiler gives each entry its own range of the pool; shared ranges would let a small
  // bundle expand into a huge switch index at load.
  if (listed > partition_pool_.size()) {
    return fail("switch entries list more partitions than the pool holds");
  }
  BuildSwitchIndex(/*fold=*/true);
  // Fast atoms. Operand indices were verified above.
  fast_.assign(programs_.size(), FastAtom{});
  fast_text_.assign(programs_.size(), std::string_view());
  auto all_strings = [&](uint32_t constant) {
    const nlohmann::json& j = constant_values_[constant];
    if (!j.is_array()) return false;
    for (const auto& e : j) {
      if (!e.is_string()) return false;
    }
    return true;
  };
  for (size_t i = 0; i < programs_.size(); ++i) {
    const Program& p = programs_[i];
    const Insn* c = &insns_[p.begin];
    const Op op = c[p.count - 1].op;
    FastAtom f;
    f.op = op;
    if (c[0].op == Op::kPushSlot) {
      f.slot = c[0].c;
      f.reads_args = slots_[c[0].c].root == SlotRoot::kArgs;
    }
    const bool slot = c[0].op == Op::kPushSlot;
    if (p.count == 1 && slot) f.shape = kSlotBool;
    if (p.count == 2 && slot && op == Op::kHas) {
      f.shape = kSlotHas;
      fast_text_[i] = str(c[1].c);
    }
    if (p.count == 2 && slot && op == Op::kLike) {
      f.shape = kSlotLike;
      f.k = c[1].c;
    }
    if (p.count == 3) {
      const bool eq = op == Op::kEq || op == Op::kNe;
      const bool cmp = op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe;
      if (slot && c[1].op == Op::kPushString && (eq || op == Op::kContains)) {
        f.shape = eq ? kSlotOpString : kSlotContainsString;
        fast_text_[i] = str(c[1].c);
        f.k = Find(fast_text_[i]);  // the id requests carry for this text (the first, if repeated)
      }
      if (slot && c[1].op == Op::kPushConst && (op == Op::kContainsAny || op == Op::kContainsAll) &&
          all_strings(c[1].c)) {
        f.shape = kSlotContainsStrings;
        f.k = c[1].c;
      }
      if (slot && c[1].op == Op::kPushLong && cmp) {
        f.shape = kSlotOpLong;
        f.k = longs_[c[1].c];
      }
      if (c[0].op == Op::kPushVar && c[1].op == Op::kPushEntity &&
          (op == Op::kIn || op == Op::kEq)) {
        f.shape = kVarOpEntity;
        f.slot = c[0].a;           // the Var
        f.k = Find(str(c[1].c));  // the id requests carry for this text (the first, if repeated)
      }
    }
    if (p.count == 4 && slot && c[1].op == Op::kLower && c[2].op == Op::kPushString &&
        (op == Op::kEq || op == Op::kNe)) {
      f.shape = kSlotLowerOpString;
      fast_text_[i] = str(c[2].c);
    }
    fast_[i] = f;
  }
  if (!BuildRunLayout(/*per_chunk=*/true, /*switches=*/true) &&
      !BuildRunLayout(/*per_chunk=*/false, /*switches=*/true)) {
    BuildRunLayout(/*per_chunk=*/false, /*switches=*/false);  // within the bounds by design
  }
  return true;
}

// The run layout (see bundle.h). Nodes and roots were verified, so every edge points forward
// (the copies are acyclic too) and every leaf names an outcome. Iterative: a hostile bundle
// may chain a million nodes. Returns false, leaving the tables to be rebuilt, when the copies
// would exceed MaxRunNodes records or switch cases; shared and without switches (one record
// per node, no cases) it cannot.
bool Bundle::BuildRunLayout(bool per_chunk, bool switches) {
  run_layout_shared_ = !per_chunk;
  run_nodes_.clear();
  switch_ids_.clear();
  switch_next_.clear();
  run_parts_.assign(partitions_.size(), RunPart{});
  std::vector<uint32_t> answer(outcomes_.size());  // per outcome: kLeafBit | yes bits
  for (size_t i = 0; i < outcomes_.size(); ++i) {
    const Outcome& o = outcomes_[i];
    answer[i] = kLeafBit | (o.forbid ? 1u << kForbidDag : 0) | (o.permit ? 1u << kPermitDag : 0) |
                (o.approval ? 1u << kApprovalDag : 0);
  }
  // Node i continues a switch chain into its false edge: both test `slot == "s"` on one slot.
  auto is_case = [&](uint32_t i) {
    const FastAtom& f = fast_[nodes_[i].atom];
    return f.shape == kSlotOpString && f.op == Op::kEq;
  };
  auto chains_to = [&](uint32_t i) -> bool {
    const uint32_t next = nodes_[i].next[1];
    return switches && is_case(i) && !(next & kLeafBit) && is_case(next) &&
           fast_[nodes_[next].atom].slot == fast_[nodes_[i].atom].slot;
  };
  // The node references a run record of node i points to, in the order they are laid out
  // (false edge first): for a chain, each case's true edge, then the default, then the error.
  auto successors = [&](uint32_t i, std::vector<uint32_t>* out) {
    out->clear();
    const Node& n = nodes_[i];
    if (!chains_to(i)) {
      out->insert(out->end(), {n.next[1], n.next[0], n.next[2]});
      return;
    }
    uint32_t c = i;
    for (uint32_t k = 0;; ++k) {
      out->push_back(nodes_[c].next[0]);
      if (k + 1 == kMaxSwitchCases || !chains_to(c)) break;
      c = nodes_[c].next[1];
    }
    out->push_back(nodes_[c].next[1]);  // default: the last case's false edge
    out->push_back(n.next[2]);          // error: the same value errs every case
  };
  const size_t limit = MaxRunNodes(nodes_.size());
  std::vector<uint32_t> run_of(nodes_.size(), 0), scope_of(nodes_.size(), 0);
  std::vector<uint32_t> order, stack, succ;
  uint32_t scope = 1;
  auto map_ref = [&](uint32_t ref) {
    return (ref & kLeafBit) ? answer[ref & ~kLeafBit] : run_of[ref];
  };
  for (size_t p = 0; p < partitions_.size(); ++p) {
    if (per_chunk) ++scope;
    // Assign run indices depth-first from the three roots, the false edge next after its
    // node. A node is marked when pushed, so the stack holds each node at most once.
    order.clear();
    for (uint32_t root : partitions_[p].root) {
      if ((root & kLeafBit) || scope_of[root] == scope) continue;
      scope_of[root] = scope;
      stack.assign(1, root);
      while (!stack.empty()) {
        const uint32_t i = stack.back();
        stack.pop_back();
        run_of[i] = static_cast<uint32_t>(run_nodes_.size() + order.size());
        order.push_back(i);
        successors(i, &succ);
        for (size_t k = succ.size(); k-- > 0;) {
          const uint32_t r = succ[k];
          if ((r & kLeafBit) || scope_of[r] == scope) continue;
          scope_of[r] = scope;
          stack.push_back(r);
        }
      }
    }
    if (run_nodes_.size() + order.size() > limit) return false;
    // Fill the records, now that every successor has its run index.
    for (uint32_t i : order) {
      const Node& n = nodes_[i];
      RunNode r;
      r.fast = fast_[n.atom];
      r.atom = n.atom;
      successors(i, &succ);
      if (chains_to(i)) {
        const size_t cases = succ.size() - 2;
        r.fast.shape = kSlotSwitch;
        r.fast.n = static_cast<uint8_t>(cases);
        r.fast.k = static_cast<int64_t>(switch_ids_.size());
        uint32_t c = i;
        for (size_t k = 0; k < cases; ++k) {
          switch_ids_.push_back(static_cast<uint32_t>(fast_[nodes_[c].atom].k));
          switch_next_.push_back(map_ref(succ[k]));
          c = nodes_[c].next[1];
        }
        if (switch_ids_.size() > limit) return false;
        r.next[0] = switch_next_[r.fast.k];  // unused by the walk; kept valid
        r.next[1] = map_ref(succ[cases]);
        r.next[2] = map_ref(succ[cases + 1]);
      } else {
        for (int k = 0; k < 3; ++k) r.next[k] = map_ref(n.next[k]);
      }
      run_nodes_.push_back(r);
    }
    for (int k = 0; k < 3; ++k) run_parts_[p].root[k] = map_ref(partitions_[p].root[k]);
  }
  return true;
}

void Bundle::BuildSwitchIndex(bool fold) {
  // Raw groups: switch_ is sorted by Key(), so each (action, resource, resource_in) is a
  // contiguous range of it.
  using RawKey = std::tuple<uint32_t, uint32_t, uint32_t>;
  std::map<RawKey, std::pair<uint32_t, uint32_t>> raw;  // -> [begin, end) in switch_
  key_roles_.assign(string_count(), 0);
  std::set<uint32_t> actions{kAnyKey};
  for (uint32_t i = 0; i < switch_.size();) {
    const SwitchEntry& e = switch_[i];
    uint32_t j = i;
    while (j < switch_.size() && switch_[j].action == e.action && switch_[j].resource == e.resource &&
           switch_[j].resource_in == e.resource_in) {
      ++j;
    }
    raw[{e.action, e.resource, e.resource_in}] = {i, j};
    if (e.action != kAnyKey) {
      key_roles_[e.action] |= kActionKey;
      actions.insert(e.action);
    }
    if (e.resource != kAnyKey) {
      key_roles_[e.resource] |= kResourceKey | (e.resource_in ? kResourceInKey : 0);
    }
    i = j;
  }
  // Each group to build: its key and the raw ranges it concatenates, in order.
  struct Plan {
    Group key;
    std::vector<RawKey> parts;
  };
  std::vector<Plan> plans;
  auto size_of = [&](const Plan& p) {  // candidates: partition chunks
    size_t n = 0;
    for (const RawKey& k : p.parts) {
      auto it = raw.find(k);
      if (it == raw.end()) continue;
      for (uint32_t i = it->second.first; i < it->second.second; ++i) {
        n += switch_[i].partition_count;
      }
    }
    return n;
  };
  if (fold) {
    std::set<std::pair<uint32_t, uint32_t>> own, parent;
    std::set<uint32_t> any_action_resources;
    for (const auto& [k, range] : raw) {
      auto [a, r, in] = k;
      if (r == kAnyKey) continue;
      own.insert({a, r});
      if (in) parent.insert({a, r});
      if (a == kAnyKey) any_action_resources.insert(r);
    }
    for (uint32_t a : actions) own.insert({a, kAnyKey});
    for (auto [a, r] : own) {
      Plan p{Group{a, r, kOwnResource, 0, 0}, {}};
      if (r != kAnyKey) {
        p.parts = {{a, r, 0}, {a, r, 1}};
        if (a != kAnyKey) p.parts.insert(p.parts.end(), {{kAnyKey, r, 0}, {kAnyKey, r, 1}});
      }
      p.parts.push_back({a, kAnyKey, 0});
      if (a != kAnyKey) p.parts.push_back({kAnyKey, kAnyKey, 0});
      plans.push_back(std::move(p));
    }
    for (auto [a, r] : parent) {
      Plan p{Group{a, r, kParentResource, 0, 0}, {{a, r, 1}}};
      if (a != kAnyKey) p.parts.push_back({kAnyKey, r, 1});
      plans.push_back(std::move(p));
    }
    for (uint32_t r : any_action_resources) {
      plans.push_back(
          Plan{Group{kAnyKey, r, kAnyActionOwn, 0, 0}, {{kAnyKey, r, 0}, {kAnyKey, r, 1}}});
    }
    size_t total = 0;
    for (const Plan& p : plans) total += size_of(p);
    if (total > MaxFoldedCandidates(partition_pool_.size())) {
      fold = false;
      plans.clear();
    }
  }
  if (!fold) {
    for (const auto& [k, range] : raw) {
      auto [a, r, in] = k;
      plans.push_back(Plan{Group{a, r, in ? kRawIn : kRawEq, 0, 0}, {k}});
    }
  }
  switch_folded_ = fold;
  // Lay out each group's candidates: any-principal ones first, then by principal key.
  candidate_parts_.clear();
  std::vector<Group> groups;
  std::vector<KeyedRange> keyed;
  for (Plan& p : plans) {
    std::vector<std::pair<uint32_t, uint32_t>> cands;  // (principal key, partition)
    for (const RawKey& k : p.parts) {
      auto it = raw.find(k);
      if (it == raw.end()) continue;
      for (uint32_t i = it->second.first; i < it->second.second; ++i) {
        const SwitchEntry& e = switch_[i];
        const uint32_t key = PrincipalKey(e.principal, e.principal_in != 0);
        for (uint32_t c = 0; c < e.partition_count; ++c) {
          cands.push_back({key, partition_pool_[e.partition_begin + c]});
        }
      }
    }
    if (cands.empty()) continue;  // nothing to find
    std::stable_sort(cands.begin(), cands.end(), [](const auto& x, const auto& y) {
      const bool xa = x.first == kAnyKey, ya = y.first == kAnyKey;
      return xa != ya ? xa : x.first < y.first;
    });
    Group g = p.key;
    g.id = static_cast<uint32_t>(groups.size());
    g.begin = static_cast<uint32_t>(candidate_parts_.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      const uint32_t key = cands[i].first;
      if (key == kAnyKey) {
        ++g.count;
      } else {
        ++g.keyed;
        if (i == 0 || cands[i - 1].first != key) {
          keyed.push_back(KeyedRange{g.id, key, static_cast<uint32_t>(candidate_parts_.size()), 0});
        }
        ++keyed.back().count;
      }
      candidate_parts_.push_back(cands[i].second);
    }
    groups.push_back(g);
  }
  // Open addressing, load factor <= 1/2: short probes, and always an empty slot.
  size_t size = 8;
  while (size < groups.size() * 2) size *= 2;
  groups_.assign(size, Group{});
  group_mask_ = size - 1;
  for (const Group& g : groups) {
    size_t h = Hash(g.action, g.resource, g.kind) & group_mask_;
    while (groups_[h].kind != kNoGroup) h = (h + 1) & group_mask_;
    groups_[h] = g;
  }
  size = 8;
  while (size < keyed.size() * 2) size *= 2;
  keyed_.assign(size, KeyedRange{});
  keyed_mask_ = size - 1;
  for (const KeyedRange& k : keyed) {
    size_t h = Hash(k.group, k.key, 7) & keyed_mask_;
    while (keyed_[h].count != 0) h = (h + 1) & keyed_mask_;
    keyed_[h] = k;
  }
}

// ---- disassembly ----

namespace {
std::string Ref(uint32_t r) {
  return (r & kLeafBit) ? "leaf " + std::to_string(r & ~kLeafBit) : "node " + std::to_string(r);
}
}  // namespace

std::string Disassemble(const Bundle& b) {
  std::ostringstream o;
  auto key = [&](uint32_t k) { return k == kAnyKey ? std::string("*") : std::string(b.str(k)); };
  o << "bundle v" << kFormatVersion << " source " << b.source_hash_hex() << "\n";
  o << "strings " << b.string_count() << ", statements " << b.statements_.size() << ", programs "
    << b.programs_.size() << ", nodes " << b.nodes_.size() << ", outcomes " << b.outcomes_.size()
    << ", partitions " << b.partitions_.size() << "\n";
  o << "\nstatements:\n";
  for (size_t i = 0; i < b.statements_.size(); ++i) {
    const auto& s = b.statements_[i];
    static const char* kEff[] = {"permit", "forbid", "rule"};
    o << "  s" << i << " " << kEff[s.effect] << " " << b.str(s.id) << " at " << b.str(s.file)
      << ":" << s.line << ":" << s.col << " formula a" << s.formula << " obligations "
      << b.str(s.obligations) << "\n";
  }
  o << "\nslots:\n";
  static const char* kRoots[] = {"principal", "resource", "args", "context", "call"};
  for (size_t i = 0; i < b.slots_.size(); ++i) {
    const Slot& s = b.slots_[i];
    o << "  $" << i << " = " << kRoots[static_cast<int>(s.root)];
    for (uint32_t k = 0; k < s.depth; ++k) o << "." << b.str(b.path_pool_[s.path + k]);
    o << "\n";
  }
  o << "\nswitch:\n";
  for (const auto& e : b.switch_) {
    o << "  action " << key(e.action) << ", resource " << (e.resource_in ? "in " : "== ")
      << key(e.resource) << ", principal " << (e.principal_in ? "in " : "== ") << key(e.principal)
      << " -> partitions";
    for (uint32_t k = 0; k < e.partition_count; ++k) o << " p" << b.partition_pool_[e.partition_begin + k];
    o << "\n";
  }
  o << "\npartitions:\n";
  for (size_t i = 0; i < b.partitions_.size(); ++i) {
    const Partition& p = b.partitions_[i];
    o << "  p" << i << " forbid " << Ref(p.root[0]) << ", permit " << Ref(p.root[1]) << ", approval "
      << Ref(p.root[2]) << " statements [";
    for (uint32_t k = 0; k < p.stmt_count; ++k) o << (k ? " " : "") << "s" << b.stmt_pool_[p.stmt_begin + k];
    o << "]\n";
  }
  o << "\nnodes:\n";
  for (size_t i = 0; i < b.nodes_.size(); ++i) {
    const Node& n = b.nodes_[i];
    o << "  n" << i << " test a" << n.atom << " ? " << Ref(n.next[0]) << " : " << Ref(n.next[1])
      << " ! " << Ref(n.next[2]) << "\n";
  }
  o << "\noutcomes:\n";
  for (size_t i = 0; i < b.outcomes_.size(); ++i) {
    const Outcome& x = b.outcomes_[i];
    o << "  leaf " << i << ": " << (x.forbid ? "forbid" : x.permit ? "permit" : x.approval ? "approval" : "no")
      << "\n";
  }
  o << "\nprograms:\n";
  for (size_t i = 0; i < b.programs_.size(); ++i) {
    const Program& p = b.programs_[i];
    o << "  a" << i << (p.reads_args ? " [args]" : "") << (p.may_error ? "" : " [total]") << " `"
      << b.str(b.program_text_[i]) << "`:";
    for (uint32_t k = p.begin; k < p.begin + p.count; ++k) {
      const Insn& in = b.insns_[k];
      o << " " << OpName(in.op);
      switch (in.op) {
        case Op::kPushBool: o << "(" << (in.a ? "true" : "false") << ")"; break;
        case Op::kPushLong:
        case Op::kPushDuration: o << "(" << b.longs_[in.c] << ")"; break;
        case Op::kPushString:
        case Op::kPushEntity:
        case Op::kGetAttr:
        case Op::kHas:
        case Op::kIs: o << "(" << nlohmann::json(std::string(b.str(in.c))).dump() << ")"; break;
        case Op::kPushConst: o << "(" << b.constant_values_[in.c].dump() << ")"; break;
        case Op::kPushVar: {
          static const char* kVars[] = {"principal", "action", "resource"};
          o << "(" << kVars[in.a] << ")";
          break;
        }
        case Op::kPushSlot: o << "($" << in.c << ")"; break;
        case Op::kLike: o << "(" << b.str(b.likes_[in.c]) << ")"; break;
        case Op::kMatches: o << "(" << nlohmann::json(std::string(b.str(b.regexes_[in.c]))).dump() << ")"; break;
        case Op::kMakeSet:
        case Op::kMakeRecord: o << "(" << in.c << ")"; break;
        default: break;
      }
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace writ::runtime
