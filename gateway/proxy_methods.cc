// proxy_methods.cc -- the client methods of Proxy other than tools/call (proxy_call.cc):
// initialize (capability merging across upstreams), tools/prompts/resources lists (every page
// of every upstream, namespaced SERVER__name, filtered by list-time visibility, collisions and
// shadowing reported), prompts/get, resources/read|subscribe|unsubscribe, completion/complete,
// logging/setLevel (broadcast). Entry point: Proxy::HandleClientRequest (proxy.cc) dispatches
// here. The message loop and upstream plumbing are in proxy.cc.
#include <algorithm>
#include <iostream>
#include <set>

#include "gateway/jsonrpc.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/tool_integrity.h"

namespace writ::gateway {

using Json = nlohmann::json;

namespace {

// A counter shared by the callbacks of one fan-out; `finish` runs once, when all are in.
struct FanIn {
  std::mutex mu;
  size_t remaining = 0;
  std::vector<std::pair<size_t, Json>> replies;  // (upstream, reply)
  std::function<void(std::vector<std::pair<size_t, Json>>&)> finish;
  void Add(size_t up, Json reply) {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu);
      replies.emplace_back(up, std::move(reply));
      last = --remaining == 0;
    }
    if (last) finish(replies);
  }
};

void MergeCapability(Json& into, const Json& from) {
  if (!from.is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_boolean()) {
      into[it.key()] = into.value(it.key(), false) || it.value().get<bool>();
    } else if (!into.contains(it.key())) {
      into[it.key()] = it.value();
    }
  }
}

}  // namespace

