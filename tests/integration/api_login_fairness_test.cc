// Sign-in that an attacker cannot turn against the user (docs/api.md, login
// limits and the password-check queue), against the real balancer, with the
// test's requests coming from many loopback addresses (127.0.0.0/8):
//  - failed logins for the user's name from 60 other addresses slow the user's
//    own login down but never answer it 429;
//  - a spray of logins from 100 addresses keeping the password-check queue full
//    (503 busy for the sprayers) still lets the user's login through at once;
//  - the busy answer's Retry-After comes from the measured check rate and the
//    queue length: a longer queue at the same rate tells clients to wait longer.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/api_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

std::string attacker(int i) {
  return "127.0." + std::to_string(1 + i / 200) + "." + std::to_string(1 + i % 200);
}
const std::string kUserAddress = "127.0.0.250";

}  // namespace

TEST_CASE(
    "failed logins for a user's name from 60 other addresses slow the user's login, never refuse "
    "it") {
  // Defaults: 5 failures per window for one login from one address are refused, 5 from
  // anywhere slow the login's checks down by at most 2 s.
  ApiStack api;
  api.add_user("victim", "right-password");
  constexpr int kAddresses = 60;
  std::vector<long> statuses(kAddresses * 3);
  std::vector<std::thread> threads;
  for (int i = 0; i < kAddresses; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 3; ++n)
        statuses[i * 3 + n] =
            api.login_from(attacker(i), "victim", "guess" + std::to_string(n)).status;
    });
  }
  for (auto& t : threads) t.join();
  int rejected = 0;
  for (long s : statuses) rejected += s == 401;
  CHECK(rejected == kAddresses * 3);  // the guesses were checked (slowly), none locked anyone out

  const auto started = std::chrono::steady_clock::now();
  auto r = api.login_from(kUserAddress, "victim", "right-password");
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK_MESSAGE(r.status == 200, r.body);
  CHECK(took < 5s);  // slowed by at most api.login_limits.max_delay_ms (2 s)
  MESSAGE("the user's login took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(api.balancer->metric("balancer_api_logins_total{result=\"limited\"}") == 0);
  CHECK(api.balancer->metric("balancer_api_logins_slowed_total") >= 1);

  // The attacker's own address is refused for this login once it used its burst.
  const std::string guesser = attacker(0);
  long last = 0;
  // (its bucket refills one failure per 12 s meanwhile, so a few more tries than the burst)
  for (int n = 0; n < 6 && last != 429; ++n)
    last = api.login_from(guesser, "victim", "more" + std::to_string(n)).status;
  CHECK(last == 429);
  CHECK(api.login_from(kUserAddress, "victim", "right-password").status == 200);
}

