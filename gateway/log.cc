// log.cc -- see log.h. spdlog does the sink (stderr, one mutex, a single write per line) and
// the level filter; the line itself is built here so text and JSON share one code path.
#include "gateway/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "gateway/audit.h"

namespace writ::gateway {
namespace {

struct Logger {
  std::shared_ptr<spdlog::logger> log;
  std::atomic<bool> json{false};
  Logger() {
    // stderr_sink (not the color sink): plain bytes, one fwrite per line under the sink mutex.
    log =
        std::make_shared<spdlog::logger>("writ", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_pattern("%v");
    log->set_level(spdlog::level::info);
    log->flush_on(spdlog::level::trace);  // every line reaches stderr at once
  }
};

Logger& Get() {
  static Logger* l = new Logger();  // never destroyed: threads may log during exit
  return *l;
}

spdlog::level::level_enum ToSpd(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

const char* Name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string TextValue(const nlohmann::json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (!s.empty() && s.find_first_of(" \"=\n\t") == std::string::npos) return s;
  }
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void ConfigureLog(const std::string& format, const std::string& level) {
  Logger& l = Get();
  l.json = format == "json";
  LogLevel lv = level == "debug"   ? LogLevel::kDebug
                : level == "warn"  ? LogLevel::kWarn
                : level == "error" ? LogLevel::kError
                                   : LogLevel::kInfo;
  l.log->set_level(ToSpd(lv));
}

std::string FormatLogLine(bool json, LogLevel level, std::string_view msg,
                          const nlohmann::json& fields) {
  if (json) {
    nlohmann::json j = fields.is_object() ? fields : nlohmann::json::object();
    j["ts"] = FormatAuditTime(std::chrono::system_clock::now());
    j["level"] = Name(level);
    j["msg"] = std::string(msg);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = "writ: ";
  out += msg;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it)
      out += " " + it.key() + "=" + TextValue(it.value());
  }
  return out;
}

namespace {

std::function<void(std::string*)>& Scrubber() {
  static auto* s = new std::function<void(std::string*)>();  // set once at start
  return *s;
}

std::string Scrubbed(std::string line) {
  if (Scrubber()) Scrubber()(&line);
  return line;
}

}  // namespace

void SetLogScrubber(std::function<void(std::string*)> scrub) { Scrubber() = std::move(scrub); }

void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields) {
  Logger& l = Get();
  if (!l.log->should_log(ToSpd(level))) return;
  try {
    l.log->log(ToSpd(level), "{}", Scrubbed(FormatLogLine(l.json, level, msg, fields)));
  } catch (...) {
    // Logging never takes the gateway down.
  }
}

void LogUpstreamStderr(std::string_view upstream, std::string_view line) {
  Logger& l = Get();
  if (!l.log->should_log(spdlog::level::info)) return;
  try {
    if (l.json) {
      l.log->info("{}", Scrubbed(FormatLogLine(
                            true, LogLevel::kInfo, line,
                            {{"upstream", std::string(upstream)}, {"stream", "stderr"}})));
    } else {
      l.log->info("[{}] {}", upstream, Scrubbed(std::string(line)));
    }
  } catch (...) {
  }
}

}  // namespace writ::gateway
