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
// Each copy is published in its SourceSlot, with whether the follow is held and delivers part
// after part and, once its viewers asked for a delta update, each version's delta beside it: a
// serving loop's SourceFront answers or parks a blocking reload of a followed playlist itself,
// woken by the slot's publish, and asks this cache only for what it cannot decide (those
// requests get the rules above).
//
// Fetches go through http::HttpClient (never blocking). One per process, on
// the fetch loop; serving loops reach it through their SourceFront, which asks it through a
// SourceAsker (source_asker.h). Its loop's thread only: each entry point and timer checks it
// (expect_on).
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/sources/live_follow.h"
#include "balancer/sources/source_policy.h"
#include "balancer/sources/source_version.h"
#include "balancer/sources/version_builder.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/thread_rule.h"
#include "hls/playlist.h"
#include "http/client/coalesced_fetch.h"
#include "http/client/http_client.h"

namespace balancer {

// How source playlist fetches name what failed (http/client/coalesced_fetch.h).
inline constexpr http::UpstreamWording kSourceWording{"playlist", "source_too_large",
                                                      "the balancer"};

// New segments of a live media playlist, for prefetch (prefetch_client.h): their
// targets on the origin the nodes call `origin_id`, and the caches (CacheUse
// mask) viewers of the last two versions were sent to.
using PrefetchSink = std::function<void(const std::string& origin_id,
                                        const std::vector<std::string>& targets, uint64_t caches)>;

class SourceCache {
 public:
  // `loop` (the fetch loop; its timers run there), `client` (on that loop) and `metrics` must
  // outlive the cache.
  SourceCache(core::EventLoop& loop, http::HttpClient& client, core::MetricsRegistry& metrics,
              PlaylistTimings timings, const core::Clock& clock = core::Clock::real());
  ~SourceCache();
  SourceCache(const SourceCache&) = delete;
  SourceCache& operator=(const SourceCache&) = delete;

  // The loop it lives on: any thread may read which one it is.
  core::EventLoop& loop() const { return loop_; }

  void set_timings(PlaylistTimings timings) {
    core::expect_on(loop_);
    timings_ = timings;
    builder_.set_limits(timings);
  }
  // Told of every refresh of a live media playlist (of a channel with prefetch)
  // that reveals segments the version before did not have.
  void set_prefetch_sink(PrefetchSink sink) {
    core::expect_on(loop_);
    prefetch_sink_ = std::move(sink);
  }

  // Looks the source up and calls `done` exactly once: at once (possibly before
  // get() returns) for a fresh copy, else when the shared fetch ends. Errors:
  // 404 not_found, 502 origin_unreachable / origin_error / bad_source_playlist /
  // source_too_large, 504 origin_timeout, 400 bad_request (an _HLS_msn too far
  // ahead), 503 busy (too many distinct sources).
  void get(const SourceRequest& request, SourceCallback done);

  // Stops background refreshes (drain); in-flight fetches still complete.
  void stop_refreshing();

  // Channels with several sources: the operator's choice of a channel's source (its index in
  // the channel's sources), or nullopt to let health decide again. Only a healthy source may be
  // chosen: a choice never moves viewers onto a failing or stale one.
  enum class SourceChoice { made, not_playing, unhealthy };
  SourceChoice force_source(const std::string& channel, std::optional<size_t> index);
  // A channel's sources as the switch sees them now (dashboard, /status).
  struct ChannelSources {
    size_t active = 0;
    std::optional<size_t> forced;
    std::vector<SourceState> sources;  // in order of preference
    std::vector<std::string> origins;  // each source's origin id
  };
  std::optional<ChannelSources> channel_sources(const std::string& channel) const;
  // The channels with several sources that viewers have asked for, in no order.
  std::vector<std::string> channels_with_sources() const;
  // A cache node's chunk fetches from `origin` since its last poll: that many answered, that
  // many failed (OriginChunkHealth). A channel whose active source's chunks fail moves.
  void chunk_fetches_reported(const std::string& origin, uint64_t answered, uint64_t failed);

