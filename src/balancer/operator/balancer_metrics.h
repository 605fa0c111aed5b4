// Inside the balancer (not a public header): its numbers on /metrics.
//   - BalancerMetrics: the counters the request paths bump. Any thread.
//   - AdmissionReport: admission's status as gauges and counters, from one status
//     snapshot per render. Any loop, under its own mutex.
// The series and what they mean: docs/operations.md.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "balancer/caches/cache_choice.h"
#include "balancer/caches/cache_health.h"
#include "balancer/operator/balancer_config.h"
#include "balancer/viewers/admission_names.h"
#include "core/metrics.h"

namespace balancer {

// Group `name` in a status snapshot, or null when it has no active viewers.
inline const AdmissionGroupCount* find_group(const std::vector<AdmissionGroupCount>& groups,
                                             const std::string& name) {
  for (const auto& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

// Which endpoint answered an admission decision (the label of balancer_admission_requests_total).
enum class AdmissionEndpoint { playlist, access };

// The balancer's request counters, registered once in `registry`. Any thread
// (counters are atomic; error() looks its series up under the registry's lock).
struct BalancerMetrics {
  explicit BalancerMetrics(core::MetricsRegistry& registry);

  // balancer_errors_total{code}: one error reply (or queue answer) with `code`.
  core::Counter& error(const std::string& code);
  // balancer_cache_choice_total{reason}: one playlist response's chunk destination.
  void count_choice(CacheChoice::Reason reason);
  // The admission decision `decided` answered at `endpoint`: admitted, queued (also an
  // error reply "queued"), refused (by its refusal code) or a bad viewer key.
  void count_decision(AdmissionEndpoint endpoint, const AdmissionDecision& decided);

  core::MetricsRegistry& registry;
  core::Counter& requests_playlist;
  core::Counter& requests_key;
  core::Histogram& rewrite_seconds;

 private:
  // Declared (so registered) in the order /metrics has always listed them.
  core::Counter& playlist_admitted_;
  core::Counter& playlist_queued_;
  core::Counter& access_admitted_;
  core::Counter& access_queued_;

 public:
  core::Counter& emulation_switches;

 private:
  core::Counter* choice_[4] = {};
};

// Admission's numbers on /metrics: gauges read one status snapshot that render()
// takes (so a page is consistent), and the policy's own monotonic counts are
// brought into registry counters. Any loop: everything here is under mutex_, and
// render() holds it while the registry calls the gauges (lock order: this, then
// the registry's).
class AdmissionReport {
 public:
  // Registers the counters and takes a first snapshot at `now`; `admission` outlives this.
  AdmissionReport(core::MetricsRegistry& registry, Admission& admission, TimePoint now);

  // The process-wide gauges (viewers, queue, traffic, limits, emulation).
  void register_gauges();
  // Per-channel and per-cache series for every id ever configured (removed ones read 0).
  void register_groups(const BalancerConfig& c);
  // Takes a status snapshot at `now`, syncs the counters and renders the whole registry.
  std::string render(TimePoint now);

 private:
  void refresh(TimePoint now);  // caller holds mutex_

  core::MetricsRegistry& registry_;
  Admission& admission_;
  std::mutex mutex_;
  AdmissionStatus status_;
  std::set<std::string> channels_registered_, caches_registered_;
  core::Counter& admitted_direct_;
  core::Counter& admitted_from_queue_;
  core::Counter& tickets_issued_;
  core::Counter& tickets_not_renewed_;
  core::Counter& tickets_lapsed_;
  core::Counter& slots_expired_;
  core::Counter& released_;
  core::Counter& refused_address_;
  core::Counter& refused_full_;
  core::Counter& refused_account_;
};

}  // namespace balancer
