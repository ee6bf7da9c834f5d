// ast_to_dag.cc -- formulas, atom programs and per-partition decision DAGs (see ast_to_dag.h).
#include "compiler/ast_to_dag.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "compiler/ast_dump.h"

namespace writ {
namespace {

using ast::Expr;
using ast::ExprKind;
using runtime::Insn;
using runtime::Op;
using runtime::kLeafBit;

enum class Tri : uint8_t { kTrue = 0, kFalse = 1, kError = 2 };

// ---- formulas: hash-consed Kleene expressions over atoms ----
struct Formula {
  enum Kind : uint8_t { kConst, kAtom, kNot, kAnd, kOr } kind;
  Tri value = Tri::kFalse;  // kConst
  uint32_t atom = 0;        // kAtom
  std::vector<uint32_t> kids;
  uint32_t min_atom = UINT32_MAX;  // smallest atom rank inside (UINT32_MAX for constants)
};

class Formulas {
 public:
  Formulas() {
    Const(Tri::kTrue);
    Const(Tri::kFalse);
    Const(Tri::kError);
  }
  const Formula& at(uint32_t id) const { return pool_[id]; }
  uint32_t Const(Tri v) { return Intern(Formula{Formula::kConst, v, 0, {}, UINT32_MAX}); }
  bool IsConst(uint32_t id) const { return pool_[id].kind == Formula::kConst; }
  uint32_t Atom(uint32_t atom, uint32_t rank) {
    return Intern(Formula{Formula::kAtom, Tri::kFalse, atom, {}, rank});
  }
  // Copies, never references, into pool_: interning a new formula may reallocate it.
  uint32_t Not(uint32_t f) {
    const Formula x = pool_[f];
    switch (x.kind) {
      case Formula::kConst:
        return Const(x.value == Tri::kTrue ? Tri::kFalse : x.value == Tri::kFalse ? Tri::kTrue : Tri::kError);
      case Formula::kNot: return x.kids[0];
      case Formula::kAnd:
      case Formula::kOr: {  // De Morgan holds in Kleene logic
        std::vector<uint32_t> kids;
        for (uint32_t k : std::vector<uint32_t>(x.kids)) kids.push_back(Not(k));
        return Junction(x.kind == Formula::kAnd ? Formula::kOr : Formula::kAnd, std::move(kids));
      }
      case Formula::kAtom: break;
    }
    Formula n{Formula::kNot, Tri::kFalse, 0, {f}, x.min_atom};
    return Intern(std::move(n));
  }
  // And / Or with constant folding: a dominating constant decides; identity constants drop;
  // error constants stay (error && x is false when x is false).
  uint32_t Junction(Formula::Kind kind, std::vector<uint32_t> kids) {
    const Tri dominating = kind == Formula::kAnd ? Tri::kFalse : Tri::kTrue;
    const Tri identity = kind == Formula::kAnd ? Tri::kTrue : Tri::kFalse;
    std::vector<uint32_t> flat;
    bool has_error = false;
    for (uint32_t k : kids) {
      const Formula x = pool_[k];
      if (x.kind == Formula::kConst) {
        if (x.value == dominating) return Const(dominating);
        if (x.value == Tri::kError) has_error = true;
        continue;  // identity
      }
      if (x.kind == kind) {
        for (uint32_t g : std::vector<uint32_t>(x.kids)) flat.push_back(g);
      } else {
        flat.push_back(k);
      }
    }
    std::sort(flat.begin(), flat.end());
    flat.erase(std::unique(flat.begin(), flat.end()), flat.end());
    if (has_error) flat.push_back(Const(Tri::kError));
    if (flat.empty()) return Const(identity);
    if (flat.size() == 1) return flat[0];
    uint32_t min_atom = UINT32_MAX;
    for (uint32_t k : flat) min_atom = std::min(min_atom, pool_[k].min_atom);
    return Intern(Formula{kind, Tri::kFalse, 0, std::move(flat), min_atom});
  }
  // The same formula with every atom's rank taken from rank_of[atom program].
  uint32_t Remap(uint32_t f, const std::vector<uint32_t>& rank_of, std::unordered_map<uint32_t, uint32_t>* memo) {
    auto it = memo->find(f);
    if (it != memo->end()) return it->second;
    const Formula x = pool_[f];
    uint32_t out = f;
    switch (x.kind) {
      case Formula::kConst: break;
      case Formula::kAtom: out = Atom(x.atom, rank_of[x.atom]); break;
      case Formula::kNot: out = Not(Remap(x.kids[0], rank_of, memo)); break;
      case Formula::kAnd:
      case Formula::kOr: {
        std::vector<uint32_t> kids;
        for (uint32_t k : x.kids) kids.push_back(Remap(k, rank_of, memo));
        out = Junction(x.kind, std::move(kids));
        break;
      }
    }
    (*memo)[f] = out;
    return out;
  }
  void CollectAtoms(uint32_t f, std::vector<uint32_t>* out) const {
    const Formula& x = pool_[f];
    if (x.kind == Formula::kAtom) out->push_back(x.atom);
    for (uint32_t k : x.kids) CollectAtoms(k, out);
  }

  // f with atom `rank` replaced by v.
  // f with atom `rank` replaced by v and every other atom for which implied(atom rank)
  // returns a value replaced by that value. Unlike Substitute it cannot skip formulas by rank
  // (implied atoms may rank anywhere above `rank`).
  template <typename Implied>
  uint32_t SubstituteImplied(uint32_t f, uint32_t rank, Tri v, const Implied& implied,
                             std::unordered_map<uint32_t, uint32_t>* memo) {
    const Formula x = pool_[f];
    if (x.kind == Formula::kConst) return f;
    auto it = memo->find(f);
    if (it != memo->end()) return it->second;
    uint32_t out = f;
    switch (x.kind) {
      case Formula::kConst: break;
      case Formula::kAtom:
        if (x.min_atom == rank) {
          out = Const(v);
        } else if (std::optional<Tri> w = implied(x.min_atom)) {
          out = Const(*w);
        }
        break;
      case Formula::kNot: out = Not(SubstituteImplied(x.kids[0], rank, v, implied, memo)); break;
      case Formula::kAnd:
      case Formula::kOr: {
        std::vector<uint32_t> kids;
        Formula::Kind kind = x.kind;
        for (uint32_t k : std::vector<uint32_t>(pool_[f].kids)) {
          kids.push_back(SubstituteImplied(k, rank, v, implied, memo));
        }
        out = Junction(kind, std::move(kids));
        break;
      }
    }
    (*memo)[f] = out;
    return out;
  }

