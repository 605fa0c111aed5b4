#include "balancer/sources/live_follow.h"

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

}  // namespace balancer
