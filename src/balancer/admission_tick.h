// Inside the balancer (not a public header): admission's one-second tick on the home loop.
#pragma once

#include <cstdint>

#include "balancer/any_loop_state.h"
#include "balancer/caches/cache_health.h"
#include "core/clock.h"
#include "core/event_loop.h"

namespace balancer {

// Every second on the home loop (admission.h: where tick() runs): frees idle slots and drops
// stale tickets even when no request comes, so counts and memory stay current, and passes on
// the cache nodes' measured egress, read from the health view the fetch loop publishes. Home
// loop only.
class AdmissionTick {
 public:
  // Before the loops run; `admission` and `health` outlive this.
  AdmissionTick(core::EventLoop& home, const core::Clock& clock, Admission& admission,
                const core::Published<HealthView>& health);
  AdmissionTick(const AdmissionTick&) = delete;
  AdmissionTick& operator=(const AdmissionTick&) = delete;

  void tick();

 private:
  // Only a new reading (or the readings going stale) is passed on: dividing an old reading by
  // a declared sum that grew since would cancel the admissions made in between
  // (docs/admission.md, "Why a ratio").
  void feed_measured_traffic(TimePoint now);

  core::EventLoop& home_;
  const core::Clock& clock_;
  Admission& admission_;
  core::Published<HealthView>::Reader health_;
  uint64_t readings_fed_ = 0;
  bool measured_fed_ = false;
  core::LoopTimer timer_;
};

}  // namespace balancer
