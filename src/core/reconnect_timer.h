// A client's reconnect schedule on its loop: ReconnectPolicy's delays (reconnect_policy.h) on a
// one-shot LoopTimer that calls the client's `attempt`. The Redis and PostgreSQL clients each own
// one. Loop thread only.
#pragma once

#include <functional>

#include "core/event_loop.h"
#include "core/reconnect_policy.h"

namespace core {

class ReconnectTimer {
 public:
  ReconnectTimer(EventLoop& loop, std::function<void()> attempt)
      : timer_(loop, LoopTimer::Repeat::once, std::move(attempt)) {}

  // The client starts an attempt (its address known) at `now`.
  void attempt_started(SteadyTime now) { policy_.attempt_started(now); }
  // The connection is made: the next failure waits the first delay again.
  void connected() { policy_.connected(); }
  // A connection failed or was lost: the next attempt after the policy's delay, unless one is
  // already scheduled.
  void schedule() {
    if (!timer_.armed()) timer_.start(policy_.delay_after_failure());
  }
  // A caller needs the connection now: true (and the scheduled attempt cancelled) when the policy
  // lets the client try at once; the client then makes the attempt itself.
  bool take_now(SteadyTime now) {
    if (!policy_.may_try_now(now)) return false;
    timer_.cancel();
    return true;
  }
  void cancel() { timer_.cancel(); }

 private:
  ReconnectPolicy policy_;
  LoopTimer timer_;
};

}  // namespace core
