// Login limits: per address and per login buckets on an injected clock,
// Retry-After seconds, refill over the window, bounded memory.
#include <doctest/doctest.h>

#include "api/login_limiter.h"

using namespace api;
using namespace std::chrono_literals;

TEST_CASE("a login is limited after its burst, and Retry-After says when the next attempt fits") {
  common::FakeClock clock;
  LoginLimiter limiter(clock, LoginLimits{100, 3, 60s, 1000});
  for (int i = 0; i < 3; ++i) CHECK(limiter.attempt("10.0.0.1", "alice") == 0);
  CHECK(limiter.attempt("10.0.0.1", "alice") == 20);  // 3 per 60 s: one every 20 s
  CHECK(limiter.attempt("10.0.0.2", "alice") == 20);  // another address does not help
  CHECK(limiter.attempt("10.0.0.1", "bob") == 0);     // another login is not affected
  clock.advance(19s);
  CHECK(limiter.attempt("10.0.0.1", "alice") == 1);
  clock.advance(1s);
  CHECK(limiter.attempt("10.0.0.1", "alice") == 0);
  CHECK(limiter.attempt("10.0.0.1", "alice") > 0);
}

TEST_CASE("an address is limited across logins") {
  common::FakeClock clock;
  LoginLimiter limiter(clock, LoginLimits{4, 100, 60s, 1000});
  for (int i = 0; i < 4; ++i) CHECK(limiter.attempt("10.0.0.9", "user" + std::to_string(i)) == 0);
  CHECK(limiter.attempt("10.0.0.9", "fresh") == 15);
  CHECK(limiter.attempt("10.0.0.8", "fresh") == 0);
  clock.advance(60s);
  for (int i = 0; i < 4; ++i) CHECK(limiter.attempt("10.0.0.9", "again" + std::to_string(i)) == 0);
}

TEST_CASE("a refused attempt takes nothing from the other bucket") {
  common::FakeClock clock;
  LoginLimiter limiter(clock, LoginLimits{2, 1, 60s, 1000});
  CHECK(limiter.attempt("a", "x") == 0);
  CHECK(limiter.attempt("a", "x") > 0);  // login x empty: address keeps its second token
  CHECK(limiter.attempt("a", "y") == 0);
  CHECK(limiter.attempt("a", "z") > 0);
}

TEST_CASE("the tables stay bounded: refilled keys are forgotten, and a full table refuses") {
  common::FakeClock clock;
  LoginLimiter limiter(clock, LoginLimits{1000000, 5, 60s, 100});
  for (int i = 0; i < 100; ++i) CHECK(limiter.attempt("1.1.1.1", "u" + std::to_string(i)) == 0);
  CHECK(limiter.attempt("1.1.1.1", "one-too-many") == 60);
  clock.advance(60s);  // every bucket refilled: they can be forgotten
  CHECK(limiter.attempt("1.1.1.1", "one-too-many") == 0);
  CHECK(limiter.tracked() <= 202);
}
