// One loop's side of the flights: the fetch bookkeeping of the cache node,
// apart from serving (node_loop.h). A Flight (shared_cache.h) is one upstream
// fetch per chunk for the whole node; a loop's Flights holds
//  - its waiters: requests on this loop waiting on a flight, whichever loop
//    owns it, brought up to the flight's progress when told (progress());
//  - its transfers: the fetches of the flights this loop started, which publish
//    their progress to the Flight and end it in the SharedCache.
// Who may touch what:
//  - Flights: its loop only (the loop it was made for; nothing here locks);
//  - Flight: key, owner and stale copy immutable after publish; its progress and
//    subscribers any loop, under its lock; its body appended by the loop that runs
//    the transfer only, read by any;
//  - SharedCache: any loop, under its lock (lock_order.h gives the order).
// Other loops hear of progress through `notify` (their post()); the transfer and
// "later on this loop" are injected, so a test drives flights by hand with a
// fake clock and no origin.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache_node/runtime_config.h"
#include "cache_node/store/shared_cache.h"
#include "core/clock.h"
#include "core/enum_names.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"

namespace cache_node {

// A request waiting on a flight (NodeLoop's answer an HTTP request).
class FlightWaiter {
 public:
  virtual ~FlightWaiter() = default;
  // Brings the waiter up to `progress` (one copy and one clock read for all the
  // loop's waiters on `flight`). False when it is done: answered, or gone (its
  // client left); it is then dropped and hears nothing more.
  virtual bool advance(const FlightProgress& progress, const Flight& flight, int64_t now_ms) = 0;
};

// How a loop reaches the upstream (the loop's HttpClient in the node). Callbacks
// run on that loop, never from inside fetch().
struct FlightUpstream {
  std::function<http::FetchId(http::FetchRequest, http::FetchCallbacks)> fetch;
  std::function<void(http::FetchId)> cancel;
};

// A fetch from the site's owner of a chunk (site_owner.h), with the upstream to
// go to instead when the owner fails before its body ends (the bytes it sent
// stay; the upstream's copy continues after them), or sends no head, or no more
// body bytes, for `head_wait`.
struct OwnerFetch {
  std::string url;                        // the chunk on the owner
  std::vector<http::HttpHeader> headers;  // mark the request as a sibling's
  std::string fallback_url;               // the node's own upstream (origin or parent)
  std::string twin_url;                   // and its twin origin's, if it has one
  std::chrono::milliseconds head_wait{1000};
  std::chrono::milliseconds negative_cap{0};  // as Flights::start's
};

// How a conditional request for a stale copy ended (cache_revalidations_total{result=...});
// counters indexed by value (error must stay last).
enum class Revalidation {
  not_modified,  // 304: the stored body answers, metadata refreshed
  modified,      // a new answer: 200 (replaces the copy) or 404/410 (drops it)
  error,         // the upstream failed (stale copy served if allowed)
};
inline constexpr const char* kRevalidationNames[] = {"not_modified", "modified", "error"};
static_assert(std::size(kRevalidationNames) == core::enum_count(Revalidation::error));

// What a finished fetch says of the origin it asked: that it answered (2xx, 3xx, 304), that it
// failed (no answer, a reset or a cut body, a timeout, 5xx, 429), or nothing (another 4xx, a 404
// among them: the request's own answer, and a viewer chooses its request).
enum class OriginVerdict { answered, failed, none };
OriginVerdict origin_verdict(std::optional<http::UpstreamFailure> failure, int status);

// How the node's own chunk fetches from each origin ended, since it started
// (cache_origin_chunk_fetches_total{origin,result}). /health carries them: the balancer learns
// there of a source whose chunks fail while its playlists move. Any loop: one mutex, held with
// no other lock of the node (lock_order.h) but the metrics registry's.
class OriginFetchTally {
 public:
  explicit OriginFetchTally(core::MetricsRegistry& metrics) : metrics_(metrics) {}
  // `origin`: a configured origin's id.
  void count(const std::string& origin, OriginVerdict verdict);
  struct Counts {
    std::string origin;
    uint64_t answered = 0;
    uint64_t failed = 0;
  };
  // In the order of the origins' ids.
  std::vector<Counts> counts() const;

 private:
  struct Series {
    core::Counter* answered;
    core::Counter* failed;
  };
  core::MetricsRegistry& metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, Series, std::less<>> by_origin_;
};

// What the flights count (the same series whichever loop counts them).
struct FlightMetrics {
  explicit FlightMetrics(core::MetricsRegistry& metrics);
  // cache_errors_total{kind=`code`}.
  core::Counter& error(const std::string& code);

