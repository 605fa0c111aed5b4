#include "balancer/admission_tick.h"

#include "core/thread_rule.h"

namespace balancer {

AdmissionTick::AdmissionTick(core::EventLoop& home, const core::Clock& clock, Admission& admission,
                             const core::Published<HealthView>& health)
    : home_(home),
      clock_(clock),
      admission_(admission),
      health_(health),
      timer_(home, core::LoopTimer::Repeat::every, [this] { tick(); }) {
  timer_.start(std::chrono::seconds(1));
}

void AdmissionTick::tick() {
  core::expect_on(home_);
  const auto now = clock_.now();
  admission_.tick(now, {});
  feed_measured_traffic(now);
}

void AdmissionTick::feed_measured_traffic(TimePoint now) {
  const MeasuredEgress egress = measured_egress(health_.get(), now);
  if (egress.readings == readings_fed_ && egress.mbps.has_value() == measured_fed_) return;
  readings_fed_ = egress.readings;
  measured_fed_ = egress.mbps.has_value();
  admission_.set_measured_traffic_mbps(egress.mbps, now);
}

}  // namespace balancer
