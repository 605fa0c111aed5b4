// HostAddress: an IP literal is known at once; a name is looked up off the loop and handed back
// on the loop thread; a name that does not resolve reports "". ReconnectTimer: the client's
// attempt runs on the loop after the policy's first delay, and a caller that takes the attempt
// now cancels the scheduled one.
#include "core/host_lookup.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/event_loop.h"
#include "core/reconnect_timer.h"

using namespace std::chrono_literals;

namespace {

// A loop running on its own thread for one test; waits are bounded by a deadline.
struct LookupLoop {
  core::EventLoop loop{0};
  std::thread runner{[this] { loop.run(); }};
  ~LookupLoop() {
    loop.stop();
    runner.join();
  }
  template <class Done>
  bool wait_until(Done done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return done();
  }
};

}  // namespace

TEST_CASE("host address: an IP literal is known at once, without a lookup") {
  core::EventLoop loop(0);
  core::HostAddress v4(loop, "127.0.0.1"), v6(loop, "::1");
  CHECK(v4.known());
  CHECK(v4.address() == "127.0.0.1");
  CHECK(v6.address() == "::1");
  bool called = false;
  CHECK(v4.known_or_lookup([&](std::string) { called = true; }));
  CHECK_FALSE(called);
}

TEST_CASE("host address: a name is looked up off the loop and handed back on the loop thread") {
  LookupLoop running;
  auto address = std::make_shared<core::HostAddress>(running.loop, "localhost");
  CHECK_FALSE(address->known());
  std::atomic<bool> done{false}, on_loop{false};
  std::string found;
  running.loop.post([&] {
    const bool known = address->known_or_lookup([&](std::string ip) {
      on_loop = running.loop.in_loop_thread();
      found = ip;
      address->learned(std::move(ip));
      done = true;
    });
    CHECK_FALSE(known);
  });
  REQUIRE(running.wait_until([&] { return done.load(); }));
  CHECK(on_loop);
  CHECK((found == "127.0.0.1" || found == "::1"));
  std::atomic<bool> checked{false};
  running.loop.post([&] {
    CHECK(address->known());
    address->stop();
    checked = true;
  });
  CHECK(running.wait_until([&] { return checked.load(); }));
}

TEST_CASE("host address: a name that does not resolve is reported as empty") {
  LookupLoop running;
  core::HostAddress address(running.loop, "no-such-host.invalid");
  std::atomic<bool> done{false};
  std::string found = "unset";
  running.loop.post([&] {
    address.known_or_lookup([&](std::string ip) {
      found = std::move(ip);
      done = true;
    });
  });
  REQUIRE(running.wait_until([&] { return done.load(); }));
  CHECK(found.empty());
  std::atomic<bool> stopped{false};
  running.loop.post([&] {
    CHECK_FALSE(address.known());
    address.stop();
    stopped = true;
  });
  CHECK(running.wait_until([&] { return stopped.load(); }));
}

TEST_CASE("reconnect timer: the attempt runs after the first delay; taking it now cancels it") {
  LookupLoop running;
  std::atomic<int> attempts{0};
  std::unique_ptr<core::ReconnectTimer> timer;
  std::atomic<bool> ready{false};
  running.loop.post([&] {
    timer = std::make_unique<core::ReconnectTimer>(running.loop, [&] { ++attempts; });
    timer->attempt_started(std::chrono::steady_clock::now());
    timer->schedule();
    timer->schedule();  // already scheduled: still one attempt
    ready = true;
  });
  REQUIRE(running.wait_until([&] { return ready.load(); }));
  const auto scheduled_at = std::chrono::steady_clock::now();
  REQUIRE(running.wait_until([&] { return attempts.load() == 1; }));
  CHECK(std::chrono::steady_clock::now() - scheduled_at >= 90ms);

  // Scheduled again (200 ms this time); a caller past the 100 ms guard takes the attempt now.
  std::atomic<int> taken{-1};
  running.loop.post([&] {
    timer->schedule();
    taken = timer->take_now(std::chrono::steady_clock::now() + 150ms) ? 1 : 0;
  });
  REQUIRE(running.wait_until([&] { return taken.load() != -1; }));
  CHECK(taken == 1);
  std::atomic<bool> gone{false};
  // The cancelled attempt never runs: after 400 ms (twice its delay) the count is still 1.
  CHECK_FALSE(running.wait_until([&] { return attempts.load() > 1; }, 400ms));
  running.loop.post([&] {
    timer.reset();
    gone = true;
  });
  CHECK(running.wait_until([&] { return gone.load(); }));
}