  uint32_t Substitute(uint32_t f, uint32_t rank, Tri v, std::unordered_map<uint32_t, uint32_t>* memo) {
    const Formula x = pool_[f];
    if (x.min_atom > rank) return f;  // does not mention it (ranks below are already gone)
    auto it = memo->find(f);
    if (it != memo->end()) return it->second;
    uint32_t out = f;
    switch (x.kind) {
      case Formula::kConst: break;
      case Formula::kAtom: out = x.min_atom == rank ? Const(v) : f; break;
      case Formula::kNot: out = Not(Substitute(x.kids[0], rank, v, memo)); break;
      case Formula::kAnd:
      case Formula::kOr: {
        std::vector<uint32_t> kids;
        Formula::Kind kind = x.kind;
        for (uint32_t k : std::vector<uint32_t>(pool_[f].kids)) kids.push_back(Substitute(k, rank, v, memo));
        out = Junction(kind, std::move(kids));
        break;
      }
    }
    (*memo)[f] = out;
    return out;
  }

 private:
  uint32_t Intern(Formula f) {
    std::string key;
    key += static_cast<char>(f.kind);
    key += static_cast<char>(f.value);
    key.append(reinterpret_cast<const char*>(&f.atom), 4);
    if (f.kind == Formula::kAtom) key.append(reinterpret_cast<const char*>(&f.min_atom), 4);  // its rank
    for (uint32_t k : f.kids) key.append(reinterpret_cast<const char*>(&k), 4);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;
    pool_.push_back(std::move(f));
    uint32_t id = static_cast<uint32_t>(pool_.size() - 1);
    index_.emplace(std::move(key), id);
    return id;
  }
  std::vector<Formula> pool_;
  std::unordered_map<std::string, uint32_t> index_;
};

// ---- the compiler proper ----
class DagBuilder {
 public:
  DagBuilder(const SourceMap& sources, const CompileOptions& opts, BundleTables* t)
      : sources_(sources), opts_(opts), t_(t) {}

  bool Run(const ast::PolicySet& set, std::string* dump, std::string* error) {
    std::vector<const ast::Statement*> stmts = set.AllStatements();
    // Switch key (action, resource, resource_in, principal, principal_in) -> statements.
    std::map<std::tuple<uint32_t, uint32_t, uint8_t, uint32_t, uint8_t>, std::vector<uint32_t>> parts;
    std::vector<uint32_t> formulas;
    for (uint32_t i = 0; i < stmts.size(); ++i) {
      const ast::Statement& s = *stmts[i];
      if (!Meta(s, error)) return false;
      uint32_t f = StatementFormula(s, error);
      if (!error->empty()) return false;
      formulas.push_back(f);
      std::vector<uint32_t> actions;
      if (s.effect != ast::Effect::kRule && s.action.op != ast::ScopeOp::kAny &&
          s.action.op != ast::ScopeOp::kIs) {
        for (const auto& e : s.action.entities) actions.push_back(Str(e.ToString()));
      }
      if (actions.empty()) actions.push_back(runtime::kAnyKey);
      std::vector<std::pair<uint32_t, uint8_t>> resources;
      const ast::Scope& r = s.resource;
      if (s.effect != ast::Effect::kRule) {
        if (r.op == ast::ScopeOp::kEq) resources.push_back({Str(r.entities[0].ToString()), 0});
        if (r.op == ast::ScopeOp::kIn || r.op == ast::ScopeOp::kIsIn) {
          for (const auto& e : r.entities) resources.push_back({Str(e.ToString()), 1});
        }
      }
      if (resources.empty()) resources.push_back({runtime::kAnyKey, 0});
      std::vector<std::pair<uint32_t, uint8_t>> principals = ScopeKeys(s, s.principal);
      std::sort(actions.begin(), actions.end());
      actions.erase(std::unique(actions.begin(), actions.end()), actions.end());
      std::sort(resources.begin(), resources.end());
      resources.erase(std::unique(resources.begin(), resources.end()), resources.end());
      for (uint32_t a : actions) {
        for (auto [res, rin] : resources) {
          for (auto [pr, pin] : principals) parts[{a, res, rin, pr, pin}].push_back(i);
        }
      }
    }
    stmts_ = stmts;
    OrderAtomsByFrequency(&formulas);
    std::ostringstream d;
    d << "atoms:\n";
    for (size_t a = 0; a < atom_text_.size(); ++a) {
      d << "  a" << a << (t_->programs[a].reads_args ? " [args]" : "") << ": " << atom_text_[a] << "\n";
    }
    for (uint32_t i = 0; i < stmts.size(); ++i) {
      t_->statements[i].formula = FormulaProgram(i, formulas[i], error);
      if (!error->empty()) return false;
    }
    for (auto& [key, members] : parts) {
      auto [action, res, in, pr, pin] = key;
      runtime::SwitchEntry e{action, res, pr, in, pin, {0, 0}, static_cast<uint32_t>(t_->partition_pool.size()), 0};
      d << "partition action " << KeyText(action) << " resource " << (in ? "in " : "== ") << KeyText(res)
        << " principal " << (pin ? "in " : "== ") << KeyText(pr) << ": statements [";
      for (size_t k = 0; k < members.size(); ++k) d << (k ? " " : "") << t_->strings[t_->statements[members[k]].id];
      d << "]\n";
      std::vector<uint32_t> roots[3];
      size_t chunks = 1;
      for (int k = 0; k < 3; ++k) {
        auto kind = static_cast<runtime::DagKind>(k);
        std::vector<Item> items;
        for (uint32_t m : members) {
          if (InDag(m, kind)) {
            items.push_back(Item{stmts_[m]->effect == ast::Effect::kPermit ? 0u : 1u, formulas[m]});
          }
        }
        kind_ = kind;
        roots[k] = items.empty() ? std::vector<uint32_t>{Leaf(false)} : BuildChunks(kind, items, &d);
        chunks = std::max(chunks, roots[k].size());
      }
      // Chunk c holds the c-th DAG of each kind (a "no" leaf where a kind has fewer); the
      // first chunk lists every statement of the entry (for decision details).
      for (size_t c = 0; c < chunks; ++c) {
        runtime::Partition p{{0, 0, 0}, static_cast<uint32_t>(t_->stmt_pool.size()), 0};
        for (int k = 0; k < 3; ++k) {
          kind_ = static_cast<runtime::DagKind>(k);
          p.root[k] = c < roots[k].size() ? roots[k][c] : Leaf(false);
        }
        if (c == 0) {
          t_->stmt_pool.insert(t_->stmt_pool.end(), members.begin(), members.end());
          p.stmt_count = static_cast<uint32_t>(members.size());
        }
        t_->partitions.push_back(p);
        t_->partition_pool.push_back(static_cast<uint32_t>(t_->partitions.size() - 1));
      }
      e.partition_count = static_cast<uint32_t>(t_->partition_pool.size()) - e.partition_begin;
      t_->switch_entries.push_back(e);
    }
    for (const std::string& text : atom_text_) t_->program_text.push_back(Str(text));
    FinishNodes(&d);
    *dump = d.str();
    return true;
  }

