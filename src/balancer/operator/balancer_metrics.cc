// The balancer's /metrics: request counters (BalancerMetrics), and admission's
// gauges computed from one status snapshot per render (AdmissionReport).
#include "balancer/operator/balancer_metrics.h"

#include "balancer/viewers/admission_http.h"

namespace balancer {

namespace {

constexpr core::CounterFamily kBalancerRequests{"balancer_requests_total",
                                                "Viewer requests by kind", "kind"};
constexpr core::CounterFamily kBalancerAdmissions{
    "balancer_admissions_total", "Viewers admitted, directly or from the queue", "from"};
constexpr core::CounterFamily kBalancerQueueTicketsDropped{"balancer_queue_tickets_dropped_total",
                                                           "Queue tickets dropped", "reason"};
constexpr core::CounterFamily kBalancerAdmissionRefused{"balancer_admission_refused_total",
                                                        "New viewers refused by a bound", "reason"};

// A gauge whose value is not known yet (Prometheus' NaN).
constexpr double kUnknownGauge = std::numeric_limits<double>::quiet_NaN();
}  // namespace
namespace {

// Brings a registry counter up to a monotonic count kept elsewhere (the policy's counters).
void sync_counter(core::Counter& counter, uint64_t value) {
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

std::vector<double> rewrite_buckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
          0.001,   0.0025,   0.005,   0.01,   0.05,    0.25};
}

core::Counter& admission_counter(core::MetricsRegistry& registry, const char* endpoint,
                                 const char* result) {
  return registry.counter("balancer_admission_requests_total",
                          "Admission decisions answered, by endpoint and result",
                          std::string("endpoint=\"") + endpoint + "\",result=\"" + result + "\"");
}

}  // namespace

// ---- BalancerMetrics ----

BalancerMetrics::BalancerMetrics(core::MetricsRegistry& r)
    : registry(r),
      requests_playlist(kBalancerRequests.in(r, "playlist")),
      requests_key(kBalancerRequests.in(r, "key")),
      rewrite_seconds(r.histogram("balancer_rewrite_seconds",
                                  "Time to render one viewer's copy of a playlist",
                                  rewrite_buckets())),
      playlist_admitted_(admission_counter(r, "playlist", "admitted")),
      playlist_queued_(admission_counter(r, "playlist", "queued")),
      access_admitted_(admission_counter(r, "access", "admitted")),
      access_queued_(admission_counter(r, "access", "queued")),
      emulation_switches(r.counter("balancer_overload_switches_total",
                                   "Overload emulation switched on or off by an operator")) {
  for (auto reason : {CacheChoice::Reason::requested, CacheChoice::Reason::same_site,
                      CacheChoice::Reason::network, CacheChoice::Reason::origin}) {
    choice_[static_cast<size_t>(reason)] = &r.counter(
        "balancer_cache_choice_total", "Playlist responses by how the chunk destination was chosen",
        std::string("reason=\"") + to_string(reason) + "\"");
  }
}

core::Counter& BalancerMetrics::error(const std::string& code) {
  return registry.counter("balancer_errors_total", "Error replies by code",
                          "code=\"" + label_value(code) + "\"");
}

void BalancerMetrics::count_choice(CacheChoice::Reason reason) {
  choice_[static_cast<size_t>(reason)]->inc();
}

void BalancerMetrics::count_decision(AdmissionEndpoint endpoint, const AdmissionDecision& decided) {
  const bool playlist = endpoint == AdmissionEndpoint::playlist;
  switch (decided.kind) {
    case AdmissionDecision::Kind::admitted:
      (playlist ? playlist_admitted_ : access_admitted_).inc();
      break;
    case AdmissionDecision::Kind::queued:
      (playlist ? playlist_queued_ : access_queued_).inc();
      error("queued").inc();
      break;
    case AdmissionDecision::Kind::refused:
      error(refusal_code(decided)).inc();
      break;
    case AdmissionDecision::Kind::bad_viewer_key:
      error("bad_viewer").inc();
      break;
  }
}

// ---- AdmissionReport ----

AdmissionReport::AdmissionReport(core::MetricsRegistry& r, Admission& admission, TimePoint now)
    : registry_(r),
      admission_(admission),
      admitted_direct_(kBalancerAdmissions.in(r, "direct")),
      admitted_from_queue_(kBalancerAdmissions.in(r, "queue")),
      tickets_issued_(r.counter("balancer_queue_tickets_issued_total",
                                "Queue tickets given to viewers who must wait")),
      tickets_not_renewed_(kBalancerQueueTicketsDropped.in(r, "not_renewed")),
      tickets_lapsed_(kBalancerQueueTicketsDropped.in(r, "reservation_lapsed")),
      slots_expired_(r.counter("balancer_slots_expired_total",
                               "Stream slots freed because their viewer went idle")),
      released_(
          r.counter("balancer_admission_released_total", "Slots or tickets given back explicitly")),
      refused_address_(kBalancerAdmissionRefused.in(r, "per_address")),
      refused_full_(kBalancerAdmissionRefused.in(r, "max_entries")),
      refused_account_(kBalancerAdmissionRefused.in(r, "per_account")) {
  std::lock_guard lock(mutex_);
  refresh(now);
}

