#include "core/reconnect_policy.h"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

namespace {

using core::FakeClock;
using core::ReconnectPolicy;
using std::chrono::milliseconds;

std::vector<milliseconds> delays_after_failures(ReconnectPolicy& policy, int failures) {
  std::vector<milliseconds> out;
  for (int i = 0; i < failures; ++i) out.push_back(policy.delay_after_failure());
  return out;
}

}  // namespace

TEST_CASE("reconnect policy: failures wait 100 ms, then double up to a 2 s cap") {
  ReconnectPolicy policy;
  const std::vector<milliseconds> expected = {
      milliseconds(100),  milliseconds(200),  milliseconds(400),  milliseconds(800),
      milliseconds(1600), milliseconds(2000), milliseconds(2000), milliseconds(2000)};
  CHECK(delays_after_failures(policy, 8) == expected);
}

TEST_CASE("reconnect policy: a connection made starts the series again at 100 ms") {
  ReconnectPolicy policy;
  delays_after_failures(policy, 6);  // at the cap
  policy.connected();
  CHECK(policy.delay_after_failure() == milliseconds(100));
  CHECK(policy.delay_after_failure() == milliseconds(200));
}

TEST_CASE("reconnect policy: with no attempt yet, a waiting caller may try at once") {
  FakeClock clock;
  ReconnectPolicy policy;
  CHECK(policy.may_try_now(clock.now()));
}

TEST_CASE(
    "reconnect policy: a waiting caller tries at most once per 100 ms since the last attempt") {
  FakeClock clock;
  ReconnectPolicy policy;
  policy.attempt_started(clock.now());
  CHECK_FALSE(policy.may_try_now(clock.now()));
  clock.advance(milliseconds(99));
  CHECK_FALSE(policy.may_try_now(clock.now()));
  clock.advance(milliseconds(1));
  CHECK(policy.may_try_now(clock.now()));

  // A new attempt (the caller's own, or the scheduled one) restarts the 100 ms.
  policy.attempt_started(clock.now());
  clock.advance(milliseconds(50));
  CHECK_FALSE(policy.may_try_now(clock.now()));
  clock.advance(milliseconds(50));
  CHECK(policy.may_try_now(clock.now()));
}

TEST_CASE("reconnect policy: trying at once does not change the scheduled series") {
  FakeClock clock;
  ReconnectPolicy policy;
  CHECK(policy.delay_after_failure() == milliseconds(100));
  clock.advance(milliseconds(150));
  REQUIRE(policy.may_try_now(clock.now()));
  policy.attempt_started(clock.now());
  CHECK(policy.delay_after_failure() == milliseconds(200));
}