TEST_CASE(
    "a spray from 100 addresses filling the password-check queue still lets the user's login "
    "through") {
  // A check of a few milliseconds on one worker: the spray keeps the queue full, and the
  // entries in it are the sprayers' latest. (With checks as slow as a loaded machine makes
  // the production cost, the queue holds the spray's first entries for seconds, each
  // asked once, and a newcomer asking once weighs as much: fairness does not displace them.)
  ApiStack api({"api.kdf_memory_kib=4096", "api.kdf_passes=1", "api.kdf_threads=1",
                "api.kdf_queue=16", "api.login_limits.per_address=1000000"});
  api.add_user("victim", "right-password");
  constexpr int kAddresses = 100;
  std::atomic<bool> stop{false};
  std::atomic<int> sprayed{0}, busy{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kAddresses; ++i) {
    threads.emplace_back([&, i] {
      // Bounded: every thread stops when told or after 2,000 attempts.
      for (int n = 0; n < 2000 && !stop.load(); ++n) {
        auto r = api.login_from(attacker(i), "spray" + std::to_string(i) + "x" + std::to_string(n),
                                "wrong", 20s);
        ++sprayed;
        if (r.status == 503) {
          ++busy;
          std::this_thread::sleep_for(
              10ms);  // pacing, so the spray does not spin on the test machine
        }
      }
    });
  }
  // The queue is full and every sprayer keeps asking: each has been told busy ~10 times.
  const bool full = wait_until([&] { return busy.load() >= 1000; }, 60s, 20ms);
  CHECK(full);

  // The user follows Retry-After, a few times at most, within a deadline.
  int attempts = 0;
  long status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  const auto started = std::chrono::steady_clock::now();
  while (attempts < 5 && std::chrono::steady_clock::now() < deadline) {
    ++attempts;
    auto r = api.login_from(kUserAddress, "victim", "right-password", 15s);
    status = r.status;
    if (status == 200) break;
    MESSAGE("user's attempt " << attempts << ": " << status << " " << r.body);
    CHECK(status == 503);
    CHECK(r.header("Retry-After").has_value());
    std::this_thread::sleep_for(
        std::chrono::seconds(std::stoi(r.header("Retry-After").value_or("1"))));
  }
  const auto took = std::chrono::steady_clock::now() - started;
  stop = true;
  for (auto& t : threads) t.join();
  MESSAGE("user: " << attempts << " attempt(s), "
                   << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                   << " ms; spray: " << sprayed.load() << " logins, " << busy.load() << " busy");
  if (!servers_sanitizer().empty()) {
    // Sanitizer builds serve the spray so slowly that sprayers ask no more often than the
    // user, and equals do not displace each other by design: the outcome is reported only.
    MESSAGE("sanitizer build: user's final status " << status);
  } else {
    CHECK(status == 200);
    CHECK(attempts == 1);
    CHECK(api.balancer->metric("balancer_api_kdf_queue_refused_total{reason=\"displaced\"}") >= 1);
  }
}

namespace {

// The largest Retry-After of the busy answers when `queue` + 12 sign-ins arrive at once on one
// worker whose rate was measured just before (slow checks: ~tens of ms each).
int busy_retry_after(size_t queue) {
  ApiStack api({"api.kdf_memory_kib=19456", "api.kdf_passes=4", "api.kdf_threads=1",
                "api.kdf_queue=" + std::to_string(queue),
                "api.kdf_queue_per_address=" + std::to_string(queue),
                "api.login_limits.per_address=1000000"});
  api.add_user("fan", "pw");
  for (int i = 0; i < 3; ++i) REQUIRE(api.login_from(kUserAddress, "fan", "pw").status == 200);
  const int total = static_cast<int>(queue) + 12;
  std::vector<long> statuses(total);
  std::vector<int> waits(total, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < total; ++i) {
    threads.emplace_back([&, i] {
      auto r = api.login_from(attacker(i), "fan", "pw", 60s);
      statuses[i] = r.status;
      if (r.status == 503) {
        CHECK(error_code(r) == "busy");
        REQUIRE(r.header("Retry-After").has_value());
        waits[i] = std::stoi(*r.header("Retry-After"));
      }
    });
  }
  for (auto& t : threads) t.join();
  int busy = 0, most = 0;
  for (int i = 0; i < total; ++i) {
    CHECK((statuses[i] == 200 || statuses[i] == 503));
    if (statuses[i] != 503) continue;
    ++busy;
    CHECK(waits[i] >= 1);
    CHECK(waits[i] <= 60);
    most = std::max(most, waits[i]);
  }
  CHECK(busy >= 1);
  MESSAGE("queue " << queue << ": " << busy << " busy, Retry-After up to " << most << " s at "
                   << api.balancer->metric("balancer_api_kdf_checks_per_second") << " checks/s");
  return most;
}

}  // namespace

TEST_CASE("a busy sign-in's Retry-After grows with the queue at the measured check rate") {
  const int short_queue = busy_retry_after(4);
  const int long_queue = busy_retry_after(48);
  CHECK(long_queue > short_queue);
  CHECK(long_queue >= 3);
}
