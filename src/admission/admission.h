// Admission (DESIGN.md flow 4): stream slots, the traffic limit and the first-come-first-served
// waiting queue, one for the process (in-process backend) or one for a fleet of balancers
// (Redis backend). The balancer and the API ask it through the interface `Admission` only; which
// backend answers is chosen once, by the factory that made it. The model, its estimates and the
// config keys: docs/admission.md.
//
// This header is the component's public face: the value types, the interface and the two
// factories. Standard library only (the event loop is named, not included).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace core {
class EventLoop;
}

namespace admission {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// Limits and queue timings. An immutable value: reload builds a new one, validates it and hands
// it to Admission::set_limits(). The comment after each field names its config key.
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
  // Streams (devices, admitted or queued) of one account at once (0 = unlimited).
  uint32_t max_streams_per_account = 4;  // limits.max_streams_per_account

  bool operator==(const AdmissionLimits&) const = default;
};

// Checks `limits` for use in a config file. Returns a message naming the offending config key,
// or nullopt when the limits are usable.
std::optional<std::string> validate_admission_limits(const AdmissionLimits& limits);

// One viewer: one stream, i.e. one playing device. Its playback ticket's viewer id, or for
// anonymous free channels the viewer id the app sends. The caller namespaces the two (e.g.
// "t:<ticket viewer>", "v:<viewer id>") so they cannot collide.
// Keys longer than kMaxViewerKeyBytes, or empty, are refused (bad_viewer_key).
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

// Who asks, for the per-address and per-account bounds. Views only. An empty address is not
// counted (the caller exempts trusted networks, e.g. a venue's NAT, this way); an empty account
// is not counted either (anonymous viewers, tickets that name no account).
struct ViewerSource {
  std::string_view address;
  bool anonymous = false;    // a viewer id the client made up, not a playback ticket
  std::string_view account;  // the signed-in account the stream belongs to
};

struct AdmissionDecision {
  enum class Kind : uint8_t {
    admitted,        // serve the playlist
    queued,          // 503 (playlist) or "wait" (API) with the fields below and Retry-After
    bad_viewer_key,  // empty or longer than kMaxViewerKeyBytes: 400, nothing was recorded
    refused,         // a new viewer over a bound (see `refusal`): nothing was recorded
  };
  enum class Refusal : uint8_t {
    none,
    address_viewers,  // 429: the address holds max_anonymous_per_address anonymous viewers
    address_tickets,  // 429: the address holds max_tickets_per_address queue tickets
    full,             // 503: max_entries viewers are admitted or queued
    account_streams,  // 429: the account holds max_streams_per_account streams (any state)
    unavailable,      // 503: the shared admission store (Redis) cannot be reached; never an
                      // unlimited admit (Redis backend only)
  };
  Kind kind = Kind::bad_viewer_key;
  Refusal refusal = Refusal::none;  // refused only
  // queued only. `ticket` stays the same while the viewer keeps renewing; a new number means
  // the old ticket was dropped and the viewer waits again at the tail.
  uint64_t ticket = 0;
  uint64_t position = 0;  // 1-based place in the queue
  // nullopt until slots have freed often enough to measure their rate (docs/admission.md).
  std::optional<std::chrono::seconds> estimated_wait;
  // min(queue.retry_after_s, max(1 s, estimated_wait)), queue.retry_after_s while the wait is
  // unknown; refused: queue.retry_after_s
  std::chrono::seconds retry_after{0};

  bool admitted() const { return kind == Kind::admitted; }
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
  uint64_t refused_account = 0;      // new streams over max_streams_per_account
};

// Snapshot for /admin/status and /metrics. A plain value: the caller owns it.
struct AdmissionStatus {
  AdmissionLimits limits;
  bool emulation = false;
  uint64_t active_viewers = 0;
  uint64_t origin_viewers = 0;  // active viewers whose chunks come from origin
  uint64_t queued_viewers = 0;
  uint64_t reserved_slots = 0;          // freed slots held for the head of the queue
  std::chrono::seconds head_waited{0};  // how long the head ticket has been waiting
  // Estimated wait of a viewer arriving now: 0 when it would be admitted, nullopt while the
  // slot free rate is unknown.
  std::optional<std::chrono::seconds> next_wait = std::chrono::seconds(0);
  double declared_mbps = 0;                    // sum of BANDWIDTH over active viewers
  double traffic_estimate_mbps = 0;            // declared_mbps * correction
  double correction = 1;                       // measured / declared on caches, in [0.25, 4]
  std::optional<double> measured_cache_mbps;   // last value given to set_measured_traffic_mbps
  std::optional<double> slot_free_rate_per_s;  // observed turnover; nullopt while unknown
  std::vector<AdmissionGroupCount> channels;   // channels with active viewers, sorted by name
  std::vector<AdmissionGroupCount> caches;     // caches with active viewers, sorted by name
  AdmissionCounters counters;
};

// The overload switch's outcome.
struct EmulationSwitch {
  bool on = false;
  bool changed = false;
};

// Admission for one process. Made by a factory below, owned by the server (std::unique_ptr),
// living as long as its event loops. `now` comes from the caller's steady clock in every call
// (a `now` earlier than one already seen is taken as the latest seen).
//
// Calls marked "loop" are made on the thread of `loop`, one of the loops the object was made
// for; their `done` runs on that loop: inline when the answer is known at once (the in-process
// backend always; the Redis backend for an admitted viewer's refresh), else later, when the
// store answered. A store that does not answer in time gives refused / unavailable (never an
// admit) or nullopt, as each call says.
class Admission {
 public:
  using DecisionCallback = std::function<void(const AdmissionDecision&)>;

