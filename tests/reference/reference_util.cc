// reference_util.cc -- the reference evaluator (see reference_eval.h). Tests only.
//
// Values are a small tagged struct; every expression evaluates to a value, to Error, or (only
// in visibility mode) to Unknown. Nothing throws. Where docs/semantics.md leaves a choice, the
// choice is marked `CHOICE:` and listed in the report of the reference branch.
#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/reference/reference_eval.h"
#include "base/quote.h"

namespace writ::reference {
namespace {

using ast::BinOp;
using ast::Expr;
using ast::ExprKind;
using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Values

struct Ip {
  bool v6 = false;
  uint8_t addr[16] = {};
  int prefix = 0;
};

enum class K { kError, kUnknown, kBool, kLong, kString, kDuration, kEntity, kSet, kRecord, kIp };

struct Val {
  K k = K::kError;
  bool b = false;
  int64_t i = 0;      // Long, Duration (ms)
  std::string s;      // String; Entity: canonical uid
  std::string etype;  // Entity: type
  int who = -1;       // Entity: 0 = the request's principal, 1 = its resource, -1 other
  std::vector<Val> elems;                          // Set (as built; compared as a set)
  std::vector<std::pair<std::string, Val>> fields;  // Record, sorted by key, unique keys
  Ip ip;
};

Val Err() { return Val{}; }
Val Unk() {
  Val v;
  v.k = K::kUnknown;
  return v;
}
Val Bool(bool b) {
  Val v;
  v.k = K::kBool;
  v.b = b;
  return v;
}
Val Long(int64_t i) {
  Val v;
  v.k = K::kLong;
  v.i = i;
  return v;
}
Val Str(std::string s) {
  Val v;
  v.k = K::kString;
  v.s = std::move(s);
  return v;
}

std::string EscapeId(const std::string& id) {
  std::string out;
  for (char c : id) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

Val Entity(const std::string& type, const std::string& id, int who = -1) {
  Val v;
  v.k = K::kEntity;
  v.etype = type;
  v.s = type + "::\"" + EscapeId(id) + "\"";
  v.who = who;
  return v;
}

// Parses `Type::"id"` (path of identifiers; id with \" and \\ escapes).
bool ParseUid(const std::string& text, std::string* type, std::string* id) {
  size_t q = text.find("::\"");
  if (q == std::string::npos || q == 0) return false;
  // The type: identifiers joined by `::`.
  std::string t = text.substr(0, q);
  size_t pos = 0;
  while (true) {
    size_t end = t.find("::", pos);
    std::string part = t.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (part.empty()) return false;
    for (size_t k = 0; k < part.size(); ++k) {
      char c = part[k];
      bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
      bool digit = c >= '0' && c <= '9';
      if (!(alpha || (digit && k > 0))) return false;
    }
    if (end == std::string::npos) break;
    pos = end + 2;
  }
  std::string out;
  size_t k = q + 3;
  bool closed = false;
  for (; k < text.size(); ++k) {
    char c = text[k];
    if (c == '\\') {
      if (k + 1 >= text.size() || (text[k + 1] != '"' && text[k + 1] != '\\')) return false;
      out += text[++k];
    } else if (c == '"') {
      closed = true;
      ++k;
      break;
    } else {
      out += c;
    }
  }
  if (!closed || k != text.size()) return false;
  *type = t;
  *id = out;
  return true;
}

// A set or record containing an error anywhere. Sets never hold one (they are built strictly),
// records from JSON may (a field that is null).
bool DeepErr(const Val& v) {
  if (v.k == K::kError) return true;
  if (v.k == K::kRecord) {
    for (const auto& f : v.fields) {
      if (DeepErr(f.second)) return true;
    }
  }
  return false;
}

// CHOICE: JSON conversion. Integers in int64 range -> Long; any other number (fraction,
// exponent form, even 5.0, or out of range) -> error. null -> error. An object with a key
// "__entity" is an entity reference: error unless it is the only key and a valid uid string.
// Arrays -> Set, and a Set with an element that is (deeply) an error is itself an error.
// Objects -> Record whose fields may individually be errors (so `args.a` can be read when
// `args.b` is null); a Record holding an error anywhere is an error wherever it is used as a
// whole value (==, in, contains, literals, rate-limit keys), see Strict().
Val FromJson(const json& j) {
  switch (j.type()) {
    case json::value_t::boolean: return Bool(j.get<bool>());
    case json::value_t::number_integer: return Long(j.get<int64_t>());
    case json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Err();
      return Long(static_cast<int64_t>(u));
    }
    case json::value_t::string: return Str(j.get<std::string>());
    case json::value_t::array: {
      Val v;
      v.k = K::kSet;
      for (const auto& e : j) {
        Val x = FromJson(e);
        if (DeepErr(x)) return Err();
        v.elems.push_back(std::move(x));
      }
      return v;
    }
    case json::value_t::object: {
      if (j.contains("__entity")) {
        const json& u = j["__entity"];
        std::string type, id;
        if (j.size() != 1 || !u.is_string() || !ParseUid(u.get<std::string>(), &type, &id)) {
          return Err();
        }
        return Entity(type, id);
      }
      Val v;
      v.k = K::kRecord;
      for (auto it = j.begin(); it != j.end(); ++it) {  // nlohmann objects iterate sorted
        v.fields.emplace_back(it.key(), FromJson(it.value()));
      }
      return v;
    }
    default: return Err();  // null, float, binary, discarded
  }
}

const Val* Field(const Val& rec, const std::string& name) {
  for (const auto& f : rec.fields) {
    if (f.first == name) return &f.second;
  }
  return nullptr;
}

bool Equal(const Val& a, const Val& b);

bool SetHas(const Val& set, const Val& x) {
  for (const auto& e : set.elems) {
    if (Equal(e, x)) return true;
  }
  return false;
}

// Structural equality. REQUIRES: neither holds an error or unknown.
bool Equal(const Val& a, const Val& b) {
  if (a.k != b.k) return false;
  switch (a.k) {
    case K::kBool: return a.b == b.b;
    case K::kLong:
    case K::kDuration: return a.i == b.i;
    case K::kString:
    case K::kEntity: return a.s == b.s;
    case K::kSet:
      for (const auto& e : a.elems) {
        if (!SetHas(b, e)) return false;
      }
      for (const auto& e : b.elems) {
        if (!SetHas(a, e)) return false;
      }
      return true;
    case K::kRecord:
      if (a.fields.size() != b.fields.size()) return false;
      for (size_t k = 0; k < a.fields.size(); ++k) {
        if (a.fields[k].first != b.fields[k].first) return false;
        if (!Equal(a.fields[k].second, b.fields[k].second)) return false;
      }
      return true;
    case K::kIp:
      // CHOICE: IP values are equal iff same family, same address bits and same prefix
      // (no masking: ip("10.1.2.3/8") != ip("10.0.0.0/8")).
      return a.ip.v6 == b.ip.v6 && a.ip.prefix == b.ip.prefix &&
             std::memcmp(a.ip.addr, b.ip.addr, 16) == 0;
    default: return false;
  }
}

// CHOICE: IP syntax. inet_pton for the address (IPv4 dotted quad without leading zeros, or any
// IPv6 form inet_pton accepts, including embedded IPv4); optional `/n` with n decimal digits
// (no sign, no leading zero except "0") and n <= 32 / 128. No zone ids, no whitespace. An
// IPv4 range never lies within an IPv6 one or vice versa (no v4-mapped equivalence).
bool ParseIp(const std::string& text, Ip* out) {
  std::string addr = text;
  int prefix = -1;
  size_t slash = text.find('/');
  if (slash != std::string::npos) {
    addr = text.substr(0, slash);
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || (p.size() > 1 && p[0] == '0')) return false;
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      prefix = prefix * 10 + (c - '0');
    }
  }
  Ip ip;
  if (addr.find(':') != std::string::npos) {
    ip.v6 = true;
    if (inet_pton(AF_INET6, addr.c_str(), ip.addr) != 1) return false;
    if (prefix > 128) return false;
    ip.prefix = prefix < 0 ? 128 : prefix;
  } else {
    if (inet_pton(AF_INET, addr.c_str(), ip.addr) != 1) return false;
    if (prefix > 32) return false;
    ip.prefix = prefix < 0 ? 32 : prefix;
  }
  *out = ip;
  return true;
}

