// Admission policy: stream slots, traffic limit and the first-come-first-served waiting queue
// (DESIGN.md flow 4). Pure logic: no I/O, no clock reads, no locks. Every call takes `now` from
// the caller, so tests move time by adding to a number. The model, the traffic and wait
// estimates and the config keys are described in docs/admission.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace balancer {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// Limits and queue timings. An immutable value: reload builds a new one, validates it and hands
// it to AdmissionPolicy::set_limits(). The comment after each field names its config key.
struct AdmissionLimits {
  uint32_t max_streams = 0;                              // limits.max_streams; 0 = unlimited
  double max_traffic_mbps = 0;                           // limits.max_traffic_mbps; 0 = unlimited
  Duration idle_timeout = std::chrono::seconds(30);      // limits.idle_timeout_s
  Duration ticket_grace = std::chrono::seconds(30);      // queue.ticket_grace_s
  Duration head_reservation = std::chrono::seconds(15);  // queue.head_reservation_s
  Duration retry_after = std::chrono::seconds(10);       // queue.retry_after_s
  // Bounds against one client taking every slot or ticket (0 = unlimited each).
  uint32_t max_anonymous_per_address = 32;  // limits.max_anonymous_per_address
  uint32_t max_tickets_per_address = 64;    // queue.max_tickets_per_address
  uint32_t max_entries = 1'000'000;         // limits.max_entries: admitted + queued viewers

  bool operator==(const AdmissionLimits&) const = default;
};

// Checks `limits` for use in a config file. Returns a message naming the offending config key,
// or nullopt when the limits are usable.
std::optional<std::string> validate_admission_limits(const AdmissionLimits& limits);

// One viewer: its playback ticket, or for anonymous free channels the viewer id the app sends.
// The caller namespaces the two (e.g. "t:<ticket>", "v:<viewer id>") so they cannot collide.
// Keys longer than kMaxViewerKeyBytes, or empty, are refused (kBadViewerKey).
using ViewerKey = std::string_view;
inline constexpr std::size_t kMaxViewerKeyBytes = 256;

// What a playlist request tells about the stream a viewer is on. Views only: nothing is kept.
struct StreamInfo {
  std::string_view channel;  // channel id
  std::string_view cache;    // id of the cache node the chunk links lead to; empty = origin
  // BANDWIDTH of the requested variant playlist (EXT-X-STREAM-INF). 0 = not a variant request
  // (master or rendition playlist): the viewer keeps the bandwidth it was last seen on.
  uint64_t bandwidth_bps = 0;
};

// Who asks, for the per-address bounds. Views only. An empty address is not
// counted (the caller exempts trusted networks, e.g. a venue's NAT, this way).
struct ViewerSource {
  std::string_view address;
  bool anonymous = false;  // a viewer id the client made up, not a playback ticket
};

struct AdmissionDecision {
  enum class Kind : uint8_t {
    kAdmitted,      // serve the playlist
    kQueued,        // 503 (playlist) or "wait" (API) with the fields below and Retry-After
    kBadViewerKey,  // empty or longer than kMaxViewerKeyBytes: 400, nothing was recorded
    kRefused,       // a new viewer over a bound (see `refusal`): nothing was recorded
  };
  enum class Refusal : uint8_t {
    kNone,
    kAddressViewers,  // 429: the address holds max_anonymous_per_address anonymous viewers
    kAddressTickets,  // 429: the address holds max_tickets_per_address queue tickets
    kFull,            // 503: max_entries viewers are admitted or queued
    kUnavailable,     // 503: the shared admission store (Redis) cannot be reached; never an
                      // unlimited admit (admission.backend: redis only)
  };
  Kind kind = Kind::kBadViewerKey;
  Refusal refusal = Refusal::kNone;  // kRefused only
  // kQueued only. `ticket` stays the same while the viewer keeps renewing; a new number means
  // the old ticket was dropped and the viewer waits again at the tail.
  uint64_t ticket = 0;
  uint64_t position = 0;  // 1-based place in the queue
  std::chrono::seconds estimated_wait{0};
  std::chrono::seconds retry_after{0};  // min(queue.retry_after_s, max(1 s, estimated_wait)); kRefused: queue.retry_after_s

  bool admitted() const { return kind == Kind::kAdmitted; }
};

// Active viewers of one channel or one cache node.
struct AdmissionGroupCount {
  std::string name;
  uint64_t active_viewers = 0;
  double declared_mbps = 0;  // sum of the viewers' variant BANDWIDTH (before correction)
};

