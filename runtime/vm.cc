// vm.cc -- the atom VM: operator semantics of docs/semantics.md over runtime Values.
#include "runtime/vm.h"

#include "base/quote.h"

#include <arpa/inet.h>
#include <re2/re2.h>

#include <cstring>
#include <map>
#include <set>
#include <string>

namespace writ::runtime {
namespace {

Value Err() { return Value{}; }
Value Bool(bool b) {
  Value v;
  v.type = VType::kBool;
  v.b = b;
  return v;
}
Value Long(int64_t i) {
  Value v;
  v.type = VType::kLong;
  v.i = i;
  return v;
}

// ---- sets: elements live either in a JSON array or in a VM-built Value array ----
struct Elems {
  const nlohmann::json* j = nullptr;
  const Value* v = nullptr;
  uint32_t n = 0;
  uint32_t size() const { return j ? static_cast<uint32_t>(j->size()) : n; }
  Value at(uint32_t i) const { return j ? FromJson((*j)[i]) : v[i]; }
};

// One program run: the value stack, and the arena where VM-built sets and records keep their
// elements (Value::j null, Value::i the arena offset, Value::n the count).
// The arrays are raw storage (Value is trivially copyable): a frame is created for every atom
// evaluated, and value-initializing ~400 Values each time would dominate decision latency.
constexpr int kMaxLower = 16;
constexpr uint32_t kArenaSize = kMaxStack * 2;
struct Frame {
  alignas(Value) unsigned char stack_raw[sizeof(Value) * kMaxStack];
  alignas(Value) unsigned char arena_raw[sizeof(Value) * kArenaSize];
  Value* stack() { return reinterpret_cast<Value*>(stack_raw); }
  Value* arena_ptr() { return reinterpret_cast<Value*>(arena_raw); }
  const Value* arena() const { return reinterpret_cast<const Value*>(arena_raw); }
  uint32_t arena_used = 0;
  int lowers = 0;
};
static_assert(std::is_trivially_copyable_v<Value>);

Elems ElemsOf(const Value& v, const Frame& f) {
  Elems e;
  if (v.j != nullptr) {
    e.j = v.j;
  } else {
    e.v = f.arena() + v.i;
    e.n = v.n;
  }
  return e;
}

bool Equal(const Bundle& b, const PreparedRequest& req, const Frame& f, const Value& x,
           const Value& y);

// An error, or a record holding an error at any depth: an error wherever used as a whole.
// (Sets never hold errors: FromJson and MakeSet turn such a set into an error.)
bool Poisoned(const Frame& f, const Value& v) {
  if (v.type == VType::kError) return true;
  if (v.type != VType::kRecord) return false;
  if (v.j != nullptr) return JsonDeepError(*v.j);
  for (uint32_t k = 0; k < v.n; ++k) {
    if (Poisoned(f, f.arena()[v.i + k])) return true;
  }
  return false;
}

// The start of every strict binary operator: an error operand (or a record holding one)
// gives error; otherwise an unknown operand gives unknown. True if that decided `x`.
bool StrictPrelude(const Frame& f, Value& x, const Value& y) {
  if (Poisoned(f, x) || Poisoned(f, y)) {
    x = Err();
    return true;
  }
  if (x.type == VType::kUnknown || y.type == VType::kUnknown) {
    x.type = VType::kUnknown;
    return true;
  }
  return false;
}

bool SetHas(const Bundle& b, const PreparedRequest& req, const Frame& f, const Elems& s,
            const Value& x) {
  for (uint32_t i = 0; i < s.size(); ++i) {
    if (Equal(b, req, f, s.at(i), x)) return true;
  }
  return false;
}

// Record field lookup for JSON objects and VM-built records.
bool RecordGet(const Bundle& b, const Frame& f, const Value& r, std::string_view key, Value* out) {
  if (r.j != nullptr) {
    auto it = r.j->find(key);
    if (it == r.j->end()) return false;
    *out = FromJson(*it);
    return true;
  }
  // VM-built record: the arena holds n field values, then one value whose `i` is the base of
  // the field names in record_keys_.
  uint32_t n = r.n;
  const Value* fields = f.arena() + r.i;
  uint32_t key_base = static_cast<uint32_t>(fields[n].i);
  for (uint32_t k = 0; k < n; ++k) {
    if (b.str(b.record_keys_[key_base + k]) == key) {
      *out = fields[k];
      return true;
    }
  }
  return false;
}

uint32_t RecordSize(const Value& r) {
  return r.j != nullptr ? static_cast<uint32_t>(r.j->size()) : r.n;
}

struct IpRange {
  bool v6 = false;
  uint8_t addr[16] = {};
  int prefix = 0;
};

bool ParseIp(std::string_view text, IpRange* out) {
  char buf[64];
  if (text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  char* slash = std::strchr(buf, '/');
  int prefix = -1;
  if (slash != nullptr) {
    *slash = 0;
    const char* p = slash + 1;
    if (*p == 0) return false;
    prefix = 0;
    if (p[0] == '0' && p[1] != 0) return false;  // no leading zeros
    for (; *p; ++p) {
      if (*p < '0' || *p > '9' || prefix > 128) return false;
      prefix = prefix * 10 + (*p - '0');
    }
  }
  if (inet_pton(AF_INET, buf, out->addr) == 1) {
    out->v6 = false;
    if (prefix > 32) return false;
    out->prefix = prefix < 0 ? 32 : prefix;
    return true;
  }
  if (inet_pton(AF_INET6, buf, out->addr) == 1) {
    out->v6 = true;
    if (prefix > 128) return false;
    out->prefix = prefix < 0 ? 128 : prefix;
    return true;
  }
  return false;
}

bool IpOf(const Value& v, IpRange* out) {
  if (v.type == VType::kIp && v.j != nullptr && v.j->is_string()) {
    return ParseIp(v.j->get_ref<const std::string&>(), out);
  }
  if (v.type == VType::kIp || v.type == VType::kString) return ParseIp(v.s, out);
  return false;
}

bool PrefixEqual(const uint8_t* a, const uint8_t* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

// a's range within b's range.
bool InRange(const IpRange& a, const IpRange& b) {
  if (a.v6 != b.v6) return false;
  if (a.prefix < b.prefix) return false;
  return PrefixEqual(a.addr, b.addr, b.prefix);
}

bool Equal(const Bundle& b, const PreparedRequest& req, const Frame& f, const Value& x,
           const Value& y) {
  if (x.type != y.type) return false;
  switch (x.type) {
    case VType::kError:
    case VType::kUnknown: return false;
    case VType::kBool: return x.b == y.b;
    case VType::kLong:
    case VType::kDuration: return x.i == y.i;
    case VType::kString:
    case VType::kEntity: return x.s == y.s;
    case VType::kIp: {
      IpRange p, q;
      return IpOf(x, &p) && IpOf(y, &q) && p.v6 == q.v6 && p.prefix == q.prefix &&
             std::memcmp(p.addr, q.addr, 16) == 0;
    }
    case VType::kSet: {
      Elems a = ElemsOf(x, f), c = ElemsOf(y, f);
      for (uint32_t i = 0; i < a.size(); ++i) {
        if (!SetHas(b, req, f, c, a.at(i))) return false;
      }
      for (uint32_t i = 0; i < c.size(); ++i) {
        if (!SetHas(b, req, f, a, c.at(i))) return false;
      }
      return true;
    }
    case VType::kRecord: {
      if (RecordSize(x) != RecordSize(y)) return false;
      if (x.j != nullptr) {
        for (auto it = x.j->begin(); it != x.j->end(); ++it) {
          Value other;
          if (!RecordGet(b, f, y, it.key(), &other) || !Equal(b, req, f, FromJson(*it), other)) {
            return false;
          }
        }
        return true;
      }
      const Value* fields = f.arena() + x.i;
      uint32_t n = x.n;
      uint32_t key_base = static_cast<uint32_t>(fields[n].i);
      for (uint32_t k = 0; k < n; ++k) {
        Value other;
        if (!RecordGet(b, f, y, b.str(b.record_keys_[key_base + k]), &other) ||
            !Equal(b, req, f, fields[k], other)) {
          return false;
        }
      }
      return true;
    }
  }
  return false;
}

// The request entity (principal/resource/action) a value names, if any.
const RequestEntity* EntityOf(const PreparedRequest& req, const Value& v) {
  switch (v.i) {
    case 0: return &req.principal;
    case 1: return &req.action;
    case 2: return &req.resource;
    default: return nullptr;
  }
}

// x in E (both entities).
bool EntityIn(const PreparedRequest& req, const Value& x, const Value& e) {
  if (x.s == e.s) return true;
  const RequestEntity* re = EntityOf(req, x);
  if (re == nullptr) return false;
  for (const auto& p : re->parents) {
    if (p == e.s) return true;
  }
  return false;
}

bool Like(std::string_view s, const std::vector<std::string>& chunks) {
  // chunks[0] is a prefix, chunks.back() a suffix, the middle ones in order.
  if (chunks.size() == 1) return s == chunks[0];
  const std::string& first = chunks.front();
  const std::string& last = chunks.back();
  if (s.size() < first.size() + last.size()) return false;
  if (s.substr(0, first.size()) != first) return false;
  if (s.substr(s.size() - last.size()) != last) return false;
  size_t pos = first.size();
  size_t end = s.size() - last.size();
  for (size_t i = 1; i + 1 < chunks.size(); ++i) {
    size_t at = s.substr(0, end).find(chunks[i], pos);
    if (at == std::string_view::npos) return false;
    pos = at + chunks[i].size();
  }
  return pos <= end;
}

Value Compare(Op op, const Value& x, const Value& y) {
  bool ok = (x.type == VType::kLong && y.type == VType::kLong) ||
            (x.type == VType::kDuration && y.type == VType::kDuration);
  if (!ok) return Err();
  switch (op) {
    case Op::kLt: return Bool(x.i < y.i);
    case Op::kLe: return Bool(x.i <= y.i);
    case Op::kGt: return Bool(x.i > y.i);
    default: return Bool(x.i >= y.i);
  }
}

}  // namespace

static Value RunIn(const Bundle& b, const PreparedRequest& req, const Program& p, Frame* fp) {
  Frame& f = *fp;
  Value* st = f.stack();
  int sp = 0;
  for (uint32_t k = p.begin; k < p.begin + p.count; ++k) {
    const Insn& in = b.insns_[k];
    switch (in.op) {
      case Op::kPushBool: st[sp++] = Bool(in.a != 0); break;
      case Op::kPushError: st[sp++] = Err(); break;
      case Op::kPushLong: st[sp++] = Long(b.longs_[in.c]); break;
      case Op::kPushDuration: {
        Value v;
        v.type = VType::kDuration;
        v.i = b.longs_[in.c];
        st[sp++] = v;
        break;
      }
      case Op::kPushString: {
        Value v;
        v.type = VType::kString;
        v.s = b.str(in.c);
        st[sp++] = v;
        break;
      }
      case Op::kPushEntity: {
        Value v;
        v.type = VType::kEntity;
        v.i = -1;
        v.s = b.str(in.c);
        st[sp++] = v;
        break;
      }
      case Op::kPushConst: st[sp++] = FromJson(b.constant_values_[in.c]); break;
      case Op::kPushVar: {
        Value v;
        v.type = VType::kEntity;
        v.i = in.a;
        v.s = EntityOf(req, v)->uid;
        st[sp++] = v;
        break;
      }
      case Op::kPushSlot: {
        if (req.args_unknown && b.slots_[in.c].root == SlotRoot::kArgs) {
          Value v;
          v.type = VType::kUnknown;
          st[sp++] = v;
        } else {
          st[sp++] = req.slots[in.c];
        }
        break;
      }
      case Op::kGetAttr:
      case Op::kHas: {
        Value& x = st[sp - 1];
        std::string_view name = b.str(in.c);
        Value got;
        bool found = false;
        if (x.type == VType::kRecord) {
          found = RecordGet(b, f, x, name, &got);
        } else if (x.type == VType::kEntity) {
          const RequestEntity* e = EntityOf(req, x);
          if (e != nullptr && e->attrs != nullptr) {
            auto it = e->attrs->find(name);
            if (it != e->attrs->end()) {
              found = true;
              got = FromJson(*it);
            }
          }
        } else if (x.type == VType::kUnknown) {
          break;
        } else {
          x = Err();
          break;
        }
        if (in.op == Op::kHas) {
          x = Bool(found);
        } else {
          x = found ? got : Err();
        }
        break;
      }
      case Op::kEq:
      case Op::kNe: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        if (!StrictPrelude(f, x, y)) {
          bool eq = Equal(b, req, f, x, y);
          x = Bool(in.op == Op::kEq ? eq : !eq);
        }
        break;
      }
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe:
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        if (StrictPrelude(f, x, y)) break;
        if (in.op == Op::kLt || in.op == Op::kLe || in.op == Op::kGt || in.op == Op::kGe) {
          x = Compare(in.op, x, y);
          break;
        }
        if (x.type != VType::kLong || y.type != VType::kLong) {
          x = Err();
          break;
        }
        int64_t r;
        bool over = in.op == Op::kAdd   ? __builtin_add_overflow(x.i, y.i, &r)
                    : in.op == Op::kSub ? __builtin_sub_overflow(x.i, y.i, &r)
                                        : __builtin_mul_overflow(x.i, y.i, &r);
        x = over ? Err() : Long(r);
        break;
      }
      case Op::kNeg: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        x = (x.type == VType::kLong && x.i != INT64_MIN) ? Long(-x.i) : Err();
        break;
      }
      case Op::kNot: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        x = x.type == VType::kBool ? Bool(!x.b) : Err();
        break;
      }
      case Op::kAnd:
      case Op::kOr: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        bool is_and = in.op == Op::kAnd;
        // Kleene: a dominating value (false for and, true for or) wins over error/unknown.
        auto dominates = [&](const Value& v) { return v.type == VType::kBool && v.b == !is_and; };
        if (dominates(x) || dominates(y)) {
          x = Bool(!is_and);
        } else if (x.type == VType::kBool && y.type == VType::kBool) {
          x = Bool(is_and);  // both are the identity value
        } else if ((x.type == VType::kUnknown || x.type == VType::kBool) &&
                   (y.type == VType::kUnknown || y.type == VType::kBool)) {
          x.type = VType::kUnknown;
        } else if (x.type == VType::kUnknown || y.type == VType::kUnknown) {
          x.type = VType::kUnknown;  // error combined with unknown: unknown (may be either)
        } else {
          x = Err();
        }
        break;
      }
      case Op::kIf: {
        Value& c = st[sp - 3];
        const Value& t = st[sp - 2];
        const Value& e = st[sp - 1];
        sp -= 2;
        if (c.type == VType::kUnknown) {
          c.type = VType::kUnknown;
        } else if (c.type != VType::kBool) {
          c = Err();
        } else {
          c = c.b ? t : e;
        }
        break;
      }
      case Op::kIn: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        if (StrictPrelude(f, x, y)) {
          // decided
        } else if (y.type == VType::kEntity) {
          x = x.type == VType::kEntity ? Bool(EntityIn(req, x, y)) : Err();
        } else if (y.type == VType::kSet) {
          Elems s = ElemsOf(y, f);
          bool found = false;
          for (uint32_t i = 0; i < s.size() && !found; ++i) {
            Value e = s.at(i);
            if (x.type == VType::kEntity && e.type == VType::kEntity) {
              found = EntityIn(req, x, e);
            } else {
              found = Equal(b, req, f, x, e);
            }
          }
          x = Bool(found);
        } else {
          x = Err();
        }
        break;
      }
      case Op::kIs: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        if (x.type != VType::kEntity) {
          x = Err();
          break;
        }
        std::string_view type = b.str(in.c);
        x = Bool(x.s.size() > type.size() + 2 && x.s.substr(0, type.size()) == type &&
                 x.s.substr(type.size(), 3) == "::\"");
        break;
      }
      case Op::kLike:
      case Op::kMatches:
      case Op::kLower: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        if (x.type != VType::kString) {
          x = Err();
          break;
        }
        if (in.op == Op::kLike) {
          x = Bool(Like(x.s, b.like_chunks_[in.c]));
        } else if (in.op == Op::kMatches) {
          x = Bool(RE2::PartialMatch(re2::StringPiece(x.s.data(), x.s.size()),
                                     *b.compiled_regexes_[in.c]));
        } else {
          // The lowered copy lives in a per-thread buffer per `lower()` of this run (its
          // capacity is reused, so steady-state runs do not allocate).
          if (f.lowers >= kMaxLower) {
            x = Err();
            break;
          }
          static thread_local std::string scratch[kMaxLower];
          std::string& out = scratch[f.lowers++];
          out.assign(x.s);
          for (char& ch : out) {
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
          }
          x.s = out;
        }
        break;
      }
      case Op::kContains:
      case Op::kContainsAll:
      case Op::kContainsAny: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        if (StrictPrelude(f, x, y)) break;
        if (x.type != VType::kSet || (in.op != Op::kContains && y.type != VType::kSet)) {
          x = Err();
          break;
        }
        Elems s = ElemsOf(x, f);
        if (in.op == Op::kContains) {
          x = Bool(SetHas(b, req, f, s, y));
          break;
        }
        Elems t = ElemsOf(y, f);
        bool all = true, any = false;
        for (uint32_t i = 0; i < t.size(); ++i) {
          bool has = SetHas(b, req, f, s, t.at(i));
          all &= has;
          any |= has;
        }
        x = Bool(in.op == Op::kContainsAll ? all : any);
        break;
      }
      case Op::kIsEmpty: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        x = x.type == VType::kSet ? Bool(ElemsOf(x, f).size() == 0) : Err();
        break;
      }
      case Op::kIp: {
        Value& x = st[sp - 1];
        if (x.type == VType::kUnknown) break;
        IpRange r;
        if (x.type != VType::kString || !ParseIp(x.s, &r)) {
          x = Err();
        } else {
          x.type = VType::kIp;
          x.j = nullptr;
        }
        break;
      }
      case Op::kIsInRange: {
        Value& x = st[sp - 2];
        const Value& y = st[sp - 1];
        --sp;
        if (StrictPrelude(f, x, y)) break;
        IpRange p, q;
        x = (IpOf(x, &p) && IpOf(y, &q)) ? Bool(InRange(p, q)) : Err();
        break;
      }
      case Op::kMakeSet:
      case Op::kMakeRecord: {
        uint32_t n = in.c;
        bool unknown = false, error = false;
        for (uint32_t i = 0; i < n; ++i) {
          const Value& e = st[sp - n + i];
          unknown |= e.type == VType::kUnknown;
          error |= Poisoned(f, e);
        }
        Value v;
        if (error || f.arena_used + n + 1 > kArenaSize) {
          v = Err();
        } else if (unknown) {
          v.type = VType::kUnknown;
        } else {
          v.type = in.op == Op::kMakeSet ? VType::kSet : VType::kRecord;
          v.i = f.arena_used;
          std::memcpy(static_cast<void*>(f.arena_ptr() + f.arena_used), st + sp - n, n * sizeof(Value));
          v.n = n;
          f.arena_ptr()[f.arena_used + n] = Long(in.b);  // record: key base
          f.arena_used += n + 1;
        }
        sp -= static_cast<int>(n);
        st[sp++] = v;
        break;
      }
      case Op::kCount: break;
    }
  }
  return st[0];
}

