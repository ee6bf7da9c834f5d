// evaluator.cc -- Evaluate (switch -> partition DAG walks -> combine), DecisionToJson,
// Explain and ListVisibility. The allow/deny rule is the one exhaustive function Combine().
#include "runtime/evaluator.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "runtime/vm.h"

namespace writ::runtime {

const char* EffectName(Effect e) {
  switch (e) {
    case Effect::kAllow: return "allow";
    case Effect::kDeny: return "deny";
    case Effect::kRequireApproval: return "require_approval";
  }
  return "?";
}

const char* VisibilityName(Visibility v) {
  switch (v) {
    case Visibility::kAllow: return "allow";
    case Visibility::kDeny: return "deny";
    case Visibility::kDependsOnArgs: return "depends-on-args";
  }
  return "?";
}

namespace {

// LANGUAGE.md §4, in order: forbid wins; default deny; approval; allow.
Effect Combine(bool forbid, bool permit, bool approval) {
  if (forbid) return Effect::kDeny;
  if (!permit) return Effect::kDeny;
  if (approval) return Effect::kRequireApproval;
  return Effect::kAllow;
}

// Calls visit(group) for every group of switch candidates the request's action and resource
// select (see the index description in bundle.h). Folded index: one probe for the request's
// own resource, one per resource parent (plus one when the pair (action, resource) has no
// group of its own). Unfolded: (request action, any) x (resource == uid, in uid, in each
// parent, any).
template <typename Visit>
void ForEachGroup(const Bundle& b, const PreparedRequest& req, Visit&& visit) {
  auto maybe = [&](const Bundle::Group* g) {
    if (g != nullptr) visit(*g);
  };
  const uint32_t uid = req.resource.uid_id;
  if (b.switch_folded()) {
    // Keys the switch does not use select nothing of their own: look up `any` instead.
    const uint32_t action =
        (b.key_roles(req.action.uid_id) & Bundle::kActionKey) ? req.action.uid_id : kAnyKey;
    const uint32_t resource = (b.key_roles(uid) & Bundle::kResourceKey) ? uid : kAnyKey;
    const Bundle::Group* own =
        resource == kAnyKey ? nullptr : b.FindGroup(action, resource, Bundle::kOwnResource);
    if (own != nullptr) {
      visit(*own);
    } else {
      maybe(b.FindGroup(action, kAnyKey, Bundle::kOwnResource));
      if (resource != kAnyKey && action != kAnyKey) {
        maybe(b.FindGroup(kAnyKey, resource, Bundle::kAnyActionOwn));
      }
    }
    for (uint32_t p : req.resource.parent_ids) {
      if (p == uid || !(b.key_roles(p) & Bundle::kResourceInKey)) continue;
      const Bundle::Group* g = b.FindGroup(action, p, Bundle::kParentResource);
      if (g == nullptr && action != kAnyKey) g = b.FindGroup(kAnyKey, p, Bundle::kParentResource);
      maybe(g);
    }
    return;
  }
  const uint32_t actions[2] = {req.action.uid_id, kAnyKey};
  for (int a = 0; a < 2; ++a) {
    if (a == 0 && actions[0] == kAnyKey) continue;  // action unknown to the bundle
    if (uid != kAnyKey) {
      maybe(b.FindGroup(actions[a], uid, Bundle::kRawEq));
      maybe(b.FindGroup(actions[a], uid, Bundle::kRawIn));
    }
    for (uint32_t p : req.resource.parent_ids) {
      if (p != uid) maybe(b.FindGroup(actions[a], p, Bundle::kRawIn));
    }
    maybe(b.FindGroup(actions[a], kAnyKey, Bundle::kRawEq));
  }
}

// Calls fn(partition index) for every partition chunk the request selects: in each group
// ForEachGroup finds, the candidates for any principal, then those for the principal keys
// that apply to the request (== uid, in uid, in each parent), each found by one probe.
// PrepareRequest keeps parent_ids free of duplicates and of the uid itself, so no candidate
// is selected twice.
template <typename Fn>
void ForEachPartition(const Bundle& b, const PreparedRequest& req, Fn&& fn) {
  const uint32_t* parts = b.candidate_parts().data();
  const RequestEntity& pr = req.principal;
  ForEachGroup(b, req, [&](const Bundle::Group& g) {
    for (uint32_t i = g.begin; i < g.begin + g.count; ++i) fn(parts[i]);
    if (g.keyed == 0) return;
    auto keyed = [&](uint32_t key) {
      const Bundle::KeyedRange* k = b.FindKeyed(g.id, key);
      if (k == nullptr) return;
      for (uint32_t i = k->begin; i < k->begin + k->count; ++i) fn(parts[i]);
    };
    if (pr.uid_id != kAnyKey) {
      keyed(Bundle::PrincipalKey(pr.uid_id, false));
      keyed(Bundle::PrincipalKey(pr.uid_id, true));
    }
    for (uint32_t p : pr.parent_ids) keyed(Bundle::PrincipalKey(p, true));
  });
}

}  // namespace

Decision Evaluate(const Bundle& b, const PreparedRequest& req) {
  Decision d;
  ForEachPartition(b, req, [&](uint32_t p) {
    if (d.part_count < Decision::kMaxParts) {
      d.parts[d.part_count++] = p;
    } else {
      d.overflow = true;
    }
  });
  if (d.overflow) {
    d.effect = Effect::kDeny;
    return d;
  }
  // Forbids first: any match decides. Then permits; then approval. Each DAG answers one
  // question, so a walk stops at the first chunk that says yes.
  const uint32_t* parts = d.parts.data();
  const bool forbid = AnyDagSaysYes(b, req, parts, d.part_count, kForbidDag);
  const bool permit = !forbid && AnyDagSaysYes(b, req, parts, d.part_count, kPermitDag);
  const bool approval =
      !forbid && permit && AnyDagSaysYes(b, req, parts, d.part_count, kApprovalDag);
  d.effect = Combine(forbid, permit, approval);
  return d;
}

namespace {

int LogRank(const std::string& level) {
  static const char* kLevels[] = {"debug", "info", "notice", "warning", "error", "critical"};
  for (int i = 0; i < 6; ++i) {
    if (level == kLevels[i]) return i;
  }
  return -1;
}

// Whether statement `s` could be determining for a decision of `effect` (docs/semantics.md):
// forbids for deny, permits for allow, permits and approval rules for require_approval.
bool IsCandidate(const Bundle& b, uint32_t s, Effect effect) {
  const uint8_t stmt_effect = b.statements_[s].effect;
  switch (effect) {
    case Effect::kDeny: return stmt_effect == 1;
    case Effect::kAllow: return stmt_effect == 0;
    case Effect::kRequireApproval: return stmt_effect == 0 || b.statement_approval_[s] != 0;
  }
  return false;
}

}  // namespace

// Which statements of the selected partitions matched and which errored: each statement's
// formula program, run once (a statement listed twice is run once).
void MatchStatements(const Bundle& b, const PreparedRequest& req, std::set<uint32_t>* matched,
                     std::set<uint32_t>* errored) {
  std::set<uint32_t> seen;
  ForEachPartition(b, req, [&](uint32_t p) {
    const Partition& part = b.partitions_[p];
    for (uint32_t k = 0; k < part.stmt_count; ++k) {
      uint32_t s = b.stmt_pool_[part.stmt_begin + k];
      if (!seen.insert(s).second) continue;
      Tri t = RunAtom(b, req, b.statements_[s].formula);
      bool permit = b.statements_[s].effect == 0;
      if (permit ? t == Tri::kTrue : t != Tri::kFalse) matched->insert(s);
      if (t == Tri::kError) errored->insert(s);
    }
  });
}

void DeterminingStatements(const Bundle& b, const PreparedRequest& req, const Decision& d,
                           std::vector<uint32_t>* out) {
  out->clear();
  ForEachPartition(b, req, [&](uint32_t p) {
    // A chunk's DAG of a kind answers whether one of the chunk's statements of that kind
    // matched, so a chunk whose DAGs for the candidate kinds say no holds no determining
    // statement: skip its formulas (a DAG walk is a few atoms; the formulas are many).
    bool look = false;
    switch (d.effect) {
      case Effect::kDeny: look = AnyDagSaysYes(b, req, &p, 1, kForbidDag); break;
      case Effect::kAllow: look = AnyDagSaysYes(b, req, &p, 1, kPermitDag); break;
      case Effect::kRequireApproval:
        look = AnyDagSaysYes(b, req, &p, 1, kPermitDag) ||
               AnyDagSaysYes(b, req, &p, 1, kApprovalDag);
        break;
    }
    if (!look) return;
    const Partition& part = b.partitions_[p];
    for (uint32_t k = 0; k < part.stmt_count; ++k) {
      uint32_t s = b.stmt_pool_[part.stmt_begin + k];
      if (!IsCandidate(b, s, d.effect)) continue;
      const uint8_t effect = b.statements_[s].effect;
      Tri t = RunAtom(b, req, b.statements_[s].formula);
      if (effect == 0 ? t == Tri::kTrue : t != Tri::kFalse) out->push_back(s);
    }
  });
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}

// ---- StatementPlan: formulas split at and/or/not into shared leaves ----

namespace {

// Operands each opcode pops (bundle.h); kMakeSet and kMakeRecord pop their count (c).
constexpr int kPops[] = {
#define WRIT_X(name, pops, pushes, doc) pops,
    WRIT_OPCODES(WRIT_X)
#undef WRIT_X
};

// Per-run limits of the VM (vm.cc: the arena of VM-built sets and records, kMaxStack * 2
// values; kMaxLower lower() results). A formula whose code could reach one when run whole
// may give a different value than its leaves run one by one, so it is not split. The
// bounds here are half of vm.cc's, a margin should those shrink.
constexpr uint32_t kSplitArenaBound = kMaxStack;
constexpr uint32_t kSplitLowerBound = 8;

Tri TriOf(const Value& v) {
  if (v.type == VType::kBool) return v.b ? Tri::kTrue : Tri::kFalse;
  return v.type == VType::kUnknown ? Tri::kUnknown : Tri::kError;
}

}  // namespace

// The builder and evaluator of StatementPlan (a friend of it and of PlanScratch; internal to
// this file). Stateless: plain functions over a plan and a scratch.
struct PlanAccess {
  using Plan = StatementPlan;

