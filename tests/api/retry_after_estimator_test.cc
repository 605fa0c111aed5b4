// The Retry-After of a busy sign-in: queue length / measured checks per second over the recent
// window, clamped to 1..60 s; time comes in as `now` (no clock, no sleeps).
#include <doctest/doctest.h>

#include "api/retry_after_estimator.h"

using namespace api;
using namespace std::chrono_literals;

namespace {
const core::SteadyTime t0{std::chrono::hours(1)};
// `count` checks completed evenly from `end` - `span` to `end` (so count / span per second).
void complete_evenly(RetryAfterEstimator& e, int count, std::chrono::milliseconds span,
                     core::SteadyTime end) {
  for (int i = 0; i < count; ++i) e.completed(end - span + span * i / (count - 1));
}
}  // namespace

TEST_CASE("the wait is the queue length divided by the measured check rate") {
  RetryAfterEstimator e;
  complete_evenly(e, 100, 10s, t0);  // 10 checks/s
  CHECK(e.checks_per_second(t0) == doctest::Approx(10.0));
  CHECK(e.retry_after(64, 2, t0) == 7s);  // 6.4 s, rounded up
  CHECK(e.retry_after(200, 2, t0) == 20s);
  CHECK(e.retry_after(10, 2, t0) == 1s);
}

TEST_CASE("the wait grows with the queue and shrinks as the rate rises") {
  RetryAfterEstimator slow, fast;
  complete_evenly(slow, 20, 10s, t0);   // 2/s
  complete_evenly(fast, 400, 10s, t0);  // 40/s
  std::chrono::seconds previous{0};
  for (size_t waiting : {4, 16, 32, 64, 100}) {
    const auto wait = slow.retry_after(waiting, 2, t0);
    CHECK(wait >= previous);
    previous = wait;
  }
  CHECK(slow.retry_after(100, 2, t0) == 50s);
  CHECK(fast.retry_after(100, 2, t0) == 3s);
}

TEST_CASE("the wait is clamped to 1..60 s") {
  RetryAfterEstimator e;
  complete_evenly(e, 10, 10s, t0);  // 1/s
  CHECK(e.retry_after(0, 2, t0) == 1s);
  CHECK(e.retry_after(1000, 2, t0) == 60s);
  RetryAfterEstimator custom(RetryAfterLimits{2s, 5s, 10s});
  complete_evenly(custom, 10, 10s, t0);
  CHECK(custom.retry_after(0, 1, t0) == 2s);
  CHECK(custom.retry_after(100, 1, t0) == 5s);
}

TEST_CASE("only the recent window counts: an old burst is forgotten") {
  RetryAfterEstimator e;
  complete_evenly(e, 1000, 10s, t0);  // 100/s, long ago
  const auto later = t0 + 30s;
  CHECK(e.checks_per_second(later) == 0.0);
  complete_evenly(e, 20, 10s, later);  // 2/s now
  CHECK(e.checks_per_second(later) == doctest::Approx(2.0));
  CHECK(e.retry_after(20, 2, later) == 10s);
}

TEST_CASE("without a measurement, each worker is assumed to check once a second") {
  RetryAfterEstimator e;
  CHECK(e.retry_after(8, 2, t0) == 4s);
  CHECK(e.retry_after(8, 0, t0) == 8s);  // no worker count: one
}

TEST_CASE("a few checks in the first instant do not claim a huge rate (the span is at least 1 s)") {
  RetryAfterEstimator e;
  for (int i = 0; i < 5; ++i) e.completed(t0 + std::chrono::milliseconds(i));
  CHECK(e.checks_per_second(t0 + 10ms) == doctest::Approx(5.0));
  CHECK(e.retry_after(50, 2, t0 + 10ms) == 10s);
}

TEST_CASE("memory is bounded: past kMaxSamples the oldest completions go") {
  RetryAfterEstimator e;
  const int many = static_cast<int>(RetryAfterEstimator::kMaxSamples) * 3;
  complete_evenly(e, many, 10s, t0);  // 1,228.8/s, over the sample bound
  // The kept samples span the last third of the window: the rate is still right.
  CHECK(e.checks_per_second(t0) == doctest::Approx(many / 10.0).epsilon(0.02));
}
