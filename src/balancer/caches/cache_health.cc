#include "balancer/caches/cache_health.h"

#include "core/enum_names.h"

namespace balancer {

void CacheHealth::record_success(bool overloaded, TimePoint now,
                                 std::optional<double> egress_mbps) {
  last_result_ = now;
  overloaded_ = overloaded;
  egress_mbps_ = egress_mbps;
  if (egress_mbps) ++egress_readings_;
  last_error_.clear();
  failures_ = 0;
  if (state_ == State::up) return;
  ++successes_;
  if (state_ == State::unknown || successes_ >= thresholds_.up_after) {
    state_ = State::up;
    successes_ = 0;
    last_change_ = now;
  }
}

void CacheHealth::record_failure(std::string reason, TimePoint now, bool down_at_once) {
  last_result_ = now;
  last_error_ = std::move(reason);
  egress_mbps_.reset();
  successes_ = 0;
  if (state_ == State::down) return;
  ++failures_;
  if (state_ == State::unknown || down_at_once || failures_ >= thresholds_.down_after) {
    state_ = State::down;
    failures_ = 0;
    overloaded_ = false;
    last_change_ = now;
  }
}

bool CacheHealth::usable(TimePoint now) const {
  if (state_ != State::up || overloaded_) return false;
  if (thresholds_.stale_after.count() > 0 && now - last_result_ > thresholds_.stale_after)
    return false;
  return true;
}

TimePoint CacheHealth::usable_until() const {
  if (thresholds_.stale_after.count() <= 0) return TimePoint::max();
  return last_result_ + thresholds_.stale_after;
}

const char* to_string(CacheHealth::State state) {
  static constexpr const char* kStateNames[] = {"unknown", "up", "down"};
  static_assert(std::size(kStateNames) == core::enum_count(CacheHealth::State::down));
  return core::enum_name(state, kStateNames);
}

std::optional<double> CacheHealth::current_egress_mbps(TimePoint now) const {
  if (state_ != State::up || !egress_mbps_) return std::nullopt;
  if (thresholds_.stale_after.count() > 0 && now - last_result_ > thresholds_.stale_after)
    return std::nullopt;
  return egress_mbps_;
}

MeasuredEgress measured_egress(const HealthView& view, TimePoint now) {
  MeasuredEgress measured;
  for (const auto& [id, node] : view) {
    measured.readings += node.egress_readings();
    if (auto mbps = node.current_egress_mbps(now))
      measured.mbps = measured.mbps.value_or(0) + *mbps;
  }
  return measured;
}

}  // namespace balancer
