#include "core/clock.h"

#include <doctest/doctest.h>

#include <chrono>

TEST_CASE("real clock: the seconds are never behind the milliseconds read before them") {
  // Across a second's turn: glibc's time() would lag there by up to a tick.
  const core::Clock& clock = core::Clock::real();
  const int64_t first_second = clock.unix_now_ms() / 1000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1100);
  int64_t reads = 0;
  int64_t behind = 0;
  int64_t last_ms = 0;
  while (std::chrono::steady_clock::now() < deadline && reads < 50'000'000) {
    last_ms = clock.unix_now_ms();
    if (clock.unix_now() < last_ms / 1000) ++behind;
    ++reads;
  }
  REQUIRE(last_ms / 1000 > first_second);  // a second's turn was crossed
  CHECK(behind == 0);
}
