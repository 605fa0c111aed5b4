// Source playlists fetched from origin, shared by every viewer: concurrent
// requests for one source share one fetch; copies are kept by kind (master, live
// media, VOD) per source_policy.h; live playlists that viewers are watching are
// refreshed in the background so a request rarely waits and a copy is never
// served more than live_max_lag behind origin: ahead of that bound by the copy's measured
// origin round trip, with up to kMaxRefreshesInFlight refreshes overlapping (source_policy.h). A
// low-latency playlist of an origin that can block is followed instead: its refresh is a blocking
// reload for the next part, so the copy is as new as origin's while that reload is held, and
// viewers' blocking reloads for that part wait on it. Delta updates (_HLS_skip=YES) are built from
// the copy once per version (origin is never asked for one it offers). Other LL-HLS blocking
// reloads are keyed (and coalesced) per (playlist, _HLS_msn, _HLS_part), and per _HLS_skip only
// where the balancer cannot build the delta itself. Each version is parsed once into an
// hls::Template plus a RewritePlan.
//
// Fetches go through http::HttpClient (never blocking). One per process, on
// the home loop; other loops reach it through SourceFront. Loop thread only.
#pragma once

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/live_restart.h"
#include "balancer/playlist_mapper.h"
#include "balancer/request_params.h"
#include "balancer/source_policy.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "hls/playlist.h"
#include "http/client/coalesced_fetch.h"
#include "http/client/http_client.h"

namespace balancer {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Which caches (bit = index in the caches file, first 64) viewers' copies of a
// playlist version sent chunk links to. Noted by any loop, read by the home loop.
class CacheUse {
 public:
  CacheUse() = default;
  CacheUse(const CacheUse& other) : bits_(other.mask()) {}
  CacheUse& operator=(const CacheUse& other) {
    bits_.store(other.mask(), std::memory_order_relaxed);
    return *this;
  }
  // One relaxed load per viewer copy; a write only the first time for a cache.
  void note(size_t cache_index) const {
    if (cache_index >= 64) return;
    const uint64_t bit = uint64_t{1} << cache_index;
    if ((bits_.load(std::memory_order_relaxed) & bit) == 0)
      bits_.fetch_or(bit, std::memory_order_relaxed);
  }
  uint64_t mask() const { return bits_.load(std::memory_order_relaxed); }

 private:
  mutable std::atomic<uint64_t> bits_{0};
};

// One parsed version of a source playlist. Immutable once published: every loop
// reads it without a lock.
struct SourceVersion {
  hls::Playlist playlist;
  SourceKind kind = SourceKind::live;
  Millis target_duration{0};    // media playlists; 0 for masters
  double total_duration_s = 0;  // sum of EXTINF (VOD signature lifetime)
  RewritePlan plan;
  uint64_t serial = 0;  // increases with every new version of any source
  LiveEndPolicy live;   // the channel policy it was built under (live_restart.h)
  CacheUse cache_use;   // the caches viewers' copies of this version sent chunk links to (prefetch)
  // Live media playlists: where its newest segment or part ends on the wall clock (Unix
  // seconds, from EXT-X-PROGRAM-DATE-TIME; hls/program_date.h), when it says.
  std::optional<double> newest_media_end_s;
};

// What the cache publishes for one source, read by every loop's SourceFront:
// the current version and when origin vouched for it, behind a generation
// counter so a reader re-reads (under the lock) only after a change. Readers
// note that viewers still ask (touch), which keeps the background refresh going.
// Any thread.
class SourceSlot {
 public:
  struct View {
    std::shared_ptr<const SourceVersion> version;  // null: nothing servable
    TimePoint validated_at{};
  };
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  View view() const {
    std::lock_guard lock(mutex_);
    return view_;
  }
  void publish(std::shared_ptr<const SourceVersion> version, TimePoint validated_at) {
    {
      std::lock_guard lock(mutex_);
      view_ = View{std::move(version), validated_at};
    }
    generation_.fetch_add(1, std::memory_order_release);
  }
  // While origin holds the blocking reload for the part after the published version's
  // newest, that version is current, however long ago it came. Read before generation().
  void set_following(bool following) { following_.store(following, std::memory_order_release); }
  bool following() const { return following_.load(std::memory_order_acquire); }
  // Writes only when the stored time is 100 ms old: one shared write per
  // 100 ms per source, not one per request.
  void touch(TimePoint now) const {
    auto ns = now.time_since_epoch().count();
    if (ns - last_used_.load(std::memory_order_relaxed) > 100'000'000)
      last_used_.store(ns, std::memory_order_relaxed);
  }
  TimePoint last_used() const {
    return TimePoint(TimePoint::duration(last_used_.load(std::memory_order_relaxed)));
  }