 private:
  // The switch keys of a principal scope: (uid, 0) for ==, (entity, 1) for each `in` target,
  // (any, 0) otherwise (`is` alone is tested in the formula). Rules have no scope.
  std::vector<std::pair<uint32_t, uint8_t>> ScopeKeys(const ast::Statement& s, const ast::Scope& sc) {
    std::vector<std::pair<uint32_t, uint8_t>> keys;
    if (s.effect != ast::Effect::kRule) {
      if (sc.op == ast::ScopeOp::kEq) keys.push_back({Str(sc.entities[0].ToString()), 0});
      if (sc.op == ast::ScopeOp::kIn || sc.op == ast::ScopeOp::kIsIn) {
        for (const auto& e : sc.entities) keys.push_back({Str(e.ToString()), 1});
      }
    }
    if (keys.empty()) keys.push_back({runtime::kAnyKey, 0});
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  std::string KeyText(uint32_t k) { return k == runtime::kAnyKey ? "*" : t_->strings[k]; }

  uint32_t Str(const std::string& s) {
    auto it = strings_.find(s);
    if (it != strings_.end()) return it->second;
    t_->strings.push_back(s);
    uint32_t id = static_cast<uint32_t>(t_->strings.size() - 1);
    strings_.emplace(s, id);
    return id;
  }
  uint32_t LongIdx(int64_t v) {
    auto it = longs_.find(v);
    if (it != longs_.end()) return it->second;
    t_->longs.push_back(v);
    return longs_[v] = static_cast<uint32_t>(t_->longs.size() - 1);
  }

  // ---- statement metadata and obligations ----
  bool Meta(const ast::Statement& s, std::string* error) {
    runtime::StatementMeta m{};
    m.id = Str(s.id);
    m.effect = static_cast<uint8_t>(s.effect);
    const SourceFile& f = sources_.file(s.span.file);
    m.file = Str(f.path());
    LineCol lc = f.Locate(s.span.begin);
    m.line = lc.line;
    m.col = lc.col;
    m.begin = s.span.begin;
    m.end = s.span.end;
    nlohmann::json obs = nlohmann::json::array();
    m.rate_key_begin = static_cast<uint32_t>(t_->program_pool.size());
    for (const auto& o : s.obligations) {
      nlohmann::json j{{"kind", ast::ObligationName(o.kind)}};
      auto named = [&](const char* n) -> const Expr* {
        for (const auto& a : o.args) {
          if (a.name == n) return a.value.get();
        }
        return nullptr;
      };
      std::vector<std::string> strs;
      for (const auto& a : o.args) {
        if (a.name.empty() && (a.value->kind == ExprKind::kString || a.value->kind == ExprKind::kSymbol)) {
          strs.push_back(a.value->str);
        }
      }
      switch (o.kind) {
        case ast::ObligationKind::kRequireApproval: {
          nlohmann::json ap = nlohmann::json::array();
          if (const Expr* e = named("approvers")) {
            if (e->kind == ExprKind::kString) ap.push_back(e->str);
            for (const auto& k : e->kids) ap.push_back(k->str);
          }
          if (!ap.empty()) j["approvers"] = ap;
          if (const Expr* e = named("timeout")) j["timeout_ms"] = e->i;
          break;
        }
        case ast::ObligationKind::kRateLimit: {
          j["limit"] = named("limit") ? named("limit")->i : 1;
          j["per_ms"] = named("per") ? named("per")->i : 1;
          ProgramBuilder pb(this);
          const Expr* key = named("key");
          if (key != nullptr) {
            pb.Emit(*key);
          } else {
            pb.Push({Op::kPushVar, 0, 0, 0});
          }
          uint32_t prog = pb.Finish("rate_limit key", error);
          if (!error->empty()) return false;
          t_->program_pool.push_back(prog);
          break;
        }
        case ast::ObligationKind::kRedact: j["targets"] = strs; break;
        case ast::ObligationKind::kNotify:
          j["channel"] = strs.size() > 0 ? strs[0] : "";
          j["target"] = strs.size() > 1 ? strs[1] : "";
          break;
        case ast::ObligationKind::kLog: j["level"] = strs.empty() ? "info" : strs[0]; break;
        case ast::ObligationKind::kTag: j["values"] = strs; break;
        case ast::ObligationKind::kReason: j["message"] = strs.empty() ? "" : strs[0]; break;
      }
      obs.push_back(std::move(j));
    }
    m.rate_key_count = static_cast<uint32_t>(t_->program_pool.size()) - m.rate_key_begin;
    m.obligations = Str(obs.dump());
    t_->statements.push_back(m);
    return true;
  }

  // ---- programs ----
  class ProgramBuilder {
   public:
    explicit ProgramBuilder(DagBuilder* d) : d_(d) {}
    void Push(Insn in) {
      code_.push_back(in);
      int pops = 0, pushes = 1;
      switch (in.op) {
#define WRIT_X(name, p, q, doc) \
  case Op::name:                \
    pops = p;                   \
    pushes = q;                 \
    break;
        WRIT_OPCODES(WRIT_X)
#undef WRIT_X
        default: break;
      }
      if (in.op == Op::kMakeSet || in.op == Op::kMakeRecord) pops = static_cast<int>(in.c);
      depth_ += pushes - pops;
      max_depth_ = std::max(max_depth_, depth_);
      if (in.op == Op::kPushSlot && d_->t_->slots[in.c].root == runtime::SlotRoot::kArgs) reads_args_ = true;
    }
    // Emits postfix code for e.
    void Emit(const Expr& e) {
      auto u = [&](Op op, uint32_t c = 0, uint8_t a = 0, uint16_t b = 0) { Push(Insn{op, a, b, c}); };
      switch (e.kind) {
        case ExprKind::kBool: u(Op::kPushBool, 0, e.b ? 1 : 0); return;
        case ExprKind::kLong: u(Op::kPushLong, d_->LongIdx(e.i)); return;
        case ExprKind::kDuration: u(Op::kPushDuration, d_->LongIdx(e.i)); return;
        case ExprKind::kString:
        case ExprKind::kSymbol: u(Op::kPushString, d_->Str(e.str)); return;
        case ExprKind::kEntity: u(Op::kPushEntity, d_->Str(ast::EntityUid{e.type, e.str, {}}.ToString())); return;
        case ExprKind::kVar:
        case ExprKind::kAttr: {
          if (TryPath(e)) return;
          if (e.kind == ExprKind::kVar) {  // action
            u(Op::kPushVar, 0, 1);
            return;
          }
          Emit(*e.kids[0]);
          u(Op::kGetAttr, d_->Str(e.str));
          return;
        }
        case ExprKind::kHas: Emit(*e.kids[0]); u(Op::kHas, d_->Str(e.str)); return;
        case ExprKind::kLike: {
          Emit(*e.kids[0]);
          nlohmann::json chunks = e.pattern.chunks;
          uint32_t id = d_->Str(chunks.dump());
          u(Op::kLike, d_->Index(&d_->t_->likes, &d_->likes_, id));
          return;
        }
        case ExprKind::kMatches:
          Emit(*e.kids[0]);
          u(Op::kMatches, d_->Index(&d_->t_->regexes, &d_->regexes_, d_->Str(e.str)));
          return;
        case ExprKind::kIs:
          Emit(*e.kids[0]);
          u(Op::kIs, d_->Str(e.type));
          if (e.kids.size() > 1) {
            Emit(*e.kids[0]);
            Emit(*e.kids[1]);
            u(Op::kIn);
            u(Op::kAnd);
          }
          return;
        case ExprKind::kMethod: {
          Emit(*e.kids[0]);
          for (size_t i = 1; i < e.kids.size(); ++i) Emit(*e.kids[i]);
          static const std::map<std::string, Op> kOps{
              {"contains", Op::kContains}, {"containsAll", Op::kContainsAll}, {"containsAny", Op::kContainsAny},
              {"isEmpty", Op::kIsEmpty},   {"lower", Op::kLower},             {"isInRange", Op::kIsInRange}};
          u(kOps.at(e.str));
          return;
        }
        case ExprKind::kCall: Emit(*e.kids[0]); u(Op::kIp); return;
        case ExprKind::kNot: Emit(*e.kids[0]); u(Op::kNot); return;
        case ExprKind::kNeg: Emit(*e.kids[0]); u(Op::kNeg); return;
        case ExprKind::kBinary: {
          Emit(*e.kids[0]);
          Emit(*e.kids[1]);
          static const Op kOps[] = {Op::kEq, Op::kNe, Op::kLt, Op::kLe, Op::kGt,
                                    Op::kGe, Op::kIn, Op::kAdd, Op::kSub, Op::kMul};
          u(kOps[static_cast<int>(e.op)]);
          return;
        }
        case ExprKind::kAnd:
        case ExprKind::kOr:
          Emit(*e.kids[0]);
          for (size_t i = 1; i < e.kids.size(); ++i) {
            Emit(*e.kids[i]);
            u(e.kind == ExprKind::kAnd ? Op::kAnd : Op::kOr);
          }
          return;
        case ExprKind::kIf:
          for (const auto& k : e.kids) Emit(*k);
          u(Op::kIf);
          return;
        case ExprKind::kSet:
        case ExprKind::kRecord: {
          nlohmann::json c;
          if (Constant(e, &c)) {
            u(Op::kPushConst, d_->Index(&d_->t_->constants, &d_->constants_, d_->Str(c.dump())));
            return;
          }
          for (const auto& k : e.kids) Emit(*k);
          if (e.kind == ExprKind::kSet) {
            u(Op::kMakeSet, static_cast<uint32_t>(e.kids.size()));
          } else {
            uint32_t base = static_cast<uint32_t>(d_->t_->record_keys.size());
            for (const auto& key : e.keys) d_->t_->record_keys.push_back(d_->Str(key));
            u(Op::kMakeRecord, static_cast<uint32_t>(e.kids.size()), 0, static_cast<uint16_t>(base));
            if (base > 0xFFFF) overflow_ = true;
          }
          return;
        }
      }
    }
    // Interns the program; returns its index. Sets *error if it cannot run in the VM.
    uint32_t Finish(const std::string& text, std::string* error, bool may_error = true) {
      if (max_depth_ > static_cast<int>(runtime::kMaxStack) || overflow_) {
        *error = "expression `" + text + "` needs more than " + std::to_string(runtime::kMaxStack) +
                 " stack slots; split it";
        return 0;
      }
      std::string key(reinterpret_cast<const char*>(code_.data()), code_.size() * sizeof(Insn));
      auto it = d_->programs_.find(key);
      if (it != d_->programs_.end()) return it->second;
      runtime::Program p{static_cast<uint32_t>(d_->t_->insns.size()), static_cast<uint32_t>(code_.size()),
                         static_cast<uint8_t>(reads_args_), static_cast<uint8_t>(may_error), 0};
      d_->t_->insns.insert(d_->t_->insns.end(), code_.begin(), code_.end());
      d_->t_->programs.push_back(p);
      uint32_t id = static_cast<uint32_t>(d_->t_->programs.size() - 1);
      d_->programs_.emplace(std::move(key), id);
      d_->atom_text_.push_back(text);
      return id;
    }

   private:
    // var.a.b... rooted at principal/resource/args/context/call -> one slot.
    bool TryPath(const Expr& e) {
      std::vector<std::string> path;
      const Expr* x = &e;
      while (x->kind == ExprKind::kAttr) {
        path.push_back(x->str);
        x = x->kids[0].get();
      }
      if (x->kind != ExprKind::kVar) return false;
      std::reverse(path.begin(), path.end());
      const std::string& v = x->str;
      runtime::SlotRoot root;
      if (v == "principal" || v == "resource" || v == "tool") {
        if (path.empty()) {
          Push(Insn{Op::kPushVar, static_cast<uint8_t>(v == "principal" ? 0 : 2), 0, 0});
          return true;
        }
        root = v == "principal" ? runtime::SlotRoot::kPrincipal : runtime::SlotRoot::kResource;
      } else if (v == "args") {
        root = runtime::SlotRoot::kArgs;
      } else if (v == "context") {
        root = runtime::SlotRoot::kContext;
      } else if (v == "call") {
        root = runtime::SlotRoot::kCall;
      } else {
        return false;  // action
      }
      Push(Insn{Op::kPushSlot, 0, 0, d_->SlotIdx(root, path)});
      return true;
    }
    static bool Constant(const Expr& e, nlohmann::json* out) {
      switch (e.kind) {
        case ExprKind::kBool: *out = e.b; return true;
        case ExprKind::kLong: *out = e.i; return true;
        case ExprKind::kString: *out = e.str; return true;
        case ExprKind::kDuration: return false;  // JSON has no durations: built by MakeSet
        case ExprKind::kEntity: *out = {{"__entity", ast::EntityUid{e.type, e.str, {}}.ToString()}}; return true;
        case ExprKind::kSet: {
          *out = nlohmann::json::array();
          for (const auto& k : e.kids) {
            nlohmann::json c;
            if (!Constant(*k, &c)) return false;
            out->push_back(std::move(c));
          }
          return true;
        }
        case ExprKind::kRecord: {
          *out = nlohmann::json::object();
          for (size_t i = 0; i < e.kids.size(); ++i) {
            nlohmann::json c;
            if (!Constant(*e.kids[i], &c)) return false;
            (*out)[e.keys[i]] = std::move(c);
          }
          // A record with an "__entity" key would be read back as an entity reference.
          if (out->contains("__entity")) return false;
          return true;
        }
        default: return false;
      }
    }
    DagBuilder* d_;
    std::vector<Insn> code_;
    int depth_ = 0, max_depth_ = 0;
    bool reads_args_ = false;
    bool overflow_ = false;
  };

  uint32_t Index(std::vector<uint32_t>* table, std::unordered_map<uint32_t, uint32_t>* memo, uint32_t str) {
    auto it = memo->find(str);
    if (it != memo->end()) return it->second;
    table->push_back(str);
    return (*memo)[str] = static_cast<uint32_t>(table->size() - 1);
  }

  uint32_t SlotIdx(runtime::SlotRoot root, const std::vector<std::string>& path) {
    std::string key(1, static_cast<char>(root));
    for (const auto& p : path) key += '\0' + p;
    auto it = slots_.find(key);
    if (it != slots_.end()) return it->second;
    runtime::Slot s{root, 0, static_cast<uint16_t>(path.size()), static_cast<uint32_t>(t_->path_pool.size())};
    for (const auto& p : path) t_->path_pool.push_back(Str(p));
    t_->slots.push_back(s);
    return slots_[key] = static_cast<uint32_t>(t_->slots.size() - 1);
  }

  std::string SourceText(Span s) { return std::string(sources_.Text(s)); }

  // An atom for an expression; identical programs are the same atom.
  uint32_t AtomOf(const Expr& e, std::string* error) {
    ProgramBuilder pb(this);
    pb.Emit(e);
    uint32_t prog = pb.Finish(SourceText(e.span), error);
    return formulas_.Atom(prog, prog);
  }

  uint32_t ExprFormula(const Expr& e, std::string* error) {
    switch (e.kind) {
      case ExprKind::kBool: return formulas_.Const(e.b ? Tri::kTrue : Tri::kFalse);
      case ExprKind::kNot: return formulas_.Not(ExprFormula(*e.kids[0], error));
      case ExprKind::kAnd:
      case ExprKind::kOr: {
        std::vector<uint32_t> kids;
        for (const auto& k : e.kids) kids.push_back(ExprFormula(*k, error));
        return formulas_.Junction(e.kind == ExprKind::kAnd ? Formula::kAnd : Formula::kOr, std::move(kids));
      }
      default: return AtomOf(e, error);
    }
  }

  // A scope test as an atom that never errors.
  uint32_t ScopeAtom(const ast::Scope& sc, uint8_t var, std::string* error) {
    ProgramBuilder pb(this);
    auto var_push = [&] { pb.Push(Insn{Op::kPushVar, var, 0, 0}); };
    std::string text = ast::ScopeVarName(sc.var);
    if (sc.op == ast::ScopeOp::kIs || sc.op == ast::ScopeOp::kIsIn) {
      var_push();
      pb.Push(Insn{Op::kIs, 0, 0, Str(sc.is_type)});
      text += " is " + sc.is_type;
    }
    if (sc.op == ast::ScopeOp::kEq || sc.op == ast::ScopeOp::kIn || sc.op == ast::ScopeOp::kIsIn) {
      var_push();
      if (sc.entities.size() == 1 && !sc.set_syntax) {
        pb.Push(Insn{Op::kPushEntity, 0, 0, Str(sc.entities[0].ToString())});
        text += std::string(sc.op == ast::ScopeOp::kEq ? " == " : " in ") + sc.entities[0].ToString();
      } else {
        nlohmann::json arr = nlohmann::json::array();
        text += " in [";
        for (const auto& e : sc.entities) {
          arr.push_back({{"__entity", e.ToString()}});
          text += e.ToString() + (&e == &sc.entities.back() ? "" : ", ");
        }
        text += "]";
        pb.Push(Insn{Op::kPushConst, 0, 0, Index(&t_->constants, &constants_, Str(arr.dump()))});
      }
      pb.Push(Insn{sc.op == ast::ScopeOp::kEq ? Op::kEq : Op::kIn, 0, 0, 0});
      if (sc.op == ast::ScopeOp::kIsIn) pb.Push(Insn{Op::kAnd, 0, 0, 0});
    }
    uint32_t prog = pb.Finish(text, error, /*may_error=*/false);
    return formulas_.Atom(prog, prog);
  }

  uint32_t StatementFormula(const ast::Statement& s, std::string* error) {
    std::vector<uint32_t> parts;
    if (s.effect == ast::Effect::kRule) {
      parts.push_back(ExprFormula(*s.rule_condition, error));
    } else {
      // Principal == / in are decided by the switch; `is` is tested here.
      if (s.principal.op == ast::ScopeOp::kIs || s.principal.op == ast::ScopeOp::kIsIn) {
        ast::Scope is_only = s.principal;
        is_only.op = ast::ScopeOp::kIs;
        parts.push_back(ScopeAtom(is_only, 0, error));
      }
      if (s.action.op == ast::ScopeOp::kIs || s.action.op == ast::ScopeOp::kIsIn) {
        parts.push_back(ScopeAtom(s.action, 1, error));
      }
      // Resource == / in are decided by the partition switch; `is` is tested here.
      if (s.resource.op == ast::ScopeOp::kIs || s.resource.op == ast::ScopeOp::kIsIn) {
        ast::Scope is_only = s.resource;
        is_only.op = ast::ScopeOp::kIs;
        parts.push_back(ScopeAtom(is_only, 2, error));
      }
      for (const auto& c : s.conditions) {
        uint32_t f = ExprFormula(*c.expr, error);
        parts.push_back(c.unless ? formulas_.Not(f) : f);
      }
    }
    return formulas_.Junction(Formula::kAnd, std::move(parts));
  }

  // ---- DAG construction ----
  //
  // Each partition chunk has three effect DAGs, each answering one yes/no question: does a
  // forbid match; does a permit match; does a statement carrying require_approval match. A
  // statement whose residual formula becomes constant either answers yes (a leaf) or drops
  // out; so a DAG's states are the sets of still-open statements, and keeping the three
  // questions apart avoids the product of their states. Which statements matched, and their
  // obligations, are computed after the decision from per-statement formula programs (see
  // DecisionToJson), over the selected partitions only.
  struct Budget {};
  // A statement as the DAG sees it: its residual formula and whether an error counts as a
  // match (forbid, rule) or not (permit). Which statement it is does not matter for a yes/no
  // answer, so equal items are merged, which keeps the number of DAG states small.
  struct Item {
    uint32_t error_matches;
    uint32_t formula;
    bool operator<(const Item& o) const { return std::tie(formula, error_matches) < std::tie(o.formula, o.error_matches); }
    bool operator==(const Item& o) const { return formula == o.formula && error_matches == o.error_matches; }
  };

  // Is statement `stmt` part of the DAG answering `kind`?
  bool InDag(uint32_t stmt, runtime::DagKind kind) const {
    const ast::Statement& st = *stmts_[stmt];
    switch (kind) {
      case runtime::kForbidDag: return st.effect == ast::Effect::kForbid;
      case runtime::kPermitDag: return st.effect == ast::Effect::kPermit;
      case runtime::kApprovalDag:
        return st.effect != ast::Effect::kForbid && st.HasObligation(ast::ObligationKind::kRequireApproval);
    }
    return false;
  }

  // Orders atoms so that those shared by the most statements are tested first: they resolve
  // the most statements per test, which keeps DAGs small and paths short.
  void OrderAtomsByFrequency(std::vector<uint32_t>* formulas) {
    std::vector<uint32_t> count(t_->programs.size(), 0);
    for (uint32_t f : *formulas) {
      std::vector<uint32_t> atoms;
      formulas_.CollectAtoms(f, &atoms);
      std::sort(atoms.begin(), atoms.end());
      atoms.erase(std::unique(atoms.begin(), atoms.end()), atoms.end());
      for (uint32_t a : atoms) ++count[a];
    }
    std::vector<uint32_t> order(t_->programs.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return count[x] > count[y]; });
    std::vector<uint32_t> rank_of(order.size());
    for (uint32_t r = 0; r < order.size(); ++r) rank_of[order[r]] = r;
    program_of_rank_ = order;
    test_of_rank_.assign(order.size(), ValueTest{});
    for (uint32_t r = 0; r < order.size(); ++r) test_of_rank_[r] = ValueTestOf(order[r]);
    std::unordered_map<uint32_t, uint32_t> memo;
    for (uint32_t& f : *formulas) f = formulas_.Remap(f, rank_of, &memo);
  }

