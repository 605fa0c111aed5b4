// Login attempt limits: one token bucket per client address and one per login
// (DESIGN.md flow 5). Each bucket holds `burst` attempts and refills fully over
// `window`; an attempt takes one from both buckets, or none when either is
// empty (then the caller answers 429 with Retry-After). Time comes from the
// injected clock. Process-wide, one mutex: any thread.
//
// Memory is bounded: at most `max_tracked` keys per table; when a table is full,
// keys whose bucket has refilled are forgotten first, and if none can go the
// attempt is refused as if limited (an attacker spraying logins cannot grow the
// table without bound).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"

namespace api {

struct LoginLimits {
  int per_address = 20;  // attempts per window from one address
  int per_login = 5;     // attempts per window for one login
  std::chrono::seconds window{60};
  size_t max_tracked = 100'000;  // keys per table
  bool operator==(const LoginLimits&) const = default;
};

class LoginLimiter {
 public:
  LoginLimiter(const common::Clock& clock, LoginLimits limits);

  // Takes one attempt for (address, login). Returns 0 when allowed, else the
  // seconds (>= 1) after which the attempt would be allowed.
  int64_t attempt(const std::string& address, const std::string& login);
  void set_limits(LoginLimits limits);
  size_t tracked() const;

 private:
  struct Bucket {
    double tokens = 0;
    common::SteadyTime updated;
  };
  using Table = std::unordered_map<std::string, Bucket>;
  // Refills `b` to now; returns the seconds until one token (0 if available).
  double refill(Bucket& b, int burst, common::SteadyTime now) const;
  Bucket* bucket(Table& table, const std::string& key, int burst, common::SteadyTime now);
  void prune(Table& table, int burst, common::SteadyTime now);

  const common::Clock& clock_;
  mutable std::mutex mutex_;
  LoginLimits limits_;
  Table by_address_;
  Table by_login_;
};

}  // namespace api
