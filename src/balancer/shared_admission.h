// One admission policy for the whole process, whatever the number of event
// loops: every call takes one mutex around the (pure, O(1)-ish) policy, so the
// stream and traffic limits and the FIFO queue stay exact across loops. Also
// holds the operator's overload switch. Any thread.
#pragma once

#include <mutex>
#include <optional>

#include "balancer/admission_policy.h"

namespace balancer {

class SharedAdmission final : public AdmissionGate {
 public:
  explicit SharedAdmission(const AdmissionLimits& limits) : policy_(limits) {}

  AdmissionDecision request(ViewerKey viewer, const StreamInfo& stream, TimePoint now,
                            const ViewerSource& from = {}) {
    std::lock_guard lock(mutex_);
    return policy_.request(viewer, stream, now, from);
  }
  AdmissionDecision check(ViewerKey viewer, std::string_view channel, TimePoint now,
                          const ViewerSource& from = {}) override {
    std::lock_guard lock(mutex_);
    return policy_.check(viewer, channel, now, from);
  }
  void expire(TimePoint now) {
    std::lock_guard lock(mutex_);
    policy_.expire(now);
  }
  bool release(ViewerKey viewer, TimePoint now) {
    std::lock_guard lock(mutex_);
    return policy_.release(viewer, now);
  }
  void set_limits(const AdmissionLimits& limits, TimePoint now) {
    std::lock_guard lock(mutex_);
    policy_.set_limits(limits, now);
  }
  struct Switched {
    bool on = false;
    bool changed = false;
  };
  // Sets overload emulation to `want`, or toggles it when `want` is empty.
  Switched switch_emulation(std::optional<bool> want, TimePoint now) {
    std::lock_guard lock(mutex_);
    bool on = want.value_or(!emulation_);
    if (on == emulation_) return {on, false};
    emulation_ = on;
    policy_.set_emulation(on, now);
    return {on, true};
  }
  bool emulation() const {
    std::lock_guard lock(mutex_);
    return emulation_;
  }
  void set_measured_traffic_mbps(std::optional<double> mbps, TimePoint now) {
    std::lock_guard lock(mutex_);
    policy_.set_measured_traffic_mbps(mbps, now);
  }
  AdmissionStatus status(TimePoint now) {
    std::lock_guard lock(mutex_);
    return policy_.status(now);
  }

 private:
  mutable std::mutex mutex_;
  AdmissionPolicy policy_;
  bool emulation_ = false;  // the operator switch; runtime state, off at start
};

}  // namespace balancer
