// trace.cc -- see trace.h and docs/replay.md.
#include "gateway/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "gateway/audit.h"

namespace writ::gateway {

const char* TraceDirectionName(TraceDirection d) {
  return d == TraceDirection::kClientToGateway ? "client_to_gateway" : "gateway_to_client";
}

namespace {

using Json = nlohmann::json;

std::string Now() { return FormatAuditTime(std::chrono::system_clock::now()); }

Json BaseRecord(const char* type, const TraceSession& who, TraceDirection dir,
                const std::string& server, const std::string& method) {
  return {{"type", type},           {"t", Now()},
          {"session", who.session}, {"principal", who.principal},
          {"client", who.client},   {"direction", TraceDirectionName(dir)},
          {"server", server},       {"method", method}};
}

// The upstream a client message concerns: SERVER of a SERVER__name in params.name.
std::string ServerOf(const Json& msg) {
  auto p = msg.find("params");
  if (p == msg.end() || !p->is_object()) return "";
  auto n = p->find("name");
  if (n == p->end() || !n->is_string()) return "";
  const std::string& s = n->get_ref<const std::string&>();
  size_t sep = s.find("__");
  return sep == std::string::npos || sep == 0 ? "" : s.substr(0, sep);
}

}  // namespace

std::shared_ptr<TraceWriter> TraceWriter::Open(TraceOptions opts, std::string* error) {
  int fd = ::open(opts.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot open trace file " + opts.path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::shared_ptr<TraceWriter> w(new TraceWriter(std::move(opts), fd));
  std::string header = Json{{"writ_trace", kTraceVersion},
                            {"writ_version", w->opts_.writ_version},
                            {"started", Now()}}
                           .dump() +
                       "\n";
  if (::write(fd, header.data(), header.size()) != static_cast<ssize_t>(header.size())) {
    *error = "cannot write trace file " + w->opts_.path + ": " + std::strerror(errno);
    return nullptr;
  }
  return w;
}

TraceWriter::TraceWriter(TraceOptions opts, int fd) : opts_(std::move(opts)), fd_(fd) {}

TraceWriter::~TraceWriter() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t TraceWriter::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

uint64_t TraceWriter::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void TraceWriter::Message(const TraceSession& who, TraceDirection dir, const Json& msg) {
  if (!opts_.messages || !msg.is_object()) return;
  try {
    std::string method =
        msg.contains("method") && msg["method"].is_string() ? msg["method"].get<std::string>() : "";
    const bool has_id = msg.contains("id") && !msg["id"].is_null();
    int64_t elapsed_us = -1;
    if (has_id) {
      std::string key = who.session + '\0' + msg["id"].dump();
      std::lock_guard<std::mutex> lock(mu_);
      if (dir == TraceDirection::kClientToGateway && !method.empty()) {
        if (pending_.size() < 100000) pending_[key] = {method, std::chrono::steady_clock::now()};
      } else if (dir == TraceDirection::kGatewayToClient && method.empty()) {
        auto it = pending_.find(key);
        if (it != pending_.end()) {
          method = it->second.method;
          elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - it->second.at)
                           .count();
          pending_.erase(it);
        }
      }
    }
    Json r = BaseRecord("message", who, dir,
                        dir == TraceDirection::kClientToGateway ? ServerOf(msg) : "", method);
    if (elapsed_us >= 0) r["elapsed_us"] = elapsed_us;
    r["message"] = msg;
    Write(std::move(r));
  } catch (const std::exception& e) {
    std::cerr << "writ: trace: cannot record a message: " << e.what() << "\n";
  }
}

void TraceWriter::Decision(const TraceSession& who, const std::string& server,
                           const std::string& method, const Json& request, const Json& decision,
                           const std::string& decision_id, const std::string& bundle_hash,
                           int64_t eval_us) {
  try {
    Json r = BaseRecord("decision", who, TraceDirection::kClientToGateway, server, method);
    r["request"] = request;
    r["decision"] = decision;
    r["decision_id"] = decision_id;
    r["bundle_hash"] = bundle_hash;
    r["eval_us"] = eval_us;
    Write(std::move(r));
  } catch (const std::exception& e) {
    std::cerr << "writ: trace: cannot record decision " << decision_id << ": " << e.what() << "\n";
  }
}

void TraceWriter::Write(Json record) {
  ScrubSecrets(&record, opts_.secrets);
  if (redact_) redact_(&record);
  std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  ssize_t n = ::write(fd_, line.data(), line.size());
  std::lock_guard<std::mutex> lock(mu_);
  if (n == static_cast<ssize_t>(line.size())) {
    ++written_;
    return;
  }
  if (dropped_++ == 0)  // once: a full disk must not flood stderr
    std::cerr << "writ: trace: cannot write " << opts_.path << ": "
              << (n < 0 ? std::strerror(errno) : "short write") << "; records are dropped\n";
}

// ---- reading ----

namespace {

bool IsStringArray(const Json& j) {
  if (!j.is_array()) return false;
  for (const auto& e : j)
    if (!e.is_string()) return false;
  return true;
}

}  // namespace

bool ParseTraceLine(std::string_view line, TraceLineKind* kind, Json* out, std::string* error,
                    bool lean) {
  if (line.size() > kMaxTraceLine) {
    *error = "line longer than " + std::to_string(kMaxTraceLine) + " bytes";
    return false;
  }
  bool message_object = false;
  if (lean) {
    // Top-level keys replay does not read are discarded while parsing (never built);
    // `message` is only checked to be an object. See nlohmann's parser_callback_t.
    bool after_message_key = false;
    bool in_decision = false;
    Json::parser_callback_t keep = [&](int depth, Json::parse_event_t ev, Json& parsed) {
      if (depth == 1 && ev == Json::parse_event_t::object_start) {
        message_object = message_object || after_message_key;
        after_message_key = false;
        return true;
      }
      if (ev != Json::parse_event_t::key) return true;
      const std::string& k = parsed.get_ref<const std::string&>();
      if (depth == 1) {
        after_message_key = k == "message";
        in_decision = k == "decision";
        return k == "writ_trace" || k == "type" || k == "direction" || k == "session" ||
               k == "request" || k == "decision";
      }
      return !(depth == 2 && in_decision && k == "obligations");
    };
    *out = Json::parse(line, keep, /*allow_exceptions=*/false);
    if (message_object && out->is_object()) (*out)["message"] = Json::object();
  } else {
    *out = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  }
  if (out->is_discarded()) {
    *error = "not valid JSON";
    return false;
  }
  const Json& j = *out;
  if (!j.is_object()) {
    *error = "a trace line must be a JSON object";
    return false;
  }
  if (j.contains("writ_trace")) {
    const Json& v = j["writ_trace"];
    if (!v.is_number_integer() || v.get<int64_t>() != kTraceVersion) {
      *error = "unknown trace format version " + v.dump() + " (this writ reads version " +
               std::to_string(kTraceVersion) + ")";
      return false;
    }
    *kind = TraceLineKind::kHeader;
    return true;
  }
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) {
    *error = "a record needs a string `type` (or a header, `writ_trace`)";
    return false;
  }
  auto need = [&](const char* key, bool ok, const char* what) {
    if (ok) return true;
    *error = std::string("`") + key + "` must be " + what;
    return false;
  };
  auto dir = j.find("direction");
  if (!need("direction",
            dir != j.end() && dir->is_string() &&
                (*dir == "client_to_gateway" || *dir == "gateway_to_client"),
            "client_to_gateway or gateway_to_client"))
    return false;
  if (!need("session", j.contains("session") && j["session"].is_string(), "a string")) return false;
  if (*type == "message") {
    if (!need("message", j.contains("message") && j["message"].is_object(), "an object"))
      return false;
    *kind = TraceLineKind::kMessage;
    return true;
  }
  if (*type == "decision") {
    if (!need("request", j.contains("request") && j["request"].is_object(), "an object"))
      return false;
    auto d = j.find("decision");
    if (!need("decision", d != j.end() && d->is_object(), "an object")) return false;
    auto e = d->find("decision");
    if (!need("decision.decision",
              e != d->end() && e->is_string() &&
                  (*e == "allow" || *e == "deny" || *e == "require_approval"),
              "allow, deny or require_approval"))
      return false;
    if (!need("decision.determining",
              d->contains("determining") && IsStringArray((*d)["determining"]),
              "a list of statement ids"))
      return false;
    *kind = TraceLineKind::kDecision;
    return true;
  }
  *error = "unknown record type " + type->dump() + " (expected message or decision)";
  return false;
}

}  // namespace writ::gateway