bool IpBit(const Ip& ip, int bit) { return (ip.addr[bit / 8] >> (7 - bit % 8)) & 1; }

// a's range lies within b's range.
bool IpWithin(const Ip& a, const Ip& b) {
  if (a.v6 != b.v6) return false;
  if (a.prefix < b.prefix) return false;
  for (int bit = 0; bit < b.prefix; ++bit) {
    if (IpBit(a, bit) != IpBit(b, bit)) return false;
  }
  return true;
}

// `like`: chunks separated by wildcards, each `*` any run of bytes.
bool Like(const std::string& s, const std::vector<std::string>& chunks) {
  if (chunks.size() == 1) return s == chunks[0];
  const std::string& first = chunks.front();
  const std::string& last = chunks.back();
  if (s.size() < first.size() + last.size()) return false;
  if (s.compare(0, first.size(), first) != 0) return false;
  if (s.compare(s.size() - last.size(), last.size(), last) != 0) return false;
  size_t pos = first.size();
  size_t limit = s.size() - last.size();
  for (size_t c = 1; c + 1 < chunks.size(); ++c) {
    size_t at = s.find(chunks[c], pos);
    if (at == std::string::npos || at + chunks[c].size() > limit) return false;
    pos = at + chunks[c].size();
  }
  return true;
}

const RE2* Regex(const std::string& pattern) {
  thread_local std::map<std::string, std::unique_ptr<RE2>> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    RE2::Options opts;
    opts.set_log_errors(false);
    it = cache.emplace(pattern, std::make_unique<RE2>(pattern, opts)).first;
  }
  return it->second->ok() ? it->second.get() : nullptr;
}

// ---------------------------------------------------------------------------------------
// The request

struct Ent {
  std::string uid, type;
  std::set<std::string> parents;  // canonical uids
  Val attrs;                      // Record (empty when absent)
};

