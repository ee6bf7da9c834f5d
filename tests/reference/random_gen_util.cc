// random_gen_util.cc -- random policy sets and requests (see random_gen.h).
#include <random>
#include <string>
#include <vector>

#include "tests/reference/random_gen.h"

namespace writ::reference {
namespace {

using nlohmann::json;

// ---- the shared vocabulary ----
const std::vector<std::string> kUsers = {"User::\"alice\"", "User::\"bob\"", "Agent::\"ci-bot\""};
const std::vector<std::string> kGroups = {"Role::\"analyst\"", "Role::\"admin\"",
                                          "Group::\"eng\"", "Group::\"finance\""};
const std::vector<std::string> kTools = {"Tool::\"stripe__refund_create\"",
                                         "Tool::\"github__create_issue\"",
                                         "Tool::\"warehouse__query\""};
const std::vector<std::string> kServers = {"Server::\"stripe\"", "Server::\"github\"",
                                           "Server::\"warehouse\""};
const std::vector<std::string> kActions = {"tools/call", "resources/read", "prompts/get"};
const std::vector<std::string> kStrings = {"eng", "finance", "usd", "eur", "read", "write",
                                           "destructive", "financial", "dev", "ops", "pci",
                                           "tue", "prod", "", "DROP table", "a@b.com"};
const std::vector<int64_t> kLongs = {0, 1, -1, 3, 5, 14, 50000, 50001, 49999,
                                     9223372036854775807LL, -9223372036854775807LL - 1,
                                     4611686018427387904LL, 3037000500LL};
const std::vector<std::string> kIps = {"10.1.2.3", "10.0.0.0/8", "192.168.0.5",
                                       "192.168.0.0/16", "::1", "2001:db8::1", "2001:db8::/32",
                                       "bad-ip", "10.0.0.256", "0.0.0.0/0"};

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed * 0x9E3779B97F4A7C15ULL + 12345) {}