  size_t entries() const {
    core::expect_on(loop_);
    return entries_.size();
  }
  // Live sources being refreshed in the background right now.
  size_t refreshing() const;
  // Playlists parsed so far (origin's answers, and the copies built of them).
  uint64_t playlist_parses() const {
    core::expect_on(loop_);
    return builder_.parses();
  }

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
  using Waiter = SourceWaiter;

  static SourceResult hit_result(const Entry& entry);
  static SourceResult error_result(int status, core::Error error);
  static Millis since(TimePoint then, TimePoint now);

  struct CopyAddress;

  // The steps of get(), in order (source_cache.cc).
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
  // when nothing can be skipped. An ordinary copy asked for one publishes its deltas in its
  // slot from then on (publish_slot), so that the serving loops answer skip requests too.
  std::shared_ptr<const SourceVersion> delta_of(Entry& entry);
  std::shared_ptr<const SourceVersion> build_delta(Entry& entry);
  // The entry's version in its slot, with its delta update when its viewers ask for those.
  void publish_slot(Entry& entry);
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

  // Origin fetches: sent, landed, refreshed (source_cache_fetch.cc).
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
  // on_done()'s step for an answer with news (a body, or a 304 for the copy held).
  // `parsed`: the body as fails_over_first() read it, if it did.
  void take_answer(Entry& entry, Transfer& transfer, const http::FetchResult& result,
                   const LiveFollow::Landing& landing, std::vector<Waiter> waiters, TimePoint now,
                   std::optional<hls::Playlist> parsed = std::nullopt);
  // The steps of on_done() for a follow that timed out and for a failed fetch.
  void answer_stalled_follow(Entry& entry, std::vector<Waiter>& waiters, TimePoint now);
  void answer_fetch_failure(Entry& entry, std::vector<Waiter> waiters,
                            http::UpstreamFailure failure, const http::FetchResult& result);
  // The step of on_done() for an answer older than the entry's (refreshes that overlapped):
  // counted if it failed, its waiters answered from what the entry holds.
  void answer_old_news(Entry& entry, std::vector<Waiter> waiters,
                       std::optional<http::UpstreamFailure> failure,
                       const http::FetchResult& result, TimePoint now);
  // Origin's `body` through the version builder (continued across restarts for live
  // channels); what it noted is logged and counted.
  core::Result<BuiltVersion> build_version(Entry& entry, std::string_view body, TimePoint now,
                                           hls::Playlist* parsed = nullptr);
  void count_and_log(const Entry& entry, const BuildNotes& notes);
  void schedule_refresh(Entry& entry, TimePoint now);
  // Fetches of the entry that may run at once when the refresh timer fires.
  static size_t refreshes_allowed(const Entry& entry);
  void on_refresh_timer(const std::string& key);

  // Answers (source_cache.cc).
  void publish(Entry& entry, std::shared_ptr<const SourceVersion> version, TimePoint validated_at,
               std::vector<Waiter> waiters);
  // A blocking reload for a part past the followed one parks on the entry's follow until a
  // publish satisfies it or its deadline (three target durations) passes; the entry's refresh is
  // scheduled (it had stopped if nobody asked for the copy lately).
  void park(Entry& entry, BlockingTarget target, Waiter waiter, TimePoint now);
  void answer_parked(Entry& entry);
  void on_parked_timer(const std::string& key);
  // Answers `waiters` from the entry's version (its delta update to those that asked for one).
  void answer(Entry& entry, std::vector<Waiter> waiters);
  // The segments of `current` that `previous` did not have, to the prefetch sink.
  void offer_prefetch(Entry& entry, const SourceVersion& previous, const SourceVersion& current);
  void fail(Entry& entry, std::vector<Waiter> waiters, int status, core::Error error);
  void answer_failure(Entry& entry, const SourceCallback& done, TimePoint now);
  void sweep();

