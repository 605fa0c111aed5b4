// Event loops a test runs by hand on its own thread: one non-blocking turn of each, in turn,
// until a condition holds. Loop threads (the test's) only.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <initializer_list>

#include "core/event_loop.h"
#include "support/process.h"

namespace balancer::test {

// Turns each of `loops` once, in turn, until `done` holds; false when `limit` passed first.
inline bool run_loops_until(std::initializer_list<core::EventLoop*> loops,
                            const std::function<bool()>& done,
                            std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return wait_until(
      [&] {
        for (core::EventLoop* loop : loops) event_base_loop(&loop->base(), EVLOOP_NONBLOCK);
        return done();
      },
      limit, std::chrono::milliseconds(1));
}

}  // namespace balancer::test