 private:
  mutable std::mutex mutex_;
  View view_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> following_{false};
  mutable std::atomic<TimePoint::rep> last_used_{0};
};

struct SourceRequest {
  std::string origin_id;
  std::string origin_base;  // origin base URL, no trailing slash
  std::string target;       // "/path[?query]" on the origin, without delivery directives
  DeliveryDirectives directives;
  LiveEndPolicy live;     // how the channel takes an end tag and restarts (live_restart.h)
  bool prefetch = false;  // the channel's "prefetch": new live segments are named to the nodes
  // The channel's "target_latency_s": its media playlists' HOLD-BACK and PART-HOLD-BACK
  // (hls/hold_back.h); 0 keeps origin's.
  double target_latency_s = 0;
};

// The key of a request's ordinary copy, in the source cache and in each loop's front: the
// origin and target, and the channel's target latency when it sets one (a channel with its own
// hold-backs gets a copy of its own).
std::string source_key(const SourceRequest& request);

struct SourceResult {
  enum class From { hit, miss, coalesced, stale, error };
  From from = From::error;
  std::shared_ptr<const SourceVersion> version;  // null when from == error
  TimePoint validated_at{};  // when origin last vouched for `version` (send time of that fetch)
  std::shared_ptr<const SourceSlot>
      slot;           // the source's publication (null for errors without an entry)
  int status = 0;     // HTTP status for the viewer when from == error
  core::Error error;  // when from == error
};

const char* to_string(SourceResult::From from);

// How source playlist fetches name what failed (http/client/coalesced_fetch.h).
inline constexpr http::UpstreamWording kSourceWording{"playlist", "source_too_large",
                                                      "the balancer"};

using SourceCallback = std::function<void(const SourceResult&)>;

// New segments of a live media playlist, for prefetch (prefetch_client.h): their
// targets on the origin the nodes call `origin_id`, and the caches (CacheUse
// mask) viewers of the last two versions were sent to.
using PrefetchSink = std::function<void(const std::string& origin_id,
                                        const std::vector<std::string>& targets, uint64_t caches)>;

class SourceCache {
 public:
  // `client` and `metrics` must outlive the cache.
  SourceCache(event_base& base, http::HttpClient& client, core::MetricsRegistry& metrics,
              PlaylistTimings timings, const core::Clock& clock = core::Clock::real());
  ~SourceCache();
  SourceCache(const SourceCache&) = delete;
  SourceCache& operator=(const SourceCache&) = delete;

  void set_timings(PlaylistTimings timings) { timings_ = timings; }
  // Told of every refresh of a live media playlist (of a channel with prefetch)
  // that reveals segments the version before did not have.
  void set_prefetch_sink(PrefetchSink sink) { prefetch_sink_ = std::move(sink); }

  // Looks the source up and calls `done` exactly once: at once (possibly before
  // get() returns) for a fresh copy, else when the shared fetch ends. Errors:
  // 404 not_found, 502 origin_unreachable / origin_error / bad_source_playlist /
  // source_too_large, 504 origin_timeout, 400 bad_request (an _HLS_msn too far
  // ahead), 503 busy (too many distinct sources).
  void get(const SourceRequest& request, SourceCallback done);

  // Stops background refreshes (drain); in-flight fetches still complete.
  void stop_refreshing();

  size_t entries() const { return entries_.size(); }
  // Live sources being refreshed in the background right now.
  size_t refreshing() const;

  struct Entry;

 private:
  // One origin fetch in progress and the requests waiting for it.
  struct Transfer {
    http::FetchId id = 0;
    uint64_t seq = 0;            // the entry's fetches numbered in send order (Entry::fetches_sent)
    TimePoint sent{};            // what its answer is vouched as of
    std::string sent_validator;  // the If-None-Match / If-Modified-Since value sent, if any
    int status = 0;
    http::CappedBody body;
    std::string etag, last_modified;  // validators of the body being fetched
  };
  struct Waiter {
    SourceCallback done;
    bool first = false;  // the request that started the fetch
    // A viewer's blocking reload waiting on the ordinary copy's follow (a 503 if it times out).
    bool blocking_reload = false;
    bool delta = false;  // answered with the delta update of what the fetch brings (_HLS_skip=YES)
  };