  // A formula's tree while its code is parsed (kids flattened into and/or of the same kind).
  struct TNode {
    Plan::Kind kind;
    uint8_t value = 0;
    uint32_t leaf = 0;
    std::vector<uint32_t> kids;
  };

  static void Build(Plan* plan) {
    const Bundle& b = *plan->bundle_;
    auto code = [&](uint32_t begin, uint32_t count) {
      return std::string_view(reinterpret_cast<const char*>(b.insns_.data() + begin),
                              static_cast<size_t>(count) * sizeof(Insn));
    };
    // Any program with the code of a leaf runs it as RunAtom does (its fast shape, if any,
    // is derived from the code): atoms the DAGs do not test (scope tests, which the switch
    // decides) are programs too.
    std::unordered_map<std::string_view, uint32_t> program_of, by_code;
    for (uint32_t k = 0; k < b.programs_.size(); ++k) {
      program_of.emplace(code(b.programs_[k].begin, b.programs_[k].count), k);
    }
    auto leaf_of = [&](uint32_t program, uint32_t begin, uint32_t count) {
      const std::string_view c = code(begin, count);
      auto [it, added] = by_code.emplace(c, plan->leaves_.size());
      if (added) {
        if (program == Plan::kWhole) {
          auto p = program_of.find(c);
          if (p != program_of.end()) program = p->second;
        }
        plan->leaves_.push_back(Plan::Leaf{program, begin, count});
      }
      return it->second;
    };
    plan->atom_leaf_.assign(b.programs_.size(), Plan::kWhole);
    for (const Node& n : b.nodes_) {
      if (plan->atom_leaf_[n.atom] != Plan::kWhole) continue;
      const Program& p = b.programs_[n.atom];
      plan->atom_leaf_[n.atom] = leaf_of(n.atom, p.begin, p.count);
    }
    plan->root_.assign(b.statements_.size(), Plan::kWhole);
    // Statements sharing a formula program share its tree: the plan's size is bounded by the
    // programs' code, not by how many statements a (possibly hostile) bundle points at one.
    constexpr uint32_t kUnset = Plan::kWhole - 1;
    std::vector<uint32_t> root_of_formula(b.programs_.size(), kUnset);
    for (size_t s = 0; s < b.statements_.size(); ++s) {
      const uint32_t formula = b.statements_[s].formula;
      uint32_t& memo = root_of_formula[formula];
      if (memo == kUnset) {
        std::vector<TNode> tree;
        uint32_t root = 0;
        memo = Parse(b, b.programs_[formula], &tree, &root, leaf_of) ? Emit(plan, tree, root, 0)
                                                                      : Plan::kWhole;
      }
      plan->root_[s] = memo;
    }
  }