  // ---- implications between atoms that test the same value ----
  //
  // Shannon expansion treats atoms as independent, but atoms that compare one value with
  // different constants are not: once `call.intent == "read"` is true, `call.intent ==
  // "write"` is false; once `context.time.hour < 7` is true, `context.time.hour > 19` is
  // false. Substituting those implied answers when an atom is tested removes impossible
  // paths, so a DAG tests each such value about once. The shapes (the same ones the runtime
  // runs without the stack machine, Bundle::FastAtom):
  //   slot ==/!= "string"   error exactly when the slot's value is an error (whatever the
  //                         string); true exactly when the value is that string
  //   var == Entity         never an error; true exactly when the uid is that entity
  //   slot < <= > >= long   error exactly when the value is not a Long; else an interval test
  // An implication is used only between atoms of the same shape on the same value (`key`), and
  // only when the first atom's answer decides the second's for every value consistent with it,
  // so the DAG's answer is the same as without it for every request (the differential test
  // checks this against the reference evaluator).
  static constexpr uint64_t kNoTestKey = UINT64_MAX;
  struct ValueTest {
    uint64_t key = kNoTestKey;  // shape << 32 | slot or var index
    uint32_t str = 0;           // string shapes: string id of the constant
    bool ne = false;            // string shapes: != instead of ==
    int64_t lo = 0, hi = 0;     // long shape: true exactly when lo <= value <= hi
  };
  enum TestShape : uint64_t { kSlotString = 1, kVarEntity = 2, kSlotLong = 3 };

