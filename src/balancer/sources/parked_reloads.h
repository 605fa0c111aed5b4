// Blocking playlist reloads (_HLS_msn/_HLS_part) waiting for a version of their playlist that
// has their part: each parked with its target, in the numbers of the version it was measured
// against, and a deadline (three target durations, at most playlists.blocking_timeout_ms). The
// owner hands each new version to take_satisfied(); the timer tells it when a deadline comes.
// Used by the fetch loop's follow (live_follow.h) and by a serving loop's front
// (source_front.h), each on its own loop: one instance is touched by one loop's thread only.
#pragma once

#include <event2/event.h>

#include <functional>
#include <optional>
#include <vector>

#include "balancer/sources/source_policy.h"
#include "balancer/sources/source_version.h"
#include "core/event_loop.h"
#include "hls/playlist.h"

namespace balancer {

// A request waiting on a source's fetch (or parked for a later version).
struct SourceWaiter {
  SourceCallback done;
  bool first = false;  // the request that started the fetch
  // A viewer's blocking reload waiting on the ordinary copy's follow (a 503 if it times out).
  bool blocking_reload = false;
  bool delta = false;  // answered with the delta update of what the fetch brings (_HLS_skip=YES)
};

// §6.2.5.2: what a blocked reload not satisfied by its deadline gets (503 playlist_not_ready).
SourceResult playlist_not_ready();

class ParkedReloads {
 public:
  // `on_deadline` runs on `base`'s loop when a parked request's deadline has come.
  ParkedReloads(event_base& base, std::function<void()> on_deadline)
      : base_(base), on_deadline_(std::move(on_deadline)) {}
  ParkedReloads(const ParkedReloads&) = delete;
  ParkedReloads& operator=(const ParkedReloads&) = delete;

  // Parks a waiter for `target` (in the numbers of the served version) until `deadline`.
  void park(const BlockingTarget& target, SourceWaiter waiter, TimePoint now, TimePoint deadline);
  bool parked() const { return !parked_.empty(); }
  size_t size() const { return parked_.size(); }
  // The parked waiters `media` satisfies, off the list.
  std::vector<SourceWaiter> take_satisfied(const hls::MediaInfo& media, TimePoint now);
  // The parked waiters whose deadline has come (a millisecond early counts), off the list.
  std::vector<SourceWaiter> take_expired(TimePoint now);

 private:
  struct Parked {
    BlockingTarget target;
    TimePoint deadline;
    SourceWaiter waiter;
  };
  using Ready = std::function<bool(const Parked&)>;
  std::vector<SourceWaiter> take(TimePoint now, const Ready& ready);
  void arm_timer(TimePoint now);

  event_base& base_;
  std::function<void()> on_deadline_;
  std::vector<Parked> parked_;
  std::optional<core::LoopTimer> timer_;  // made when the first request parks
  TimePoint earliest_{};                  // the deadline the timer is set for
};

}  // namespace balancer