  // Parses a formula's postfix code into `tree`. False if it is not to be split.
  template <typename LeafOf>
  static bool Parse(const Bundle& b, const Program& p, std::vector<TNode>* tree, uint32_t* root,
                    LeafOf& leaf_of) {
    // The operand entries of the stack: the code range [begin, end) that computes it and, if
    // it is an and/or/not (or a leaf made for one), its tree node.
    struct Entry {
      uint32_t begin, end;
      uint32_t node;  // kWhole: no node yet (a leaf or a constant when an operator needs it)
    };
    constexpr uint32_t kNone = Plan::kWhole;
    if (p.count > Plan::kMaxCode) return false;
    std::vector<Entry> stack;
    uint32_t arena = 0, lowers = 0;
    auto node_of = [&](const Entry& e) -> uint32_t {
      if (e.node != kNone) return e.node;
      TNode t{};
      const Insn& first = b.insns_[e.begin];
      if (e.end - e.begin == 1 && (first.op == Op::kPushBool || first.op == Op::kPushError)) {
        t.kind = Plan::kConst;
        t.value = static_cast<uint8_t>(first.op == Op::kPushError ? Tri::kError
                                       : first.a != 0             ? Tri::kTrue
                                                                  : Tri::kFalse);
      } else {
        t.kind = Plan::kLeaf;
        t.leaf = leaf_of(Plan::kWhole, e.begin, e.end - e.begin);
      }
      tree->push_back(std::move(t));
      return static_cast<uint32_t>(tree->size() - 1);
    };
    for (uint32_t k = p.begin; k < p.begin + p.count; ++k) {
      const Insn& in = b.insns_[k];
      if (in.op >= Op::kCount) return false;
      if (in.op == Op::kAnd || in.op == Op::kOr) {
        if (stack.size() < 2) return false;
        const Plan::Kind kind = in.op == Op::kAnd ? Plan::kAnd : Plan::kOr;
        Entry y = stack.back();
        stack.pop_back();
        Entry x = stack.back();
        stack.pop_back();
        TNode t{};
        t.kind = kind;
        for (const Entry* e : {&x, &y}) {  // each operand is consumed once: its kids move
          const uint32_t n = node_of(*e);
          if ((*tree)[n].kind == kind) {
            std::vector<uint32_t>& kids = (*tree)[n].kids;
            if (t.kids.empty()) {
              t.kids = std::move(kids);
            } else {
              t.kids.insert(t.kids.end(), kids.begin(), kids.end());
            }
          } else {
            t.kids.push_back(n);
          }
        }
        tree->push_back(std::move(t));
        stack.push_back({x.begin, k + 1, static_cast<uint32_t>(tree->size() - 1)});
        continue;
      }
      if (in.op == Op::kNot) {
        if (stack.empty()) return false;
        Entry x = stack.back();
        stack.pop_back();
        TNode t{};
        t.kind = Plan::kNot;
        t.kids.push_back(node_of(x));
        tree->push_back(std::move(t));
        stack.push_back({x.begin, k + 1, static_cast<uint32_t>(tree->size() - 1)});
        continue;
      }
      uint32_t pops = static_cast<uint32_t>(kPops[static_cast<int>(in.op)]);
      if (in.op == Op::kMakeSet || in.op == Op::kMakeRecord) {
        pops = in.c;
        arena += in.c + 1;
      }
      if (in.op == Op::kLower) ++lowers;
      if (stack.size() < pops) return false;
      const uint32_t begin = pops == 0 ? k : stack[stack.size() - pops].begin;
      stack.resize(stack.size() - pops);
      stack.push_back({begin, k + 1, kNone});  // operands inside an operator: one leaf
    }
    if (stack.size() != 1 || arena > kSplitArenaBound || lowers > kSplitLowerBound) return false;
    *root = node_of(stack[0]);
    return DepthOk(*tree, *root, 0);
  }