Value Run(const Bundle& b, const PreparedRequest& req, const Program& p) {
  Frame f;
  return RunIn(b, req, p, &f);
}

namespace {

// True if the JSON array `set` (a request value, so free of errors) has the string `s`.
bool JsonSetHasString(const nlohmann::json& set, std::string_view s) {
  for (const auto& e : set) {
    if (e.is_string() && e.get_ref<const std::string&>() == s) return true;
  }
  return false;
}

// Short shapes (Bundle::FastAtom) run directly; each case computes exactly what Run() would
// (the differential test holds both to the reference evaluator). REQUIRES: FastApplies(req, f):
// f.shape is not kGeneral (nor kSlotSwitch), and a slot shape's slot does not hold a record (a
// record may hold an error, so it goes the general way) -- except kSlotHas, which needs a JSON
// object or a type Has rejects. `atom` is the program, for the string operand in fast_text_.
inline Tri RunFast(const Bundle& b, const PreparedRequest& req, const Bundle::FastAtom& f,
                   uint32_t atom) {
  if (f.shape == Bundle::kVarOpEntity) {
    // Ids, not text: f.k is Bundle::Find of the target, and requests carry Find of their uids.
    const uint32_t id = static_cast<uint32_t>(f.k);
    const RequestEntity& e = f.slot == 0 ? req.principal : f.slot == 1 ? req.action : req.resource;
    if (e.uid_id == id) return Tri::kTrue;
    if (f.op == Op::kEq) return Tri::kFalse;
    for (uint32_t p : e.parent_ids) {
      if (p == id) return Tri::kTrue;
    }
    return Tri::kFalse;
  }
  if (req.args_unknown && f.reads_args) return Tri::kUnknown;
  const Value& v = req.slots[f.slot];
  switch (f.shape) {
    case Bundle::kSlotOpString: {
      if (v.type == VType::kError) return Tri::kError;
      // Ids, not text: f.k is Bundle::Find of the string, slot_ids Find of the slot's text.
      const bool eq =
          v.type == VType::kString && req.slot_ids[f.slot] == static_cast<uint32_t>(f.k);
      return (eq == (f.op == Op::kEq)) ? Tri::kTrue : Tri::kFalse;
    }
    case Bundle::kSlotOpLong: {
      if (v.type != VType::kLong) return Tri::kError;
      const bool r = f.op == Op::kLt   ? v.i < f.k
                     : f.op == Op::kLe ? v.i <= f.k
                     : f.op == Op::kGt ? v.i > f.k
                                       : v.i >= f.k;
      return r ? Tri::kTrue : Tri::kFalse;
    }
    case Bundle::kSlotBool:
      if (v.type != VType::kBool) return Tri::kError;
      return v.b ? Tri::kTrue : Tri::kFalse;
    case Bundle::kSlotLowerOpString: {
      if (v.type != VType::kString) return Tri::kError;
      // ASCII lowercase of v.s equals the constant, without building the lowered copy.
      const std::string_view s = b.fast_text_[atom];
      bool eq = v.s.size() == s.size();
      for (size_t i = 0; eq && i < v.s.size(); ++i) {
        char ch = v.s[i];
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        eq = ch == s[i];
      }
      return (eq == (f.op == Op::kEq)) ? Tri::kTrue : Tri::kFalse;
    }
    case Bundle::kSlotHas:
      // FastApplies let through a JSON object or a value that is neither a record, an entity
      // nor unknown (Has on those is an error, as in Run()).
      if (v.type != VType::kRecord) return Tri::kError;
      return v.j->find(b.fast_text_[atom]) != v.j->end() ? Tri::kTrue : Tri::kFalse;
    case Bundle::kSlotLike:
      if (v.type != VType::kString) return Tri::kError;
      return Like(v.s, b.like_chunks_[f.k]) ? Tri::kTrue : Tri::kFalse;
    case Bundle::kSlotContainsString:
    case Bundle::kSlotContainsStrings: {
      // A request set is a JSON array (Value::j), never VM-built; anything else is an error.
      if (v.type != VType::kSet || v.j == nullptr) return Tri::kError;
      if (f.shape == Bundle::kSlotContainsString) {
        return JsonSetHasString(*v.j, b.fast_text_[atom]) ? Tri::kTrue : Tri::kFalse;
      }
      // containsAny / containsAll of a constant array of strings (checked at load).
      const bool any = f.op == Op::kContainsAny;
      for (const auto& k : b.constant_values_[f.k]) {
        const bool has = JsonSetHasString(*v.j, k.get_ref<const std::string&>());
        if (has && any) return Tri::kTrue;
        if (!has && !any) return Tri::kFalse;
      }
      return any ? Tri::kFalse : Tri::kTrue;
    }
    default: return Tri::kError;  // unreachable: kGeneral, kVarOpEntity, kSlotSwitch are not here
  }
}

// The stack machine's answer for an atom.
__attribute__((noinline)) Tri RunGeneral(const Bundle& b, const PreparedRequest& req,
                                         const Program& p) {
  if (req.args_unknown && p.reads_args) return Tri::kUnknown;
  Value v = Run(b, req, p);
  if (v.type == VType::kBool) return v.b ? Tri::kTrue : Tri::kFalse;
  if (v.type == VType::kUnknown) return Tri::kUnknown;
  return Tri::kError;
}

// Whether RunFast computes atom `f` for this request (else the stack machine does).
inline bool FastApplies(const PreparedRequest& req, const Bundle::FastAtom& f) {
  if (f.shape == Bundle::kGeneral) return false;
  if (f.shape == Bundle::kVarOpEntity) return true;
  const Value& v = req.slots[f.slot];
  if (f.shape == Bundle::kSlotHas) {
    // A JSON object (request values always are), or a type for which Has is an error.
    return v.type == VType::kRecord ? v.j != nullptr
                                    : v.type != VType::kEntity && v.type != VType::kUnknown;
  }
  return v.type != VType::kRecord;
}

inline Tri RunAtomInline(const Bundle& b, const PreparedRequest& req, uint32_t program) {
  const Bundle::FastAtom& f = b.fast_[program];
  if (FastApplies(req, f)) return RunFast(b, req, f, program);
  return RunGeneral(b, req, b.programs_[program]);
}

// A kSlotSwitch node: the chain `slot == ids[0]`, `slot == ids[1]`, ... (each false edge to
// the next) in one step. Every case tests the same value, so they agree on everything but the
// string: an error errs at the first case (next[2]); a string matches at most the first case
// whose id it has (switch_next_), else falls through to the last false edge (next[1]); any
// other non-record value is false everywhere. A record goes the general way, as RunFast's
// callers do: its answer (false, or error if it holds one) is the same for every case.
// With req.args_unknown an args value is unknown: the error edge, as RunStep does.
__attribute__((noinline)) uint32_t SwitchNext(const Bundle& b, const PreparedRequest& req,
                                              const Bundle::RunNode& n) {
  const Bundle::FastAtom& f = n.fast;
  const Value& v = req.slots[f.slot];
  const uint32_t first = static_cast<uint32_t>(f.k);
  if (f.reads_args && req.args_unknown) return n.next[2];
  if (v.type == VType::kRecord) {
    const Tri t = RunGeneral(b, req, b.programs_[n.atom]);
    return t == Tri::kTrue ? b.switch_next_[first] : t == Tri::kFalse ? n.next[1] : n.next[2];
  }
  if (v.type == VType::kError) return n.next[2];
  if (v.type == VType::kString) {
    const uint32_t id = req.slot_ids[f.slot];
    const uint32_t* ids = b.switch_ids_.data() + first;
    for (uint32_t c = 0; c < f.n; ++c) {
      if (ids[c] == id) return b.switch_next_[first + c];
    }
  }
  return n.next[1];
}

// One step of a walk over run_nodes_: the run reference after node `n`.
inline uint32_t RunStep(const Bundle& b, const PreparedRequest& req, const Bundle::RunNode& n) {
  const Bundle::FastAtom& f = n.fast;
  if (f.shape == Bundle::kSlotSwitch) return SwitchNext(b, req, n);
  const Tri t = FastApplies(req, f) ? RunFast(b, req, f, n.atom)
                                    : RunGeneral(b, req, b.programs_[n.atom]);
  // kUnknown (only with req.args_unknown, which the request path never sets) takes the error
  // edge: fail closed. (Not a check of args_unknown up front: that is a cache line of the
  // request the walk does not otherwise read.)
  return n.next[t == Tri::kUnknown ? 2 : static_cast<int>(t)];
}

}  // namespace

