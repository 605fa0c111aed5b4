// Admission policy: stream slots, traffic limit and the first-come-first-served waiting queue
// (DESIGN.md flow 4). Pure logic: no I/O, no clock reads, no locks. Every call takes `now` from
// the caller, so tests move time by adding to a number. The model, the traffic and wait
// estimates and the config keys are described in docs/admission.md.
//
// Inside the admission component: the in-process backend (make_local_admission) wraps it, the
// policy tests and the scale benchmark use it directly. Library admission_policy: standard
// library only.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "admission/admission.h"

namespace admission {

// The policy. Owned by the balancer (e.g. through std::unique_ptr), created from config and
// living as long as the server. Not thread-safe: one thread (the balancer's event loop) makes
// every call. `now` must come from a steady clock; a `now` earlier than one already seen is
// taken as the latest seen. Methods that take `now` first expire what is due by then, so no
// timer is needed; calling expire() on a timer only returns memory sooner after traffic stops.
// Cost per call: O(1) amortised for a refresh or a direct admission; a call that involves the
// queue adds O(log q) (q = queued viewers) per position looked up. Nothing fails except
// bad_viewer_key.
class AdmissionPolicy final {
 public:
  explicit AdmissionPolicy(const AdmissionLimits& limits);
  ~AdmissionPolicy();
  AdmissionPolicy(const AdmissionPolicy&) = delete;
  AdmissionPolicy& operator=(const AdmissionPolicy&) = delete;

  // A playlist request. An admitted viewer's slot is refreshed and moved to `stream` (one slot
  // whatever the channel, variant or cache). A waiting viewer renews its ticket and is admitted
  // if a slot is reserved for it. A new viewer is admitted when the limits allow it, emulation
  // is off and no one waits (or everyone waiting already has a reserved slot); otherwise it gets
  // a ticket at the tail of the queue. A new viewer over a bound (max_entries, an address over
  // its per-address bounds, an account over max_streams_per_account) is refused and nothing is
  // recorded; `from` only matters for a new viewer (a viewer stays counted against the address
  // and the account it arrived with).
  AdmissionDecision request(ViewerKey viewer, const StreamInfo& stream, TimePoint now,
                            const ViewerSource& from = {});

  // The app's access check: like request(), for `channel` ("" keeps the viewer's), without
  // changing the viewer's cache or bandwidth.
  AdmissionDecision check(ViewerKey viewer, std::string_view channel, TimePoint now,
                          const ViewerSource& from = {});

  // Frees slots idle for idle_timeout, drops tickets not renewed for ticket_grace and tickets
  // whose reserved slot was not claimed within head_reservation, then hands freed room to the
  // head of the queue. Amortised O(1) per expired item.
  void expire(TimePoint now);

  // The viewer stops watching (logout, player closed): frees its slot or drops its ticket.
  // Returns false if the viewer held neither.
  bool release(ViewerKey viewer, TimePoint now);

  // New limits (reload). Admitted viewers keep their slots even when over the new limits; new
  // viewers wait until the count falls below them.
  void set_limits(const AdmissionLimits& limits, TimePoint now);

  // Overload emulation: while on, no one is admitted (new viewers and the queue wait); admitted
  // viewers keep refreshing their slots. When switched off, admissions resume in queue order.
  void set_emulation(bool on, TimePoint now);

  // Egress the cache nodes measured (sum of the Mbit/s in their /health) for the viewers whose
  // chunks they serve. Scales the BANDWIDTH-based estimate by measured / declared, clamped to
  // [0.25, 4]. nullopt, a negative or a non-finite value clears the correction (back to 1).
  void set_measured_traffic_mbps(std::optional<double> cache_egress_mbps, TimePoint now);

  // Snapshot after expiring what is due at `now`.
  AdmissionStatus status(TimePoint now);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace admission
