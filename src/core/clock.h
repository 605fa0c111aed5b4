// The one place time is read. Components take a `const Clock&` and ask it for
// the monotonic time (intervals, deadlines, freshness) and the wall-clock time
// (signature expiry, Age, dates); tests pass a FakeClock and move time by hand.
// Both clocks are safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace core {

using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
  // Seconds since the Unix epoch.
  virtual int64_t unix_now() const = 0;
  // Milliseconds since the Unix epoch (the cache node's freshness deadlines).
  virtual int64_t unix_now_ms() const = 0;

  // The process's real clock (static storage; never destroyed before main returns).
  static const Clock& real();
};

// A clock that moves only when told to. Starts at an arbitrary steady time and
// 2026-01-01T00:00:00Z. Any thread.
class FakeClock final : public Clock {
 public:
  SteadyTime now() const override {
    return SteadyTime(std::chrono::nanoseconds(steady_ns_.load()));
  }
  int64_t unix_now() const override {
    return unix_s_.load() + steady_ns_.load() / 1'000'000'000 - kStartS;
  }
  int64_t unix_now_ms() const override {
    return unix_s_.load() * 1000 + steady_ns_.load() / 1'000'000 - kStartS * 1000;
  }
  void advance(std::chrono::nanoseconds d) { steady_ns_.fetch_add(d.count()); }

 private:
  static constexpr int64_t kStartS = 1000;
  std::atomic<int64_t> steady_ns_{kStartS * 1'000'000'000};
  std::atomic<int64_t> unix_s_{1767225600};
};

}  // namespace core