  static bool DepthOk(const std::vector<TNode>& tree, uint32_t n, int depth) {
    if (depth > Plan::kMaxDepth) return false;
    for (uint32_t k : tree[n].kids) {
      if (!DepthOk(tree, k, depth + 1)) return false;
    }
    return true;
  }

  // Appends node n of `tree` (and its kids) to the plan; returns its index.
  static uint32_t Emit(Plan* plan, const std::vector<TNode>& tree, uint32_t n, int depth) {
    const TNode& t = tree[n];
    Plan::Node out{t.kind, t.value, 0, 0};
    if (t.kind == Plan::kLeaf) out.a = t.leaf;
    std::vector<uint32_t> kids;
    for (uint32_t k : t.kids) kids.push_back(Emit(plan, tree, k, depth + 1));
    if (t.kind == Plan::kNot) out.a = kids[0];
    if (t.kind == Plan::kAnd || t.kind == Plan::kOr) {
      out.a = static_cast<uint32_t>(plan->kids_.size());
      out.n = static_cast<uint32_t>(kids.size());
      plan->kids_.insert(plan->kids_.end(), kids.begin(), kids.end());
    }
    plan->nodes_.push_back(out);
    return static_cast<uint32_t>(plan->nodes_.size() - 1);
  }

  // Starts a request: results of the previous one are forgotten.
  static void Begin(const Plan& plan, PlanScratch* s) {
    if (s->stamp_.size() < plan.leaves_.size()) {
      s->stamp_.resize(plan.leaves_.size(), 0);
      s->value_.resize(plan.leaves_.size(), 0);
    }
    if (++s->generation_ == 0) {  // wrapped: stamps of 2^32 requests ago would look fresh
      std::fill(s->stamp_.begin(), s->stamp_.end(), 0);
      s->generation_ = 1;
    }
  }

