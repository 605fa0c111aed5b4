#include "api/retry_after_estimator.h"

#include <algorithm>
#include <cmath>

namespace api {

void RetryAfterEstimator::completed(core::SteadyTime now) {
  completions_.push_back(now);
  if (completions_.size() > kMaxSamples) completions_.pop_front();
}

void RetryAfterEstimator::forget_before(core::SteadyTime cutoff) {
  while (!completions_.empty() && completions_.front() < cutoff) completions_.pop_front();
}

double RetryAfterEstimator::checks_per_second(core::SteadyTime now) {
  forget_before(now - limits_.window);
  if (completions_.empty()) return 0.0;
  const std::chrono::duration<double> span = std::clamp<core::SteadyTime::duration>(
      now - completions_.front(), std::chrono::seconds(1), limits_.window);
  return static_cast<double>(completions_.size()) / span.count();
}

std::chrono::seconds RetryAfterEstimator::retry_after(size_t waiting, size_t workers,
                                                      core::SteadyTime now) {
  double rate = checks_per_second(now);
  if (rate <= 0.0) rate = static_cast<double>(std::max<size_t>(workers, 1));
  const double seconds = std::ceil(static_cast<double>(waiting) / rate);
  const double bounded = std::clamp(seconds, static_cast<double>(limits_.min.count()),
                                    static_cast<double>(limits_.max.count()));
  return std::chrono::seconds(static_cast<int64_t>(bounded));
}

}  // namespace api