struct Req {
  Ent principal, action, resource;
  Val args, context, call;  // Records; args is Unknown in visibility mode
};

Val EmptyRecord() {
  Val v;
  v.k = K::kRecord;
  return v;
}

bool ParseEntity(const json& doc, const char* name, Ent* out, std::string* error) {
  if (!doc.contains(name)) {
    *error = std::string("missing `") + name + "`";
    return false;
  }
  const json& e = doc[name];
  if (!e.is_object() || !e.contains("uid") || !e["uid"].is_string()) {
    *error = std::string("`") + name + "` must be an object with a string `uid`";
    return false;
  }
  std::string type, id;
  if (!ParseUid(e["uid"].get<std::string>(), &type, &id)) {
    *error = std::string("bad uid in `") + name + "`";
    return false;
  }
  out->type = type;
  out->uid = Entity(type, id).s;
  out->attrs = EmptyRecord();
  if (e.contains("attrs")) {
    if (!e["attrs"].is_object()) {
      *error = std::string("`") + name + ".attrs` must be an object";
      return false;
    }
    out->attrs = FromJson(e["attrs"]);
    if (out->attrs.k != K::kRecord) {  // {"__entity": ...} as attrs
      *error = std::string("`") + name + ".attrs` must be a record";
      return false;
    }
  }
  if (e.contains("parents")) {
    if (!e["parents"].is_array()) {
      *error = std::string("`") + name + ".parents` must be an array";
      return false;
    }
    for (const auto& p : e["parents"]) {
      std::string pt, pid;
      if (!p.is_string() || !ParseUid(p.get<std::string>(), &pt, &pid)) {
        *error = std::string("bad parent uid in `") + name + "`";
        return false;
      }
      out->parents.insert(Entity(pt, pid).s);
    }
  }
  return true;
}

