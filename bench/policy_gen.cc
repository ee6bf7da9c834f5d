// policy_gen.cc -- see policy_gen.h.
#include "bench/policy_gen.h"

#include <array>
#include <string_view>
#include <vector>

namespace writ::bench {
namespace {

// SplitMix64: tiny, fast, and fully specified, so output is stable everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n) for n far below 2^32.
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  template <typename T, size_t N>
  const T& Pick(const std::array<T, N>& a) { return a[Below(N)]; }
  bool Chance(int percent) { return Below(100) < static_cast<size_t>(percent); }

 private:
  uint64_t state_;
};

struct Tool {
  std::string_view server;
  std::string_view name;  // without the server prefix
  std::string_view category;
  std::string_view arg;   // a typical argument to constrain
  bool numeric;           // arg is an integer
};

constexpr std::array<Tool, 24> kTools{{
    {"github", "create_issue", "dev", "repo", false},
    {"github", "merge_pull_request", "dev", "repo", false},
    {"github", "delete_repository", "dev", "repo", false},
    {"github", "push_files", "dev", "branch", false},
    {"gitlab", "create_merge_request", "dev", "project", false},
    {"jira", "search", "tickets", "jql", false},
    {"jira", "transition_issue", "tickets", "issue_key", false},
    {"slack", "post_message", "comms", "channel", false},
    {"slack", "list_channels", "comms", "limit", true},
    {"gmail", "send_email", "comms", "to", false},
    {"stripe", "refund_create", "financial", "amount", true},
    {"stripe", "charge_create", "financial", "amount", true},
    {"stripe", "customer_delete", "financial", "customer_id", false},
    {"quickbooks", "invoice_void", "financial", "invoice_id", false},
    {"warehouse", "run_query", "data", "sql", false},
    {"warehouse", "export_table", "data", "row_limit", true},
    {"postgres", "execute", "data", "statement", false},
    {"s3", "get_object", "storage", "key", false},
    {"s3", "delete_object", "storage", "key", false},
    {"fs", "write_file", "storage", "path", false},
    {"fs", "read_file", "storage", "path", false},
    {"shell", "exec", "compute", "command", false},
    {"k8s", "scale_deployment", "compute", "replicas", true},
    {"pagerduty", "create_incident", "ops", "severity", false},
}};

constexpr std::array<std::string_view, 10> kRoles{
    "analyst", "engineer", "sre", "support", "finance", "admin",
    "security", "sales", "contractor", "intern"};
constexpr std::array<std::string_view, 6> kDepartments{"engineering", "finance", "support",
                                                       "sales", "security", "data"};
constexpr std::array<std::string_view, 5> kChannels{"#security-alerts", "#finance-ops",
                                                    "#sre-pager", "#audit", "#data-gov"};
constexpr std::array<std::string_view, 4> kApprovers{"finance-leads", "security-oncall",
                                                     "eng-managers", "data-owners"};
constexpr std::array<std::string_view, 5> kDurations{"5m", "15m", "30m", "1h", "1h30m"};
constexpr std::array<std::string_view, 4> kPer{"1m", "1h", "1d", "10s"};
constexpr std::array<std::string_view, 4> kDlp{"email", "credit_card", "ssn", "api_key"};
constexpr std::array<std::string_view, 4> kIntents{"read", "write", "destructive",
                                                   "exfiltrative"};

std::string Q(std::string_view s) { return "\"" + std::string(s) + "\""; }
// Tenant 0 uses the plain server names; tenant k > 0 has its own instances ("github_t3").
std::string ServerName(const Tool& t, int tenant) {
  return std::string(t.server) + (tenant > 0 ? "_t" + std::to_string(tenant) : "");
}
std::string ToolId(const Tool& t, int tenant) { return ServerName(t, tenant) + "__" + std::string(t.name); }

// One condition on a tool's argument, realistic for its kind.
std::string ArgCondition(Rng& r, const Tool& t) {
  std::string a = "args." + std::string(t.arg);
  if (t.numeric) {
    static constexpr std::array<int, 6> kLimits{10, 100, 500, 1000, 50000, 100000};
    return "args has " + std::string(t.arg) + " && " + a + " " + (r.Chance(50) ? "<=" : "<") +
           " " + std::to_string(r.Pick(kLimits));
  }
  switch (r.Below(5)) {
    case 0: return a + " like \"" + (r.Chance(50) ? "acme/*" : "/home/*") + "\"";
    case 1: return a + ".lower() != \"main\"";
    case 2: return "[\"prod\", \"staging\"].contains(" + a + ")";
    case 3: return "!(" + a + " matches \"^(/etc|/root)\")";
    default: return "args has " + std::string(t.arg);
  }
}

std::string Permit(Rng& r, int id, int tenant, PolicyGrants* grants) {
  const size_t tool = r.Below(kTools.size());
  const Tool& t = kTools[tool];
  std::string s = "@id(\"permit-" + std::to_string(id) + "\")\n";
  s += "@description(\"" + std::string(r.Pick(kRoles)) + " may use " + ToolId(t, tenant) + "\")\n";
  const size_t role = r.Below(kRoles.size());
  s += "permit (\n  principal in Role::" + Q(kRoles[role]) + ",\n";
  s += r.Chance(80) ? "  action == Action::\"tools/call\",\n"
                    : "  action in [Action::\"tools/call\", Action::\"resources/read\"],\n";
  const bool server = !r.Chance(60);
  s += !server ? "  resource == Tool::" + Q(ToolId(t, tenant)) + "\n)"
               : "  resource in Server::" + Q(ServerName(t, tenant)) + "\n)";
  if (grants != nullptr) {
    grants->grants.push_back(PolicyGrants::Grant{static_cast<int>(tool), tenant,
                                                 static_cast<int>(role), server});
  }
  s += "\nwhen { " + ArgCondition(r, t);
  if (r.Chance(40)) s += " && principal.department == " + Q(r.Pick(kDepartments));
  if (r.Chance(30)) s += " && principal.mfa";
  s += " }";
  if (r.Chance(30)) s += "\nunless { context.time.hour < 7 || context.time.hour > 19 }";
  if (r.Chance(25)) {
    s += "\nthen rate_limit(key: principal, limit: " + std::to_string(10 + r.Below(990)) +
         ", per: " + std::string(r.Pick(kPer)) + ")";
  }
  return s + ";\n\n";
}

std::string Forbid(Rng& r, int id, int tenant) {
  const Tool& t = r.Pick(kTools);
  std::string s = "@id(\"forbid-" + std::to_string(id) + "\")\n";
  s += "forbid (principal, action == Action::\"tools/call\", resource == Tool::" + Q(ToolId(t, tenant)) +
       ")\n";
  switch (r.Below(4)) {
    case 0: s += "when { call.intent == " + Q(r.Pick(kIntents)) + " && !principal.mfa }"; break;
    case 1: s += "when { context.dlp.args.containsAny([\"credit_card\", \"ssn\"]) }"; break;
    case 2:  // contractors and interns need an explicit exemption
      s.replace(s.find("forbid (principal,"), 18,
                "forbid (principal in Role::" + Q(r.Chance(50) ? "contractor" : "intern") + ",");
      s += "unless { principal.roles.contains(" + Q(r.Pick(kRoles)) + ") }";
      break;
    default:
      s += "when { " + std::string(t.numeric ? "args." + std::string(t.arg) + " > 100000"
                                             : "args." + std::string(t.arg) + " like \"*prod*\"") +
           " }";
  }
  s += "\nthen reason(\"" + ToolId(t, tenant) + " blocked by policy " + std::to_string(id) + "\")";
  if (r.Chance(50)) s += ", notify(\"slack\", " + Q(r.Pick(kChannels)) + ")";
  return s + ";\n\n";
}

std::string Rule(Rng& r, int id, int tenant) {
  const Tool& t = r.Pick(kTools);
  std::string s = "@id(\"rule-" + std::to_string(id) + "\")\n";
  switch (r.Below(3)) {
    case 0:
      s += "rule if tool.category == " + Q(t.category) + " && call.intent == " +
           Q(r.Pick(kIntents)) + "\nthen require_approval(approvers: " + Q(r.Pick(kApprovers)) +
           ", timeout: " + std::string(r.Pick(kDurations)) + "), log(critical)";
      break;
    case 1:
      s += "rule if resource == Tool::" + Q(ToolId(t, tenant)) + " && principal.tenant != \"internal\"" +
           "\nthen rate_limit(key: [principal, tool], limit: " + std::to_string(1 + r.Below(100)) +
           ", per: " + std::string(r.Pick(kPer)) + "), tag(" + Q(t.category) + ")";
      break;
    default:
      s += "rule if context.dlp.args.contains(" + Q(r.Pick(kDlp)) + ")" +
           "\nthen redact(" + Q(r.Pick(kDlp)) + "), notify(\"slack\", " + Q(r.Pick(kChannels)) +
           "), log(warning)";
  }
  return s + ";\n\n";
}

}  // namespace

