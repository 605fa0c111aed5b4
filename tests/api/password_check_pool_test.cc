// The password-check pool: its size (api.kdf_threads, else one worker per core), its workers
// running checks side by side, every queued check run at shutdown, and the busy answer's wait
// coming from the measured rate and the queue length.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/password_queue.h"
#include "support/process.h"

using namespace api;
using namespace std::chrono_literals;
using balancer::test::wait_until;

TEST_CASE("the pool has api.kdf_threads workers, or one per core when it is 0") {
  CHECK(kdf_pool_size(3, 2) == 3);
  CHECK(kdf_pool_size(1, 64) == 1);
  CHECK(kdf_pool_size(0, 2) == 2);
  CHECK(kdf_pool_size(0, 16) == 16);
  CHECK(kdf_pool_size(0, 0) == 1);  // the core count is unknown
  PasswordCheckQueue queue(core::Clock::real(), api::FairQueueLimits{}, 3);
  CHECK(queue.workers() == 3);
  PasswordCheckQueue at_least_one(core::Clock::real(), api::FairQueueLimits{}, 0);
  CHECK(at_least_one.workers() == 1);
}

TEST_CASE("the workers run checks side by side") {
  constexpr int kWorkers = 3;
  PasswordCheckQueue queue(core::Clock::real(), api::FairQueueLimits{}, kWorkers);
  std::mutex m;
  std::condition_variable cv;
  int inside = 0, most = 0;
  bool release = false;
  std::atomic<int> done{0};
  for (int i = 0; i < kWorkers; ++i) {
    PasswordCheckQueue::Check c;
    c.run = [&] {
      std::unique_lock lock(m);
      most = std::max(most, ++inside);
      cv.notify_all();
      // Held until every worker is inside at once (or 10 s pass: the check below then fails).
      cv.wait_for(lock, 10s, [&] { return release || inside == kWorkers; });
      release = true;
      cv.notify_all();
      --inside;
      ++done;
    };
    REQUIRE(queue.submit("10.0.0." + std::to_string(i), std::move(c), 0ms) ==
            PasswordCheckQueue::Admission::queued);
  }
  CHECK(wait_until([&] { return done.load() == kWorkers; }, 15s));
  CHECK(most == kWorkers);
}

TEST_CASE("checks still queued at shutdown are all run, once") {
  std::atomic<int> ran{0};
  {
    PasswordCheckQueue queue(core::Clock::real(), api::FairQueueLimits{}, 2);
    for (int i = 0; i < 20; ++i) {
      PasswordCheckQueue::Check c;
      c.run = [&] { ++ran; };
      // Far in the future: only shutdown runs them.
      REQUIRE(queue.submit("10.0.0." + std::to_string(i), std::move(c), 1h) ==
              PasswordCheckQueue::Admission::queued);
    }
  }
  CHECK(ran.load() == 20);
}

TEST_CASE("the busy answer's wait comes from the completed checks and the queue length") {
  core::FakeClock clock;
  PasswordCheckQueue queue(clock, api::FairQueueLimits{}, 2);
  // Nothing measured yet and nothing waiting: the floor.
  CHECK(queue.retry_after() == 1s);
  // 8 checks complete; the fake clock does not move, so they count over the 1 s minimum span.
  std::atomic<int> ran{0};
  for (int i = 0; i < 8; ++i) {
    PasswordCheckQueue::Check c;
    c.run = [&] { ++ran; };
    REQUIRE(queue.submit("10.0.1." + std::to_string(i), std::move(c), 0ms) ==
            PasswordCheckQueue::Admission::queued);
  }
  REQUIRE(wait_until([&] { return ran.load() == 8 && queue.pending() == 0; }, 10s));
  CHECK(queue.checks_per_second() == doctest::Approx(8.0));
  // 40 checks waiting (held back by a delay) at 8 checks/s: 5 s.
  for (int i = 0; i < 40; ++i) {
    PasswordCheckQueue::Check c;
    c.run = [] {};
    REQUIRE(queue.submit("10.0.2." + std::to_string(i), std::move(c), 1h) ==
            PasswordCheckQueue::Admission::queued);
  }
  CHECK(queue.pending() == 40);
  CHECK(queue.retry_after() == 5s);
}
