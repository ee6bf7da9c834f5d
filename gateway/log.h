// log.h -- the gateway's structured logs: a thin wrapper over spdlog writing one line per
// event to stderr, as text or as JSON (config `log: {format, level}`, docs/gateway.md "Logs").
// Entry points: ConfigureLog (once at start), then LogInfo/LogWarn/LogError/LogDebug and
// LogUpstreamStderr.
//
//   LogInfo("started upstream", {{"upstream", "fs"}, {"pid", 1234}});
//   text: writ: started upstream upstream=fs pid=1234
//   json: {"level":"info","msg":"started upstream","pid":1234,"ts":"2025-...Z","upstream":"fs"}
//
// Never pass credentials or session ids (sessions are named "#N"): the logs are not scrubbed.
// Before ConfigureLog the format is text at level info.
//
// Thread safety: every function may be called from any thread; lines never interleave.
#pragma once

#include <nlohmann/json.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace writ::gateway {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// format: "text" or "json"; level: "debug", "info", "warn" or "error" (anything else: info).
void ConfigureLog(const std::string& format, const std::string& level);

// Every line is passed through `scrub` before it is written (the upstream secrets'
// SecretScrubber, so an upstream that prints its credential on stderr does not leak it into
// the log). Null: none. Call once at start, before upstreams run.
void SetLogScrubber(std::function<void(std::string*)> scrub);

// One event. `fields` is null or an object: text renders it as ` key=value` pairs (strings
// bare unless they contain spaces or quotes, then JSON-quoted), json merges it into the
// line's object next to ts, level and msg.
void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields = nullptr);
inline void LogDebug(std::string_view m, const nlohmann::json& f = nullptr) {
  Log(LogLevel::kDebug, m, f);
}
inline void LogInfo(std::string_view m, const nlohmann::json& f = nullptr) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarn(std::string_view m, const nlohmann::json& f = nullptr) {
  Log(LogLevel::kWarn, m, f);
}
inline void LogError(std::string_view m, const nlohmann::json& f = nullptr) {
  Log(LogLevel::kError, m, f);
}

// A line an upstream wrote on its stderr. text: `[NAME] line` (as before); json:
// {"level":"info","msg":line,"stream":"stderr","ts":...,"upstream":NAME}.
void LogUpstreamStderr(std::string_view upstream, std::string_view line);

// The line Log would write, without the trailing newline (for tests). `json` picks the format.
std::string FormatLogLine(bool json, LogLevel level, std::string_view msg,
                          const nlohmann::json& fields);

}  // namespace writ::gateway
