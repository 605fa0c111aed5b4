// LogRateLimiter: one line per interval, and the next line says how many were held back.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"

namespace core {
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

TEST_CASE("threads racing for a fresh limiter's first line: one gets through, the rest count") {
  using namespace std::chrono_literals;
  // The first line's winner may find others already held back with no earlier line to count
  // from (an overflow the undefined-behaviour sanitizer caught in a server): bounded tries.
  for (int round = 0; round < 200; ++round) {
    LogRateLimiter limiter(10s);
    std::atomic<int> let_through{0};
    std::vector<std::string> notes(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          if (limiter.allow(std::chrono::steady_clock::now(), notes[t])) ++let_through;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(let_through >= 1);
    for (const std::string& note : notes)
      CHECK((note.empty() || note.find(" in the last ") != std::string::npos));
  }
}

}  // namespace
}  // namespace core
