#include "api/login_limiter.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace api {

namespace {

// Logins are 1-64 characters without control characters, so the separator is unambiguous.
std::string pair_key(const std::string& address, const std::string& login) {
  return address + '\n' + login;
}

int64_t whole_seconds(double s) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(s)));
}

}  // namespace

LoginLimiter::LoginLimiter(const core::Clock& clock, LoginLimits limits)
    : clock_(clock), limits_(limits) {}

void LoginLimiter::set_limits(LoginLimits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
}

size_t LoginLimiter::tracked() const {
  std::lock_guard lock(mutex_);
  return by_address_.size() + by_address_login_.size() + by_login_.size();
}

double LoginLimiter::refill(Bucket& b, int burst, core::SteadyTime now) const {
  const double window = std::chrono::duration<double>(limits_.window).count();
  const double rate = burst / window;  // tokens per second
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) b.tokens = std::min<double>(burst, b.tokens + elapsed * rate);
  b.updated = now;
  return b.tokens >= 1 ? 0 : (1 - b.tokens) / rate;
}

void LoginLimiter::prune(Table& table, int burst, core::SteadyTime now) {
  for (auto it = table.begin(); it != table.end();) {
    refill(it->second, burst, now);
    it = it->second.tokens >= burst ? table.erase(it) : std::next(it);
  }
}

LoginLimiter::Bucket* LoginLimiter::bucket(Table& table, const std::string& key, int burst,
                                           core::SteadyTime now) {
  auto it = table.find(key);
  if (it != table.end()) return &it->second;
  if (table.size() >= limits_.max_tracked) prune(table, burst, now);
  if (table.size() >= limits_.max_tracked) return nullptr;
  return &table.emplace(key, Bucket{static_cast<double>(burst), now}).first->second;
}

double LoginLimiter::wait_of(Table& table, const std::string& key, int burst,
                             core::SteadyTime now) const {
  auto it = table.find(key);
  return it == table.end() ? 0 : refill(it->second, burst, now);
}

LoginVerdict LoginLimiter::attempt(const std::string& address, const std::string& login) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  LoginVerdict out;
  Bucket* a = bucket(by_address_, address, limits_.per_address, now);
  if (a == nullptr) {
    out.retry_after_s = std::max<int64_t>(1, limits_.window.count());
    return out;
  }
  const double wait = std::max(
      refill(*a, limits_.per_address, now),
      wait_of(by_address_login_, pair_key(address, login), limits_.per_address_login, now));
  if (wait > 0) {
    out.retry_after_s = whole_seconds(wait);
    return out;
  }
  a->tokens -= 1;
  const double slow = wait_of(by_login_, login, limits_.per_login, now);
  if (slow > 0) {
    out.delay = std::min(limits_.max_delay,
                         std::chrono::milliseconds(static_cast<int64_t>(std::ceil(slow * 1000))));
  }
  return out;
}

void LoginLimiter::failed(const std::string& address, const std::string& login) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  for (auto [table, key, burst] :
       {std::tuple{&by_address_login_, pair_key(address, login), limits_.per_address_login},
        std::tuple{&by_login_, login, limits_.per_login}}) {
    Bucket* b = bucket(*table, key, burst, now);
    if (b == nullptr) continue;  // full: not recorded (see the header)
    refill(*b, burst, now);
    b->tokens = std::max(0.0, b->tokens - 1);
  }
}

}  // namespace api
