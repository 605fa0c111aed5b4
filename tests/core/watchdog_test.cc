// The watchdog (core/watchdog.h) and systemd's notification protocol (core/systemd_notify.h):
// which loop counts as stuck; what the environment turns on; datagrams reach the socket
// systemd names (a path or an abstract name); WATCHDOG=1 pings stop while a loop is blocked and
// resume once it turns again. That a stuck loop ends the process is shown on the real servers
// (tests/integration/watchdog_test.cc).
#include "core/watchdog.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/event_loop.h"
#include "core/systemd_notify.h"
#include "support/notify_socket.h"
#include "support/process.h"

using namespace std::chrono_literals;

using balancer::test::NotifySocket;

namespace {

using Steady = std::chrono::steady_clock;

}  // namespace

TEST_CASE("watchdog: the loop longest without a beat past the bound is the stuck one") {
  const Steady::time_point now = Steady::now();
  CHECK_FALSE(core::find_stuck_loop({now - 1s, now - 2s}, now, 3s));
  CHECK_FALSE(core::find_stuck_loop({now - 3s}, now, 3s));  // at the bound: not yet
  auto stuck = core::find_stuck_loop({now - 1s, now - 5s, now - 4s}, now, 3s);
  REQUIRE(stuck);
  CHECK(stuck->index == 1);
  CHECK(stuck->stuck_for == 5s);
  CHECK_FALSE(core::find_stuck_loop({}, now, 3s));
}

TEST_CASE("systemd notify: what NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID turn on") {
  using core::SystemdNotifier;
  CHECK_FALSE(SystemdNotifier::from_values(nullptr, "1000000", nullptr, 7).enabled());
  CHECK_FALSE(SystemdNotifier::from_values("relative/path", nullptr, nullptr, 7).enabled());
  auto plain = SystemdNotifier::from_values("/run/systemd/notify", nullptr, nullptr, 7);
  CHECK(plain.enabled());
  CHECK_FALSE(plain.watchdog_interval());
  auto watched = SystemdNotifier::from_values("@notify", "20000000", "7", 7);
  CHECK(watched.enabled());
  REQUIRE(watched.watchdog_interval());
  CHECK(*watched.watchdog_interval() == 20s);
  // Another process is the one watched (a child inherited the variables): no pings from here.
  CHECK_FALSE(SystemdNotifier::from_values("@notify", "20000000", "8", 7).watchdog_interval());
  CHECK_FALSE(SystemdNotifier::from_values("@notify", "0", nullptr, 7).watchdog_interval());
  CHECK_FALSE(SystemdNotifier().notify("READY=1"));
}

TEST_CASE("systemd notify: a state reaches a socket named by path and by abstract name") {
  balancer::test::TempDir dir("watchdog-test");
  const std::string path = dir.file("notify");
  NotifySocket by_path(path);
  CHECK(core::SystemdNotifier::from_values(path.c_str(), nullptr, nullptr, 1).notify("READY=1"));
  CHECK(by_path.receive(2s) == "READY=1");
  const std::string abstract = "@balancer-watchdog-test-" + std::to_string(getpid());
  NotifySocket by_name(abstract);
  CHECK(core::SystemdNotifier::from_values(abstract.c_str(), nullptr, nullptr, 1)
            .notify("STOPPING=1"));
  CHECK(by_name.receive(2s) == "STOPPING=1");
}

TEST_CASE("watchdog: systemd is pinged while every loop turns, not while one is blocked") {
  balancer::test::TempDir dir("watchdog-test");
  const std::string path = dir.file("notify");
  NotifySocket systemd(path);
  // WatchdogSec=0.8 s: a ping every 0.4 s while no loop has missed 0.4 s. Own bound off.
  auto notifier = core::SystemdNotifier::from_values(path.c_str(), "800000", nullptr, 1);
  core::EventLoop serving(0);
  core::EventLoop fetch(1);
  core::Watchdog watchdog("test", 0ms, notifier);
  watchdog.watch(serving, "loop-0");
  watchdog.watch(fetch, "fetch");
  std::thread serving_thread([&] { serving.run(); });
  std::thread fetch_thread([&] { fetch.run(); });
  watchdog.start();

  CHECK(systemd.receive(3s) == "WATCHDOG=1");
  CHECK(systemd.receive(3s) == "WATCHDOG=1");

  // The fetch loop blocks until released, as a wedged loop would.
  std::mutex mutex;
  std::condition_variable released_cv;
  bool blocked = false;
  bool released = false;
  fetch.post([&] {
    std::unique_lock lock(mutex);
    blocked = true;
    released_cv.notify_all();
    released_cv.wait_for(lock, 30s, [&] { return released; });
  });
  {
    std::unique_lock lock(mutex);
    REQUIRE(released_cv.wait_for(lock, 5s, [&] { return blocked; }));
  }
  // At most one ping already on its way when the loop blocked; then none for 2 s (five
  // intervals), which is what lets systemd's WatchdogSec end the process.
  int pings = 0;
  const auto quiet_until = Steady::now() + 2500ms;
  while (Steady::now() < quiet_until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(quiet_until - Steady::now());
    if (left <= 0ms || !systemd.receive(left)) break;
    ++pings;
  }
  CHECK(pings <= 1);

  {
    std::lock_guard lock(mutex);
    released = true;
  }
  released_cv.notify_all();
  CHECK(systemd.receive(3s) == "WATCHDOG=1");

  watchdog.stop();
  serving.stop();
  fetch.stop();
  serving_thread.join();
  fetch_thread.join();
}
