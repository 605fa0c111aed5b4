// Thread rules across real threads: who owns a loop's objects (EventLoop::owned_here), the
// check that aborts when the rule is broken (expect_on, in builds with BALANCER_THREAD_CHECKS),
// and "run there, answer here" (answer_here.h): work on the other thread, the answer on the
// asking loop, dropped once the asker's Lifetime has ended.
#include "core/answer_here.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "core/event_loop.h"
#include "core/thread_rule.h"
#include "core/worker.h"
#include "support/child_end.h"
#include "support/running_loop.h"

using namespace std::chrono_literals;

namespace {

// A loop run on a thread of its own until the object goes.
struct LoopOnItsThread {
  core::EventLoop loop{0};
  balancer::test::RunningLoop running{loop};
};

// Waits (bounded) until `done` holds.
template <class Done>
bool wait_for(Done done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return done();
}

}  // namespace

TEST_CASE(
    "owned_here: the building thread before the loop runs, only the loop's thread while it "
    "runs, the building thread again once it stopped") {
  core::EventLoop loop(0);
  CHECK(loop.owned_here());  // not running yet: the thread that builds it
  std::atomic<int> inside{-1};
  loop.post([&] { inside = loop.owned_here() ? 1 : 0; });
  std::thread runner([&] { loop.run(); });
  REQUIRE(wait_for([&] { return inside.load() != -1; }));
  CHECK(inside.load() == 1);
  CHECK_FALSE(loop.owned_here());  // the main thread, while the loop runs elsewhere
  loop.stop();
  runner.join();
  CHECK(loop.owned_here());  // stopped: the thread that destroys it
}

TEST_CASE(
    "expect_on aborts a thread that touches a running loop's state (thread checks on), and "
    "is nothing otherwise") {
  LoopOnItsThread running;
  REQUIRE_FALSE(running.loop.owned_here());
  // The broken rule, in a child process: only the forking thread lives on there, and the loop's
  // running thread is still the parent's.
  const balancer::test::ChildEnd end =
      balancer::test::run_in_child([&] { core::expect_on(running.loop); });
  CHECK(end == (core::kThreadChecks ? balancer::test::ChildEnd::aborted
                                    : balancer::test::ChildEnd::ran_through));
  std::atomic<bool> checked{false};
  running.loop.post([&] {
    core::expect_on(running.loop);  // the loop's own thread: passes
    checked = true;
  });
  CHECK(wait_for([&] { return checked.load(); }));
}

TEST_CASE(
    "run_there_answer_here: the work runs on the worker, its result is answered on the loop") {
  LoopOnItsThread running;
  core::WorkerThread worker;
  core::Lifetime asker;
  std::atomic<bool> work_on_loop{true}, answer_on_loop{false};
  std::atomic<int> answered{0};
  running.loop.post([&] {
    core::run_there_answer_here(
        worker, running.loop, asker.watch(),
        [&] {
          work_on_loop = running.loop.in_loop_thread();
          return 41;
        },
        [&](int result) {
          answer_on_loop = running.loop.in_loop_thread();
          answered = result + 1;
        });
  });
  REQUIRE(wait_for([&] { return answered.load() != 0; }));
  CHECK(answered.load() == 42);
  CHECK_FALSE(work_on_loop.load());
  CHECK(answer_on_loop.load());
}

TEST_CASE(
    "an answer that arrives after its asker's Lifetime ended is dropped; a forever asker's "
    "is not") {
  LoopOnItsThread running;
  core::WorkerThread worker;
  auto asker = std::make_unique<core::Lifetime>();
  std::atomic<bool> release{false}, answered{false}, forever_answered{false}, marker{false};
  std::atomic<bool> asked{false}, gone{false};
  running.loop.post([&] {
    core::ask_there_answer_here(
        worker, running.loop, asker->watch(),
        [&](auto reply) {
          // Held until the asker is gone (bounded: the test fails below if it never is).
          wait_for([&] { return release.load(); });
          reply(1);
        },
        [&](int) { answered = true; });
    core::run_there_answer_here(
        worker, running.loop, core::LifetimeWatch::forever(), [] { return 2; },
        [&](int) { forever_answered = true; });
    asked = true;
  });
  REQUIRE(wait_for([&] { return asked.load(); }));
  running.loop.post([&] {
    asker.reset();  // on the asker's loop, as an owner ends
    gone = true;
  });
  REQUIRE(wait_for([&] { return gone.load(); }));
  release = true;
  // The worker runs jobs in order and the loop answers in post order: once this marker has run,
  // both answers above were handed to the loop before it.
  worker.post([&] { running.loop.post([&] { marker = true; }); });
  REQUIRE(wait_for([&] { return marker.load(); }));
  CHECK_FALSE(answered.load());
  CHECK(forever_answered.load());
}

TEST_CASE("loop poster: jobs posted while the loop has not drained wake it once, and all run") {
  core::EventBasePtr base(event_base_new());
  REQUIRE(base);
  core::LoopPoster poster(*base);
  int ran = 0;
  // From another thread, as serving loops post to the fetch loop.
  std::thread([&] {
    for (int i = 0; i < 1000; ++i) poster.post([&ran] { ++ran; });
  }).join();
  CHECK(poster.wakeups() == 1);
  event_base_loop(base.get(), EVLOOP_NONBLOCK);
  CHECK(ran == 1000);
  poster.post([&ran] { ++ran; });  // drained: the next post wakes it again
  CHECK(poster.wakeups() == 2);
  event_base_loop(base.get(), EVLOOP_NONBLOCK);
  CHECK(ran == 1001);
}
