#include "balancer/sources/parked_reloads.h"

#include <algorithm>

namespace balancer {

SourceResult playlist_not_ready() {
  SourceResult r;
  r.status = 503;
  r.error = {"playlist_not_ready",
             "The playlist did not reach the segment or part asked for (_HLS_msn, _HLS_part) in "
             "time."};
  return r;
}

void ParkedReloads::park(const BlockingTarget& target, SourceWaiter waiter, TimePoint now,
                         TimePoint deadline) {
  parked_.push_back({target, deadline, std::move(waiter)});
  // Deadlines mostly come in order: the timer set for an earlier one stands, with no scan.
  if (timer_ && timer_->armed() && deadline >= earliest_) return;
  arm_timer(now);
}

std::vector<SourceWaiter> ParkedReloads::take_satisfied(const hls::MediaInfo& media,
                                                        TimePoint now) {
  return take(now, [&media](const Parked& p) {
    return satisfies_blocking(media, p.target.msn, p.target.part);
  });
}

std::vector<SourceWaiter> ParkedReloads::take_expired(TimePoint now) {
  // A millisecond early counts: the timer's resolution, not a reason to wait again.
  return take(now, [now](const Parked& p) { return p.deadline <= now + Millis(1); });
}

std::vector<SourceWaiter> ParkedReloads::take(TimePoint now, const Ready& ready) {
  std::vector<SourceWaiter> taken;
  std::vector<Parked> still;
  for (Parked& p : parked_) {
    if (ready(p)) {
      taken.push_back(std::move(p.waiter));
    } else {
      still.push_back(std::move(p));
    }
  }
  parked_ = std::move(still);
  // A timer that fired before any deadline had come (another clock's rounding) is set again.
  if (!taken.empty() || (timer_ && !timer_->armed())) arm_timer(now);
  return taken;
}

void ParkedReloads::arm_timer(TimePoint now) {
  if (parked_.empty()) {
    if (timer_) timer_->cancel();
    return;
  }
  earliest_ = parked_.front().deadline;
  for (const Parked& p : parked_) earliest_ = std::min(earliest_, p.deadline);
  if (!timer_) timer_.emplace(base_, core::LoopTimer::Repeat::once, on_deadline_);
  timer_->start(
      std::chrono::duration_cast<Millis>(std::max(earliest_ - now, TimePoint::duration{})));
}

}  // namespace balancer
