// The in-process backend: one admission policy for the whole process, whatever the number of
// event loops. Every call takes one mutex around the (pure, O(1)-ish) policy, so the stream and
// traffic limits and the FIFO queue stay exact across loops; every answer is given inline, on
// the caller's thread. Also holds the operator's overload switch (runtime state, off at start).
#include <mutex>
#include <optional>

#include "admission/admission.h"
#include "admission/admission_policy.h"

namespace admission {
namespace {

class LocalAdmission final : public Admission {
 public:
  explicit LocalAdmission(const AdmissionLimits& limits) : policy_(limits) {}

  void request(core::EventLoop&, ViewerKey viewer, const StreamInfo& stream,
               const ViewerSource& from, TimePoint now, DecisionCallback done) override {
    AdmissionDecision d;
    {
      std::lock_guard lock(mutex_);
      d = policy_.request(viewer, stream, now, from);
    }
    done(d);
  }

  void check(core::EventLoop&, ViewerKey viewer, std::string_view channel, const ViewerSource& from,
             TimePoint now, DecisionCallback done) override {
    AdmissionDecision d;
    {
      std::lock_guard lock(mutex_);
      d = policy_.check(viewer, channel, now, from);
    }
    done(d);
  }

  void release(core::EventLoop&, ViewerKey viewer, TimePoint now,
               std::function<void(std::optional<bool>)> done) override {
    bool released = false;
    {
      std::lock_guard lock(mutex_);
      released = policy_.release(viewer, now);
    }
    done(released);
  }

  void switch_emulation(core::EventLoop&, std::optional<bool> want, TimePoint now,
                        std::function<void(std::optional<EmulationSwitch>)> done) override {
    EmulationSwitch s;
    {
      std::lock_guard lock(mutex_);
      s.on = want.value_or(!emulation_);
      s.changed = s.on != emulation_;
      if (s.changed) {
        emulation_ = s.on;
        policy_.set_emulation(s.on, now);
      }
    }
    done(s);
  }

  void set_limits(const AdmissionLimits& limits, TimePoint now) override {
    std::lock_guard lock(mutex_);
    policy_.set_limits(limits, now);
  }

  void set_measured_traffic_mbps(std::optional<double> mbps, TimePoint now) override {
    std::lock_guard lock(mutex_);
    policy_.set_measured_traffic_mbps(mbps, now);
  }

  void tick(TimePoint now, std::function<void()> done) override {
    {
      std::lock_guard lock(mutex_);
      policy_.expire(now);
    }
    if (done) done();
  }

  AdmissionStatus status(TimePoint now) override {
    std::lock_guard lock(mutex_);
    return policy_.status(now);
  }

 private:
  std::mutex mutex_;
  AdmissionPolicy policy_;
  bool emulation_ = false;
};

}  // namespace

std::unique_ptr<Admission> make_local_admission(const AdmissionLimits& limits) {
  return std::make_unique<LocalAdmission>(limits);
}

}  // namespace admission