  struct CopyAddress;

  // The steps of get(), in order.
  // The request's LL-HLS directives that the source's origin can honour (the others dropped).
  DeliveryDirectives directives_to_forward(const SourceRequest& request,
                                           const std::string& base_key) const;
  // A blocking reload that the fresh ordinary copy already satisfies (or shows too far ahead)
  // is answered from it, with no origin trip: true when `done` was called.
  // With `delta`, the answer is the delta update of that copy (and a plain _HLS_skip request
  // is answered from it whenever it is current).
  bool answer_from_shared_live_copy(const SourceRequest& request, const std::string& base_key,
                                    bool delta, TimePoint now, const SourceCallback& done);
  // A blocking reload for exactly the part the ordinary copy's follow waits for joins that
  // fetch: one request upstream per part, however many viewers wait. One for a later part,
  // while the follow delivers part after part, waits for the copy to reach it (park). True
  // when it joined or waits.
  bool join_follow(const SourceRequest& request, const std::string& base_key, bool delta,
                   TimePoint now, SourceCallback& done);
  // Whether the balancer answers this _HLS_skip=YES request with a delta update it builds
  // from the ordinary copy (its origin offers CAN-SKIP-UNTIL) instead of asking origin.
  bool builds_delta(const SourceRequest& request, const std::string& base_key) const;
  // The delta update of the entry's version, built once per version; the version itself
  // when nothing can be skipped.
  std::shared_ptr<const SourceVersion> delta_of(Entry& entry);
  static CopyAddress address_of(const SourceRequest& request, const std::string& base_key);
  // A new entry within playlists.max_entries and (directive copies) max_directive_entries, which
  // it is counted against; the 503 refusal otherwise.
  std::optional<SourceResult> admit_new_entry(const std::string& key, const std::string& base_key);
  // The request's entry (created if new, emptied if the origin's URL changed), asked for now.
  Entry& entry_for_request(const CopyAddress& address, const std::string& base_key,
                           const SourceRequest& request, TimePoint now);
  // A fresh copy at once, a failure still held, or a wait on the (shared) origin fetch; with
  // `delta`, the copy's delta update.
  void answer_or_fetch(Entry& entry, SourceCallback done, TimePoint now, bool delta = false);