  ValueTest ValueTestOf(uint32_t program) const {
    ValueTest t;
    const runtime::Program& p = t_->programs[program];
    if (p.count != 3) return t;
    const Insn* c = &t_->insns[p.begin];
    const Op op = c[2].op;
    if (c[0].op == Op::kPushSlot && c[1].op == Op::kPushString &&
        (op == Op::kEq || op == Op::kNe)) {
      t.key = kSlotString << 32 | c[0].c;
      t.str = c[1].c;
      t.ne = op == Op::kNe;
    } else if (c[0].op == Op::kPushVar && c[1].op == Op::kPushEntity && op == Op::kEq) {
      t.key = kVarEntity << 32 | c[0].a;
      t.str = c[1].c;
    } else if (c[0].op == Op::kPushSlot && c[1].op == Op::kPushLong &&
               (op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe)) {
      const int64_t k = t_->longs[c[1].c];
      constexpr int64_t kMin = INT64_MIN, kMax = INT64_MAX;
      t.key = kSlotLong << 32 | c[0].c;
      switch (op) {
        case Op::kLt: if (k == kMin) return ValueTest{}; t.lo = kMin; t.hi = k - 1; break;
        case Op::kLe: if (k == kMax) return ValueTest{}; t.lo = kMin; t.hi = k; break;
        case Op::kGt: if (k == kMax) return ValueTest{}; t.lo = k + 1; t.hi = kMax; break;
        default: if (k == kMin) return ValueTest{}; t.lo = k; t.hi = kMax; break;
      }
    }
    return t;
  }

