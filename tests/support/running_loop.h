// An event loop run on a thread of its own while the object lives, for tests of the thread rules
// (core/thread_rule.h): while it runs, only that thread owns the loop's state.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "core/event_loop.h"
#include "core/thread_rule.h"
#include "support/child_end.h"

namespace balancer::test {

class RunningLoop {
 public:
  // Starts running `loop` (built, with whatever lives on it, before) and returns once it runs.
  explicit RunningLoop(core::EventLoop& loop) : loop_(loop), thread_([this] { loop_.run(); }) {
    // Bounded wait for the loop to run (owned_here() turns false here then).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (loop_.owned_here() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE_FALSE(loop_.owned_here());
  }
  ~RunningLoop() {
    loop_.stop();
    thread_.join();
  }
  RunningLoop(const RunningLoop&) = delete;
  RunningLoop& operator=(const RunningLoop&) = delete;

 private:
  core::EventLoop& loop_;
  std::thread thread_;
};

// `touch`, run on a thread other than a running loop's (in a child process: only the forking
// thread lives on there, and the loop's running thread is still the parent's), aborts. Only
// meaningful with the thread checks on (core::kThreadChecks); a test skips it otherwise, as
// `touch` would then run against state the loop's thread is using.
inline void check_stopped_off_its_loop(const std::function<void()>& touch) {
  CHECK(run_in_child(touch) == ChildEnd::aborted);
}

}  // namespace balancer::test