  core::MetricsRegistry& registry;
  core::Counter& origin_fetches;
  core::Counter& origin_bytes;
  core::Histogram& first_byte;
  core::Counter& revalidation(Revalidation result) {
    return *revalidations[static_cast<size_t>(result)];
  }
  std::array<core::Counter*, std::size(kRevalidationNames)> revalidations;
  core::Counter& sibling_fetches;          // fetches from the site's owner of the chunk
  core::Counter& sibling_fallback_failed;  // the owner failed: the upstream was asked instead
  core::Counter& sibling_fallback_slow;    // no head from the owner in time: the same
  core::Counter& twin_fallbacks;           // the origin failed or was slow: its twin was asked
  core::Counter& dropped_headers;     // upstream headers over what a copy keeps (kMaxKeptHeaders)
  core::Counter& part_head_timeouts;  // a part's upstream sent no head within kPartHeadWaits
  core::Counter& part_body_stalls;    // ... or, after its head, no body byte for as long
  OriginFetchTally origins;           // per origin: the fetches it answered and failed
};

// How long an origin with a twin may take to send a head, or the next body byte after it, before
// the twin is asked.
inline constexpr std::chrono::milliseconds kTwinHeadWait{1000};

// How many part targets a part or preload hint's upstream may take to send a head before
// its waiters get 504: a player holds about three part targets of media (PART-HOLD-BACK),
// so a longer wait stalls it anyway; a source that stopped publishing (the balancer moves
// the channel to its backup) must not hold the players' requests for the hinted part.
inline constexpr int kPartHeadWaits = 3;

// Redirects an upstream fetch follows at most (each to a configured upstream only).
inline constexpr int kMaxRedirects = 5;

class Flights {
 public:
  struct Deps {
    size_t loop = 0;  // its loop's index (Flight::subscribe, owner)
    SharedCache* cache = nullptr;
    const core::Clock* clock = nullptr;
    FlightMetrics* metrics = nullptr;
    const core::Published<RuntimeConfig>* config = nullptr;  // read only
    FlightUpstream upstream;
    // `job` runs later on its loop, never inline (the loop's post()).
    std::function<void(std::function<void()>)> later;
    // Tells every loop subscribed to `flight` to look at its progress (this
    // loop's progress() inline, the others through their post()).
    std::function<void(const std::shared_ptr<Flight>&)> notify;
    // `job` runs on its loop once `delay` has passed (it cannot be
    // cancelled: it checks that what it was for still stands).
    std::function<void(std::chrono::milliseconds delay, std::function<void()> job)> after;
  };
  explicit Flights(Deps deps);
  Flights(const Flights&) = delete;
  Flights& operator=(const Flights&) = delete;

  // `waiter` waits on `flight` (found or started through SharedCache::
  // find_or_start by this loop, so this loop is subscribed); it is brought up
  // to the progress so far at once.
  void join(const std::shared_ptr<Flight>& flight, std::unique_ptr<FlightWaiter> waiter);
  // Brings this loop's waiters on `flight` up to its progress; once it has
  // ended they are answered and forgotten.
  void progress(const std::shared_ptr<Flight>& flight);
  // Runs the transfer of `flight`, which this loop started: GET `url` with
  // `headers`, conditional when the flight revalidates a stored copy. `negative_cap`
  // (when positive) shortens how long a 404 is remembered below the configured
  // negative_ttl: a hinted part's is due within its part target. It is a part link's part
  // target, so it also bounds the wait for the head (kPartHeadWaits of it).
  // `twin_url`: the same chunk on the origin's twin (OriginConfig::twin), asked when `url`
  // fails (no answer, a reset, 5xx, 429) or gives no head, or no next body byte, within
  // kTwinHeadWait.
  void start(const std::shared_ptr<Flight>& flight, std::string url,
             std::vector<http::HttpHeader> headers = {},
             std::chrono::milliseconds negative_cap = {}, std::string twin_url = {});
  // Runs the transfer of `flight` (a miss this loop started) from the site's
  // owner of the chunk, falling back to the upstream as `owner` says.
  void start_from_owner(const std::shared_ptr<Flight>& flight, OwnerFetch owner);

  // This loop's waiters on the flight of `key` (0 when none is known here).
  size_t waiting(const std::string& key) const;
  // Transfers this loop runs.
  size_t transfers() const { return owned_.size(); }