  // The answer of atom `b` implied by atom `a` answering `v`, if `a`'s answer decides it.
  static std::optional<Tri> ImpliedBy(const ValueTest& a, Tri v, const ValueTest& b) {
    if (b.key != a.key || a.key == kNoTestKey) return std::nullopt;
    if (v == Tri::kError) return Tri::kError;  // the value itself is an error (or not a Long)
    auto tri = [](bool x) { return x ? Tri::kTrue : Tri::kFalse; };
    if ((a.key >> 32) == kSlotLong) {
      // The value lies in [lo, hi] (a true) or outside it (a false): one or two intervals.
      auto decide = [&](int64_t lo, int64_t hi) -> std::optional<Tri> {  // value in [lo, hi]
        if (lo > hi) return std::nullopt;
        if (b.lo <= lo && hi <= b.hi) return Tri::kTrue;
        if (hi < b.lo || lo > b.hi) return Tri::kFalse;
        return std::nullopt;
      };
      if (v == Tri::kTrue) return decide(a.lo, a.hi);
      // a false: value < a.lo or value > a.hi (one side is empty for these one-sided tests).
      if (a.lo == INT64_MIN) return decide(a.hi + 1, INT64_MAX);
      return decide(INT64_MIN, a.lo - 1);
    }
    // String / entity equality: a's answer says the value is its constant, or is not.
    const bool is_a = (v == Tri::kTrue) != a.ne;
    if (is_a) return tri((b.str == a.str) != b.ne);
    if (b.str == a.str) return tri(b.ne);  // the value is not a's constant (and no error)
    return std::nullopt;
  }

