// Login attempt limits that an attacker cannot turn against the account's owner
// (DESIGN.md flow 5; OWASP authentication cheat sheet): token buckets that each
// hold `burst` attempts and refill fully over `window`.
//  - per client address, every attempt: an address spraying logins is refused (429);
//  - per (address, login), failed attempts: guessing one account's password from
//    one address is refused (429), and only that address is;
//  - per login, failed attempts from every address: when empty, the account's
//    attempts are slowed (up to `max_delay`), never refused, so failures sent
//    from other addresses cannot lock the real user out.
// An "address" is whatever key the caller counts a client by: the API passes
// HttpExchange::remote_network(), so an IPv6 client is its /64 (server.ipv6_prefix_length).
// Time comes from the injected clock. Process-wide, one mutex: any thread.
//
// Memory is bounded: at most `max_tracked` keys per table; when a table is full,
// keys whose bucket has refilled are forgotten first. A full address table
// refuses the attempt (an attacker spraying logins cannot grow it without
// bound); a full failure table stops recording (the address bucket still bounds
// the rate), so a spray of logins never locks anyone out.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/clock.h"

namespace api {

struct LoginLimits {
  int per_address = 20;       // attempts per window from one address → 429
  int per_address_login = 5;  // failed attempts per window for one login from one address → 429
  int per_login = 5;  // failed attempts per window for one login, all addresses, before slowing
  std::chrono::milliseconds max_delay{2000};  // the longest a login's attempt is slowed
  std::chrono::seconds window{60};
  size_t max_tracked = 100'000;  // keys per table
  bool operator==(const LoginLimits&) const = default;
};

struct LoginVerdict {
  int64_t retry_after_s = 0;           // > 0: refused (429); seconds until an attempt would fit
  std::chrono::milliseconds delay{0};  // allowed, but the password check waits this long first
};

class LoginLimiter {
 public:
  LoginLimiter(const core::Clock& clock, LoginLimits limits);

  // Before a password check: takes one attempt from the address's bucket
  // unless refused.
  LoginVerdict attempt(const std::string& address, const std::string& login);
  // After a check that failed (wrong password, unknown or disabled account).
  void failed(const std::string& address, const std::string& login);
  void set_limits(LoginLimits limits);
  size_t tracked() const;

 private:
  struct Bucket {
    double tokens = 0;
    core::SteadyTime updated;
  };
  using Table = std::unordered_map<std::string, Bucket>;
  // Refills `b` to now; returns the seconds until one token (0 if available).
  double refill(Bucket& b, int burst, core::SteadyTime now) const;
  // The key's bucket, created full; nullptr when the table is full.
  Bucket* bucket(Table& table, const std::string& key, int burst, core::SteadyTime now);
  // Seconds until the key's bucket holds a token (0 for an unknown key).
  double wait_of(Table& table, const std::string& key, int burst, core::SteadyTime now) const;
  void prune(Table& table, int burst, core::SteadyTime now);

  const core::Clock& clock_;
  mutable std::mutex mutex_;
  LoginLimits limits_;
  Table by_address_;
  Table by_address_login_;  // failures
  Table by_login_;          // failures
};

}  // namespace api
