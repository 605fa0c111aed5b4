#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <ctime>

#include "core/enum_names.h"

namespace core {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};

const char* level_name(LogLevel level) {
  static constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};
  static_assert(std::size(kLevelNames) == core::enum_count(LogLevel::error));
  return core::enum_name(level, kLevelNames);
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

bool LogRateLimiter::allow(TimePoint now, std::string& note) {
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  int64_t last = last_ns_.load(std::memory_order_relaxed);
  // One thread wins the turn of an interval; the others count themselves held back.
  if (last != std::numeric_limits<int64_t>::min() && now_ns - last < interval_ns_) {
    held_back_.fetch_add(1, std::memory_order_relaxed);
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!last_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed)) {
    held_back_.fetch_add(1, std::memory_order_relaxed);
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  note.clear();
  if (const uint64_t held = held_back_.exchange(0, std::memory_order_relaxed); held > 0) {
    // Lines held back before any got through (threads racing for the very first one) have no
    // earlier line to count from: their interval is the one that began now.
    const int64_t since_ns =
        last == std::numeric_limits<int64_t>::min() ? interval_ns_ : now_ns - last;
    const int64_t seconds = (since_ns + 500'000'000) / 1'000'000'000;
    note = " (repeated " + std::to_string(held) + (held == 1 ? " time" : " times") +
           " in the last " + std::to_string(seconds) + " s)";
  }
  return true;
}

}  // namespace core
