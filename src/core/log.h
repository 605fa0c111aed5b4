// Minimal leveled logger writing one line per event to stderr. Thread-safe
// (one write(2) per line). Secrets must never be passed to it.
#pragma once

#include <chrono>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>

namespace common {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// Sets the process-wide minimum level (from config; called at start and on reload).
void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug" | "info" | "warn" | "error"; false if unknown.
bool parse_log_level(std::string_view text, LogLevel& out);

void log_line(LogLevel level, std::string_view component, std::string_view message);

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <class... Args>
void log_at(LogLevel level, std::string_view component, const Args&... args) {
  if (level < log_level()) return;
  log_line(level, component, str_cat(args...));
}

#define LOG_DEBUG(component, ...) \
  ::common::log_at(::common::LogLevel::debug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) ::common::log_at(::common::LogLevel::info, component, __VA_ARGS__)
#define LOG_WARN(component, ...) ::common::log_at(::common::LogLevel::warn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) \
  ::common::log_at(::common::LogLevel::error, component, __VA_ARGS__)

// Lets one line per key through per interval, so a flood of bad requests or a
// failing origin cannot flood the log. Loop thread only.
class LogRateLimiter {
 public:
  explicit LogRateLimiter(std::chrono::milliseconds interval = std::chrono::seconds(1))
      : interval_(interval) {}
  // True if a line for `key` may be written now; counts suppressed lines.
  bool allow(const std::string& key, std::chrono::steady_clock::time_point now);
  uint64_t suppressed() const { return suppressed_; }

 private:
  std::chrono::milliseconds interval_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> last_;
  uint64_t suppressed_ = 0;
};

}  // namespace common