  // Builds the chunks of one DAG kind for one switch entry; returns their roots.
  std::vector<uint32_t> BuildChunks(runtime::DagKind kind, const std::vector<Item>& items, std::ostringstream* d) {
    size_t nodes_before = pending_nodes_.size();
    node_memo_.clear();
    node_intern_.clear();  // subgraphs are shared within a chunk
    built_in_attempt_ = 0;
    chunk_size_ = items.size();
    kind_ = kind;
    try {
      uint32_t root = Build(items);
      static const char* kNames[] = {"forbid", "permit", "approval"};
      *d << "  " << kNames[kind] << " DAG over " << items.size() << " statements: "
         << (pending_nodes_.size() - nodes_before) << " nodes\n";
      return {root};
    } catch (const Budget&) {
      pending_nodes_.resize(nodes_before);
      std::vector<Item> a(items.begin(), items.begin() + items.size() / 2);
      std::vector<Item> b(items.begin() + items.size() / 2, items.end());
      std::vector<uint32_t> roots = BuildChunks(kind, a, d);
      for (uint32_t r : BuildChunks(kind, b, d)) roots.push_back(r);
      return roots;
    }
  }

  uint32_t Build(const std::vector<Item>& items) {
    std::vector<Item> live;
    for (const Item& it : items) {
      const Formula& x = formulas_.at(it.formula);
      if (x.kind != Formula::kConst) {
        live.push_back(it);
        continue;
      }
      if (it.error_matches ? x.value != Tri::kFalse : x.value == Tri::kTrue) return Leaf(true);
    }
    if (live.empty()) return Leaf(false);
    std::sort(live.begin(), live.end());
    live.erase(std::unique(live.begin(), live.end()), live.end());
    std::string key(reinterpret_cast<const char*>(live.data()), live.size() * sizeof(Item));
    auto found = node_memo_.find(key);
    if (found != node_memo_.end()) return found->second;
    uint32_t rank = UINT32_MAX;
    for (const Item& it : live) rank = std::min(rank, formulas_.at(it.formula).min_atom);
    if (++built_in_attempt_ > opts_.max_nodes_per_partition && chunk_size_ > 1) throw Budget{};
    const uint32_t program = program_of_rank_[rank];
    uint32_t next[3];
    const bool may_error = t_->programs[program].may_error != 0;
    for (int v = 0; v < 3; ++v) {
      if (v == 2 && !may_error) {
        next[2] = next[1];
        continue;
      }
      std::unordered_map<uint32_t, uint32_t> memo;
      std::vector<Item> sub;
      sub.reserve(live.size());
      const Tri tv = static_cast<Tri>(v);
      const ValueTest& test = test_of_rank_[rank];
      for (const Item& it : live) {
        uint32_t f;
        if (test.key == kNoTestKey) {
          f = formulas_.Substitute(it.formula, rank, tv, &memo);
        } else {
          // Atoms on the same value as this one are decided by its answer too (ImpliedBy).
          auto implied = [&](uint32_t other) { return ImpliedBy(test, tv, test_of_rank_[other]); };
          f = formulas_.SubstituteImplied(it.formula, rank, tv, implied, &memo);
        }
        sub.push_back(Item{it.error_matches, f});
      }
      next[v] = Build(sub);
    }
    uint32_t ref;
    if (next[0] == next[1] && next[1] == next[2]) {
      ref = next[0];
    } else {
      runtime::Node n{program, {next[0], next[1], next[2]}};
      std::string nk(reinterpret_cast<const char*>(&n), sizeof n);
      auto nit = node_intern_.find(nk);
      if (nit != node_intern_.end()) {
        ref = nit->second;
      } else {
        pending_nodes_.push_back(n);
        ref = static_cast<uint32_t>(pending_nodes_.size() - 1);
        node_intern_[nk] = ref;
      }
    }
    node_memo_.emplace(std::move(key), ref);
    return ref;
  }

