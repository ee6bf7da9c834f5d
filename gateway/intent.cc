// intent.cc -- see intent.h and docs/intent.md.
#include "gateway/intent.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "gateway/sql_intent.h"

namespace writ::gateway {

const char* IntentName(Intent i) {
  switch (i) {
    case Intent::kRead:
      return "read";
    case Intent::kWrite:
      return "write";
    case Intent::kExfiltrative:
      return "exfiltrative";
    case Intent::kDestructive:
      return "destructive";
  }
  return "destructive";
}

bool ParseIntent(std::string_view s, Intent* out) {
  for (Intent i : {Intent::kRead, Intent::kWrite, Intent::kExfiltrative, Intent::kDestructive}) {
    if (s == IntentName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

namespace {

using Json = nlohmann::json;
using WordSet = std::set<std::string, std::less<>>;

// Verbs, by the intent they signal. A verb is matched as a whole word of the tool name (split
// at `_ - . /`, spaces and camelCase) or as the leading word of the description.
const WordSet& ReadVerbs() {
  static const auto* s = new WordSet{
      "get",       "list",    "read",    "search",   "find",      "query",     "fetch",
      "describe",  "show",    "view",    "lookup",   "count",     "check",     "status",
      "browse",    "inspect", "explain", "stat",     "select",    "ls",        "cat",
      "head",      "tail",    "grep",    "diff",     "preview",   "peek",      "retrieve",
      "validate",  "verify",  "lint",    "analyze",  "analyse",   "summarize", "compare",
      "calculate", "compute", "parse",   "is",       "has",       "exists",    "whoami",
      "ping",      "echo",    "poll",    "estimate", "translate", "suggest",   "recommend",
      "resolve",   "scan",    "info",    "watch",    "evaluate",  "measure",   "render",
      "print"};
  return *s;
}
const WordSet& WriteVerbs() {
  static const auto* s = new WordSet{
      "create",    "update",    "set",      "put",       "post",        "send",    "write",
      "add",       "insert",    "edit",     "modify",    "patch",       "move",    "mv",
      "rename",    "upsert",    "save",     "commit",    "push",        "merge",   "apply",
      "start",     "stop",      "restart",  "deploy",    "install",     "approve", "reject",
      "assign",    "unassign",  "close",    "reopen",    "comment",     "reply",   "submit",
      "book",      "schedule",  "enable",   "disable",   "lock",        "unlock",  "archive",
      "restore",   "import",    "copy",     "cp",        "mkdir",       "touch",   "append",
      "replace",   "tag",       "label",    "fork",      "clone",       "trigger", "dispatch",
      "notify",    "message",   "email",    "publish",   "refund",      "charge",  "pay",
      "transfer",  "invite",    "register", "subscribe", "unsubscribe", "cancel",  "pin",
      "unpin",     "mark",      "upgrade",  "scale",     "resize",      "sign",    "mutate",
      "change",    "configure", "store",    "record",    "generate",    "build",   "compile",
      "provision", "rotate",    "grant",    "block"};
  return *s;
}
// Verbs that can do anything: a call's SQL decides, not the verb.
const WordSet& GenericVerbs() {
  static const auto* s = new WordSet{"run",     "exec",    "execute", "invoke", "call", "do",
                                     "perform", "process", "handle",  "eval",   "sql"};
  return *s;
}
const WordSet& ExfilVerbs() {
  static const auto* s =
      new WordSet{"export", "dump",   "download",  "upload", "share",  "exfiltrate",
                  "backup", "mirror", "replicate", "leak",   "forward"};
  return *s;
}
const WordSet& DestructiveVerbs() {
  static const auto* s = new WordSet{
      "delete",     "del",       "remove",    "rm",          "rmdir",       "drop",      "destroy",
      "purge",      "truncate",  "wipe",      "erase",       "kill",        "terminate", "revoke",
      "reset",      "unlink",    "uninstall", "deprovision", "evict",       "shred",     "nuke",
      "obliterate", "overwrite", "expunge",   "discard",     "decommission"};
  return *s;
}

bool Has(const WordSet& s, std::string_view w) { return s.find(w) != s.end(); }

// The intent a verb signals; false if it is not a known verb. *generic for run/execute/...
bool VerbIntent(std::string_view w, Intent* out, bool* generic) {
  *generic = false;
  if (Has(DestructiveVerbs(), w)) {
    *out = Intent::kDestructive;
  } else if (Has(ExfilVerbs(), w)) {
    *out = Intent::kExfiltrative;
  } else if (Has(WriteVerbs(), w)) {
    *out = Intent::kWrite;
  } else if (Has(GenericVerbs(), w)) {
    *out = Intent::kWrite;
    *generic = true;
  } else if (Has(ReadVerbs(), w)) {
    *out = Intent::kRead;
  } else {
    return false;
  }
  return true;
}

// A leading word of prose: "Deletes" -> "delete", "Searches" -> "search".
bool ProseVerb(std::string w, Intent* out, bool* generic, std::string* verb) {
  for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<std::string> forms{w};
  if (w.size() > 3 && w.back() == 's') forms.push_back(w.substr(0, w.size() - 1));
  if (w.size() > 4 && w.compare(w.size() - 2, 2, "es") == 0)
    forms.push_back(w.substr(0, w.size() - 2));
  if (w.size() > 4 && w.compare(w.size() - 3, 3, "ies") == 0)
    forms.push_back(w.substr(0, w.size() - 3) + "y");
  for (const auto& f : forms) {
    if (VerbIntent(f, out, generic)) {
      *verb = f;
      return true;
    }
  }
  return false;
}

// Splits a tool name into lower-case words at non-alphanumerics and camelCase boundaries.
std::vector<std::string> NameWords(std::string_view name) {
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(cur);
    cur.clear();
  };
  for (size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (!std::isalnum(c)) {
      flush();
      continue;
    }
    bool upper = std::isupper(c);
    if (upper && !cur.empty()) {
      unsigned char prev = static_cast<unsigned char>(name[i - 1]);
      bool next_lower =
          i + 1 < name.size() && std::islower(static_cast<unsigned char>(name[i + 1]));
      if (std::islower(prev) || std::isdigit(prev) || (std::isupper(prev) && next_lower)) flush();
    }
    cur.push_back(static_cast<char>(std::tolower(c)));
  }
  flush();
  return words;
}

unsigned Bit(Intent i) { return 1u << static_cast<int>(i); }

// Collects signals; keeps the reasons of the strongest intent.
struct Signals {
  bool any = false;
  Intent best = Intent::kRead;
  std::vector<std::string> reasons;
  unsigned found = 0;
  void Add(Intent i, std::string why) {
    found |= Bit(i);
    if (why.size() > 400) {  // reasons quote arguments: bounded, cut on a UTF-8 boundary
      size_t cut = 400;
      while (cut > 0 && (static_cast<unsigned char>(why[cut]) & 0xC0) == 0x80) --cut;
      why = why.substr(0, cut) + "...";
    }
    if (!any || static_cast<int>(i) > static_cast<int>(best)) {
      any = true;
      best = i;
      reasons.clear();
    }
    if (i == best && reasons.size() < 4 &&
        std::find(reasons.begin(), reasons.end(), why) == reasons.end())
      reasons.push_back(std::move(why));
  }
  std::string Why() const {
    std::string s;
    for (const auto& r : reasons) s += (s.empty() ? "" : "; ") + r;
    return s;
  }
};

const Json* Field(const Json& o, const char* k) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(k);
  return it == o.end() ? nullptr : &*it;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Argument names whose string values hold SQL.
const WordSet& SqlKeys() {
  static const auto* s = new WordSet{"sql",  "sql_query",     "sqlquery",  "statement",
                                     "stmt", "sql_statement", "statements"};
  return *s;
}
// Argument names whose value names an operation ("export", "delete", ...).
const WordSet& ActionKeys() {
  static const auto* s = new WordSet{
      "action", "operation", "op", "mode", "method", "verb", "task", "intent"};
  return *s;
}
const WordSet& ShellKeys() {
  static const auto* s =
      new WordSet{"command", "cmd",           "shell",       "script",      "bash",
                  "sh",      "shell_command", "commandline", "command_line"};
  return *s;
}
// Argument names whose number is a bulk size.
const WordSet& BulkKeys() {
  static const auto* s = new WordSet{
      "limit",       "count",       "page_size",  "pagesize",     "per_page",    "perpage",
      "max_results", "maxresults",  "max_rows",   "maxrows",      "top",         "rows",
      "first",       "take",        "batch_size", "batchsize",    "num_results", "max_items",
      "maxitems",    "max_records", "maxrecords", "record_limit", "row_limit",   "fetch_size"};
  return *s;
}
const WordSet& BulkFlags() {
  static const auto* s = new WordSet{"fetch_all", "export_all",   "all_pages",
                                     "dump_all",  "download_all", "all_records"};
  return *s;
}

// Shell command intent: destructive or exfiltrative programs.
bool ShellIntent(const std::string& cmd, Intent* out, std::string* why) {
  static const RE2 kDestructive(
      R"((?:^|[;&|(]\s*|\bsudo\s+)(rm|rmdir|shred|mkfs(?:\.\w+)?|wipefs|dd|truncate|dropdb|kubectl\s+delete|git\s+push\s+(?:-f|--force)|git\s+reset\s+--hard)\b)");
  static const RE2 kExfil(
      R"((?:^|[;&|(]\s*|\bsudo\s+)(scp|rsync|sftp|nc|ncat|netcat|curl\s[^;|&]*(?:-T|--upload-file|-F|--form|--data(?:-binary)?\s+@|-d\s*@)|wget\s[^;|&]*--post-file|pg_dump|mysqldump|mongodump|aws\s+s3\s+cp)\b)");
  std::string m;
  if (RE2::PartialMatch(cmd, kDestructive, &m)) {
    *out = Intent::kDestructive;
    *why = "runs `" + m + "`";
    return true;
  }
  if (RE2::PartialMatch(cmd, kExfil, &m)) {
    *out = Intent::kExfiltrative;
    *why = "runs `" + m.substr(0, m.find(' ')) + "`";
    return true;
  }
  return false;
}

constexpr int kMaxArgDepth = 64;
constexpr size_t kMaxArgNodes = 200000;

}  // namespace

struct IntentClassifier::ToolVerdict {
  Signals sig;
  bool generic = false;  // the intent is write only by default or a generic verb (run, execute)
};

IntentClassifier::IntentClassifier(IntentConfig config) : config_(std::move(config)) {}

IntentClassifier::ToolVerdict IntentClassifier::Tool(const std::string& server,
                                                     const Json& tool) const {
  ToolVerdict v;
  std::string name;
  if (const Json* n = Field(tool, "name"); n && n->is_string()) name = n->get<std::string>();
  // 1. The operator's catalog.
  std::string full = server + "__" + name;
  auto o = config_.overrides.find(full);
  if (o == config_.overrides.end()) o = config_.overrides.find(server + "__*");
  if (o != config_.overrides.end()) {
    v.sig.Add(o->second, "catalog override intent.overrides[" + o->first + "]");
    return v;
  }
  // 2. Annotations: believed from trusted servers; from others they may only raise.
  bool trusted = std::find(config_.trusted_servers.begin(), config_.trusted_servers.end(),
                           server) != config_.trusted_servers.end();
  const Json* ann = Field(tool, "annotations");
  const Json* ro = ann ? Field(*ann, "readOnlyHint") : nullptr;
  const Json* de = ann ? Field(*ann, "destructiveHint") : nullptr;
  bool ro_true = ro && ro->is_boolean() && ro->get<bool>();
  bool de_true = de && de->is_boolean() && de->get<bool>();
  if (trusted && (ro_true || de_true || (ro && de && ro->is_boolean() && de->is_boolean()))) {
    if (de_true && !ro_true) {
      v.sig.Add(Intent::kDestructive, "annotation destructiveHint (trusted server)");
    } else if (ro_true) {
      v.sig.Add(Intent::kRead, "annotation readOnlyHint (trusted server)");
    } else {
      v.sig.Add(Intent::kWrite,
                "annotations readOnlyHint=false, destructiveHint=false (trusted server)");
    }
    return v;
  }
  if (de_true)
    v.sig.Add(Intent::kDestructive, "annotation destructiveHint (untrusted: may only raise)");
  // 3. Verbs in the name: the leading word if it is a verb (get_user, delete_file), else any
  //    verb in it (user_delete); a verb after "and"/"then" also counts (get_and_delete).
  std::vector<std::string> words = NameWords(name);
  bool name_verb = false, specific_write = false;
  auto use = [&](const std::string& w) {
    Intent i;
    bool generic;
    if (!VerbIntent(w, &i, &generic)) return false;
    name_verb = true;
    if (i == Intent::kWrite && !generic) specific_write = true;
    v.sig.Add(i, "name verb `" + w + "`");
    return true;
  };
  if (!words.empty()) {
    Intent i;
    bool g;
    if (VerbIntent(words[0], &i, &g)) {
      use(words[0]);
      for (size_t k = 1; k + 1 < words.size(); ++k)
        if (words[k] == "and" || words[k] == "then" || words[k] == "or") use(words[k + 1]);
    } else {
      for (const auto& w : words) use(w);
    }
  }
  // 4. Without a verb in the name: the description's leading verb and a few phrases.
  if (!name_verb) {
    const Json* d = Field(tool, "description");
    std::string desc = d && d->is_string() ? d->get<std::string>() : "";
    std::string first;
    re2::StringPiece in(desc);
    static const RE2 kFirstWord(R"(^\W*([A-Za-z]+))");
    if (RE2::PartialMatch(in, kFirstWord, &first)) {
      Intent i;
      bool g;
      std::string verb;
      if (ProseVerb(first, &i, &g, &verb)) {
        name_verb = true;
        if (i == Intent::kWrite && !g) specific_write = true;
        v.sig.Add(i, "description starts with `" + first + "`");
      }
    }
    static const RE2 kIrreversible(
        R"((?i)(cannot be undone|irreversibl|irrevocabl|permanently (delet|remov|eras|destroy)))");
    std::string m;
    if (RE2::PartialMatch(desc, kIrreversible, &m))
      v.sig.Add(Intent::kDestructive, "description says `" + m + "`");
  }
  if (!v.sig.any)
    v.sig.Add(Intent::kWrite, "no known verb in the name or description (default write)");
  v.generic = v.sig.best == Intent::kWrite && !specific_write;
  return v;
}

IntentResult IntentClassifier::ClassifyTool(const std::string& server, const Json& tool) const {
  ToolVerdict v = Tool(server, tool);
  return {v.sig.best, v.sig.Why(), v.sig.found};
}

IntentResult IntentClassifier::ClassifyCall(const std::string& server, const Json& tool,
                                            const Json& args) const {
  ToolVerdict tv = Tool(server, tool);
  // Schema hints: properties whose description mentions SQL hold SQL.
  WordSet schema_sql;
  if (const Json* is = Field(tool, "inputSchema")) {
    if (const Json* props = Field(*is, "properties"); props && props->is_object()) {
      static const RE2 kSqlWord(R"((?i)\bsql\b)");
      for (auto it = props->begin(); it != props->end(); ++it) {
        const Json* d = Field(it.value(), "description");
        if (d && d->is_string() && RE2::PartialMatch(d->get<std::string>(), kSqlWord))
          schema_sql.insert(it.key());
      }
    }
  }

  Signals a;  // from the arguments
  bool sql_seen = false;
  // Depth-first walk with an explicit stack of open containers; a value's path
  // ("args.batch[1].sql") is rendered only for a reason, from the segments on the stack, so
  // memory stays O(depth) whatever the width of the arguments.
  struct Frame {
    const Json* v;
    Json::const_iterator it;
    size_t index = 0;
    std::string key;  // the key of this container (an array's elements inherit it)
    std::string seg;  // the path segment of the child being visited
  };
  std::vector<Frame> stack;
  auto path = [&] {
    std::string p = "args";
    for (const auto& f : stack) {
      if (p.size() > 256) return p + "...";
      size_t cut = std::min<size_t>(f.seg.size(), 64);
      while (cut > 0 && cut < f.seg.size() &&
             (static_cast<unsigned char>(f.seg[cut]) & 0xC0) == 0x80)
        --cut;
      p += cut < f.seg.size() ? f.seg.substr(0, cut) + "..." : f.seg;
    }
    return p;
  };
  auto leaf = [&](const Json& v, const std::string& raw_key, int depth) {
    std::string key = Lower(raw_key);
    if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      bool declared = Has(SqlKeys(), key) || (depth == 1 && schema_sql.count(raw_key));
      SqlAnalysis sql = AnalyzeSql(s, declared, config_.bulk_threshold);
      if (sql.is_sql) {
        sql_seen = true;
        a.Add(sql.intent, path() + ": SQL " + sql.why);
      }
      if (Has(ActionKeys(), key)) {
        std::string first;
        static const RE2 kFirstWord(R"(^\W*([A-Za-z]+))");
        Intent i;
        bool g;
        std::string verb;
        if (RE2::PartialMatch(s, kFirstWord, &first) && ProseVerb(first, &i, &g, &verb) &&
            static_cast<int>(i) >= static_cast<int>(Intent::kExfiltrative))
          a.Add(i, path() + " = `" + verb + "`");
      }
      if (Has(ShellKeys(), key)) {
        Intent i;
        std::string why;
        if (ShellIntent(s, &i, &why)) a.Add(i, path() + ": " + why);
      }
      if (Has(BulkKeys(), key) && s.size() <= 20) {
        // A numeric string counts like a number.
        size_t pos = 0;
        long long n = 0;
        try {
          n = std::stoll(s, &pos);
        } catch (...) {
          pos = 0;
        }
        if (pos == s.size() && pos > 0 && (n > config_.bulk_threshold || n < 0))
          a.Add(Intent::kExfiltrative,
                path() + " = " + s +
                    (n < 0 ? " (no limit)"
                           : " exceeds intent.bulk_threshold (" +
                                 std::to_string(config_.bulk_threshold) + ")"));
      }
    } else if (v.is_number() && Has(BulkKeys(), key)) {
      double n = v.get<double>();
      if (n > static_cast<double>(config_.bulk_threshold) || n < 0)
        a.Add(Intent::kExfiltrative,
              path() + " = " + v.dump() +
                  (n < 0 ? " (no limit)"
                         : " exceeds intent.bulk_threshold (" +
                               std::to_string(config_.bulk_threshold) + ")"));
    } else if (v.is_boolean() && v.get<bool>() && Has(BulkFlags(), key)) {
      a.Add(Intent::kExfiltrative, path() + " = true");
    }
  };
  size_t nodes = 1;
  if (args.is_structured()) {
    stack.push_back({&args, args.begin(), 0, "", ""});
  } else {
    leaf(args, "", 0);
  }
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.it == f.v->end()) {
      stack.pop_back();
      continue;
    }
    const Json& c = *f.it;
    std::string key = f.v->is_object() ? f.it.key() : f.key;
    f.seg = f.v->is_object() ? "." + f.it.key() : "[" + std::to_string(f.index) + "]";
    ++f.it;
    ++f.index;
    int depth = static_cast<int>(stack.size());
    if (++nodes > kMaxArgNodes || depth > kMaxArgDepth) {
      a.Add(Intent::kDestructive, "arguments too large or deep to analyze (fail closed)");
      break;
    }
    if (c.is_structured()) {
      stack.push_back({&c, c.begin(), 0, std::move(key), ""});  // invalidates f
    } else {
      leaf(c, key, depth);
    }
  }

  // A generic tool (run_sql, execute, no verb) that was given SQL is what its SQL does.
  Signals out;
  if (!(tv.generic && sql_seen)) {
    for (const auto& r : tv.sig.reasons) out.Add(tv.sig.best, r);
    out.found |= tv.sig.found;
  }
  if (a.any) {
    for (const auto& r : a.reasons) out.Add(a.best, r);
    out.found |= a.found;
  }
  if (!out.any) return {tv.sig.best, tv.sig.Why(), tv.sig.found};
  return {out.best, out.Why(), out.found};
}

}  // namespace writ::gateway
