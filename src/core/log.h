// Minimal leveled logger writing one line per event to stderr. Thread-safe
// (one write(2) per line). Secrets must never be passed to it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>

namespace core {

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

#define LOG_DEBUG(component, ...) ::core::log_at(::core::LogLevel::debug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) ::core::log_at(::core::LogLevel::info, component, __VA_ARGS__)
#define LOG_WARN(component, ...) ::core::log_at(::core::LogLevel::warn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) ::core::log_at(::core::LogLevel::error, component, __VA_ARGS__)

// Lets one line through per interval and counts the ones held back; the next line let
// through says how many there were. What a client or a peer can make the server log again and
// again (a refused request, a failing origin, accept failing at the open-file limit) goes
// through one, so nobody can fill a disk through the log: at most one line per call site per
// interval. Thread-safe and lock-free: one serves every loop.
class LogRateLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit LogRateLimiter(std::chrono::milliseconds interval = std::chrono::seconds(10))
      : interval_ns_(std::chrono::nanoseconds(interval).count()) {}
  // True if a line may be written at `now`; `note` is then "" or, after lines held back,
  // " (repeated N times in the last S s)" to append to it. False counts the line held back.
  bool allow(TimePoint now, std::string& note);
  uint64_t suppressed() const { return suppressed_.load(std::memory_order_relaxed); }

 private:
  const int64_t interval_ns_;
  std::atomic<int64_t> last_ns_{std::numeric_limits<int64_t>::min()};  // the last line let through
  std::atomic<uint64_t> held_back_{0};   // since the last line let through
  std::atomic<uint64_t> suppressed_{0};  // in all
};

template <class... Args>
void log_limited(LogRateLimiter& limiter, LogLevel level, std::string_view component,
                 const Args&... args) {
  if (level < log_level()) return;
  std::string note;
  if (!limiter.allow(std::chrono::steady_clock::now(), note)) return;
  log_line(level, component, str_cat(args..., note));
}

// LOG_WARN and LOG_ERROR for lines a client or a peer can trigger: each call site lets one
// line through per 10 s, with the count of those held back.
#define LOG_LIMITED(level, component, ...)                                        \
  do {                                                                            \
    static ::core::LogRateLimiter log_limiter_of_call_site;                       \
    ::core::log_limited(log_limiter_of_call_site, level, component, __VA_ARGS__); \
  } while (false)
#define LOG_WARN_LIMITED(component, ...) LOG_LIMITED(::core::LogLevel::warn, component, __VA_ARGS__)
#define LOG_ERROR_LIMITED(component, ...) \
  LOG_LIMITED(::core::LogLevel::error, component, __VA_ARGS__)

}  // namespace core
