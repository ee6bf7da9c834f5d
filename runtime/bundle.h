// bundle.h -- the compiled policy bundle: on-disk format (shared by the writer in
// compiler/dag_to_bytecode.cc and the loader here) and the verified in-memory form.
//
// File layout (all integers little-endian; documented in docs/bytecode.md):
//
//   Header   magic "WRITBNDL" | u32 version | u32 section_count | u64 payload_size
//            | u64 checksum (FNV-1a 64 of the payload) | u8[32] source_hash (SHA-256 of the
//            policy sources, the "bundle hash" audit records carry)
//   Payload  section_count x { u32 kind | u32 elem_size | u64 count | bytes[elem_size*count] }
//
// Sections hold arrays of the trivially copyable records below; the loader checks sizes,
// every index, that every DAG edge points forward (acyclic) and every program's stack depth,
// and rejects the bundle on any violation. Nothing in a bundle is trusted.
//
// Thread safety: a loaded Bundle is immutable; share it as std::shared_ptr<const Bundle>.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace re2 {
class RE2;
}

namespace writ::runtime {

inline constexpr char kMagic[8] = {'W', 'R', 'I', 'T', 'B', 'N', 'D', 'L'};
inline constexpr uint32_t kFormatVersion = 5;
inline constexpr uint32_t kHeaderSize = 8 + 4 + 4 + 8 + 8 + 32;
inline constexpr uint32_t kMaxStack = 128;  // per program; verified
inline constexpr uint32_t kLeafBit = 0x80000000u;  // a node reference with this bit is a leaf

// ---- opcodes: one X-macro list generates the enum, names, stack effects and verifier ----
// X(name, pops, pushes, operand meaning)
#define WRIT_OPCODES(X)                                                                   \
  X(kPushBool, 0, 1, "a = 0|1")                                                           \
  X(kPushError, 0, 1, "an error value (a folded constant error)")                         \
  X(kPushLong, 0, 1, "c = index into longs")                                              \
  X(kPushString, 0, 1, "c = string id")                                                   \
  X(kPushDuration, 0, 1, "c = index into longs (milliseconds)")                           \
  X(kPushEntity, 0, 1, "c = string id of the canonical uid Type::\"id\"")                 \
  X(kPushConst, 0, 1, "c = index into constants (set/record/ip as JSON)")                 \
  X(kPushVar, 0, 1, "a = Var: principal, action, resource")                               \
  X(kPushSlot, 0, 1, "c = slot index (an attribute path from a root, see Slot)")          \
  X(kGetAttr, 1, 1, "c = string id of the attribute name")                                \
  X(kHas, 1, 1, "c = string id of the attribute name")                                    \
  X(kEq, 2, 1, "structural equality")                                                     \
  X(kNe, 2, 1, "structural inequality")                                                   \
  X(kLt, 2, 1, "Long/Duration <")                                                         \
  X(kLe, 2, 1, "Long/Duration <=")                                                        \
  X(kGt, 2, 1, "Long/Duration >")                                                         \
  X(kGe, 2, 1, "Long/Duration >=")                                                        \
  X(kAdd, 2, 1, "Long +, overflow is an error")                                           \
  X(kSub, 2, 1, "Long -, overflow is an error")                                           \
  X(kMul, 2, 1, "Long *, overflow is an error")                                           \
  X(kNeg, 1, 1, "Long unary -")                                                           \
  X(kNot, 1, 1, "Kleene not")                                                             \
  X(kAnd, 2, 1, "Kleene and")                                                             \
  X(kOr, 2, 1, "Kleene or")                                                               \
  X(kIf, 3, 1, "pops else, then, cond: pushes the chosen branch; error if cond not Bool") \
  X(kIn, 2, 1, "entity hierarchy / set membership")                                       \
  X(kIs, 1, 1, "c = string id of the entity type")                                        \
  X(kLike, 1, 1, "c = like pattern index")                                                \
  X(kMatches, 1, 1, "c = regex index")                                                    \
  X(kContains, 2, 1, "set contains")                                                      \
  X(kContainsAll, 2, 1, "set containsAll")                                                \
  X(kContainsAny, 2, 1, "set containsAny")                                                \
  X(kIsEmpty, 1, 1, "set isEmpty")                                                        \
  X(kLower, 1, 1, "ASCII lowercase")                                                      \
  X(kIsInRange, 2, 1, "ip range containment")                                             \
  X(kIp, 1, 1, "parse an ip/cidr string")                                                 \
  X(kMakeSet, 0, 1, "c = element count popped first (pops c)")                            \
  X(kMakeRecord, 0, 1, "c = field count; a record's keys are c string ids in pool at b")

enum class Op : uint8_t {
#define WRIT_X(name, pops, pushes, doc) name,
  WRIT_OPCODES(WRIT_X)
#undef WRIT_X
      kCount
};
const char* OpName(Op op);

// One instruction. 8 bytes: op | a | b (u16) | c (u32).
struct Insn {
  Op op;
  uint8_t a;
  uint16_t b;
  uint32_t c;
};
static_assert(std::is_trivially_copyable_v<Insn> && sizeof(Insn) == 8);

enum class Var : uint8_t { kPrincipal = 0, kAction = 1, kResource = 2 };
enum class SlotRoot : uint8_t { kPrincipal = 0, kResource = 1, kArgs = 2, kContext = 3, kCall = 4 };

// A value the request preparation extracts: root, then `depth` attribute names (string ids)
// from path_pool[path .. path+depth).
struct Slot {
  SlotRoot root;
  uint8_t pad = 0;
  uint16_t depth;
  uint32_t path;
};
static_assert(std::is_trivially_copyable_v<Slot>);

// A program: a range of insns, evaluated by the stack VM, leaving one value.
struct Program {
  uint32_t begin;
  uint32_t count;
  uint8_t reads_args;  // depends on `args` (unknown at list time)
  uint8_t may_error;   // can evaluate to an error (else the DAG has no error edge)
  uint16_t pad = 0;
};
static_assert(std::is_trivially_copyable_v<Program>);

// A DAG test node: evaluate atom program `atom`, continue at next[0] (true), next[1] (false)
// or next[2] (error). A reference with kLeafBit set names an outcome.
struct Node {
  uint32_t atom;
  uint32_t next[3];
};
static_assert(std::is_trivially_copyable_v<Node>);

// A leaf of an effect DAG: which kinds of statement matched on the path to it. (The
// matched/errored ranges are reserved for richer leaves and are empty in version 1 bundles.)
struct Outcome {
  uint8_t forbid;    // some matching forbid
  uint8_t permit;    // some matching permit
  uint8_t approval;  // some matching statement carries require_approval
  uint8_t pad = 0;
  uint32_t matched_begin, matched_count;  // statement indices in stmt_pool
  uint32_t errored_begin, errored_count;
};
static_assert(std::is_trivially_copyable_v<Outcome>);

// A partition chunk: three effect DAGs -- root[kForbidDag] answers "does a forbid match",
// root[kPermitDag] "does a permit match", root[kApprovalDag] "does a statement carrying
// require_approval match". The first chunk of a switch entry also lists every statement of the
// entry (stmt_pool range), for decision details.
enum DagKind : uint32_t { kForbidDag = 0, kPermitDag = 1, kApprovalDag = 2 };
struct Partition {
  uint32_t root[3];
  uint32_t stmt_begin, stmt_count;
};
static_assert(std::is_trivially_copyable_v<Partition>);

// The switch: statements are grouped by their scope keys, so a request only reaches the
// statements whose action, resource and principal scopes can apply to it. Keys are string ids
// of canonical uids; kAnyKey means unconstrained. `*_in` = 0: `== key` (or any); 1: `in key`
// (the entity is the key or has it among its parents).
inline constexpr uint32_t kAnyKey = 0xFFFFFFFFu;
struct SwitchEntry {
  uint32_t action;     // string id or kAnyKey
  uint32_t resource;   // string id or kAnyKey
  uint32_t principal;  // string id or kAnyKey
  uint8_t resource_in;
  uint8_t principal_in;
  uint8_t pad[2] = {0, 0};
  uint32_t partition_begin, partition_count;  // partitions (chunks) in partition_pool
  auto Key() const { return std::tie(action, resource, resource_in, principal, principal_in); }
};
static_assert(std::is_trivially_copyable_v<SwitchEntry>);

struct StatementMeta {
  uint32_t id;           // string id
  uint8_t effect;        // ast::Effect: 0 permit, 1 forbid, 2 rule
  uint8_t pad[3] = {0, 0, 0};
  uint32_t file;         // string id of the file path
  uint32_t line, col;    // 1-based start of the statement
  uint32_t begin, end;   // byte span in that file
  uint32_t obligations;  // string id of the statement's obligations as JSON (see below)
  uint32_t rate_key_begin, rate_key_count;  // programs computing rate_limit keys, in order
  uint32_t formula;      // program: the statement's whole formula (scope tests + conditions)
};
static_assert(std::is_trivially_copyable_v<StatementMeta>);

// The record sizes are part of the format (docs/bytecode.md); changing one is a new version.
static_assert(sizeof(Slot) == 8 && sizeof(Program) == 12 && sizeof(Node) == 16 &&
              sizeof(Outcome) == 20 && sizeof(Partition) == 20 && sizeof(SwitchEntry) == 24 &&
              sizeof(StatementMeta) == 44);

enum class Section : uint32_t {
  kStrings = 1,     // u8 blob; string i is [string_offsets[i], string_offsets[i+1])
  kStringOffsets,   // u32
  kLongs,           // i64
  kConstants,       // u32 string ids of JSON texts
  kPathPool,        // u32 string ids
  kSlots,           // Slot
  kInsns,           // Insn
  kPrograms,        // Program
  kNodes,           // Node
  kOutcomes,        // Outcome
  kStmtPool,        // u32 statement indices
  kPartitions,      // Partition
  kPartitionPool,   // u32 partition indices
  kSwitch,          // SwitchEntry, sorted by Key()
  kStatements,      // StatementMeta
  kRegexes,         // u32 string ids (RE2 patterns)
  kLikes,           // u32 string ids (pattern: chunks joined by '\0'... see docs)
  kRecordKeys,      // u32 string ids, for kMakeRecord
  kProgramPool,     // u32 program indices (rate-limit key programs)
  kProgramText,     // u32 string ids, one per program: its source text (for explain)
};

// The verified, in-memory bundle.
class Bundle {
 public:
  // Parses and verifies. Returns null with *error naming the first problem.
  static std::shared_ptr<const Bundle> Load(std::string_view bytes, std::string* error);
  ~Bundle();