  // Four outcomes shared by every DAG: no, forbid, permit, approval.
  uint32_t Leaf(bool yes) {
    if (t_->outcomes.empty()) {
      for (int k = 0; k < 4; ++k) {
        runtime::Outcome o{};
        o.forbid = k == 1;
        o.permit = k == 2;
        o.approval = k == 3;
        t_->outcomes.push_back(o);
      }
    }
    return (yes ? 1 + static_cast<uint32_t>(kind_) : 0) | kLeafBit;
  }

  // The whole formula of a statement as one program (atoms inlined, Kleene connectives), for
  // computing which statements matched after the effect is decided.
  uint32_t FormulaProgram(uint32_t stmt, uint32_t f, std::string* error) {
    ProgramBuilder pb(this);
    EmitFormula(f, &pb);
    return pb.Finish("formula of " + t_->strings[t_->statements[stmt].id], error);
  }
  void EmitFormula(uint32_t f, ProgramBuilder* pb) {
    const Formula& x = formulas_.at(f);
    switch (x.kind) {
      case Formula::kConst:
        if (x.value == Tri::kError) {
          pb->Push(Insn{Op::kPushError, 0, 0, 0});
        } else {
          pb->Push(Insn{Op::kPushBool, static_cast<uint8_t>(x.value == Tri::kTrue), 0, 0});
        }
        return;
      case Formula::kAtom: {
        const runtime::Program& p = t_->programs[x.atom];
        for (uint32_t k = p.begin; k < p.begin + p.count; ++k) pb->Push(t_->insns[k]);
        return;
      }
      case Formula::kNot:
        EmitFormula(x.kids[0], pb);
        pb->Push(Insn{Op::kNot, 0, 0, 0});
        return;
      case Formula::kAnd:
      case Formula::kOr: {
        std::vector<uint32_t> kids = x.kids;
        Formula::Kind kind = x.kind;
        EmitFormula(kids[0], pb);
        for (size_t i = 1; i < kids.size(); ++i) {
          EmitFormula(kids[i], pb);
          pb->Push(Insn{kind == Formula::kAnd ? Op::kAnd : Op::kOr, 0, 0, 0});
        }
        return;
      }
    }
  }

  // Nodes were created children-first; reverse so every edge points forward (the verifier
  // requires it) and rewrite references.
  void FinishNodes(std::ostringstream* d) {
    const uint32_t n = static_cast<uint32_t>(pending_nodes_.size());
    auto map = [&](uint32_t r) { return (r & kLeafBit) ? r : n - 1 - r; };
    t_->nodes.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      runtime::Node x = pending_nodes_[i];
      for (auto& r : x.next) r = map(r);
      t_->nodes[n - 1 - i] = x;
    }
    for (auto& p : t_->partitions) {
      for (auto& r : p.root) r = map(r);
    }
    *d << "nodes:\n";
    for (uint32_t i = 0; i < n; ++i) {
      const auto& x = t_->nodes[i];
      auto rt = [&](uint32_t r) { return (r & kLeafBit) ? "leaf " + std::to_string(r & ~kLeafBit) : "n" + std::to_string(r); };
      *d << "  n" << i << " a" << x.atom << " ? " << rt(x.next[0]) << " : " << rt(x.next[1]) << " ! " << rt(x.next[2]) << "\n";
    }
    *d << "partition roots (forbid, permit, approval):";
    for (size_t i = 0; i < t_->partitions.size(); ++i) {
      *d << " p" << i << "=(";
      for (int k = 0; k < 3; ++k) {
        uint32_t r = t_->partitions[i].root[k];
        *d << (k ? " " : "") << ((r & kLeafBit) ? "leaf " + std::to_string(r & ~kLeafBit) : "n" + std::to_string(r));
      }
      *d << ")";
    }
    *d << "\noutcomes:\n";
    for (size_t i = 0; i < t_->outcomes.size(); ++i) {
      const auto& o = t_->outcomes[i];
      *d << "  leaf " << i << ": " << (o.forbid ? "a forbid matches" : o.permit ? "a permit matches" : o.approval ? "an approval statement matches" : "no") << "\n";
    }
  }

  const SourceMap& sources_;
  const CompileOptions& opts_;
  BundleTables* t_;
  Formulas formulas_;
  std::unordered_map<std::string, uint32_t> strings_, programs_, slots_, node_memo_, node_intern_;
  std::vector<uint32_t> program_of_rank_;
  std::vector<ValueTest> test_of_rank_;  // per atom rank (ValueTestOf its program)
  runtime::DagKind kind_ = runtime::kForbidDag;
  std::unordered_map<int64_t, uint32_t> longs_;
  std::unordered_map<uint32_t, uint32_t> likes_, regexes_, constants_;
  std::vector<std::string> atom_text_;
  size_t chunk_size_ = 0;
  std::vector<const ast::Statement*> stmts_;
  std::vector<runtime::Node> pending_nodes_;
  uint32_t built_in_attempt_ = 0;
};

}  // namespace

bool BuildDag(const SourceMap& sources, const ast::PolicySet& policies, const CompileOptions& opts,
              BundleTables* out, std::string* dag_dump, std::string* error) {
  DagBuilder b(sources, opts, out);
  error->clear();
  return b.Run(policies, dag_dump, error);
}

}  // namespace writ
