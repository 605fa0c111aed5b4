#include "api/login_limiter.h"

#include <algorithm>
#include <cmath>

namespace api {

LoginLimiter::LoginLimiter(const common::Clock& clock, LoginLimits limits) : clock_(clock), limits_(limits) {}

void LoginLimiter::set_limits(LoginLimits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
}

size_t LoginLimiter::tracked() const {
  std::lock_guard lock(mutex_);
  return by_address_.size() + by_login_.size();
}

double LoginLimiter::refill(Bucket& b, int burst, common::SteadyTime now) const {
  const double window = std::chrono::duration<double>(limits_.window).count();
  const double rate = burst / window;  // tokens per second
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) b.tokens = std::min<double>(burst, b.tokens + elapsed * rate);
  b.updated = now;
  return b.tokens >= 1 ? 0 : (1 - b.tokens) / rate;
}

void LoginLimiter::prune(Table& table, int burst, common::SteadyTime now) {
  for (auto it = table.begin(); it != table.end();) {
    refill(it->second, burst, now);
    it = it->second.tokens >= burst ? table.erase(it) : std::next(it);
  }
}

LoginLimiter::Bucket* LoginLimiter::bucket(Table& table, const std::string& key, int burst, common::SteadyTime now) {
  auto it = table.find(key);
  if (it != table.end()) return &it->second;
  if (table.size() >= limits_.max_tracked) prune(table, burst, now);
  if (table.size() >= limits_.max_tracked) return nullptr;
  return &table.emplace(key, Bucket{static_cast<double>(burst), now}).first->second;
}

int64_t LoginLimiter::attempt(const std::string& address, const std::string& login) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  Bucket* a = bucket(by_address_, address, limits_.per_address, now);
  Bucket* l = bucket(by_login_, login, limits_.per_login, now);
  if (a == nullptr || l == nullptr) return std::max<int64_t>(1, limits_.window.count());
  const double wait = std::max(refill(*a, limits_.per_address, now), refill(*l, limits_.per_login, now));
  if (wait > 0) return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)));
  a->tokens -= 1;
  l->tokens -= 1;
  return 0;
}

}  // namespace api
