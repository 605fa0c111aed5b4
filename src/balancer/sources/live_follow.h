// The follow of one low-latency playlist (docs/balancer.md "Low-latency playlists are followed,
// not polled"): when origin can block (CAN-BLOCK-RELOAD=YES) and the playlist has parts, the
// copy's refresh is a blocking reload for the part after its newest, sent as soon as the
// previous answer came; while origin holds it, the copy is as new as origin's. Viewers' blocking
// reloads for that part join the follow's fetch; those for a later part park here until a
// version satisfies them, or their deadline (three target durations) passes.
//
// One per cache entry, owned by SourceCache: the fetch loop only (its timer runs there).
#pragma once

#include <event2/event.h>

#include <functional>
#include <optional>
#include <vector>

#include "balancer/sources/parked_reloads.h"
#include "balancer/sources/source_policy.h"
#include "balancer/sources/source_version.h"
#include "hls/playlist.h"

namespace balancer {

class LiveFollow {
 public:
  // `on_deadline` runs on `base`'s loop when a parked request's deadline has come.
  LiveFollow(event_base& base, std::function<void()> on_deadline)
      : parked_(base, std::move(on_deadline)) {}

  // The blocking reload, in origin's numbers, that brings the next version; none: the copy is
  // refreshed by period.
  const std::optional<BlockingTarget>& next() const { return next_; }
  // Origin holds the follow now: the copy is as new as origin's.
  bool held() const { return held_; }
  // The last follow brought news: the next one is sent at once.
  bool send_now() const { return send_now_; }
  // The last follow brought the part it asked for: the follows bring part after part.
  bool delivers() const { return delivers_; }

  // A follow is sent (held until its part comes).
  void sent() { held_ = true; }
  // What the fetch that just landed was: a follow (and for which part), or not.
  struct Landing {
    bool followed = false;
    std::optional<BlockingTarget> asked;
  };
  // A fetch of the copy landed; the follow is no longer held.
  Landing landed();
  // The landed follow did not bring the part it asked for (timed out, failed, or unchanged).
  void brought_nothing(const Landing& landing) {
    if (landing.followed) delivers_ = false;
  }
  // A new version was built from the landed fetch; `next` is its next part to follow.
  void built(const Landing& landing, std::optional<BlockingTarget> next);
  // Origin refused the part followed as too far ahead (400: its numbers went back, an encoder
  // starting over): the next refresh asks for the playlist plainly, at once, and the version
  // it brings says what to follow.
  void refused() {
    next_.reset();
    send_now_ = true;
    delivers_ = false;
  }

  // What a viewer's blocking reload for `asked` does: join the follow's fetch (the part it
  // asks for), park (a later part, while the follow brings part after part: `refresh_due` says
  // the next follow is scheduled), or neither (the cache asks origin itself).
  enum class Join { none, fetch, park };
  Join join(const BlockingTarget& asked, const SourceVersion& version, bool fetch_running,
            bool refresh_due) const;

  // Parks a waiter for `target` (in the numbers of the served version) until `deadline`.
  void park(const BlockingTarget& target, SourceWaiter waiter, TimePoint now, TimePoint deadline) {
    parked_.park(target, std::move(waiter), now, deadline);
  }
  bool parked() const { return parked_.parked(); }
  // The parked waiters `media` satisfies, off the follow.
  std::vector<SourceWaiter> take_satisfied(const hls::MediaInfo& media, TimePoint now) {
    return parked_.take_satisfied(media, now);
  }
  // The parked waiters whose deadline has come (a millisecond early counts), off the follow.
  std::vector<SourceWaiter> take_expired(TimePoint now) { return parked_.take_expired(now); }

 private:
  std::optional<BlockingTarget> next_;
  bool send_now_ = true;
  bool held_ = false;
  // The last follow brought the part it asked for: origin holds and answers blocking reloads,
  // so the follow will bring the parts after it in turn.
  bool delivers_ = false;
  ParkedReloads parked_;
};

}  // namespace balancer