// Monotonic counters for /metrics.
struct AdmissionCounters {
  uint64_t admitted = 0;             // every admission, direct or from the queue
  uint64_t admitted_from_queue = 0;  // admissions of viewers that held a ticket
  uint64_t tickets_issued = 0;
  uint64_t slots_expired = 0;        // slots freed because the viewer went idle
  uint64_t tickets_expired = 0;      // tickets not renewed within queue.ticket_grace_s
  uint64_t reservations_lapsed = 0;  // tickets dropped: a reserved slot was not claimed in time
  uint64_t released = 0;             // slots or tickets given up through release()
  uint64_t refused_address = 0;      // new viewers over a per-address bound
  uint64_t refused_full = 0;         // new viewers over max_entries
};

// Snapshot for /admin/status and /metrics. A plain value: the caller owns it.
struct AdmissionStatus {
  AdmissionLimits limits;
  bool emulation = false;
  uint64_t active_viewers = 0;
  uint64_t origin_viewers = 0;  // active viewers whose chunks come from origin
  uint64_t queued_viewers = 0;
  uint64_t reserved_slots = 0;                // freed slots held for the head of the queue
  std::chrono::seconds head_waited{0};        // how long the head ticket has been waiting
  std::chrono::seconds next_wait{0};          // estimated wait of a viewer arriving now
  double declared_mbps = 0;                   // sum of BANDWIDTH over active viewers
  double traffic_estimate_mbps = 0;           // declared_mbps * correction
  double correction = 1;                      // measured / declared on caches, in [0.25, 4]
  std::optional<double> measured_cache_mbps;  // last value given to set_measured_traffic_mbps
  double slot_free_rate_per_s = 0;            // observed turnover, 0 before any slot was freed
  std::vector<AdmissionGroupCount> channels;  // channels with active viewers, sorted by name
  std::vector<AdmissionGroupCount> caches;    // caches with active viewers, sorted by name
  AdmissionCounters counters;
};

// What the API's access check needs from admission (DESIGN.md: "the API asks admission through
// a small interface"). Same threading rules as AdmissionPolicy.
class AdmissionGate {
 public:
  virtual ~AdmissionGate() = default;
  // Admission decision for `viewer` asking to watch `channel` (empty keeps the channel the viewer
  // is on). Renews a waiting ticket and refreshes an admitted slot, like a playlist request,
  // without changing the viewer's cache or bandwidth (the API knows neither).
  // `from` counts a new viewer against the per-address bounds.
  virtual AdmissionDecision check(ViewerKey viewer, std::string_view channel, TimePoint now,
                                  const ViewerSource& from = {}) = 0;
};

// The policy. Owned by the balancer (e.g. through std::unique_ptr), created from config and
// living as long as the server. Not thread-safe: one thread (the balancer's event loop) makes
// every call. `now` must come from a steady clock; a `now` earlier than one already seen is
// taken as the latest seen. Methods that take `now` first expire what is due by then, so no
// timer is needed; calling expire() on a timer only returns memory sooner after traffic stops.
// Cost per call: O(1) amortised for a refresh or a direct admission; a call that involves the
// queue adds O(log q) (q = queued viewers) per position looked up. Nothing fails except
// kBadViewerKey.
class AdmissionPolicy final : public AdmissionGate {
 public:
  explicit AdmissionPolicy(const AdmissionLimits& limits);
  ~AdmissionPolicy() override;
  AdmissionPolicy(const AdmissionPolicy&) = delete;
  AdmissionPolicy& operator=(const AdmissionPolicy&) = delete;

  // A playlist request. An admitted viewer's slot is refreshed and moved to `stream` (one slot
  // whatever the channel, variant or cache). A waiting viewer renews its ticket and is admitted
  // if a slot is reserved for it. A new viewer is admitted when the limits allow it, emulation
  // is off and no one waits (or everyone waiting already has a reserved slot); otherwise it gets
  // a ticket at the tail of the queue. A new viewer over a bound (max_entries, or from an
  // address over its per-address bounds) is refused and nothing is recorded; `from` only
  // matters for a new viewer (a viewer stays counted against the address it arrived from).
  AdmissionDecision request(ViewerKey viewer, const StreamInfo& stream, TimePoint now,
                            const ViewerSource& from = {});

  AdmissionDecision check(ViewerKey viewer, std::string_view channel, TimePoint now,
                          const ViewerSource& from = {}) override;

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

}  // namespace balancer