  uint64_t Next() { return rng_(); }
  int Int(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Int(100) < percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Int(static_cast<int>(v.size()))];
  }

  static std::string Quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }

  // ---- expressions, by intended type; some are deliberately of the wrong type ----

  std::string LongLit() {
    int64_t v = Chance(70) ? Pick(kLongs) : static_cast<int64_t>(Int(100)) - 20;
    return std::to_string(v);  // negative literals parse as one literal
  }

  std::string LongExpr(int d) {
    switch (Int(d > 0 ? 12 : 8)) {
      case 0:
      case 1: return LongLit();
      case 2: return "args.amount";
      case 3: return "principal.clearance";
      case 4: return "context.time.hour";
      case 5: return Pick(std::vector<std::string>{"args.meta.level", "resource.risk",
                                                   "args[\"amount\"]", "args.count"});
      case 6: return Chance(50) ? "args.currency" : "principal.department";  // wrong type
      case 7: return "args.amount";
      case 8: {
        static const char* kOps[] = {" + ", " - ", " * "};
        return "(" + LongExpr(d - 1) + kOps[Int(3)] + LongExpr(d - 1) + ")";
      }
      case 9: return "-" + LongExpr(d - 1);
      case 10: return "(if " + BoolExpr(d - 1) + " then " + LongExpr(d - 1) + " else " +
                      LongExpr(d - 1) + ")";
      default: return Pick(std::vector<std::string>{"15m", "1h", "30s"});  // durations
    }
  }

  std::string StrExpr(int d) {
    switch (Int(d > 0 ? 11 : 9)) {
      case 0:
      case 1: return Quote(Pick(kStrings));
      case 2: return "args.currency";
      case 3: return "principal.department";
      case 4: return "resource.category";
      case 5: return "call.intent";
      case 6: return Pick(std::vector<std::string>{"context.time.weekday", "context.env",
                                                   "args.email", "args.query", "tool.category"});
      case 7: return "args[\"currency\"]";
      case 8: return "args.amount";  // wrong type
      case 9: return StrExpr(d - 1) + ".lower()";
      default: return "(if " + BoolExpr(d - 1) + " then " + StrExpr(d - 1) + " else " +
                      StrExpr(d - 1) + ")";
    }
  }

  std::string EntityExpr() {
    switch (Int(6)) {
      case 0: return "principal";
      case 1: return Chance(50) ? "resource" : "tool";
      case 2: return "action";
      case 3: return "args.owner";
      case 4: return Pick(kUsers);
      default: return Pick(kTools);
    }
  }

  std::string EntityTarget() {
    switch (Int(5)) {
      case 0: return Pick(kGroups);
      case 1: return Pick(kServers);
      case 2: return Pick(kUsers);
      case 3: return "Action::\"" + Pick(kActions) + "\"";
      default: return Pick(kTools);
    }
  }

  std::string SetExpr(int d) {
    switch (Int(6)) {
      case 0: return "principal.roles";
      case 1: return "resource.tags";
      case 2: return "context.dlp";
      case 3: return "args.items";
      case 4: {
        std::string s = "[";
        for (int n = Int(4); n > 0; --n) {
          s += (s.size() > 1 ? ", " : "") + (Chance(80) ? Quote(Pick(kStrings)) : LongLit());
        }
        return s + "]";
      }
      default: return "[" + StrExpr(d > 0 ? d - 1 : 0) + ", " + Quote(Pick(kStrings)) + "]";
    }
  }

  std::string RecordExpr(int d) {
    switch (Int(3)) {
      case 0: return "args.meta";
      case 1: return "{level: " + LongExpr(d > 0 ? d - 1 : 0) + ", note: " + Quote(Pick(kStrings)) + "}";
      default: return "{level: " + LongLit() + "}";
    }
  }

  std::string AnyExpr(int d) {
    switch (Int(5)) {
      case 0: return LongExpr(d);
      case 1: return StrExpr(d);
      case 2: return EntityExpr();
      case 3: return SetExpr(d);
      default: return RecordExpr(d);
    }
  }

  std::string Cmp() {
    static const char* kOps[] = {" == ", " != ", " < ", " <= ", " > ", " >= "};
    return kOps[Int(6)];
  }

  std::string BoolExpr(int d) {
    int n = d > 0 ? 30 : 22;
    switch (Int(n)) {
      case 0: return Chance(50) ? "true" : "false";
      case 1:
      case 2: return LongExpr(d > 0 ? d - 1 : 0) + Cmp() + LongExpr(d > 0 ? d - 1 : 0);
      case 3: return "args.amount > " + LongLit();
      case 4: return StrExpr(d > 0 ? d - 1 : 0) + (Chance(70) ? " == " : " != ") +
                     Quote(Pick(kStrings));
      case 5: return StrExpr(0) + " like " + Quote(Pick(std::vector<std::string>{
                         "*", "e*", "*d", "u*d", "*r*", "eng", "\\**", "a*b*c", "*@*.com"}));
      case 6: return StrExpr(0) + " matches " + Quote(Pick(std::vector<std::string>{
                         "^e", "(?i)drop\\\\s+table", "[0-9]+", "^$", "sd$", "o"}));
      case 7: {
        static const char* kHas[] = {"args has amount", "args has currency",
                                     "principal has mfa", "resource has category",
                                     "context has ip", "args.meta has level", "args has \"meta\"",
                                     "action has x", "args.amount has x", "tool has tags"};
        return kHas[Int(10)];
      }
      case 8: return Chance(50) ? "principal.mfa" : "principal.mfa == true";
      case 9: return EntityExpr() + " in " + EntityTarget();
      case 10: return EntityExpr() + " in [" + EntityTarget() + ", " + EntityTarget() + "]";
      case 11: return EntityExpr() + " is " +
                      Pick(std::vector<std::string>{"User", "Agent", "Tool", "Action"}) +
                      (Chance(40) ? " in " + EntityTarget() : "");
      case 12: return EntityExpr() + (Chance(50) ? " == " : " != ") + EntityExpr();
      case 13: {
        switch (Int(4)) {
          case 0: return SetExpr(d) + ".contains(" + AnyExpr(0) + ")";
          case 1: return SetExpr(d) + ".containsAll(" + SetExpr(d) + ")";
          case 2: return SetExpr(d) + ".containsAny(" + SetExpr(d) + ")";
          default: return SetExpr(d) + ".isEmpty()";
        }
      }
      case 14: return Quote(Pick(kStrings)) + " in " + SetExpr(d);
      case 15: {
        std::string subject = Pick(std::vector<std::string>{
            "context.ip", "args.ip", "ip(" + Quote(Pick(kIps)) + ")", Quote(Pick(kIps))});
        std::string range = Chance(50) ? "ip(" + Quote(Pick(kIps)) + ")" : Quote(Pick(kIps));
        return subject + ".isInRange(" + range + ")";
      }
      case 16: return Pick(std::vector<std::string>{"15m < 1h", "args.amount < 2h", "1h == 60m",
                                                    "30s >= 1h"});
      case 17: return RecordExpr(d) + (Chance(50) ? " == " : " != ") + RecordExpr(d);
      case 18: return "args.meta.level" + Cmp() + LongLit();
      case 19: return SetExpr(d) + (Chance(50) ? " == " : " != ") + SetExpr(d);
      case 20: return AnyExpr(0) + " == " + AnyExpr(0);
      case 21: return Pick(std::vector<std::string>{
          "9223372036854775807 + args.amount > 0", "args.amount * 4611686018427387904 > 1",
          "-args.amount < 0", "args.amount - -9223372036854775808 > 0",
          "principal.clearance * 3037000500 > 0"});
      case 22:
      case 23: return "!" + Paren(BoolExpr(d - 1));
      case 24:
      case 25: return Paren(BoolExpr(d - 1)) + " && " + Paren(BoolExpr(d - 1));
      case 26:
      case 27: return Paren(BoolExpr(d - 1)) + " || " + Paren(BoolExpr(d - 1));
      case 28: return "if " + BoolExpr(d - 1) + " then " + Paren(BoolExpr(d - 1)) + " else " +
                      Paren(BoolExpr(d - 1));
      default: return Chance(50) ? "args.flag" : "args.amount";  // maybe not Bool
    }
  }

  static std::string Paren(const std::string& s) { return "(" + s + ")"; }

  // ---- statements ----

  std::string Scope(const char* var) {
    std::string v = var;
    if (v == "principal") {
      switch (Int(7)) {
        case 0: return "principal == " + Pick(kUsers);
        case 1: return "principal in " + Pick(kGroups);
        case 2: return "principal is " + Pick(std::vector<std::string>{"User", "Agent"});
        case 3: return "principal is User in " + Pick(kGroups);
        case 4: return "principal in [" + Pick(kGroups) + ", " + Pick(kUsers) + "]";
        default: return "principal";
      }
    }
    if (v == "action") {
      switch (Int(5)) {
        case 0:
        case 1: return "action == Action::\"tools/call\"";
        case 2: return "action == Action::\"" + Pick(kActions) + "\"";
        case 3: return "action in [Action::\"" + Pick(kActions) + "\", Action::\"" +
                       Pick(kActions) + "\"]";
        default: return "action";
      }
    }
    switch (Int(7)) {
      case 0:
      case 1: return (Chance(80) ? "resource" : "tool") + std::string(" == ") + Pick(kTools);
      case 2: return "resource in " + Pick(kServers);
      case 3: return "resource is Tool";
      case 4: return "resource is Tool in " + Pick(kServers);
      default: return "resource";
    }
  }

  std::string Obligation() {
    switch (Int(8)) {
      case 0: return "reason(" + Quote(Pick(std::vector<std::string>{"no", "too big", "ask"})) + ")";
      case 1: return "log(" + Pick(std::vector<std::string>{"debug", "info", "notice", "warning",
                                                             "error", "critical"}) + ")";
      case 2: return "tag(\"pci\"" + std::string(Chance(30) ? ", \"hipaa\"" : "") + ")";
      case 3: return "notify(\"slack\", " + Quote(Chance(50) ? "#sec" : "#ops") + ")";
      case 4: return "redact(\"email\"" + std::string(Chance(50) ? ", \"args.card\"" : "") + ")";
      case 5:
      case 6: {
        std::string key = Pick(std::vector<std::string>{
            "", "principal", "[principal, tool]", "args.currency", "args.amount", "context.ip",
            "resource.category", "{a: args.amount, p: principal}", "args.meta", "call.intent",
            "args.items", "15m", "true"});
        std::string out = "rate_limit(";
        if (!key.empty()) out += "key: " + key + ", ";
        out += "limit: " + std::to_string(1 + Int(20)) + ", per: " +
               Pick(std::vector<std::string>{"1s", "10s", "1m", "1h", "1d"}) + ")";
        return out;
      }
      default: {
        std::string out = "require_approval(";
        std::vector<std::string> parts;
        if (Chance(60)) {
          parts.push_back(Chance(50) ? "approvers: \"finance-leads\""
                                     : "approvers: [\"sec\", \"finance-leads\"]");
        }
        if (Chance(60)) parts.push_back("timeout: " + Pick(std::vector<std::string>{"5m", "15m", "1h"}));
        for (size_t k = 0; k < parts.size(); ++k) out += (k ? ", " : "") + parts[k];
        return out + ")";
      }
    }
  }

  std::string Obligations(bool required) {
    int n = required ? 1 + Int(3) : (Chance(40) ? 1 + Int(2) : 0);
    if (n == 0) return "";
    std::string out = "\nthen ";
    for (int k = 0; k < n; ++k) out += (k ? ", " : "") + Obligation();
    return out;
  }

  std::string Statement(int index) {
    std::string out;
    if (Chance(85)) out += "@id(\"s" + std::to_string(index) + "\")\n";
    int kind = Int(20);
    if (kind < 3) {  // rule
      return out + "rule if " + BoolExpr(2) + Obligations(true) + ";\n";
    }
    bool permit = kind < 14;
    out += permit ? "permit" : "forbid";
    out += " (" + Scope("principal") + ", " + Scope("action") + ", " + Scope("resource") + ")";
    // Forbids always have a condition (an unconditional forbid would deny everything).
    for (int n = permit ? Int(3) : 1 + Int(2); n > 0; --n) {
      out += Chance(75) ? "\nwhen { " : "\nunless { ";
      out += BoolExpr(1 + Int(2)) + " }";
    }
    return out + Obligations(false) + ";\n";
  }

  // ---- requests ----

  json Value(int depth) {
    switch (Int(depth > 1 ? 10 : 14)) {
      case 0: return nullptr;
      case 1: return Pick(kLongs);
      case 2: return Int(100) - 20;
      case 3: return Pick(kStrings);
      case 4: return Chance(50);
      case 5: return 1.5;
      case 6: return json::parse("9223372036854775808");
      case 7: return {{"__entity", Pick(kUsers)}};
      case 8: return std::to_string(Pick(kLongs));  // "50001"
      case 9: return 5.0;
      case 10: {
        json a = json::array();
        for (int n = Int(4); n > 0; --n) a.push_back(Value(depth + 1));
        return a;
      }
      case 11: return {{"level", Value(depth + 1)}, {"note", Pick(kStrings)}};
      case 12: return Pick(kIps);
      default: return {{"__entity", Chance(50) ? "bad" : Pick(kGroups)}};
    }
  }

  json Entity(const std::vector<std::string>& uids, const std::vector<std::string>& parents,
              bool principal) {
    json e = {{"uid", Pick(uids)}};
    json attrs = json::object();
    if (principal) {
      if (Chance(80)) attrs["department"] = Chance(85) ? json(Pick(kStrings)) : Value(1);
      if (Chance(80)) {
        json roles = json::array();
        for (int n = Int(3); n > 0; --n) roles.push_back(Pick(kStrings));
        attrs["roles"] = Chance(90) ? roles : Value(1);
      }
      if (Chance(80)) attrs["mfa"] = Chance(85) ? json(Chance(50)) : Value(1);
      if (Chance(70)) attrs["clearance"] = Chance(80) ? json(Int(6)) : Value(1);
    } else {
      if (Chance(80)) attrs["category"] = Chance(85) ? json(Pick(kStrings)) : Value(1);
      if (Chance(50)) attrs["tags"] = json::array({Pick(kStrings)});
      if (Chance(50)) attrs["risk"] = Value(1);
    }
    if (Chance(90)) e["attrs"] = attrs;
    json ps = json::array();
    for (const auto& p : parents) {
      if (Chance(45)) ps.push_back(p);
    }
    if (Chance(90)) e["parents"] = ps;
    return e;
  }

  json Request() {
    json r;
    r["principal"] = Entity(kUsers, kGroups, true);
    r["resource"] = Entity(kTools, kServers, false);
    r["action"] = Chance(70) ? std::string("tools/call") : Pick(kActions);
    json args = json::object();
    auto maybe = [&](const char* key, json typical) {
      if (Chance(75)) args[key] = Chance(75) ? std::move(typical) : Value(0);
    };
    maybe("amount", Pick(kLongs));
    maybe("currency", Pick(kStrings));
    maybe("email", "a@b.com");
    maybe("query", "DROP table x");
    maybe("owner", {{"__entity", Pick(kUsers)}});
    maybe("items", json::array({Pick(kStrings), Pick(kStrings)}));
    maybe("meta", {{"level", Int(6)}, {"note", Pick(kStrings)}});
    maybe("ip", Pick(kIps));
    maybe("flag", Chance(50));
    maybe("count", Int(10));
    if (Chance(95)) r["args"] = args;
    json ctx = json::object();
    if (Chance(85)) ctx["ip"] = Chance(85) ? json(Pick(kIps)) : Value(1);
    if (Chance(85)) ctx["time"] = {{"hour", Chance(90) ? json(Int(24)) : Value(1)},
                                   {"weekday", Pick(kStrings)}};
    if (Chance(60)) ctx["env"] = Chance(50) ? "prod" : "dev";
    if (Chance(60)) ctx["dlp"] = json::array({Pick(kStrings)});
    if (Chance(95)) r["context"] = ctx;
    if (Chance(90)) r["call"] = {{"intent", Chance(90) ? json(Pick(kStrings)) : Value(1)}};
    return r;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

std::string RandomPolicySet(uint64_t seed, int max_statements) {
  Gen g(seed);
  int n = 1 + g.Int(max_statements);
  std::string out;
  for (int k = 1; k <= n; ++k) out += g.Statement(k);
  return out;
}

nlohmann::json RandomRequest(uint64_t seed) {
  Gen g(seed ^ 0xA5A5A5A5DEADBEEFULL);
  return g.Request();
}

}  // namespace writ::reference
