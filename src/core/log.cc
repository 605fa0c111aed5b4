#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <ctime>

#include "core/enum_names.h"

namespace common {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};

const char* level_name(LogLevel level) {
  static constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};
  static_assert(std::size(kLevelNames) == common::enum_count(LogLevel::error));
  return common::enum_name(level, kLevelNames);
}
}  // namespace

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load());
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (auto level : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (text == level_name(level)) {
      out = level;
      return true;
    }
  }
  return false;
}

void log_line(LogLevel level, std::string_view component, std::string_view message) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  char stamp[40];
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
  std::string line;
  line.reserve(64 + message.size());
  line.append(stamp).append(" ").append(level_name(level)).append(" ");
  line.append(component).append(": ").append(message).append("\n");
  // One write per line keeps lines from different threads whole.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

bool LogRateLimiter::allow(const std::string& key, std::chrono::steady_clock::time_point now) {
  auto [it, inserted] = last_.try_emplace(key, now);
  if (inserted) return true;
  if (now - it->second >= interval_) {
    it->second = now;
    return true;
  }
  ++suppressed_;
  return false;
}

}  // namespace common