  static Tri LeafValue(const Plan& plan, const PreparedRequest& req, PlanScratch* s,
                       uint32_t leaf) {
    if (s->stamp_[leaf] == s->generation_) return static_cast<Tri>(s->value_[leaf]);
    const Plan::Leaf& l = plan.leaves_[leaf];
    const Bundle& b = *plan.bundle_;
    const Tri t = l.program != Plan::kWhole ? RunAtom(b, req, l.program)
                                             : TriOf(Run(b, req, Program{l.begin, l.count, 0, 1}));
    s->stamp_[leaf] = s->generation_;
    s->value_[leaf] = static_cast<uint8_t>(t);
    return t;
  }

  // Kleene, as the VM's kNot / kAnd / kOr: for and, false if any kid is false, else unknown if
  // any is, else error if any is, else true (or: the same with true and false swapped).
  static Tri Eval(const Plan& plan, const PreparedRequest& req, PlanScratch* s, uint32_t n) {
    const Plan::Node& node = plan.nodes_[n];
    switch (node.kind) {
      case Plan::kLeaf: return LeafValue(plan, req, s, node.a);
      case Plan::kConst: return static_cast<Tri>(node.value);
      case Plan::kNot: {
        const Tri t = Eval(plan, req, s, node.a);
        return t == Tri::kTrue ? Tri::kFalse : t == Tri::kFalse ? Tri::kTrue : t;
      }
      case Plan::kAnd:
      case Plan::kOr: {
        const Tri dominant = node.kind == Plan::kAnd ? Tri::kFalse : Tri::kTrue;
        bool unknown = false, error = false;
        for (uint32_t k = 0; k < node.n; ++k) {
          const Tri t = Eval(plan, req, s, plan.kids_[node.a + k]);
          if (t == dominant) return dominant;
          unknown |= t == Tri::kUnknown;
          error |= t == Tri::kError;
        }
        if (unknown) return Tri::kUnknown;
        if (error) return Tri::kError;
        return node.kind == Plan::kAnd ? Tri::kTrue : Tri::kFalse;
      }
    }
    return Tri::kError;
  }

  static Tri Statement(const Plan& plan, const PreparedRequest& req, PlanScratch* s,
                       uint32_t stmt) {
    const uint32_t root = plan.root_[stmt];
    const Bundle& b = *plan.bundle_;
    if (root == Plan::kWhole) return RunAtom(b, req, b.statements_[stmt].formula);
    return Eval(plan, req, s, root);
  }