  std::string_view str(uint32_t id) const {
    return std::string_view(blob_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  uint32_t string_count() const { return static_cast<uint32_t>(offsets_.size() - 1); }
  // Interned id of a string, or kAnyKey if the bundle does not contain it.
  uint32_t Find(std::string_view s) const;

  // ---- the switch index, derived at load from switch_ (see BuildSwitchIndex) ----
  //
  // A request selects the partition chunks of the switch entries whose action, resource and
  // principal keys apply to it. The index finds them with a few O(1) hash probes, however many
  // entries the switch has:
  //
  // A *group* is found by one probe on (action key, resource key, kind). Its candidates (the
  // partition chunks of its entries, in candidate_parts_) are split by principal key: those
  // for any principal form the range [begin, begin + count); those for a principal key k
  // (PrincipalKey: `== id` or `in id`) form a range found by a second probe, FindKeyed(group
  // id, k), for k in (== uid, in uid, in each principal parent).
  //
  // Normally the index is *folded*: entries that apply whatever the resource (resource key
  // any) or whatever the action (action key any) are copied into the specific groups, so a
  // request needs one group probe for its own resource and one per resource parent (see
  // evaluator.cc ForEachGroup):
  //   kOwnResource      (a, r): entries (a, r, ==), (a, r, in), (any, r, ==), (any, r, in),
  //                     (a, any), (any, any), for every (a, r) some entry has; also (a, any)
  //                     for every action key a and for any
  //   kParentResource   (a, p): entries (a, p, in), (any, p, in)
  //   kAnyActionOwn     (any, r): entries (any, r, ==), (any, r, in) (when (a, r) has no group)
  // Folding copies entries; if the copies would exceed MaxFoldedCandidates(unfolded size), the
  // index is not folded: one group per raw (action, resource, resource_in) key (kinds
  // kRawEq / kRawIn), probed as (request action, any) x (== uid, in uid, in each parent, any).
  enum GroupKind : uint32_t { kOwnResource = 0, kParentResource, kAnyActionOwn, kRawEq, kRawIn };
  static constexpr uint32_t kNoGroup = 0xFFFFFFFFu;  // the kind of an empty hash slot
  struct alignas(32) Group {  // 32 bytes: a probe reads one cache line
    uint32_t action = kAnyKey, resource = kAnyKey;
    uint32_t kind = kNoGroup;
    uint32_t begin = 0, count = 0;  // candidates for any principal
    uint32_t id = 0;                // for FindKeyed
    uint32_t keyed = 0;             // number of candidates for specific principal keys
  };
  const Group* FindGroup(uint32_t action, uint32_t resource, uint32_t kind) const {
    size_t h = Hash(action, resource, kind) & group_mask_;
    for (;;) {
      const Group& g = groups_[h];
      if (g.kind == kNoGroup) return nullptr;
      if (g.action == action && g.resource == resource && g.kind == kind) return &g;
      h = (h + 1) & group_mask_;
    }
  }
  // The principal key of an entry as one u32: kAnyKey for any; the string id for `== id`; the
  // id with kInBit for `in id`. Verify() bounds string ids by kMaxStrings, so they never
  // collide.
  static constexpr uint32_t kInBit = 0x80000000u;
  static constexpr uint32_t kMaxStrings = 0x7FFFFFFFu;
  static uint32_t PrincipalKey(uint32_t id, bool in) {
    return id == kAnyKey ? kAnyKey : (in ? id | kInBit : id);
  }
  struct KeyedRange {
    uint32_t group = 0, key = 0;
    uint32_t begin = 0, count = 0;  // candidates; count 0 marks an empty slot
  };
  const KeyedRange* FindKeyed(uint32_t group, uint32_t key) const {
    size_t h = Hash(group, key, 7) & keyed_mask_;
    for (;;) {
      const KeyedRange& k = keyed_[h];
      if (k.count == 0) return nullptr;
      if (k.group == group && k.key == key) return &k;
      h = (h + 1) & keyed_mask_;
    }
  }
  const std::vector<uint32_t>& candidate_parts() const { return candidate_parts_; }
  // The folding bound: candidates of a folded index, given those of the unfolded one.
  static size_t MaxFoldedCandidates(size_t unfolded) { return 4 * unfolded + 4096; }
  bool switch_folded() const { return switch_folded_; }
  // Per string id, how switch entries use it as a key: kActionKey, kResourceKey (== or in),
  // kResourceInKey (in).
  enum KeyRole : uint8_t { kActionKey = 1, kResourceKey = 2, kResourceInKey = 4 };
  uint8_t key_roles(uint32_t id) const { return id < key_roles_.size() ? key_roles_[id] : 0; }

  const std::array<uint8_t, 32>& source_hash() const { return source_hash_; }
  const std::string& source_hash_hex() const { return source_hash_hex_; }  // set at load

  // Tables (public for the evaluator, disassembler and tests; immutable).
  std::string blob_;
  std::vector<uint32_t> offsets_;
  std::vector<int64_t> longs_;
  std::vector<uint32_t> constants_;
  std::vector<nlohmann::json> constant_values_;  // parsed constants_
  std::vector<uint32_t> path_pool_;
  std::vector<Slot> slots_;
  std::vector<Insn> insns_;
  std::vector<Program> programs_;
  std::vector<Node> nodes_;
  std::vector<Outcome> outcomes_;
  std::vector<uint32_t> stmt_pool_;
  std::vector<Partition> partitions_;
  std::vector<uint32_t> partition_pool_;
  std::vector<SwitchEntry> switch_;
  std::vector<StatementMeta> statements_;
  std::vector<uint32_t> regexes_;
  std::vector<std::unique_ptr<re2::RE2>> compiled_regexes_;
  std::vector<uint32_t> likes_;
  std::vector<std::vector<std::string>> like_chunks_;
  std::vector<uint32_t> record_keys_;
  std::vector<uint32_t> program_pool_;
  std::vector<uint32_t> program_text_;
  // Per program, computed at load: a common short shape the evaluator runs directly instead
  // of through the stack machine (see vm.cc RunFast), with its operands decoded. All but
  // kVarOpEntity start with kPushSlot: slot == / != string, slot < <= > >= long, var == / in
  // entity, the slot alone (a Bool attribute), slot.contains(string), slot.containsAny /
  // containsAll of a constant set of strings, slot like pattern, slot.lower() == / != string,
  // slot has name. kSlotSwitch exists only in run_nodes_ (see RunNode).
  enum FastShape : uint8_t {
    kGeneral = 0,
    kSlotOpString,
    kSlotOpLong,
    kVarOpEntity,
    kSlotBool,
    kSlotContainsString,
    kSlotContainsStrings,
    kSlotLike,
    kSlotLowerOpString,
    kSlotHas,     // `slot has name` (args has amount); a record slot is its common case
    kSlotSwitch,  // run_nodes_ only: a chain of `slot == "s"` tests, one lookup (see RunNode)
  };
  // 16 bytes, so that a RunNode (atom + edges) fits in 32.
  struct FastAtom {
    FastShape shape = kGeneral;
    Op op = Op::kCount;      // the operator (last instruction)
    uint8_t reads_args = 0;  // the slot's root is args (unknown at list time)
    uint8_t n = 0;           // kSlotSwitch: number of cases
    uint32_t slot = 0;       // slot index; kVarOpEntity: the Var
    int64_t k = 0;           // kSlotOpLong: the constant;
                             // kVarOpEntity, kSlotOpString: Find() of the uid / string;
                             // kSlotLike: like index; kSlotContainsStrings: constant index;
                             // kSlotSwitch: first case in switch_ids_ / switch_next_
  };
  static_assert(sizeof(FastAtom) == 16);
  std::vector<FastAtom> fast_;
  // Per program: the string operand of kSlotOpString, kSlotContainsString,
  // kSlotLowerOpString (the string) and kSlotHas (the attribute name); empty otherwise.
  std::vector<std::string_view> fast_text_;

  // ---- the run layout: what Evaluate's DAG walks read, derived at load (BuildRunLayout) ----
  //
  // The bundle's nodes_ are shared by every partition chunk and point at outcomes_. For the walk
  // they are copied into run_nodes_, one 32-byte record per node with its atom's fast form beside
  // its edges, laid out chunk by chunk (each chunk's three DAGs contiguous, depth-first with a
  // node's false edge right after it, so a walk reads neighbouring records), with leaf references
  // replaced by the answer itself: kLeafBit | bit k set when the outcome says yes for DAG kind k. A
  // chain of `slot == "a"`, `slot == "b"`, ... on one slot, each false edge leading to the next,
  // becomes one kSlotSwitch node: n cases (string id, next run ref) in switch_ids_ / switch_next_
  // from k, next[1] when no case matches, next[2] on error. If copying per chunk would exceed
  // MaxRunNodes(nodes_.size()) records or switch cases, nodes are shared between chunks instead
  // (one copy each, first-visit order), and if the cases still exceed it, chains stay plain nodes.
  // Semantics are those of the nodes_ walk (WalkDag); the differential test holds AnyDagSaysYes to
  // the reference.
  static constexpr uint32_t kMaxSwitchCases = 32;
  static size_t MaxRunNodes(size_t nodes) { return 2 * nodes + 65536; }
  struct alignas(32) RunNode {
    FastAtom fast;
    uint32_t atom = 0;                 // the program (for the stack machine, fast_text_)
    uint32_t next[3] = {kLeafBit, kLeafBit, kLeafBit};  // run refs: true, false, error
  };
  static_assert(sizeof(RunNode) == 32);
  std::vector<RunNode> run_nodes_;
  std::vector<uint32_t> switch_ids_;   // kSlotSwitch cases: string ids
  std::vector<uint32_t> switch_next_;  // kSlotSwitch cases: run refs
  // Per partition chunk: the run refs of its three DAG roots (a root that is a leaf is the
  // answer, so a chunk without statements of a kind costs one load).
  struct alignas(16) RunPart {
    uint32_t root[3] = {kLeafBit, kLeafBit, kLeafBit};
    uint32_t pad = 0;
  };
  std::vector<RunPart> run_parts_;
  bool run_layout_shared() const { return run_layout_shared_; }
  std::vector<nlohmann::json> statement_obligations_;  // parsed StatementMeta::obligations
  std::vector<uint8_t> statement_approval_;  // derived at load: carries require_approval

 private:
  Bundle();
  bool Verify(std::string* error);
  static size_t Hash(uint32_t a, uint32_t r, uint32_t kind) {
    uint64_t x = (static_cast<uint64_t>(a) << 32 | r) ^ (static_cast<uint64_t>(kind) << 60);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return static_cast<size_t>(x);
  }
  void BuildSwitchIndex(bool fold);
  bool BuildRunLayout(bool per_chunk, bool switches);
  bool run_layout_shared_ = false;
  std::array<uint8_t, 32> source_hash_{};
  std::string source_hash_hex_;  // source_hash_ in lowercase hex
  std::unordered_map<std::string_view, uint32_t> index_;
  std::vector<uint32_t> candidate_parts_;
  std::vector<Group> groups_;
  size_t group_mask_ = 0;
  std::vector<KeyedRange> keyed_;
  size_t keyed_mask_ = 0;
  bool switch_folded_ = false;
  std::vector<uint8_t> key_roles_;
  friend class BundleWriter;
};

// Serializes tables into the file format. Used by the compiler and by tests that build
// hostile bundles.
class BundleWriter {
 public:
  void AddSection(Section kind, uint32_t elem_size, uint64_t count, const void* data);
  template <typename T>
  void Add(Section kind, const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    AddSection(kind, sizeof(T), v.size(), v.data());
  }
  std::string Finish(const std::array<uint8_t, 32>& source_hash) const;

 private:
  std::string payload_;
  uint32_t sections_ = 0;
};

uint64_t Fnv1a64(std::string_view data);

// Text dump of every table and program (`writ disasm`), stable for golden tests.
std::string Disassemble(const Bundle& bundle);

}  // namespace writ::runtime
