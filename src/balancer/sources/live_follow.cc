#include "balancer/sources/live_follow.h"

#include <algorithm>

namespace balancer {

LiveFollow::Landing LiveFollow::landed() {
  Landing landing{held_, next_};
  held_ = false;
  send_now_ = false;
  return landing;
}

void LiveFollow::built(const Landing& landing, std::optional<BlockingTarget> next) {
  next_ = next;
  const bool moved_on = next_ != landing.asked;
  send_now_ = !landing.followed || moved_on;
  delivers_ = landing.followed && moved_on;
}

LiveFollow::Join LiveFollow::join(const BlockingTarget& asked, const SourceVersion& version,
                                  bool fetch_running, bool refresh_due) const {
  const bool follow_held = held_ && fetch_running;
  if (follow_held && next_ == asked) return Join::fetch;
  // A later part (the copy does not satisfy it, and it is within the advance limits), or this
  // one between two follows: while the follow delivers part after part, wait for the copy to
  // reach it.
  const bool goes_on = follow_held || refresh_due;
  if (!delivers_ || !goes_on || version.playlist.kind != hls::PlaylistKind::media ||
      satisfies_blocking(version.playlist.media, asked.msn, asked.part)) {
    return Join::none;
  }
  return Join::park;
}

void LiveFollow::park(const BlockingTarget& target, SourceWaiter waiter, TimePoint now,
                      TimePoint deadline) {
  parked_.push_back({target, deadline, std::move(waiter)});
  arm_timer(now);
}

std::vector<SourceWaiter> LiveFollow::take_satisfied(const hls::MediaInfo& media, TimePoint now) {
  return take(now, [&media](const Parked& p) {
    return satisfies_blocking(media, p.target.msn, p.target.part);
  });
}

std::vector<SourceWaiter> LiveFollow::take_expired(TimePoint now) {
  // A millisecond early counts: the timer's resolution, not a reason to wait again.
  return take(now, [now](const Parked& p) { return p.deadline <= now + Millis(1); });
}

std::vector<SourceWaiter> LiveFollow::take(TimePoint now, const Ready& ready) {
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
  if (!taken.empty()) arm_timer(now);
  return taken;
}

void LiveFollow::arm_timer(TimePoint now) {
  if (parked_.empty()) {
    if (timer_) timer_->cancel();
    return;
  }
  TimePoint earliest = parked_.front().deadline;
  for (const Parked& p : parked_) earliest = std::min(earliest, p.deadline);
  if (!timer_) timer_.emplace(base_, core::LoopTimer::Repeat::once, on_deadline_);
  timer_->start(std::chrono::duration_cast<Millis>(earliest - now));
}

}  // namespace balancer