  // AnyDagSaysYes for one chunk, over the remembered atom results.
  static bool DagSaysYes(const Plan& plan, const PreparedRequest& req, PlanScratch* s,
                         uint32_t p, DagKind kind) {
    const Bundle& b = *plan.bundle_;
    uint32_t ref = b.partitions_[p].root[kind];
    while (!(ref & kLeafBit)) {
      const Node& n = b.nodes_[ref];
      ref = n.next[static_cast<int>(LeafValue(plan, req, s, plan.atom_leaf_[n.atom]))];
    }
    const Outcome& o = b.outcomes_[ref & ~kLeafBit];
    return (kind == kForbidDag ? o.forbid : kind == kPermitDag ? o.permit : o.approval) != 0;
  }
};

StatementPlan::StatementPlan(const Bundle& bundle) : bundle_(&bundle) { PlanAccess::Build(this); }

size_t StatementPlan::whole_count() const {
  return static_cast<size_t>(std::count(root_.begin(), root_.end(), kWhole));
}

void DeterminingStatements(const StatementPlan& plan, const PreparedRequest& req,
                           const Decision& d, PlanScratch* scratch, std::vector<uint32_t>* out) {
  const Bundle& b = plan.bundle();
  if (req.args_unknown) {
    DeterminingStatements(b, req, d, out);
    return;
  }
  using A = PlanAccess;
  A::Begin(plan, scratch);
  out->clear();
  ForEachPartition(b, req, [&](uint32_t p) {
    // As DeterminingStatements above: chunks whose DAGs for the candidate kinds say no hold
    // no determining statement.
    bool look = false;
    switch (d.effect) {
      case Effect::kDeny: look = A::DagSaysYes(plan, req, scratch, p, kForbidDag); break;
      case Effect::kAllow: look = A::DagSaysYes(plan, req, scratch, p, kPermitDag); break;
      case Effect::kRequireApproval:
        look = A::DagSaysYes(plan, req, scratch, p, kPermitDag) ||
               A::DagSaysYes(plan, req, scratch, p, kApprovalDag);
        break;
    }
    if (!look) return;
    const Partition& part = b.partitions_[p];
    for (uint32_t k = 0; k < part.stmt_count; ++k) {
      const uint32_t s = b.stmt_pool_[part.stmt_begin + k];
      if (!IsCandidate(b, s, d.effect)) continue;
      const uint8_t effect = b.statements_[s].effect;
      const Tri t = A::Statement(plan, req, scratch, s);
      if (effect == 0 ? t == Tri::kTrue : t != Tri::kFalse) out->push_back(s);
    }
  });
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}

nlohmann::json DecisionToJson(const Bundle& b, const PreparedRequest& req, const Decision& d_in) {
  using nlohmann::json;
  std::set<uint32_t> matched, errored;
  MatchStatements(b, req, &matched, &errored);
  // The details must agree with the DAG's effect; if they ever did not, deny (fail closed).
  Decision d = d_in;
  bool f = false, p = false, a = false;
  for (uint32_t s : matched) {
    f |= b.statements_[s].effect == 1;
    p |= b.statements_[s].effect == 0;
    a |= b.statement_approval_[s] != 0;
  }
  bool inconsistent = !d.overflow && Combine(f, p, a) != d.effect;
  if (inconsistent) d.effect = Effect::kDeny;
  std::set<std::string> determining;
  for (uint32_t s : matched) {
    const StatementMeta& m = b.statements_[s];
    const bool approval = b.statement_approval_[s] != 0;
    bool include = false;
    switch (d.effect) {
      case Effect::kDeny: include = m.effect == 1; break;
      case Effect::kAllow: include = m.effect == 0; break;
      case Effect::kRequireApproval: include = m.effect == 0 || approval; break;
    }
    if (include) determining.insert(std::string(b.str(m.id)));
  }
  // Merge obligations of every matched statement (docs/semantics.md).
  std::set<std::string> approvers;
  int64_t timeout = -1;
  bool any_approval = false;
  std::string log_level;
  std::map<std::string, std::pair<int64_t, int64_t>> rates;  // key -> (limit, per_ms)
  std::set<std::string> redacts, reasons, tags;
  std::set<std::pair<std::string, std::string>> notifies;
  for (uint32_t s : matched) {
    const StatementMeta& m = b.statements_[s];
    uint32_t rate_index = 0;
    for (const auto& ob : b.statement_obligations_[s]) {
      std::string kind = ob.value("kind", "");
      if (kind == "require_approval") {
        // A statement without approvers contributes "default"; without a timeout, 15m.
        any_approval = true;
        if (ob.contains("approvers")) {
          for (const auto& a : ob["approvers"]) approvers.insert(a.get<std::string>());
        } else {
          approvers.insert("default");
        }
        int64_t t = ob.contains("timeout_ms") ? ob["timeout_ms"].get<int64_t>() : int64_t{900000};
        if (timeout < 0 || t < timeout) timeout = t;
      } else if (kind == "log") {
        std::string lv = ob.value("level", "info");
        if (LogRank(lv) > LogRank(log_level)) log_level = lv;
      } else if (kind == "rate_limit") {
        std::string key = "<error>";
        if (rate_index < m.rate_key_count) {
          uint32_t prog = b.program_pool_[m.rate_key_begin + rate_index];
          key = KeyText(b, req, b.programs_[prog]);
        }
        ++rate_index;
        int64_t limit = ob.value("limit", int64_t{1});
        int64_t per = ob.value("per_ms", int64_t{1});
        auto it = rates.find(key);
        if (it == rates.end()) {
          rates[key] = {limit, per};
        } else {
          // Strictest: smaller limit/per; on a tie the smaller limit. Compare l1/p1 < l2/p2.
          auto [l2, p2] = it->second;
          __int128 lhs = static_cast<__int128>(limit) * p2, rhs = static_cast<__int128>(l2) * per;
          if (lhs < rhs || (lhs == rhs && limit < l2)) it->second = {limit, per};
        }
      } else if (kind == "redact") {
        for (const auto& t : ob["targets"]) redacts.insert(t.get<std::string>());
      } else if (kind == "reason") {
        reasons.insert(ob.value("message", ""));
      } else if (kind == "tag") {
        for (const auto& t : ob["values"]) tags.insert(t.get<std::string>());
      } else if (kind == "notify") {
        notifies.insert({ob.value("channel", ""), ob.value("target", "")});
      }
    }
  }
  json obligations = json::array();
  if (any_approval) {
    json a{{"kind", "require_approval"}};
    a["approvers"] = approvers.empty() ? json::array({"default"}) : json(approvers);
    a["timeout_ms"] = timeout < 0 ? int64_t{900000} : timeout;
    obligations.push_back(a);
  }
  for (const auto& [key, lp] : rates) {
    obligations.push_back({{"kind", "rate_limit"}, {"key", key}, {"limit", lp.first}, {"per_ms", lp.second}});
  }
  if (!redacts.empty()) obligations.push_back({{"kind", "redact"}, {"targets", redacts}});
  for (const auto& [c, t] : notifies) obligations.push_back({{"kind", "notify"}, {"channel", c}, {"target", t}});
  if (!log_level.empty()) obligations.push_back({{"kind", "log"}, {"level", log_level}});
  for (const auto& t : tags) obligations.push_back({{"kind", "tag"}, {"value", t}});
  for (const auto& r : reasons) obligations.push_back({{"kind", "reason"}, {"message", r}});
  std::set<std::string> errs;
  for (uint32_t s : errored) errs.insert(std::string(b.str(b.statements_[s].id)));
  json out{{"decision", EffectName(d.effect)},
           {"determining", json(determining)},
           {"obligations", obligations},
           {"errors", json(errs)}};
  if (d.overflow) out["errors"].push_back("<too many partitions: denied>");
  if (inconsistent) out["errors"].push_back("<internal: details disagree with the decision DAG: denied>");
  return out;
}

std::string Explain(const Bundle& b, const PreparedRequest& req) {
  std::ostringstream o;
  Decision d = Evaluate(b, req);
  o << "decision: " << EffectName(d.effect) << "\n";
  o << "request: principal " << req.principal.uid << ", action " << req.action.uid << ", resource "
    << req.resource.uid << "\n";
  static const char* kTri[] = {"true", "false", "error", "unknown"};
  static const char* kEff[] = {"permit", "forbid", "rule"};
  int n = 0;
  ForEachPartition(b, req, [&](uint32_t p) {
    o << "partition chunk p" << p << ":\n";
    static const char* kDag[] = {"forbid", "permit", "approval"};
    for (int kind = 0; kind < 3; ++kind) {
      uint32_t ref = b.partitions_[p].root[kind];
      o << "  " << kDag[kind] << " DAG:";
      while (!(ref & kLeafBit)) {
        const Node& node = b.nodes_[ref];
        Tri t = RunAtom(b, req, node.atom);
        o << "\n      " << b.str(b.program_text_[node.atom]) << " = " << kTri[static_cast<int>(t)];
        ref = node.next[static_cast<int>(t)];
      }
      const Outcome& leaf = b.outcomes_[ref & ~kLeafBit];
      o << (ref == b.partitions_[p].root[kind] ? " " : "\n      ") << "-> "
        << (leaf.forbid || leaf.permit || leaf.approval ? "yes" : "no") << "\n";
    }
    const Partition& part = b.partitions_[p];
    for (uint32_t k = 0; k < part.stmt_count; ++k) {
      const StatementMeta& m = b.statements_[b.stmt_pool_[part.stmt_begin + k]];
      Tri t = RunAtom(b, req, m.formula);
      bool matched = m.effect == 0 ? t == Tri::kTrue : t != Tri::kFalse;
      o << "    " << kEff[m.effect] << " " << b.str(m.id) << " (" << b.str(m.file) << ":" << m.line << ":"
        << m.col << "): " << kTri[static_cast<int>(t)] << (matched ? ", matched" : "");
      if (t == Tri::kError) {
        o << (m.effect == 0 ? " -- its condition is an error, so it grants nothing"
                            : " -- its condition is an error, so it counts as matched (fail closed)");
      }
      o << "\n";
    }
    ++n;
  });
  if (n == 0) o << "no statement applies to this action and resource\n";
  nlohmann::json j = DecisionToJson(b, req, d);
  if (d.effect == Effect::kDeny && j["determining"].empty()) {
    o << "why: no permit matched (default deny)\n";
  } else if (d.effect == Effect::kDeny) {
    o << "why: forbidden by " << j["determining"].dump() << "\n";
  } else {
    o << "why: permitted by " << j["determining"].dump()
      << (d.effect == Effect::kRequireApproval ? ", approval required" : "") << "\n";
  }
  return o.str();
}

Visibility ListVisibility(const Bundle& b, const PreparedRequest& req_in) {
  PreparedRequest req = req_in;
  req.args_unknown = true;
  bool definitely_forbidden = false, maybe_forbidden = false;
  bool maybe_permitted = false, definitely_permitted = false;
  ForEachPartition(b, req, [&](uint32_t p) {
    // The leaves of one DAG reachable when unknown atoms may take any value:
    // (some leaf says yes, every leaf says yes).
    auto reach = [&](DagKind kind) {
      bool any_yes = false, all_yes = true;
      std::vector<uint32_t> stack{b.partitions_[p].root[kind]};
      std::set<uint32_t> seen;
      while (!stack.empty()) {
        uint32_t ref = stack.back();
        stack.pop_back();
        if (!seen.insert(ref).second) continue;
        if (ref & kLeafBit) {
          const Outcome& o = b.outcomes_[ref & ~kLeafBit];
          bool yes = kind == kForbidDag ? o.forbid != 0 : o.permit != 0;
          any_yes |= yes;
          all_yes &= yes;
          continue;
        }
        const Node& node = b.nodes_[ref];
        Tri t = RunAtom(b, req, node.atom);
        if (t == Tri::kUnknown) {
          for (uint32_t r : node.next) stack.push_back(r);
        } else {
          stack.push_back(node.next[static_cast<int>(t)]);
        }
      }
      return std::pair<bool, bool>{any_yes, all_yes};
    };
    auto [any_forbid, all_forbid] = reach(kForbidDag);
    auto [any_permit, all_permit] = reach(kPermitDag);
    definitely_forbidden |= all_forbid;
    maybe_forbidden |= any_forbid;
    maybe_permitted |= any_permit;
    definitely_permitted |= all_permit;
  });
  if (definitely_forbidden || !maybe_permitted) return Visibility::kDeny;
  if (!maybe_forbidden && definitely_permitted) return Visibility::kAllow;
  return Visibility::kDependsOnArgs;
}

}  // namespace writ::runtime