  // Channels with several sources (source_cache_switch.cc).
  struct ChannelSwitch;
  ChannelSwitch& channel_switch(const SourceRequest& request);
  // The request as its channel's active source answers it (its key stays the channel's).
  void aim_at_active_source(SourceRequest& request);
  // A channel entry's standbys are followed by watch entries of their own; each answer of a
  // channel or watch entry is its source's health; a failing active source moves the channel.
  void keep_watching(Entry& entry, TimePoint now);
  void observe_landing(Entry& entry, std::optional<http::UpstreamFailure> failure, TimePoint now);
  // A channel copy's new answer, judged before it is built: when it shows its source failing
  // (a restart, a gap, an end tag) and the channel moves to another source, it is never served.
  // True when the channel moved; else `parsed` holds the body read (a media playlist), for
  // the build to take instead of reading it again.
  bool fails_over_first(Entry& entry, std::string_view body, TimePoint now,
                        std::optional<hls::Playlist>& parsed);
  // Each source as the playlists viewers watch see it (the worst of them); empty when none
  // is watched.
  std::vector<SourceState> source_states(const ChannelSwitch& channel, TimePoint now) const;
  // A fetch of `channel_entry`'s playlist from its channel's source `source` is in flight (the
  // entry itself for the active source, its watch for the others).
  bool asking(const Entry& channel_entry, size_t source) const;
  void evaluate_switch(ChannelSwitch& channel, TimePoint now);
  void switch_channel(ChannelSwitch& channel, size_t to, SourceFault reason, TimePoint now);
  // `closing`: the channel's segment in progress its renditions close (LiveRunTracker::
  // switch_source).
  void switch_entry(Entry& entry, const ChannelSwitch& channel, size_t to, TimePoint now,
                    const std::optional<LiveRunTracker::InProgress>& closing);
  void on_switch_tick();
  std::string watch_key(const Entry& entry, size_t index) const;
  // When a viewer last asked for the entry; for a copy of a channel's playlist, for any copy of
  // its channel: each is refreshed (and kept) while its channel is watched, so that it follows
  // every restart and switch and its numbers and discontinuities stay those of the others (a
  // copy left idle through one continues from its own stale end).
  TimePoint last_used(const Entry& entry) const;
  // The entry is a copy of `channel`'s playlists (channel_copies_).
  void remember_channel_copy(Entry& entry, const std::string& channel);
  void forget_channel_copy(const Entry& entry);
  // A copy of a channel landed: the others' refreshes, stopped while the whole channel sat idle,
  // start again.
  void refresh_channel_copies(const Entry& landed, TimePoint now);

  core::EventLoop& loop_;
  event_base& base_;  // loop_'s
  http::HttpClient& client_;
  const core::Clock& clock_;
  PlaylistTimings timings_;
  VersionBuilder builder_{timings_};
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  // Per ordinary copy's key: entries for its LL-HLS directive values (bounded).
  std::unordered_map<std::string, size_t> directive_entries_;
  // Keyed like entries_; an entry is never swept while its fetch runs.
  http::CoalescedFetches<Waiter, Transfer> in_flight_;
  core::LoopTimer sweep_timer_{base_, core::LoopTimer::Repeat::every, [this] { sweep(); }};
  bool refreshing_enabled_ = true;
  PrefetchSink prefetch_sink_;
  std::unordered_map<std::string, std::unique_ptr<ChannelSwitch>> channel_switches_;
  // Per channel id: the keys of its playlists' ordinary copies (no directive copies, no watches).
  std::unordered_map<std::string, std::vector<std::string>> channel_copies_;
  std::optional<core::LoopTimer> switch_timer_;  // made with the first channel of several sources
  OriginChunkHealth chunk_health_;               // what the nodes' chunk fetches say of origins

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
