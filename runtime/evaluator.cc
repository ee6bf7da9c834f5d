// evaluator.cc -- Evaluate (switch -> partition DAG walks -> combine), DecisionToJson,
// Explain and ListVisibility. The allow/deny rule is the one exhaustive function Combine().
#include "runtime/evaluator.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

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
      const uint8_t effect = b.statements_[s].effect;
      bool candidate = false;  // could be determining for this effect (docs/semantics.md)
      switch (d.effect) {
        case Effect::kDeny: candidate = effect == 1; break;
        case Effect::kAllow: candidate = effect == 0; break;
        case Effect::kRequireApproval:
          candidate = effect == 0 || b.statement_approval_[s] != 0;
          break;
      }
      if (!candidate) continue;
      Tri t = RunAtom(b, req, b.statements_[s].formula);
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