// CHOICE: `principal`, `resource` (objects with a valid `uid`) and `action` (a string) are
// required; `attrs` must be an object and `parents` an array of uid strings when present;
// `args`, `context`, `call` must be objects when present (missing: empty records).
bool ParseRequest(const json& doc, Req* out, std::string* error) {
  if (!doc.is_object()) {
    *error = "request must be an object";
    return false;
  }
  if (!ParseEntity(doc, "principal", &out->principal, error)) return false;
  if (!ParseEntity(doc, "resource", &out->resource, error)) return false;
  if (!doc.contains("action") || !doc["action"].is_string()) {
    *error = "`action` must be a string";
    return false;
  }
  out->action.type = "Action";
  out->action.uid = Entity("Action", doc["action"].get<std::string>()).s;
  out->action.attrs = EmptyRecord();
  for (const char* sec : {"args", "context", "call"}) {
    Val* dest = std::string(sec) == "args" ? &out->args
                : std::string(sec) == "context" ? &out->context
                                                : &out->call;
    *dest = EmptyRecord();
    if (!doc.contains(sec)) continue;
    if (!doc[sec].is_object()) {
      *error = std::string("`") + sec + "` must be an object";
      return false;
    }
    *dest = FromJson(doc[sec]);
    if (dest->k != K::kRecord) {
      *error = std::string("`") + sec + "` must be a record";
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Expressions

class Evaluator {
 public:
  explicit Evaluator(const Req& req) : req_(req) {}

  Val Eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kBool: return Bool(e.b);
      case ExprKind::kLong: return Long(e.i);
      case ExprKind::kString: return Str(e.str);
      case ExprKind::kDuration: {
        Val v = Long(e.i);
        v.k = K::kDuration;
        return v;
      }
      case ExprKind::kEntity: return Entity(e.type, e.str);
      case ExprKind::kSymbol: return Err();  // only in obligation arguments, read there
      case ExprKind::kVar: return Var(e.str);
      case ExprKind::kSet: {
        Val v;
        v.k = K::kSet;
        bool unknown = false;
        for (const auto& kid : e.kids) {
          Val x = Eval(*kid);
          if (DeepErr(x)) return Err();
          if (x.k == K::kUnknown) unknown = true;
          v.elems.push_back(std::move(x));
        }
        return unknown ? Unk() : v;
      }
      case ExprKind::kRecord: {
        std::map<std::string, Val> m;
        bool unknown = false;
        for (size_t k = 0; k < e.kids.size(); ++k) {
          Val x = Eval(*e.kids[k]);
          if (DeepErr(x)) return Err();
          if (x.k == K::kUnknown) unknown = true;
          m[e.keys[k]] = std::move(x);
        }
        if (unknown) return Unk();
        Val v;
        v.k = K::kRecord;
        for (auto& [key, x] : m) v.fields.emplace_back(key, std::move(x));
        return v;
      }
      case ExprKind::kAttr: return Attr(Eval(*e.kids[0]), e.str);
      case ExprKind::kHas: return Has(Eval(*e.kids[0]), e.str);
      case ExprKind::kLike: {
        Val s = Eval(*e.kids[0]);
        if (s.k == K::kUnknown) return Unk();
        if (s.k != K::kString) return Err();
        return Bool(Like(s.s, e.pattern.chunks));
      }
      case ExprKind::kMatches: {
        Val s = Eval(*e.kids[0]);
        if (s.k == K::kUnknown) return Unk();
        const RE2* re = Regex(e.str);
        if (s.k != K::kString || re == nullptr) return Err();
        return Bool(RE2::PartialMatch(s.s, *re));
      }
      case ExprKind::kIs: {
        // `x is T in E` = `x is T && x in E` (Kleene: a type mismatch is false even if E errs).
        Val x = Eval(*e.kids[0]);
        if (x.k == K::kUnknown) return Unk();
        if (x.k != K::kEntity) return Err();
        Val is = Bool(x.etype == e.type);
        if (e.kids.size() == 1) return is;
        return And({is, In(x, Eval(*e.kids[1]))});
      }
      case ExprKind::kMethod: return Method(e);
      case ExprKind::kCall: {
        // ip(<string literal>) is the only function (cst_to_ast checks).
        if (e.str != "ip" || e.kids.size() != 1) return Err();
        Val s = Eval(*e.kids[0]);
        if (s.k == K::kUnknown) return Unk();
        Ip ip;
        if (s.k != K::kString || !ParseIp(s.s, &ip)) return Err();
        Val v;
        v.k = K::kIp;
        v.ip = ip;
        return v;
      }
      case ExprKind::kNot: {
        Val x = Eval(*e.kids[0]);
        if (x.k == K::kUnknown) return Unk();
        if (x.k != K::kBool) return Err();
        return Bool(!x.b);
      }
      case ExprKind::kNeg: {
        Val x = Eval(*e.kids[0]);
        if (x.k == K::kUnknown) return Unk();
        if (x.k != K::kLong || x.i == INT64_MIN) return Err();
        return Long(-x.i);
      }
      case ExprKind::kBinary: return Binary(e.op, Eval(*e.kids[0]), Eval(*e.kids[1]));
      case ExprKind::kAnd:
      case ExprKind::kOr: {
        std::vector<Val> parts;
        for (const auto& kid : e.kids) parts.push_back(Eval(*kid));
        return e.kind == ExprKind::kAnd ? And(parts) : Or(parts);
      }
      case ExprKind::kIf: {
        Val c = Eval(*e.kids[0]);
        if (c.k == K::kUnknown) return Unk();
        if (c.k != K::kBool) return Err();
        return Eval(*e.kids[c.b ? 1 : 2]);
      }
    }
    return Err();
  }

  // Kleene conjunction / disjunction over any number of operands; a non-Bool is an error.
  static Val And(const std::vector<Val>& parts) {
    bool unknown = false, error = false;
    for (const auto& p : parts) {
      if (p.k == K::kBool && !p.b) return Bool(false);
      if (p.k == K::kUnknown) unknown = true;
      else if (p.k != K::kBool) error = true;
    }
    if (unknown) return Unk();
    if (error) return Err();
    return Bool(true);
  }
  static Val Or(const std::vector<Val>& parts) {
    bool unknown = false, error = false;
    for (const auto& p : parts) {
      if (p.k == K::kBool && p.b) return Bool(true);
      if (p.k == K::kUnknown) unknown = true;
      else if (p.k != K::kBool) error = true;
    }
    if (unknown) return Unk();
    if (error) return Err();
    return Bool(false);
  }

  Val Var(const std::string& name) {
    if (name == "principal") return EntityOf(req_.principal, 0);
    if (name == "resource" || name == "tool") return EntityOf(req_.resource, 1);
    if (name == "action") return EntityOf(req_.action, -1);
    if (name == "args") return req_.args;
    if (name == "context") return req_.context;
    if (name == "call") return req_.call;
    return Err();
  }

 private:
  static Val EntityOf(const Ent& e, int who) {
    Val v;
    v.k = K::kEntity;
    v.s = e.uid;
    v.etype = e.type;
    v.who = who;
    return v;
  }

  // CHOICE: an entity value has attributes and parents only if it *is* the request's principal
  // or resource (it came from the variable, possibly through if/record/...); an entity literal
  // or JSON entity reference with the same uid has none.
  const Ent* EntityData(const Val& v) const {
    if (v.k != K::kEntity) return nullptr;
    if (v.who == 0) return &req_.principal;
    if (v.who == 1) return &req_.resource;
    return nullptr;
  }

  Val Attr(const Val& x, const std::string& name) {
    if (x.k == K::kUnknown) return Unk();
    const Val* rec = nullptr;
    if (x.k == K::kRecord) rec = &x;
    if (const Ent* ent = EntityData(x)) rec = &ent->attrs;
    if (rec == nullptr) return Err();
    const Val* f = Field(*rec, name);
    return f ? *f : Err();
  }

  // CHOICE: `has` is true when the key is present, even if its value is null (an error when
  // read): fail closed, `args has amount && args.amount > 5` errs rather than being false.
  Val Has(const Val& x, const std::string& name) {
    if (x.k == K::kUnknown) return Unk();
    if (x.k == K::kRecord) return Bool(Field(x, name) != nullptr);
    if (x.k == K::kEntity) {
      const Ent* ent = EntityData(x);
      return Bool(ent != nullptr && Field(ent->attrs, name) != nullptr);
    }
    return Err();
  }

  // Operands used as whole values: error if they hold an error anywhere.
  static bool Strict(const Val& v) { return DeepErr(v); }

  Val In(const Val& x, const Val& y) {
    if (Strict(x) || Strict(y)) return Err();
    if (x.k == K::kUnknown || y.k == K::kUnknown) return Unk();
    if (y.k == K::kEntity) {
      if (x.k != K::kEntity) return Err();
      return Bool(EntityIn(x, y));
    }
    if (y.k == K::kSet) {
      if (x.k == K::kEntity) {
        for (const auto& el : y.elems) {
          if (el.k == K::kEntity && EntityIn(x, el)) return Bool(true);
        }
        return Bool(false);
      }
      return Bool(SetHas(y, x));
    }
    return Err();
  }

  bool EntityIn(const Val& x, const Val& e) const {
    if (x.s == e.s) return true;
    const Ent* ent = EntityData(x);
    return ent != nullptr && ent->parents.count(e.s) > 0;
  }

  Val Binary(BinOp op, const Val& a, const Val& b) {
    if (op == BinOp::kIn) return In(a, b);
    if (Strict(a) || Strict(b)) return Err();
    if (a.k == K::kUnknown || b.k == K::kUnknown) return Unk();
    switch (op) {
      case BinOp::kEq: return Bool(Equal(a, b));
      case BinOp::kNe: return Bool(!Equal(a, b));
      case BinOp::kLt:
      case BinOp::kLe:
      case BinOp::kGt:
      case BinOp::kGe: {
        bool ok = (a.k == K::kLong && b.k == K::kLong) ||
                  (a.k == K::kDuration && b.k == K::kDuration);
        if (!ok) return Err();
        bool r = op == BinOp::kLt   ? a.i < b.i
                 : op == BinOp::kLe ? a.i <= b.i
                 : op == BinOp::kGt ? a.i > b.i
                                    : a.i >= b.i;
        return Bool(r);
      }
      case BinOp::kAdd:
      case BinOp::kSub:
      case BinOp::kMul: {
        if (a.k != K::kLong || b.k != K::kLong) return Err();
        int64_t r = 0;
        bool overflow = op == BinOp::kAdd   ? __builtin_add_overflow(a.i, b.i, &r)
                        : op == BinOp::kSub ? __builtin_sub_overflow(a.i, b.i, &r)
                                            : __builtin_mul_overflow(a.i, b.i, &r);
        return overflow ? Err() : Long(r);
      }
      default: return Err();
    }
  }

  Val Method(const Expr& e) {
    Val self = Eval(*e.kids[0]);
    std::vector<Val> args;
    for (size_t k = 1; k < e.kids.size(); ++k) args.push_back(Eval(*e.kids[k]));
    for (const auto& v : args) {
      if (Strict(v)) return Err();
    }
    if (Strict(self)) return Err();
    bool unknown = self.k == K::kUnknown;
    for (const auto& v : args) unknown |= v.k == K::kUnknown;
    if (unknown) return Unk();
    const std::string& m = e.str;
    if (m == "lower") {
      if (self.k != K::kString || !args.empty()) return Err();
      std::string s = self.s;
      for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      return Str(s);
    }
    if (m == "isEmpty") {
      if (self.k != K::kSet || !args.empty()) return Err();
      return Bool(self.elems.empty());
    }
    if (args.size() != 1) return Err();
    const Val& arg = args[0];
    if (m == "contains") {
      if (self.k != K::kSet) return Err();
      return Bool(SetHas(self, arg));
    }
    if (m == "containsAll" || m == "containsAny") {
      if (self.k != K::kSet || arg.k != K::kSet) return Err();
      bool all = true, any = false;
      for (const auto& x : arg.elems) {
        bool has = SetHas(self, x);
        all &= has;
        any |= has;
      }
      return Bool(m == "containsAll" ? all : any);
    }
    if (m == "isInRange") {
      Ip a, b;
      if (!AsIp(self, &a) || !AsIp(arg, &b)) return Err();
      return Bool(IpWithin(a, b));
    }
    return Err();
  }

  static bool AsIp(const Val& v, Ip* out) {
    if (v.k == K::kIp) {
      *out = v.ip;
      return true;
    }
    return v.k == K::kString && ParseIp(v.s, out);
  }

  const Req& req_;
};

// ---------------------------------------------------------------------------------------
// Statements

bool ScopeMatches(const ast::Scope& sc, const Ent& ent) {
  auto in = [&](const ast::EntityUid& u) {
    std::string uid = u.ToString();
    return ent.uid == uid || ent.parents.count(uid) > 0;
  };
  switch (sc.op) {
    case ast::ScopeOp::kAny: return true;
    case ast::ScopeOp::kEq: return !sc.entities.empty() && ent.uid == sc.entities[0].ToString();
    case ast::ScopeOp::kIn: return std::any_of(sc.entities.begin(), sc.entities.end(), in);
    case ast::ScopeOp::kIs: return ent.type == sc.is_type;
    case ast::ScopeOp::kIsIn:
      return ent.type == sc.is_type && std::any_of(sc.entities.begin(), sc.entities.end(), in);
  }
  return false;
}

// The statement's formula: scope && when.. && !unless..; for a rule, its `if` expression.
Val Formula(const ast::Statement& st, const Req& req) {
  Evaluator ev(req);
  if (st.effect == ast::Effect::kRule) {
    return Evaluator::And({ev.Eval(*st.rule_condition)});  // a non-Bool is an error
  }
  std::vector<Val> parts;
  parts.push_back(Bool(ScopeMatches(st.principal, req.principal)));
  parts.push_back(Bool(ScopeMatches(st.action, req.action)));
  parts.push_back(Bool(ScopeMatches(st.resource, req.resource)));
  for (const auto& c : st.conditions) {
    Val v = ev.Eval(*c.expr);
    if (c.unless) {
      if (v.k == K::kBool) v = Bool(!v.b);
      else if (v.k != K::kUnknown) v = Err();
    }
    parts.push_back(std::move(v));
  }
  return Evaluator::And(parts);
}

struct Matched {
  const ast::Statement* st;
  bool errored;
};

struct Outcome {
  std::string decision;
  std::set<std::string> determining, errors;
  std::vector<Matched> matched;
};

// Combining, docs/semantics.md "Combining": one exhaustive rule list.
Outcome Combine(const ast::PolicySet& policies, const Req& req) {
  Outcome out;
  bool any_forbid = false, any_permit = false, any_approval = false;
  for (const ast::Statement* st : policies.AllStatements()) {
    Val f = Formula(*st, req);
    bool is_true = f.k == K::kBool && f.b;
    bool is_error = f.k != K::kBool;  // (no Unknown in concrete mode)
    if (is_error) out.errors.insert(st->id);
    bool matches = st->effect == ast::Effect::kPermit ? is_true : (is_true || is_error);
    if (!matches) continue;
    out.matched.push_back({st, is_error});
    if (st->effect == ast::Effect::kForbid) any_forbid = true;
    if (st->effect == ast::Effect::kPermit) any_permit = true;
    if (st->HasObligation(ast::ObligationKind::kRequireApproval)) any_approval = true;
  }
  if (any_forbid) {
    out.decision = "deny";
    for (const auto& m : out.matched) {
      if (m.st->effect == ast::Effect::kForbid) out.determining.insert(m.st->id);
    }
  } else if (!any_permit) {
    out.decision = "deny";
  } else if (any_approval) {
    out.decision = "require_approval";
    for (const auto& m : out.matched) {
      if (m.st->effect == ast::Effect::kPermit ||
          m.st->HasObligation(ast::ObligationKind::kRequireApproval)) {
        out.determining.insert(m.st->id);
      }
    }
  } else {
    out.decision = "allow";
    for (const auto& m : out.matched) {
      if (m.st->effect == ast::Effect::kPermit) out.determining.insert(m.st->id);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Obligations

std::string WritQuote(const std::string& s) { return QuoteWrit(s); }

std::string IpText(const Ip& ip) {
  char buf[64];
  inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.addr, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(ip.prefix);
}

// Writ syntax, canonical: sets sorted and deduplicated by rendering, record keys sorted.
std::string WritText(const Val& v) {
  switch (v.k) {
    case K::kBool: return v.b ? "true" : "false";
    case K::kLong: return std::to_string(v.i);
    case K::kDuration: return std::to_string(v.i) + "ms";
    case K::kString: return WritQuote(v.s);
    case K::kEntity: return v.s;
    case K::kIp: return "ip(" + WritQuote(IpText(v.ip)) + ")";
    case K::kSet: {
      std::set<std::string> parts;
      for (const auto& e : v.elems) parts.insert(WritText(e));
      std::string out = "[";
      for (const auto& p : parts) out += (out.size() > 1 ? ", " : "") + p;
      return out + "]";
    }
    case K::kRecord: {
      std::string out = "{";
      for (const auto& [key, x] : v.fields) {
        out += (out.size() > 1 ? ", " : "") + WritQuote(key) + ": " + WritText(x);
      }
      return out + "}";
    }
    default: return "<error>";
  }
}

// CHOICE: rate-limit key rendering. Entity: `Type::"id"`; String: itself; Long and Bool:
// compact JSON (`42`, `true`); Duration `<ms>ms`; IP `ip("a.b.c.d/n")`; Set/Record: Writ
// syntax as WritText (sets sorted by rendering, deduplicated; records `{"k": v}` sorted by key;
// ", " and ": " separators); an error anywhere in the key: "<error>".
std::string KeyText(const Val& v) {
  if (DeepErr(v) || v.k == K::kUnknown) return "<error>";
  if (v.k == K::kString) return v.s;
  return WritText(v);
}

int LogRank(const std::string& level) {
  static const char* kLevels[] = {"debug", "info", "notice", "warning", "error", "critical"};
  for (int r = 0; r < 6; ++r) {
    if (level == kLevels[r]) return r;
  }
  return -1;
}

struct RateLimit {
  int64_t limit, per_ms;
};

// CHOICE: merging. require_approval: each statement without `approvers:` contributes
// "default", without `timeout:` contributes 15m; approvers = sorted union, timeout = min.
// redact: one entry whose `targets` is the sorted union of every redact target. tag: one
// entry per distinct value; reason: one per distinct message; notify: one per distinct
// (channel, target); each sorted. rate_limit: one per distinct key, sorted by key text.
json MergeObligations(const std::vector<Matched>& matched, const Req& req) {
  bool approval = false;
  std::set<std::string> approvers;
  int64_t timeout = INT64_MAX;
  std::map<std::string, RateLimit> rates;
  std::set<std::string> redacts, tags, reasons;
  std::set<std::pair<std::string, std::string>> notifies;
  int log = -1;
  for (const auto& m : matched) {
    for (const auto& ob : m.st->obligations) {
      auto named = [&](const char* name) -> const Expr* {
        for (const auto& a : ob.args) {
          if (a.name == name) return a.value.get();
        }
        return nullptr;
      };
      switch (ob.kind) {
        case ast::ObligationKind::kRequireApproval: {
          approval = true;
          const Expr* ap = named("approvers");
          if (ap == nullptr) {
            approvers.insert("default");
          } else if (ap->kind == ExprKind::kString) {
            approvers.insert(ap->str);
          } else {
            for (const auto& k : ap->kids) approvers.insert(k->str);
          }
          const Expr* to = named("timeout");
          timeout = std::min<int64_t>(timeout, to ? to->i : 900000);
          break;
        }
        case ast::ObligationKind::kRateLimit: {
          const Expr* key = named("key");
          Evaluator ev(req);
          std::string text = KeyText(key ? ev.Eval(*key) : ev.Var("principal"));
          RateLimit r{named("limit")->i, named("per")->i};
          auto it = rates.find(text);
          if (it == rates.end()) {
            rates.emplace(text, r);
          } else {
            // Stricter: smaller limit/per; on a tie the smaller limit.
            __int128 lhs = static_cast<__int128>(r.limit) * it->second.per_ms;
            __int128 rhs = static_cast<__int128>(it->second.limit) * r.per_ms;
            if (lhs < rhs || (lhs == rhs && r.limit < it->second.limit)) it->second = r;
          }
          break;
        }
        case ast::ObligationKind::kRedact:
          for (const auto& a : ob.args) redacts.insert(a.value->str);
          break;
        case ast::ObligationKind::kNotify:
          notifies.insert({ob.args[0].value->str, ob.args[1].value->str});
          break;
        case ast::ObligationKind::kLog:
          log = std::max(log, LogRank(ob.args[0].value->str));
          break;
        case ast::ObligationKind::kTag:
          for (const auto& a : ob.args) tags.insert(a.value->str);
          break;
        case ast::ObligationKind::kReason:
          reasons.insert(ob.args[0].value->str);
          break;
      }
    }
  }
  json out = json::array();
  if (approval) {
    out.push_back({{"kind", "require_approval"},
                   {"approvers", json(std::vector<std::string>(approvers.begin(), approvers.end()))},
                   {"timeout_ms", timeout}});
  }
  for (const auto& [key, r] : rates) {
    out.push_back({{"kind", "rate_limit"}, {"key", key}, {"limit", r.limit}, {"per_ms", r.per_ms}});
  }
  if (!redacts.empty()) {
    out.push_back({{"kind", "redact"},
                   {"targets", json(std::vector<std::string>(redacts.begin(), redacts.end()))}});
  }
  for (const auto& [ch, tg] : notifies) {
    out.push_back({{"kind", "notify"}, {"channel", ch}, {"target", tg}});
  }
  if (log >= 0) {
    static const char* kLevels[] = {"debug", "info", "notice", "warning", "error", "critical"};
    out.push_back({{"kind", "log"}, {"level", kLevels[log]}});
  }
  for (const auto& t : tags) out.push_back({{"kind", "tag"}, {"value", t}});
  for (const auto& r : reasons) out.push_back({{"kind", "reason"}, {"message", r}});
  return out;
}

// ---------------------------------------------------------------------------------------
// Visibility

// The sound abstract answer: `args` is Unknown.
std::string AbstractVisibility(const ast::PolicySet& policies, const Req& req) {
  bool forbid_certain = false, forbid_possible = false;
  bool permit_certain = false, permit_possible = false;
  for (const ast::Statement* st : policies.AllStatements()) {
    Val f = Formula(*st, req);
    bool t = f.k == K::kBool && f.b;
    bool fl = f.k == K::kBool && !f.b;
    bool u = f.k == K::kUnknown;
    if (st->effect == ast::Effect::kForbid) {
      forbid_certain |= !fl && !u;  // true or error
      forbid_possible |= !fl;
    } else if (st->effect == ast::Effect::kPermit) {
      permit_certain |= t;
      permit_possible |= t || u;
    }
  }
  if (forbid_certain || !permit_possible) return "deny";
  if (!forbid_possible && permit_certain) return "allow";
  return "depends-on-args";
}

// Every path `args.a.b...` read in the policy set, and every literal (as JSON candidates).
void Collect(const Expr& e, std::set<std::vector<std::string>>* paths, std::vector<json>* lits) {
  // An attribute chain rooted at `args`.
  std::vector<std::string> path;
  const Expr* x = &e;
  while (x->kind == ExprKind::kAttr || x->kind == ExprKind::kHas) {
    path.insert(path.begin(), x->str);
    x = x->kids[0].get();
  }
  if (x->kind == ExprKind::kVar && x->str == "args" && !path.empty()) paths->insert(path);
  switch (e.kind) {
    case ExprKind::kLong:
      lits->push_back(e.i);
      if (e.i < INT64_MAX) lits->push_back(e.i + 1);
      if (e.i > INT64_MIN) lits->push_back(e.i - 1);
      lits->push_back(std::to_string(e.i));
      break;
    case ExprKind::kString: lits->push_back(e.str); break;
    case ExprKind::kEntity: lits->push_back({{"__entity", Entity(e.type, e.str).s}}); break;
    case ExprKind::kLike: {
      std::string s;
      for (const auto& c : e.pattern.chunks) s += c;
      lits->push_back(s);
      lits->push_back(s + "x");
      break;
    }
    default: break;
  }
  for (const auto& k : e.kids) Collect(*k, paths, lits);
}

json RandomValue(std::mt19937_64& rng, const std::vector<json>& lits, int depth) {
  switch (rng() % 10) {
    case 0: return nullptr;
    case 1: return 1.5;
    case 2: return static_cast<int64_t>(rng() % 3) - 1;
    case 3: return rng() % 2 == 0;
    case 4:
      if (depth < 2) {
        json arr = json::array();
        for (int n = static_cast<int>(rng() % 3); n > 0; --n) arr.push_back(RandomValue(rng, lits, depth + 1));
        return arr;
      }
      return json::array();
    default:
      if (lits.empty()) return "x";
      return lits[rng() % lits.size()];
  }
}

std::string SampledVisibility(const ast::PolicySet& policies, const Req& base,
                              const json& request, int count, int* samples) {
  std::set<std::vector<std::string>> paths;
  std::vector<json> lits;
  for (const ast::Statement* st : policies.AllStatements()) {
    for (const auto& c : st->conditions) Collect(*c.expr, &paths, &lits);
    if (st->rule_condition) Collect(*st->rule_condition, &paths, &lits);
  }
  std::mt19937_64 rng(std::hash<std::string>()(request.dump()));
  bool saw_deny = false, saw_other = false;
  *samples = 0;
  for (int n = 0; n < count; ++n) {
    json args = json::object();
    if (n == 1 && request.contains("args") && request["args"].is_object()) {
      args = request["args"];
    } else if (n > 1) {
      for (const auto& p : paths) {
        if (rng() % 4 == 0) continue;  // leave missing
        json* at = &args;
        bool ok = true;
        for (size_t k = 0; k + 1 < p.size(); ++k) {
          if (!at->is_object()) {
            ok = false;
            break;
          }
          if (!at->contains(p[k]) || !(*at)[p[k]].is_object()) (*at)[p[k]] = json::object();
          at = &(*at)[p[k]];
        }
        if (ok && at->is_object()) (*at)[p.back()] = RandomValue(rng, lits, 0);
      }
    }
    Req req = base;
    req.args = FromJson(args);
    if (req.args.k != K::kRecord) continue;
    std::string d = Combine(policies, req).decision;
    (d == "deny" ? saw_deny : saw_other) = true;
    ++*samples;
  }
  if (saw_deny && saw_other) return "depends-on-args";
  return saw_deny ? "deny" : "allow";
}

}  // namespace

json ReferenceDecide(const ast::PolicySet& policies, const json& request) {
  Req req;
  std::string error;
  if (!ParseRequest(request, &req, &error)) return {{"error", error}};
  Outcome o = Combine(policies, req);
  return {{"decision", o.decision},
          {"determining", json(std::vector<std::string>(o.determining.begin(), o.determining.end()))},
          {"obligations", MergeObligations(o.matched, req)},
          {"errors", json(std::vector<std::string>(o.errors.begin(), o.errors.end()))}};
}

VisibilityDetail ReferenceVisibilityDetail(const ast::PolicySet& policies, const json& request,
                                           int sample_count) {
  VisibilityDetail d;
  Req req;
  std::string error;
  if (!ParseRequest(request, &req, &error)) {
    d.result = d.abstract = d.sampled = "error: " + error;
    return d;
  }
  Req unknown = req;
  unknown.args = Unk();
  d.abstract = AbstractVisibility(policies, unknown);
  d.sampled = SampledVisibility(policies, req, request, sample_count, &d.samples);
  d.result = d.abstract != "depends-on-args" ? d.abstract : d.sampled;
  return d;
}

std::string ReferenceVisibility(const ast::PolicySet& policies, const json& request) {
  Req req;
  std::string error;
  if (!ParseRequest(request, &req, &error)) return "error: " + error;
  Req unknown = req;
  unknown.args = Unk();
  std::string abstract = AbstractVisibility(policies, unknown);
  if (abstract != "depends-on-args") return abstract;  // sound: no need to sample
  int samples = 0;
  return SampledVisibility(policies, req, request, 32, &samples);
}

}  // namespace writ::reference