std::string GeneratePolicySet(const PolicyGenOptions& options, PolicyGrants* grants) {
  if (grants != nullptr) grants->grants.clear();
  Rng r(options.seed);
  std::string out = "// Generated by bench/policy_gen.cc: " +
                    std::to_string(options.statements) + " statements, seed " +
                    std::to_string(options.seed) + ".\n\n";
  out.reserve(static_cast<size_t>(options.statements) * 300);
  for (int i = 0; i < options.statements; ++i) {
    // Mix: 60% permits, 20% forbids, 20% rules.
    size_t k = r.Below(10);
    int tenant = options.tenants > 1 ? static_cast<int>(r.Below(static_cast<size_t>(options.tenants))) : 0;
    out += k < 6 ? Permit(r, i, tenant, grants) : k < 8 ? Forbid(r, i, tenant) : Rule(r, i, tenant);
  }
  return out;
}

std::string GenerateRequest(uint64_t seed, int tenants, const PolicyGrants* grants) {
  Rng mix(seed);
  Rng r(mix.Next() ^ 0xA5A5A5A5A5A5A5A5ull);  // decorrelate neighbouring seeds
  // The targeted mix draws its choices from a separate stream, so the uniform requests of
  // both mixes (and every request without `grants`) are the same as before it existed.
  Rng pick(mix.Next() ^ 0x5A5A5A5A5A5A5A5Aull);
  const PolicyGrants::Grant* g = nullptr;
  if (grants != nullptr && !grants->grants.empty() && pick.Chance(kTargetedPercent)) {
    g = &grants->grants[pick.Below(grants->grants.size())];
  }
  const Tool* tp = &r.Pick(kTools);
  int tenant = tenants > 1 ? static_cast<int>(r.Below(static_cast<size_t>(tenants))) : 0;
  std::string_view role = r.Pick(kRoles);
  if (g != nullptr) {
    tenant = g->tenant;
    role = kRoles[static_cast<size_t>(g->role)];
    tp = &kTools[static_cast<size_t>(g->tool)];
    if (g->server) {  // any tool of the granted server
      std::vector<const Tool*> same;
      for (const Tool& x : kTools) {
        if (x.server == tp->server) same.push_back(&x);
      }
      tp = same[pick.Below(same.size())];
    }
  }
  const Tool& t = *tp;
  std::string parents = "\"Role::\\\"" + std::string(role) + "\\\"\"";
  if (r.Chance(40)) parents += ", \"Role::\\\"" + std::string(r.Pick(kRoles)) + "\\\"\"";
  std::string arg;
  if (t.numeric) {
    arg = std::to_string(r.Below(200000));
  } else {
    static constexpr std::array<std::string_view, 5> kValues{"acme/payments", "main", "prod",
                                                              "/etc/passwd", "/home/dev/x"};
    arg = Q(r.Pick(kValues));
  }
  std::string out = "{\"principal\": {\"uid\": \"User::\\\"u" + std::to_string(r.Below(1000)) +
                    "\\\"\", \"attrs\": {\"department\": " + Q(r.Pick(kDepartments)) +
                    ", \"mfa\": " + (r.Chance(70) ? "true" : "false") +
                    ", \"tenant\": " + (r.Chance(80) ? "\"internal\"" : "\"partner\"") +
                    ", \"roles\": [" + Q(r.Pick(kRoles)) + "]}, \"parents\": [" + parents + "]}, ";
  out += "\"action\": \"tools/call\", ";
  out += "\"resource\": {\"uid\": \"Tool::\\\"" + ToolId(t, tenant) + "\\\"\", \"attrs\": {\"category\": " +
         Q(t.category) + "}, \"parents\": [\"Server::\\\"" + ServerName(t, tenant) + "\\\"\"]}, ";
  out += "\"args\": {" + Q(t.arg) + ": " + arg + "}, ";
  out += "\"context\": {\"time\": {\"hour\": " + std::to_string(r.Below(24)) +
         "}, \"dlp\": {\"args\": [" + (r.Chance(20) ? Q(r.Pick(kDlp)) : "") + "]}}, ";
  out += "\"call\": {\"intent\": " + Q(r.Pick(kIntents)) + "}}";
  return out;
}

}  // namespace writ::bench
