// EventLoop::post() and Published<T> across real threads: jobs run on the loop
// thread in post order, none lost; readers of a published value never see it go
// back and always end on the last one. LoopTimer on one loop: once, every, cancel.
#include "core/event_loop.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE(
    "event loop: jobs posted from two threads all run on the loop thread, each poster's in order") {
  core::EventLoop loop(0);
  std::thread runner([&] { loop.run(); });
  constexpr int kPerPoster = 20000;
  std::vector<int> last_seen(2, -1);
  std::atomic<int> out_of_order{0}, off_thread{0}, ran{0};
  auto poster = [&](int who) {
    for (int i = 0; i < kPerPoster; ++i) {
      loop.post([&, who, i] {
        if (!loop.in_loop_thread()) ++off_thread;
        if (i != last_seen[who] + 1) ++out_of_order;  // loop thread only: no lock needed
        last_seen[who] = i;
        ++ran;
      });
    }
  };
  std::thread a(poster, 0), b(poster, 1);
  a.join();
  b.join();
  // Deadline-bounded wait for the loop to catch up.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ran.load() < 2 * kPerPoster && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  loop.stop();
  runner.join();
  CHECK(ran == 2 * kPerPoster);
  CHECK(out_of_order == 0);
  CHECK(off_thread == 0);
}

TEST_CASE("event loop: a job is never run inline by post(), even on the loop thread") {
  core::EventLoop loop(0);
  std::atomic<bool> inner_ran_inline{false}, done{false};
  std::thread runner([&] { loop.run(); });
  loop.post([&] {
    bool inner = false;
    loop.post([&] {
      inner = true;
      done = true;
    });
    inner_ran_inline = inner;
  });
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  loop.stop();
  runner.join();
  CHECK(done);
  CHECK_FALSE(inner_ran_inline);
}

TEST_CASE("published value: readers on another thread see versions in order and end on the last") {
  core::Published<int> value(std::make_shared<const int>(0));
  constexpr int kVersions = 20000;
  std::atomic<bool> writer_done{false};
  std::atomic<int> went_back{0}, final_seen{-1};
  std::thread reader([&] {
    core::Published<int>::Reader r(value);
    int previous = 0;
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      bool finished = writer_done.load();
      int now = r.get();
      if (now < previous) ++went_back;
      previous = now;
      if (finished) break;  // read once more after the writer's last publish
    }
    final_seen = previous;
  });
  for (int v = 1; v <= kVersions; ++v) value.publish(std::make_shared<const int>(v));
  writer_done = true;
  reader.join();
  CHECK(went_back == 0);
  CHECK(final_seen == kVersions);
  CHECK(value.generation() == kVersions);
}

namespace {

// Runs the loop's base on this thread until `done` or 10 s.
template <class Done>
void run_until(core::EventLoop& loop, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    event_base_loop(&loop.base(), EVLOOP_ONCE);
}

}  // namespace

TEST_CASE("loop timer: once fires once per start, and may start itself again from inside") {
  core::EventLoop loop(0);
  int fired = 0;
  bool armed_inside = true;
  core::LoopTimer* self = nullptr;
  core::LoopTimer timer(loop, core::LoopTimer::Repeat::once, [&] {
    ++fired;
    armed_inside = self->armed();  // a fired one-shot is no longer armed, so it may be started
    if (fired < 3) self->start(1ms);
  });
  self = &timer;
  CHECK_FALSE(timer.armed());
  timer.start(1ms);
  CHECK(timer.armed());
  run_until(loop, [&] { return fired == 3; });
  CHECK(fired == 3);
  CHECK_FALSE(armed_inside);
  CHECK_FALSE(timer.armed());
}

TEST_CASE(
    "loop timer: every fires until cancelled, also from inside; a later start arms it again") {
  core::EventLoop loop(0);
  int fired = 0;
  core::LoopTimer* self = nullptr;
  core::LoopTimer timer(loop, core::LoopTimer::Repeat::every, [&] {
    if (++fired == 5) self->cancel();
  });
  self = &timer;
  timer.start(1ms);
  run_until(loop, [&] { return fired == 5; });
  CHECK(fired == 5);
  CHECK_FALSE(timer.armed());
  timer.start(1ms);
  CHECK(timer.armed());
  run_until(loop, [&] { return fired == 6; });
  CHECK(fired >= 6);
  timer.cancel();
  CHECK_FALSE(timer.armed());
}