 private:
  // This loop's waiters on one flight (which may be owned by another loop).
  struct LocalFlight {
    std::shared_ptr<Flight> flight;
    std::list<std::unique_ptr<FlightWaiter>> waiters;
  };
  // A transfer this loop runs for a flight.
  struct OwnedFetch {
    std::shared_ptr<Flight> flight;
    http::FetchId id = 0;
    int status = 0;
    bool flush_scheduled = false;
    bool storable = true;                // false: no-store or private (known at the head)
    std::optional<ChunkMeta> refreshed;  // a 304: the stored copy's metadata, refreshed
    core::SteadyTime started;
    uint64_t attempt = 0;      // the transfer the callbacks and timers of this fetch must belong to
    std::string fallback_url;  // fetching from the site's owner: where to go instead; else empty
    std::string twin_url;      // the origin's twin: where to go when the origin fails; else empty
    bool head_received = false;
    size_t skip = 0;  // leading bytes of this transfer the body holds already (the owner sent them)
    // A 404/410 head: how long its own headers let it answer (negative_lifetime_ms).
    std::chrono::milliseconds negative_ttl{0};
    std::chrono::milliseconds negative_cap{0};  // positive: at most this long (Flights::start)
    http::FetchRequest
        request;        // what the current transfer asked for (a redirect resolves against it)
    int redirects = 0;  // followed so far
    std::string retry_after;  // of a 429/503 head
    bool on_twin = false;     // the transfer asks the origin's twin
    // A hinted part not published in time: the wait is the part's, not a sign of the origin's
    // health (a stalled encoder is the balancer's to see in its playlist).
    bool says_nothing_of_origin = false;
  };
  // The configured origin the current transfer of `fetch` asks ("" when it asks the site's
  // owner or a parent: their answers are their own, not the origin's).
  std::string origin_asked(const std::string& key, const OwnedFetch& fetch);

  // A 3xx head with a Location on a configured upstream: the fetch goes on there
  // (at most kMaxRedirects times); true when it did.
  bool follow_redirect(const std::string& key, OwnedFetch& fetch, const http::FetchHead& head);
  // Starts the transfer of `fetch` (a new attempt: the previous one's callbacks are ignored).
  void run_transfer(const std::string& key, OwnedFetch& fetch, http::FetchRequest request);
  // Checks every `wait` that the owner's transfer `attempt` made progress (a head,
  // then more than `bytes_before` body bytes); else the upstream is asked.
  void watch_owner(const std::string& key, uint64_t attempt, std::chrono::milliseconds wait,
                   size_t bytes_before);
  // The owner failed or was slow: the upstream is asked, continuing after the bytes the body holds.
  void fall_back_to_upstream(const std::string& key, OwnedFetch& fetch, bool slow);
  // Checks every kTwinHeadWait that the origin's transfer `attempt` made progress (a head, then
  // more than `bytes_before` body bytes); else its twin is asked, continuing after those bytes.
  void watch_twin(const std::string& key, uint64_t attempt, size_t bytes_before = 0);
  // A part link's transfer `attempt` with no head after `wait` ends in 504 for its waiters;
  // after its head, one whose body gains no byte for a whole `wait` (`bytes_before`: the body's
  // size at the last look) is cut, and so are the replies it feeds. Fallbacks to an owner or a
  // twin have watchers of their own.
  void watch_part_head(const std::string& key, uint64_t attempt, std::chrono::milliseconds wait,
                       std::optional<size_t> bytes_before = std::nullopt);
  void fall_back_to_twin(const std::string& key, OwnedFetch& fetch, bool slow);
  // The transfer after a fallback: from `url`, the body so far kept (the next copy continues it).
  void continue_from(const std::string& key, OwnedFetch& fetch, std::string url);
  // The owned fetch of `key` while `attempt` is its transfer, else null.
  OwnedFetch* current(const std::string& key, uint64_t attempt);
  void on_head(const std::string& key, uint64_t attempt, const http::FetchHead& head);
  void on_data(const std::string& key, uint64_t attempt, std::string_view bytes);
  void on_done(const std::string& key, uint64_t attempt, const http::FetchResult& result);
  // Upstream data often arrives in several callbacks per loop iteration: the
  // waiters hear of it once, later on this loop.
  void schedule_flush(OwnedFetch& fetch);
  // Ends an owned flight: stored (or the stored copy refreshed after a 304) when
  // `failure` is empty, else failed (a 404 is remembered; a stale copy may answer
  // instead); publishes the outcome, updates the shared cache, tells the loops.
  void end_flight(const std::string& key, std::optional<http::UpstreamFailure> failure,
                  int origin_status = 0);
  // The metadata of a 200 head (`stored` null) or of the stored copy updated by a
  // 304 head, with its freshness on the running config; `storable` false for
  // no-store or private.
  ChunkMeta meta_from_head(const std::string& key, const http::FetchHead& head,
                           const ChunkMeta* stored, bool& storable);

  Deps deps_;
  SharedCache& cache_;
  const core::Clock& clock_;
  FlightMetrics& metrics_;
  core::Published<RuntimeConfig>::Reader config_;
  std::unordered_map<std::string, LocalFlight> local_;
  std::unordered_map<std::string, OwnedFetch> owned_;
  uint64_t next_attempt_ = 1;
};

}  // namespace cache_node
