// LogRateLimiter: one line per interval, and the next line says how many were held back.
#include <doctest/doctest.h>

#include <chrono>

#include "core/log.h"

namespace common {
namespace {

TEST_CASE("one line per interval; the next one counts those held back") {
  using namespace std::chrono_literals;
  LogRateLimiter limiter(10s);
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  std::string note = "unchanged";
  CHECK(limiter.allow(t0, note));
  CHECK(note.empty());
  for (int i = 0; i < 41233; ++i) CHECK_FALSE(limiter.allow(t0 + 5s, note));
  CHECK(limiter.allow(t0 + 10s, note));
  CHECK(note == " (repeated 41233 times in the last 10 s)");
  CHECK_FALSE(limiter.allow(t0 + 11s, note));
  CHECK(limiter.allow(t0 + 25s, note));
  CHECK(note == " (repeated 1 time in the last 15 s)");
  CHECK(limiter.allow(t0 + 40s, note));
  CHECK(note.empty());
  CHECK(limiter.suppressed() == 41234);
}

}  // namespace
}  // namespace common