std::string AdmissionReport::render(TimePoint now) {
  std::lock_guard lock(mutex_);
  refresh(now);
  return registry_.render();
}

void AdmissionReport::refresh(TimePoint now) {
  status_ = admission_.status(now);
  const AdmissionCounters& c = status_.counters;
  sync_counter(admitted_direct_, c.admitted - c.admitted_from_queue);
  sync_counter(admitted_from_queue_, c.admitted_from_queue);
  sync_counter(tickets_issued_, c.tickets_issued);
  sync_counter(tickets_not_renewed_, c.tickets_expired);
  sync_counter(tickets_lapsed_, c.reservations_lapsed);
  sync_counter(slots_expired_, c.slots_expired);
  sync_counter(released_, c.released);
  sync_counter(refused_address_, c.refused_address);
  sync_counter(refused_full_, c.refused_full);
  sync_counter(refused_account_, c.refused_account);
}

// The gauges read status_ without locking: the registry calls them from render(),
// which holds mutex_.
void AdmissionReport::register_gauges() {
  std::lock_guard lock(mutex_);
  auto gauge = [this](const char* name, const char* help, auto fn) {
    registry_.gauge_fn(name, help, [this, fn] { return static_cast<double>(fn(status_)); });
  };
  using S = const AdmissionStatus&;
  gauge("balancer_active_viewers", "Active viewers: streams (devices) holding a stream slot",
        [](S s) { return s.active_viewers; });
  gauge("balancer_queue_length", "Viewers waiting in the queue",
        [](S s) { return s.queued_viewers; });
  gauge("balancer_queue_reserved_slots", "Freed slots held for the head of the queue",
        [](S s) { return s.reserved_slots; });
  gauge("balancer_queue_head_wait_seconds", "How long the head of the queue has waited",
        [](S s) { return s.head_waited.count(); });
  gauge("balancer_queue_next_wait_seconds",
        "Estimated wait of a viewer arriving now (NaN until slot frees were observed)", [](S s) {
          return s.next_wait ? static_cast<double>(s.next_wait->count()) : kUnknownGauge;
        });
  gauge("balancer_slot_free_rate", "Observed stream slots freed per second (NaN until known)",
        [](S s) { return s.slot_free_rate_per_s ? *s.slot_free_rate_per_s : kUnknownGauge; });
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
  gauge("balancer_limit_max_streams_per_account", "limits.max_streams_per_account (0 = unlimited)",
        [](S s) { return s.limits.max_streams_per_account; });
  gauge("balancer_overload_emulation", "1 while overload emulation is on",
        [](S s) { return s.emulation ? 1 : 0; });
}

void AdmissionReport::register_groups(const BalancerConfig& c) {
  std::lock_guard lock(mutex_);
  for (const auto& ch : c.channels) {
    if (!channels_registered_.insert(ch.id).second) continue;
    std::string id = ch.id;
    const std::string label = "channel=\"" + label_value(id) + "\"";
    registry_.gauge_fn(
        "balancer_viewers", "Active viewers per channel",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_.channels, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        label);
    registry_.gauge_fn(
        "balancer_traffic_declared_mbps_by_channel", "Declared traffic per channel, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_.channels, id);
          return g ? g->declared_mbps : 0.0;
        },
        label);
  }
  auto cache_gauge = [&](const std::string& id, const std::string& label) {
    if (!caches_registered_.insert(id).second) return;
    registry_.gauge_fn(
        "balancer_viewers_by_cache", "Active viewers per chunk destination (cache id or origin)",
        [this, id] {
          if (id.empty()) return static_cast<double>(status_.origin_viewers);
          const AdmissionGroupCount* g = find_group(status_.caches, id);
          return g ? static_cast<double>(g->active_viewers) : 0.0;
        },
        "cache=\"" + label_value(label) + "\"");
    if (id.empty()) return;
    registry_.gauge_fn(
        "balancer_traffic_declared_mbps_by_cache", "Declared traffic per cache node, Mbit/s",
        [this, id] {
          const AdmissionGroupCount* g = find_group(status_.caches, id);
          return g ? g->declared_mbps : 0.0;
        },
        "cache=\"" + label_value(label) + "\"");
  };
  cache_gauge("", "origin");
  for (const auto& cache : c.caches) cache_gauge(cache.id, cache.id);
}

}  // namespace balancer
