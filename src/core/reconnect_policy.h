// When a client that lost its connection (or never made it) tries again: the one rule of the
// Redis and PostgreSQL clients.
//   - After a failed or lost connection the next attempt is scheduled 100 ms later, then 200,
//     400, ... doubling up to 2 s; a connection made starts the series again at 100 ms.
//   - A caller that needs the connection now (a command or query arriving while the client
//     waits) may make the client try at once, but at most once per 100 ms since the last
//     attempt, so a burst of requests against a dead server costs one attempt, not one each.
// No jitter: the delays are exactly these (what both clients did before this type existed).
// Pure: time comes in as `now`; no timers, no I/O. Not synchronised (belongs to one client,
// on its loop).
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

#include "core/clock.h"

namespace core {

class ReconnectPolicy {
 public:
  static constexpr std::chrono::milliseconds kFirstDelay{100};
  static constexpr std::chrono::milliseconds kMaxDelay{2000};

  // An attempt to connect starts at `now` (the address is known and the connection is asked for).
  void attempt_started(SteadyTime now) { last_attempt_ = now; }

  // The connection is made: the next failure waits kFirstDelay again.
  void connected() { next_delay_ = kFirstDelay; }

  // A connection failed or was lost and the client schedules its next attempt: how long to wait
  // before it. Each call doubles the wait the next one returns, up to kMaxDelay, until
  // connected(). Call once per scheduled attempt (not again while one is already scheduled).
  std::chrono::milliseconds delay_after_failure() {
    const std::chrono::milliseconds delay = next_delay_;
    next_delay_ = std::min(next_delay_ * 2, kMaxDelay);
    return delay;
  }

  // Whether a caller waiting for the connection may try at once at `now` instead of waiting for
  // the scheduled attempt: true before any attempt, else kFirstDelay after the last one.
  bool may_try_now(SteadyTime now) const {
    return !last_attempt_ || now - *last_attempt_ >= kFirstDelay;
  }

 private:
  std::chrono::milliseconds next_delay_ = kFirstDelay;
  std::optional<SteadyTime> last_attempt_;
};

}  // namespace core