Tri RunAtom(const Bundle& b, const PreparedRequest& req, uint32_t program) {
  return RunAtomInline(b, req, program);
}

uint32_t WalkDag(const Bundle& b, const PreparedRequest& req, uint32_t ref) {
  while (!(ref & kLeafBit)) {
    const Node& n = b.nodes_[ref];
    ref = n.next[static_cast<int>(RunAtomInline(b, req, n.atom))];
  }
  return ref & ~kLeafBit;
}

bool AnyDagSaysYes(const Bundle& b, const PreparedRequest& req, const uint32_t* parts, int count,
                   DagKind kind) {
  const uint32_t yes = 1u << kind;
  const Bundle::RunPart* run_parts = b.run_parts_.data();
  const Bundle::RunNode* nodes = b.run_nodes_.data();
  for (int i = 0; i < count; ++i) {
    uint32_t ref = run_parts[parts[i]].root[kind];
    while (!(ref & kLeafBit)) ref = RunStep(b, req, nodes[ref]);
    if (ref & yes) return true;
  }
  return false;
}

namespace {

// Writ syntax, canonical: sets sorted and deduplicated by rendering, record keys sorted.
std::string WritText(const Bundle& b, const Frame* f, const Value& v) {
  switch (v.type) {
    case VType::kBool: return v.b ? "true" : "false";
    case VType::kLong: return std::to_string(v.i);
    case VType::kDuration: return std::to_string(v.i) + "ms";
    case VType::kString: return QuoteWrit(v.s);
    case VType::kEntity: return std::string(v.s);
    case VType::kIp: {
      IpRange r;
      if (!IpOf(v, &r)) return "<error>";
      char buf[64];
      inet_ntop(r.v6 ? AF_INET6 : AF_INET, r.addr, buf, sizeof buf);
      return "ip(" + QuoteWrit(std::string(buf) + "/" + std::to_string(r.prefix)) + ")";
    }
    case VType::kSet: {
      std::set<std::string> parts;
      if (v.j != nullptr) {
        for (const auto& e : *v.j) parts.insert(WritText(b, f, FromJson(e)));
      } else if (f != nullptr) {
        for (uint32_t k = 0; k < v.n; ++k) parts.insert(WritText(b, f, f->arena()[v.i + k]));
      }
      std::string out = "[";
      for (const auto& p : parts) out += (out.size() > 1 ? ", " : "") + p;
      return out + "]";
    }
    case VType::kRecord: {
      std::map<std::string, std::string> fields;
      if (v.j != nullptr) {
        for (auto it = v.j->begin(); it != v.j->end(); ++it) {
          fields[it.key()] = WritText(b, f, FromJson(it.value()));
        }
      } else if (f != nullptr) {
        const Value* vals = f->arena() + v.i;
        uint32_t key_base = static_cast<uint32_t>(vals[v.n].i);
        for (uint32_t k = 0; k < v.n; ++k) {
          fields[std::string(b.str(b.record_keys_[key_base + k]))] = WritText(b, f, vals[k]);
        }
      }
      std::string out = "{";
      for (const auto& [k, x] : fields) out += (out.size() > 1 ? ", " : "") + QuoteWrit(k) + ": " + x;
      return out + "}";
    }
    default: return "<error>";
  }
}

}  // namespace

std::string KeyText(const Bundle& b, const PreparedRequest& req, const Program& p) {
  Frame f;
  Value v = RunIn(b, req, p, &f);
  if (Poisoned(f, v) || v.type == VType::kUnknown) return "<error>";
  if (v.type == VType::kString) return std::string(v.s);
  return WritText(b, &f, v);
}

}  // namespace writ::runtime