  virtual ~Admission() = default;

  // Loop. A playlist request. An admitted viewer's slot is refreshed and moved to `stream` (one
  // slot whatever the channel, variant or cache). A waiting viewer renews its ticket and is
  // admitted if a slot is reserved for it. A new viewer is admitted when the limits allow it,
  // emulation is off and no one waits (or everyone waiting already has a reserved slot);
  // otherwise it gets a ticket at the tail of the queue. A new viewer over a bound
  // (max_entries, an address over its per-address bounds, an account over
  // max_streams_per_account) is refused and nothing is recorded; `from` only matters for a new
  // viewer.
  virtual void request(core::EventLoop& loop, ViewerKey viewer, const StreamInfo& stream,
                       const ViewerSource& from, TimePoint now, DecisionCallback done) = 0;

  // Loop. The app's access check for `viewer` on `channel` ("" keeps the viewer's channel):
  // like request(), without changing the viewer's cache or bandwidth (the API knows neither).
  virtual void check(core::EventLoop& loop, ViewerKey viewer, std::string_view channel,
                     const ViewerSource& from, TimePoint now, DecisionCallback done) = 0;

  // Loop. The viewer stops watching (logout, player closed): frees its slot or drops its
  // ticket. `done(true)` when it held one, `done(false)` when it held neither; nullopt when the
  // store could not be asked.
  virtual void release(core::EventLoop& loop, ViewerKey viewer, TimePoint now,
                       std::function<void(std::optional<bool> released)> done) = 0;

  // Loop. Overload emulation: while on, no one is admitted (new viewers and the queue wait);
  // admitted viewers keep refreshing their slots; when switched off, admissions resume in queue
  // order. Sets it to `want`, or toggles it when `want` is empty. nullopt when the store could
  // not be asked (nothing changed).
  virtual void switch_emulation(core::EventLoop& loop, std::optional<bool> want, TimePoint now,
                                std::function<void(std::optional<EmulationSwitch>)> done) = 0;

  // Any thread: new limits (reload). Admitted viewers keep their slots even when over the new
  // limits; new viewers wait until the count falls below them.
  virtual void set_limits(const AdmissionLimits& limits, TimePoint now) = 0;

  // Any thread: egress the cache nodes measured (sum of the Mbit/s in their /health) for the
  // viewers whose chunks they serve. The in-process backend scales its BANDWIDTH-based estimate
  // by measured / declared, clamped to [0.25, 4] (nullopt clears it); the Redis backend keeps
  // the declared estimate (one process's caches are not the fleet's).
  virtual void set_measured_traffic_mbps(std::optional<double> cache_egress_mbps,
                                         TimePoint now) = 0;

  // The first loop the object was made for (the home loop), every second: frees idle slots and
  // drops stale tickets even when no request comes; the Redis backend also sends its heartbeat
  // batch and reads the fleet's status. `done` (may be empty) runs on the home loop once the
  // work this tick started has finished (in-process: before tick returns).
  virtual void tick(TimePoint now, std::function<void()> done) = 0;

  // Any thread: a snapshot. In-process: exact at `now`. Redis: the fleet's numbers as of the
  // last tick, with this process's own per-channel and per-cache counts.
  virtual AdmissionStatus status(TimePoint now) = 0;
};

// The in-process backend (admission.backend: local): one policy for the process behind one
// mutex, so limits and the FIFO queue stay exact across loops. Answers every call inline, on
// the caller's thread (the `loop` argument is not used). Never fails.
std::unique_ptr<Admission> make_local_admission(const AdmissionLimits& limits);

// admission.redis.* (docs/configuration.md).
struct RedisAdmissionOptions {
  std::string host = "127.0.0.1";          // admission.redis.host (name or IP)
  uint16_t port = 6379;                    // admission.redis.port
  std::string password;                    // admission.redis.password ("" = no AUTH)
  std::string prefix = "balancer";         // admission.redis.prefix: key namespace of one fleet
  std::chrono::milliseconds timeout{500};  // admission.redis.timeout_ms
  std::chrono::milliseconds heartbeat_interval{1000};  // admission.redis.heartbeat_ms

  bool operator==(const RedisAdmissionOptions&) const = default;
};

// Whose clock the shared store's times come from.
enum class StoreTime : uint8_t {
  redis_clock,  // Redis's own TIME: one clock for the whole fleet (production)
  caller_now,   // the caller's `now` (steady milliseconds), so tests move the store's time too
};

// The Redis backend (admission.backend: redis): several balancers share one limit and one queue.
// `loops`: the process's event loops (loops[0] the home loop, where tick() runs); one
// connection each, made here (main thread, before the loops run). The loops must outlive the
// object. Admitted viewers are leased locally, so their refreshes need no round trip (see
// docs/admission.md, "Several balancers: admission on Redis").
std::unique_ptr<Admission> make_redis_admission(const std::vector<core::EventLoop*>& loops,
                                                const RedisAdmissionOptions& options,
                                                const AdmissionLimits& limits,
                                                StoreTime time = StoreTime::redis_clock);

}  // namespace admission
