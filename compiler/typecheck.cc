// typecheck.cc -- the checks of `writ check` (see typecheck.h).
#include "compiler/typecheck.h"

#include <map>
#include <re2/re2.h>

#include "compiler/schema.h"

namespace writ {
namespace {

void CheckRegexes(const ast::Expr& e, Diagnostics* diags) {
  if (e.kind == ast::ExprKind::kMatches) {
    RE2::Options opts;
    opts.set_log_errors(false);
    RE2 re(e.str, opts);
    if (!re.ok()) {
      diags->Error("E0203", e.span, "invalid regular expression: " + re.error(),
                   "writ uses RE2 syntax (no backreferences or lookaround); see "
                   "https://github.com/google/re2/wiki/Syntax");
    }
  }
  for (const auto& k : e.kids) CheckRegexes(*k, diags);
}

}  // namespace

void TypeCheck(const ast::PolicySet& policies, const Schema* schema, Diagnostics* diags) {
  std::map<std::string, const ast::Statement*> ids;
  for (const ast::Statement* s : policies.AllStatements()) {
    if (s->explicit_id) {
      auto [it, fresh] = ids.emplace(s->id, s);
      if (!fresh) {
        const ast::Annotation* a = s->FindAnnotation("id");
        diags->Error("E0204", a ? a->span : s->span, "duplicate id `" + s->id + "`",
                     "every @id must be unique across the policy set; rename one of them");
      }
    }
    for (const auto& c : s->conditions) CheckRegexes(*c.expr, diags);
    if (s->rule_condition) CheckRegexes(*s->rule_condition, diags);
  }
}

}  // namespace writ