  Entry& entry_for(const std::string& key);
  // May the entry's version be served as it is now: fresh by age, or followed?
  bool current(const Entry& entry, TimePoint now) const;
  void start_fetch(Entry& entry, Transfer& transfer, bool background);
  // The entry's fetch numbered `seq`: the one viewers join (in_flight_) or one sent ahead.
  Transfer* transfer_of(const std::string& key, uint64_t seq);
  // Origin fetches of the entry running now (the one viewers join and those sent ahead).
  size_t fetches_in_flight(const Entry& entry) const;
  void on_done(const std::string& key, uint64_t seq, const http::FetchResult& result);
  // on_done()'s first step: the fetch numbered `seq`, with its waiters, off the entry. True
  // when it was the one viewers join (the oldest sent ahead then takes its place), nullopt
  // when the entry has no such fetch.
  std::optional<bool> take_landed(Entry& entry, uint64_t seq, Transfer& transfer,
                                  std::vector<Waiter>& waiters);
  // The steps of on_done() for a follow that timed out and for a failed fetch.
  void answer_stalled_follow(Entry& entry, std::vector<Waiter>& waiters, TimePoint now);
  void answer_fetch_failure(Entry& entry, std::vector<Waiter> waiters,
                            http::UpstreamFailure failure, const http::FetchResult& result);
  // The step of on_done() for an answer older than the entry's (refreshes that overlapped):
  // counted if it failed, its waiters answered from what the entry holds.
  void answer_old_news(Entry& entry, std::vector<Waiter> waiters,
                       std::optional<http::UpstreamFailure> failure,
                       const http::FetchResult& result, TimePoint now);
  // Parses origin's `body` into the version to serve (continued across restarts for live channels).
  core::Result<std::shared_ptr<const SourceVersion>> build_version(Entry& entry,
                                                                   std::string_view body,
                                                                   TimePoint now);
  // build_version()'s step for a live media playlist: origin's `playlist` through the entry's
  // LiveRunTracker; the runs by line when its own copy replaced `playlist`.
  std::optional<std::vector<std::pair<size_t, uint64_t>>> continue_live_run(
      Entry& entry, hls::Playlist& playlist, const hls::ParseOptions& options, TimePoint now);
  void publish(Entry& entry, std::shared_ptr<const SourceVersion> version, TimePoint validated_at,
               std::vector<Waiter> waiters);
  // A blocking reload for a part past the followed one waits on the entry (Entry::parked)
  // until a publish satisfies it or its deadline (three target durations) passes.
  void park(Entry& entry, BlockingTarget target, Waiter waiter, TimePoint now);
  void arm_parked_timer(Entry& entry, TimePoint now);
  void answer_parked(Entry& entry);
  // Answers `waiters` from the entry's version (its delta update to those that asked for one).
  void answer(Entry& entry, std::vector<Waiter> waiters);
  // The parked waiters `ready` (target, deadline) picks, off the entry; its timer re-armed.
  using ParkedReady = std::function<bool(const BlockingTarget&, TimePoint deadline)>;
  std::vector<Waiter> take_parked(Entry& entry, TimePoint now, const ParkedReady& ready);
  void on_parked_timer(const std::string& key);
  // The segments of `current` that `previous` did not have, to the prefetch sink.
  void offer_prefetch(Entry& entry, const SourceVersion& previous, const SourceVersion& current);
  void fail(Entry& entry, std::vector<Waiter> waiters, int status, core::Error error);
  void answer_failure(Entry& entry, const SourceCallback& done, TimePoint now);
  void schedule_refresh(Entry& entry, TimePoint now);
  // Fetches of the entry that may run at once when the refresh timer fires.
  static size_t refreshes_allowed(const Entry& entry);
  // playlists.max_segments: a longer live or EVENT playlist becomes a window of its newest
  // segments (hls/window.h; the playlist it replaced goes to `replaced`, if given); a longer
  // VOD playlist or delta update is refused (the error).
  std::optional<core::Error> limit_segments(SourceVersion& version, const std::string& url,
                                            std::optional<hls::Playlist>* replaced);
  // playlists.max_master_entries: a multivariant playlist listing more variants and renditions
  // is refused (the error): each viewer's copy, once per pathway, costs per entry.
  std::optional<core::Error> limit_master_entries(const SourceVersion& version,
                                                  const std::string& url);
  void on_refresh_timer(const std::string& key);
  void sweep();

  event_base& base_;
  http::HttpClient& client_;
  const core::Clock& clock_;
  PlaylistTimings timings_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  // Per ordinary copy's key: entries for its LL-HLS directive values (bounded).
  std::unordered_map<std::string, size_t> directive_entries_;
  // Per ordinary copy's key (shared by its directive entries): when each chunk, by
  // chunk hash, was first listed (unix seconds), for RewritePlan::chunk_first_listed.
  std::unordered_map<std::string, std::unordered_map<uint64_t, int64_t>> first_listed_;
  // Fills version.plan.chunk_first_listed from (and into) first_listed_[playlist_key].
  void stamp_first_listed(const std::string& playlist_key, SourceVersion& version);
  // Keyed like entries_; an entry is never swept while its fetch runs.
  http::CoalescedFetches<Waiter, Transfer> in_flight_;
  core::LoopTimer sweep_timer_{base_, core::LoopTimer::Repeat::every, [this] { sweep(); }};
  uint64_t next_serial_ = 1;
  bool refreshing_enabled_ = true;
  PrefetchSink prefetch_sink_;

  core::Counter& hits_;
  core::Counter& misses_;
  core::Counter& coalesced_;
  core::Counter& stale_;
  core::Counter& errors_;
  core::Counter& fetches_request_;
  core::Counter& fetches_refresh_;
  core::Counter& fetches_follow_;
  core::Counter& deltas_built_;
  core::Counter& not_modified_;
  core::Counter& windowed_;
  core::Histogram& fetch_seconds_;
  core::Counter& live_restarts_;
  core::Counter& live_ends_held_;
  core::Counter& refresh_waits_;
  core::MetricsRegistry& metrics_;
};

}  // namespace balancer