void Proxy::Initialize(const Json& id, const Json& params) {
  std::string client_version = params.value("protocolVersion", Json("")).is_string()
                                   ? params.value("protocolVersion", std::string())
                                   : std::string();
  Json up_params = {{"protocolVersion", client_version},
                    {"capabilities", params.value("capabilities", Json::object())},
                    {"clientInfo", {{"name", "writ"}, {"version", opts_.version}}}};
  std::vector<size_t> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    client_protocol_ = client_version;
    client_init_params_ = up_params;
    const Json info = params.value("clientInfo", Json::object());
    if (info.is_object() && info.contains("name") && info["name"].is_string())
      client_name_ = info["name"].get<std::string>().substr(0, 200);
    for (size_t i = 0; i < ups_.size(); ++i)
      if (ups_[i].alive) targets.push_back(i);
  }
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id, client_version](std::vector<std::pair<size_t, Json>>& replies) {
    Json caps = Json::object();
    std::string version = client_version;
    bool all_agree = true;
    std::string oldest;
    for (auto& [up, reply] : replies) {
      const Json* r = reply.contains("result") && reply["result"].is_object() ? &reply["result"]
                                                                               : nullptr;
      if (r == nullptr) {
        LogWarn("upstream " + ups_[up].name +
                    " failed to initialize: " + reply.value("error", Json()).dump(),
                {{"upstream", ups_[up].name}});
        continue;
      }
      std::string v = r->value("protocolVersion", Json("")).is_string()
                          ? r->value("protocolVersion", std::string())
                          : std::string();
      if (v != client_version) all_agree = false;
      if (!v.empty() && (oldest.empty() || v < oldest)) oldest = v;
      Json up_caps = r->value("capabilities", Json::object());
      {
        std::lock_guard<std::mutex> lock(mu_);
        ups_[up].initialized = true;
        ups_[up].capabilities = up_caps;
      }
      for (const char* k : {"tools", "resources", "prompts", "logging", "completions"}) {
        if (!up_caps.contains(k)) continue;
        if (!caps.contains(k)) caps[k] = Json::object();
        MergeCapability(caps[k], up_caps[k]);
      }
    }
    // The gateway announces tools/list_changed itself when an upstream goes away.
    if (caps.contains("tools")) caps["tools"]["listChanged"] = true;
    // Dates compare as strings; when an upstream answered with another version, the oldest
    // answered one is the one every upstream can speak.
    if (!all_agree && !oldest.empty()) version = oldest;
    ToClient(ResultReply(id, {{"protocolVersion", version},
                              {"capabilities", caps},
                              {"serverInfo", {{"name", "writ"}, {"version", opts_.version}}}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    SendUpstream(up, "initialize", up_params, [fan, up](const Json& r) { fan->Add(up, r); },
                 opts_.limits.upstream_timeout_ms);
}

// Tool shadowing (docs/integrity.md): tools of two servers an agent could confuse. Logged once
// per session and name; both stay listed (namespacing keeps the calls apart).
void Proxy::ReportShadowing(const std::map<std::string, std::vector<Json>>& by_server) {
  if (by_server.size() < 2) return;
  for (const Shadowing& sh : FindShadowing(by_server)) {
    std::string servers;
    for (const auto& s : sh.servers) servers += (servers.empty() ? "" : ", ") + s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!shadow_reported_.insert(sh.tool + "|" + servers).second) continue;
    }
    std::cerr << "writ: WARNING: tool shadowing (" << sh.how << "): `" << sh.tool
              << "` is offered by " << servers
              << "; agents may confuse them (docs/integrity.md)\n";
  }
}

void Proxy::ListTools(const Json& id) {
  std::vector<size_t> targets = LiveUpstreams();
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id](std::vector<std::pair<size_t, Json>>& replies) {
    std::sort(replies.begin(), replies.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json tools = Json::array();
    std::set<std::string> seen;
    std::time_t now = opts_.clock();
    std::map<std::string, std::vector<Json>> by_server;  // for the shadowing report
    for (auto& [up, unused] : replies) {
      std::map<std::string, ToolDef> defs;
      std::string server;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!ups_[up].alive) continue;
        defs = ups_[up].tools;
        server = ups_[up].name;
      }
      for (auto& [name, def] : defs) by_server[server].push_back(*def);
      for (auto& [name, shared_def] : defs) {
        const Json& def = *shared_def;
        std::string full = server + kSeparator + name;
        if (!seen.insert(full).second) {
          LogWarn("tool name collision on `" + full + "`; the later one is dropped");
          continue;
        }
        if (HiddenByLock(full, def)) continue;
        Json request = WithContext(BuildToolRequest(opts_.principal, server, def, nullptr, now));
        Enrich(&request, server, shared_def, nullptr);
        if (!Visible(request)) continue;
        Json t = def;
        t["name"] = full;
        tools.push_back(std::move(t));
      }
    }
    ReportShadowing(by_server);
    ToClient(ResultReply(id, {{"tools", std::move(tools)}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    RefreshTools(up, [fan, up] { fan->Add(up, nullptr); });
}

void Proxy::ListOther(const Json& id, const std::string& method, const std::string& key) {
  std::vector<size_t> targets;
  for (size_t up : LiveUpstreams()) {
    std::lock_guard<std::mutex> lock(mu_);
    const char* cap = key == "prompts" ? "prompts" : "resources";
    if (ups_[up].capabilities.contains(cap)) targets.push_back(up);
  }
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id, key](std::vector<std::pair<size_t, Json>>& replies) {
    std::sort(replies.begin(), replies.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json items = Json::array();
    std::time_t now = opts_.clock();
    for (auto& [up, list] : replies) {
      std::string server = ups_[up].name;
      for (auto& item : list) {
        if (!item.is_object()) continue;
        if (key == "prompts") {
          if (!item.contains("name") || !item["name"].is_string()) continue;
          std::string name = item["name"];
          if (!Visible(WithContext(BuildPromptRequest(opts_.principal, server, name, nullptr, now))))
            continue;
          item["name"] = server + kSeparator + name;
        } else if (key == "resources") {
          if (!item.contains("uri") || !item["uri"].is_string()) continue;
          std::string uri = item["uri"];
          {
            std::lock_guard<std::mutex> lock(mu_);
            auto [it, fresh] = resource_routes_.emplace(uri, up);
            if (!fresh && it->second != up) {
              LogWarn("resource `" + uri + "` is offered by " + ups_[it->second].name +
                      " and " + server + "; the later one is dropped");
              continue;
            }
          }
          if (!Visible(WithContext(BuildResourceRequest(opts_.principal, server, uri, now)))) continue;
        }
        items.push_back(std::move(item));
      }
    }
    ToClient(ResultReply(id, {{key, std::move(items)}}));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets) {
    ListAllPages(up, method, key, [fan, up](Json items, Json error) {
      fan->Add(up, error.is_null() ? std::move(items) : Json::array());
    });
  }
}

void Proxy::GetPrompt(const Json& id, Json params) {
  std::string server, name;
  size_t up = 0;
  bool ok = params.contains("name") && params["name"].is_string() &&
            SplitName(params["name"].get<std::string>(), &server, &name);
  if (ok) {
    std::lock_guard<std::mutex> lock(mu_);
    ok = FindUpstream(server, &up) && ups_[up].alive;
  }
  if (!ok)
    return ReplyError(id, kInvalidParams, "unknown prompt: " + params.value("name", Json()).dump(),
                      Json{{"help", "prompt names are SERVER__name; list them with prompts/list"}});
  Decided d = DecideRequest(
      WithContext(BuildPromptRequest(opts_.principal, server, name,
                                     params.value("arguments", Json()), opts_.clock())),
      false);
  AuditSubject subject{"prompts/get", server, name, params.value("arguments", Json())};
  if (!AuditDecision(subject, d) && d.effect == runtime::Effect::kAllow) return FailClosed(id, d);
  if (d.effect != runtime::Effect::kAllow) return ReplyDecision(id, d);
  params["name"] = name;
  subject.args = nullptr;
  ForwardAudited(up, id, "prompts/get", std::move(params), subject, d);
}

void Proxy::ReadResource(const Json& id, const std::string& method, Json params) {
  if (!params.contains("uri") || !params["uri"].is_string())
    return ReplyError(id, kInvalidParams, method + " needs a string `uri`");
  std::string uri = params["uri"];
  size_t up = 0;
  std::string server;
  bool ok;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = resource_routes_.find(uri);
    ok = it != resource_routes_.end() && ups_[it->second].alive;
    if (ok) {
      up = it->second;
      server = ups_[up].name;
    }
  }
  if (!ok)
    return ReplyError(id, kInvalidParams, "unknown resource: " + uri,
                      Json{{"help", "resources are routed by the URIs resources/list returned"}});
  if (method != "resources/unsubscribe") {
    Decided d = DecideRequest(
        WithContext(BuildResourceRequest(opts_.principal, server, uri, opts_.clock())), false);
    // The audit's `tool` field carries the resource's URI.
    AuditSubject subject{method, server, uri, Json()};
    if (!AuditDecision(subject, d) && d.effect == runtime::Effect::kAllow) return FailClosed(id, d);
    if (d.effect != runtime::Effect::kAllow) return ReplyDecision(id, d);
    return ForwardAudited(up, id, method, std::move(params), subject, d);
  }
  ForwardClientRequest(up, id, method, std::move(params));
}

void Proxy::Complete(const Json& id, Json params) {
  Json ref = params.value("ref", Json::object());
  std::string type = ref.value("type", Json("")).is_string() ? ref.value("type", std::string()) : "";
  size_t up = 0;
  bool ok = false;
  if (type == "ref/prompt" && ref.contains("name") && ref["name"].is_string()) {
    std::string server, name;
    if (SplitName(ref["name"].get<std::string>(), &server, &name)) {
      std::lock_guard<std::mutex> lock(mu_);
      ok = FindUpstream(server, &up) && ups_[up].alive;
      params["ref"]["name"] = name;
    }
  } else if (type == "ref/resource" && ref.contains("uri") && ref["uri"].is_string()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = resource_routes_.find(ref["uri"].get<std::string>());
    ok = it != resource_routes_.end() && ups_[it->second].alive;
    if (ok) up = it->second;
  }
  if (!ok) return ReplyError(id, kInvalidParams, "completion/complete: unknown ref");
  ForwardClientRequest(up, id, "completion/complete", std::move(params));
}

void Proxy::Broadcast(const Json& id, const std::string& method, const Json& params) {
  std::vector<size_t> targets = LiveUpstreams();
  auto fan = std::make_shared<FanIn>();
  fan->remaining = targets.size();
  fan->finish = [this, id](std::vector<std::pair<size_t, Json>>&) {
    ToClient(ResultReply(id, Json::object()));
  };
  if (targets.empty()) {
    std::vector<std::pair<size_t, Json>> none;
    fan->finish(none);
    return;
  }
  for (size_t up : targets)
    SendUpstream(up, method, params, [fan, up](const Json& r) { fan->Add(up, r); }, true);
}


// ---- listing an upstream ----

void Proxy::ListAllPages(size_t up, const std::string& method, const std::string& key,
                         std::function<void(Json items, Json error)> done) {
  struct State {
    Json items = Json::array();
    int pages = 0;
  };
  auto st = std::make_shared<State>();
  auto step = std::make_shared<std::function<void(Json cursor)>>();
  *step = [this, up, method, key, done, st, step](Json cursor) {
    Json params = Json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    SendUpstream(
        up, method, params,
        [this, key, done, st, step](const Json& reply) {
          if (reply.contains("error") || !reply.contains("result") ||
              !reply["result"].is_object()) {
            done(Json::array(), reply.value("error", Json{{"message", "malformed reply"}}));
            *step = nullptr;  // break the self-reference
            return;
          }
          const Json& r = reply["result"];
          if (r.contains(key) && r[key].is_array())
            for (const auto& x : r[key]) st->items.push_back(x);
          auto next = r.find("nextCursor");
          if (next != r.end() && next->is_string() && ++st->pages < 100) {
            (*step)(*next);
          } else {
            done(std::move(st->items), nullptr);
            *step = nullptr;
          }
        },
        opts_.limits.upstream_timeout_ms);
  };
  (*step)(nullptr);
}

void Proxy::RefreshTools(size_t up, std::function<void()> then) {
  ListAllPages(up, "tools/list", "tools", [this, up, then](Json items, Json error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      Upstream& u = ups_[up];
      if (error.is_null() && u.alive) {
        u.tools.clear();
        for (auto& t : items) {
          if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
          std::string name = t["name"];
          if (!u.tools.emplace(name, std::make_shared<const Json>(std::move(t))).second)
            LogWarn("upstream " + u.name + " lists tool `" + name +
                    "` twice; the later definition is dropped",
                    {{"upstream", u.name}});
        }
        u.tools_known = true;
      } else if (!error.is_null()) {
        LogWarn("tools/list from " + u.name + " failed: " + error.dump(), {{"upstream", u.name}});
      }
    }
    then();
  });
}


std::vector<std::string> Proxy::ClientRequestsTo(size_t up) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, id] : client_requests_) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.up == up) out.push_back(key);
  }
  return out;
}


}  // namespace writ::gateway
