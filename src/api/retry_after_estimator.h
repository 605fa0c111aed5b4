// How long a client turned away by a full password-check queue should wait before it asks
// again: the checks waiting or running divided by the checks completed per second over a
// recent window, clamped to [min, max]. So a phone told "busy" at the gates comes back about
// when its turn could come, and a crowd's retries spread over the time the queue needs instead
// of all arriving a second later.
//
// Pure logic: time comes in as `now`; not thread-safe (PasswordCheckQueue locks it). Memory is
// bounded: at most kMaxSamples completion times are kept (past that, the window is shorter).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

#include "core/clock.h"

namespace api {

struct RetryAfterLimits {
  std::chrono::seconds min{1};
  std::chrono::seconds max{60};
  std::chrono::milliseconds window{10'000};  // completions counted over this much recent time
};

class RetryAfterEstimator {
 public:
  static constexpr size_t kMaxSamples = 4096;

  explicit RetryAfterEstimator(RetryAfterLimits limits = {}) : limits_(limits) {}

  // One check finished at `now` (times never go backwards).
  void completed(core::SteadyTime now);
  // Checks completed per second over the window ending at `now`: the count divided by the time
  // the samples span (at least one second, at most the window); 0 when none.
  double checks_per_second(core::SteadyTime now);
  // The wait for a client refused while `waiting` checks are queued or running on `workers`
  // workers, in whole seconds within [min, max]. Before any check has completed in the window,
  // each worker is assumed to finish one check per second (a production check takes well under
  // one).
  std::chrono::seconds retry_after(size_t waiting, size_t workers, core::SteadyTime now);

 private:
  void forget_before(core::SteadyTime cutoff);

  RetryAfterLimits limits_;
  std::deque<core::SteadyTime> completions_;  // oldest first
};

}  // namespace api
