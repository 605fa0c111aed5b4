// Login limits on an injected clock: an address and an (address, login) pair are
// refused with Retry-After; failures for a login from other addresses only slow
// that login down (never a 429 for its owner); refill over the window; bounded
// memory that never turns into a lock-out.
#include <doctest/doctest.h>

#include "api/login_limiter.h"

using namespace api;
using namespace std::chrono_literals;

namespace {

LoginLimits limits(int per_address, int per_address_login, int per_login,
                   size_t max_tracked = 1000) {
  return LoginLimits{per_address, per_address_login, per_login, 2000ms, 60s, max_tracked};
}

// One attempt that fails its password check.
int64_t fail(LoginLimiter& l, const std::string& address, const std::string& login) {
  LoginVerdict v = l.attempt(address, login);
  if (v.retry_after_s == 0) l.failed(address, login);
  return v.retry_after_s;
}

}  // namespace

TEST_CASE("failures for one login from one address are refused after the burst, with Retry-After") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(100, 3, 100));
  for (int i = 0; i < 3; ++i) CHECK(fail(limiter, "10.0.0.1", "alice") == 0);
  CHECK(limiter.attempt("10.0.0.1", "alice").retry_after_s == 20);  // 3 per 60 s: one every 20 s
  CHECK(limiter.attempt("10.0.0.2", "alice").retry_after_s ==
        0);  // the owner's address is not refused
  CHECK(limiter.attempt("10.0.0.1", "bob").retry_after_s == 0);  // another login is not affected
  clock.advance(19s);
  CHECK(limiter.attempt("10.0.0.1", "alice").retry_after_s == 1);
  clock.advance(1s);
  CHECK(fail(limiter, "10.0.0.1", "alice") == 0);
  CHECK(limiter.attempt("10.0.0.1", "alice").retry_after_s > 0);
}

TEST_CASE("successful attempts do not fill the (address, login) bucket") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(100, 2, 2));
  for (int i = 0; i < 10; ++i) {
    LoginVerdict v = limiter.attempt("10.0.0.1", "alice");
    CHECK(v.retry_after_s == 0);
    CHECK(v.delay == 0ms);
  }
}

TEST_CASE("failures from 50 other addresses slow the login down but never refuse its owner") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(20, 3, 5));
  for (int round = 0; round < 3; ++round) {
    for (int a = 0; a < 50; ++a) CHECK(fail(limiter, "10.1.0." + std::to_string(a), "victim") == 0);
  }
  for (int a = 0; a < 50; ++a)
    CHECK(limiter.attempt("10.1.0." + std::to_string(a), "victim").retry_after_s > 0);
  LoginVerdict owner = limiter.attempt("192.0.2.7", "victim");
  CHECK(owner.retry_after_s == 0);
  CHECK(owner.delay == 2000ms);  // capped at max_delay
  CHECK(limiter.attempt("192.0.2.7", "someone_else").delay == 0ms);
  // The login's bucket refills: one token after 12 s (5 per 60 s), the delay follows it down.
  clock.advance(11s);
  const auto later = limiter.attempt("192.0.2.7", "victim").delay;
  CHECK(later >= 999ms);
  CHECK(later <= 1001ms);
  clock.advance(1s);
  CHECK(limiter.attempt("192.0.2.7", "victim").delay == 0ms);
}

TEST_CASE("an address is limited across logins, every attempt counting") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(4, 100, 100));
  for (int i = 0; i < 4; ++i)
    CHECK(limiter.attempt("10.0.0.9", "user" + std::to_string(i)).retry_after_s == 0);
  CHECK(limiter.attempt("10.0.0.9", "fresh").retry_after_s == 15);
  CHECK(limiter.attempt("10.0.0.8", "fresh").retry_after_s == 0);
  clock.advance(60s);
  for (int i = 0; i < 4; ++i)
    CHECK(limiter.attempt("10.0.0.9", "again" + std::to_string(i)).retry_after_s == 0);
}

TEST_CASE("a refused attempt takes nothing from the address bucket") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(2, 1, 100));
  CHECK(fail(limiter, "a", "x") == 0);
  CHECK(limiter.attempt("a", "x").retry_after_s >
        0);  // (a, x) empty: the address keeps its second token
  CHECK(limiter.attempt("a", "y").retry_after_s == 0);
  CHECK(limiter.attempt("a", "z").retry_after_s > 0);
}

TEST_CASE(
    "the tables stay bounded: refilled keys are forgotten, a full address table refuses, "
    "a full failure table never locks anyone out") {
  core::FakeClock clock;
  LoginLimiter limiter(clock, limits(1000000, 5, 5, 100));
  for (int i = 0; i < 100; ++i) CHECK(fail(limiter, "1.1.1.1", "u" + std::to_string(i)) == 0);
  // Failure tables full: more failures are not recorded, attempts still allowed.
  CHECK(fail(limiter, "1.1.1.1", "one-too-many") == 0);
  for (int i = 0; i < 10; ++i) CHECK(fail(limiter, "1.1.1.1", "one-too-many") == 0);
  for (int i = 0; i < 99; ++i)
    CHECK(limiter.attempt("2.2.2." + std::to_string(i), "x").retry_after_s == 0);
  CHECK(limiter.attempt("3.3.3.3", "x").retry_after_s == 60);  // address table full
  clock.advance(60s);  // every bucket refilled: they can be forgotten
  CHECK(limiter.attempt("3.3.3.3", "x").retry_after_s == 0);
  CHECK(limiter.tracked() <= 300);
}
