// The balancer's /metrics: series registered once, gauges computed from one
// admission snapshot per render (taken under a lock: any loop may render).
#include "balancer/balancer_loop.h"

namespace balancer {
namespace {

// Brings a registry counter up to a monotonic count kept elsewhere (the policy's counters).
void sync_counter(common::Counter& counter, uint64_t value) {
  if (value > counter.value()) counter.inc(value - counter.value());
}

// Prometheus label values: escape backslash, quote and newline.
std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

common::Counter& Balancer::Shared::error_counter(const std::string& code) {
  return metrics.counter("balancer_errors_total", "Error replies by code", "code=\"" + label_value(code) + "\"");
}

common::Counter& Balancer::Shared::admission_counter(const char* endpoint, const char* result) {
  return metrics.counter("balancer_admission_requests_total", "Admission decisions answered, by endpoint and result",
                         std::string("endpoint=\"") + endpoint + "\",result=\"" + result + "\"");
}

std::string Balancer::Shared::render_metrics() {
  std::lock_guard lock(status_mutex);
  refresh_snapshot(clock.now());
  return metrics.render();
}

void Balancer::Shared::refresh_snapshot(TimePoint now) {
  status_snapshot = admission->status(now);
  const AdmissionCounters& c = status_snapshot.counters;
  sync_counter(admitted_direct, c.admitted - c.admitted_from_queue);
  sync_counter(admitted_from_queue, c.admitted_from_queue);
  sync_counter(tickets_issued, c.tickets_issued);
  sync_counter(tickets_not_renewed, c.tickets_expired);
  sync_counter(tickets_lapsed, c.reservations_lapsed);
  sync_counter(slots_expired, c.slots_expired);
  sync_counter(released, c.released);
  sync_counter(refused_address, c.refused_address);
  sync_counter(refused_full, c.refused_full);
}

void Balancer::Shared::register_admission_metrics() {
  auto gauge = [this](const char* name, const char* help, auto fn) {
    metrics.gauge_fn(name, help, [this, fn] { return static_cast<double>(fn(status_snapshot)); });
  };
  using S = const AdmissionStatus&;
  gauge("balancer_active_viewers", "Active viewers (holding a stream slot)",
        [](S s) { return s.active_viewers; });
  gauge("balancer_queue_length", "Viewers waiting in the queue",
        [](S s) { return s.queued_viewers; });
  gauge("balancer_queue_reserved_slots", "Freed slots held for the head of the queue",
        [](S s) { return s.reserved_slots; });
  gauge("balancer_queue_head_wait_seconds", "How long the head of the queue has waited",
        [](S s) { return s.head_waited.count(); });
  gauge("balancer_queue_next_wait_seconds", "Estimated wait of a viewer arriving now",
        [](S s) { return s.next_wait.count(); });
  gauge("balancer_slot_free_rate", "Observed stream slots freed per second",
        [](S s) { return s.slot_free_rate_per_s; });
  gauge("balancer_traffic_declared_mbps", "Sum of the active viewers' variant BANDWIDTH, Mbit/s",
        [](S s) { return s.declared_mbps; });
  gauge("balancer_traffic_estimate_mbps", "Traffic estimate (declared x correction), Mbit/s",
        [](S s) { return s.traffic_estimate_mbps; });
  gauge("balancer_traffic_correction", "Measured cache egress / declared, in [0.25, 4]",
        [](S s) { return s.correction; });
  gauge("balancer_traffic_measured_cache_mbps",
        "Egress the cache nodes reported, Mbit/s (0 without a fresh reading)",
        [](S s) { return s.measured_cache_mbps.value_or(0); });
  gauge("balancer_limit_max_streams", "limits.max_streams (0 = unlimited)",
        [](S s) { return s.limits.max_streams; });
  gauge("balancer_limit_max_traffic_mbps", "limits.max_traffic_mbps (0 = unlimited)",
        [](S s) { return s.limits.max_traffic_mbps; });
  gauge("balancer_overload_emulation", "1 while overload emulation is on",
        [](S s) { return s.emulation ? 1 : 0; });
}

// Per-channel and per-cache series for every id ever configured (removed ones
// read 0), from the snapshot refresh_snapshot() takes before each render.
void Balancer::Shared::register_gauges(const BalancerConfig& c) {
  for (const auto& ch : c.channels) {
    if (!gauges_channel.insert(ch.id).second) continue;
    std::string id = ch.id;
    const std::string label = "channel=\"" + label_value(id) + "\"";
    metrics.gauge_fn(
        "balancer_viewers", "Active viewers per channel",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.channels, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        label);
    metrics.gauge_fn(
        "balancer_traffic_declared_mbps_by_channel", "Declared traffic per channel, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.channels, id);
          return g ? g->declared_mbps : 0.0;
        },
        label);
  }
  auto cache_gauge = [&](const std::string& id, const std::string& label) {
    if (!gauges_cache.insert(id).second) return;
    metrics.gauge_fn(
        "balancer_viewers_by_cache", "Active viewers per chunk destination (cache id or origin)",
        [this, id] {
          if (id.empty()) return static_cast<double>(status_snapshot.origin_viewers);
          const AdmissionGroupCount* g = find_group(status_snapshot.caches, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        "cache=\"" + label_value(label) + "\"");
    if (id.empty()) return;
    metrics.gauge_fn(
        "balancer_traffic_declared_mbps_by_cache", "Declared traffic per cache node, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_snapshot.caches, id);
          return g ? g->declared_mbps : 0.0;
        },
        "cache=\"" + label_value(label) + "\"");
  };
  cache_gauge("", "origin");
  for (const auto& cache : c.caches) cache_gauge(cache.id, cache.id);
}

}  // namespace balancer
