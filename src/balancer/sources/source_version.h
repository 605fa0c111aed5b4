// A source playlist as the balancer serves it, and how it is asked for and answered: the
// parsed version (immutable once published: every loop reads it without a lock), the slot the
// fetch loop publishes it in, a request for a source and its result.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "balancer/sources/delivery_directives.h"
#include "balancer/sources/live_restart.h"
#include "balancer/sources/rewrite_plan.h"
#include "balancer/sources/source_health.h"
#include "balancer/sources/source_policy.h"
#include "core/answer_here.h"
#include "core/event_loop.h"
#include "core/result.h"
#include "hls/playlist.h"

namespace balancer {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Which caches (bit = index in the caches file, first 64) viewers' copies of a
// playlist version sent chunk links to. Noted by any loop, read by the fetch loop.
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
// A loop with blocking reloads parked on the source asks to be woken at the next publish
// (wake_at_next_publish): one post to it per new version, however many reloads it holds.
// Any thread.
class SourceSlot {
 public:
  struct View {
    std::shared_ptr<const SourceVersion> version;  // null: nothing servable
    TimePoint validated_at{};
    // The delta update (_HLS_skip=YES) of `version`, built by the fetch loop once its viewers
    // asked for one; null otherwise (the fetch loop answers skip requests then).
    std::shared_ptr<const SourceVersion> delta;
    // A viewer's _HLS_msn/_HLS_part name this version's own numbers, and a blocking reload
    // waits for a version of it that has its part (origin's numbering, or a channel's timeline):
    // a serving loop may then park such reloads itself.
    bool parks_blocking = false;
  };
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  View view() const {
    std::lock_guard lock(mutex_);
    return view_;
  }
  // The fetch loop: the new view; the loops waiting for it are each posted their wake-up.
  void publish(View view) {
    std::vector<Wake> woken;
    {
      std::lock_guard lock(mutex_);
      view_ = std::move(view);
      // Under the lock: a loop that asks to be woken after the generation it read either sees
      // this one moved or is in `wakes_` before it is taken.
      generation_.fetch_add(1, std::memory_order_release);
      woken.swap(wakes_);
    }
    for (Wake& w : woken) {
      w.loop->post([watch = std::move(w.watch), wake = std::move(w.wake)] {
        if (watch.alive()) wake();
      });
    }
  }
  void publish(std::shared_ptr<const SourceVersion> version, TimePoint validated_at) {
    publish(View{std::move(version), validated_at, nullptr, false});
  }
  // Any loop: `wake` runs on `loop` (while `watcher` lives) after the next publish, once; false,
  // with nothing registered, when the generation already moved past `seen_generation` (read the
  // view again). `loop` outlives the slot's publishes, as every serving loop does the fetch loop's.
  bool wake_at_next_publish(uint64_t seen_generation, core::EventLoop& loop,
                            core::LifetimeWatch watcher, std::function<void()> wake) const {
    std::lock_guard lock(mutex_);
    if (generation_.load(std::memory_order_relaxed) != seen_generation) return false;
    wakes_.push_back(Wake{&loop, std::move(watcher), std::move(wake)});
    return true;
  }
  // While origin holds the blocking reload for the part after the published version's
  // newest, that version is current, however long ago it came. Read before generation().
  // `delivering`: that follow comes after one that brought the part it asked for, so the
  // follows bring part after part (LiveFollow's rule for parking a viewer's later part).
  void set_following(bool following, bool delivering = false) {
    delivering_.store(following && delivering, std::memory_order_release);
    following_.store(following, std::memory_order_release);
  }
  bool following() const { return following_.load(std::memory_order_acquire); }
  bool delivering() const { return delivering_.load(std::memory_order_acquire); }
  // Writes only when the stored time is 100 ms old: one shared write per
  // 100 ms per source, not one per request.
  void touch(TimePoint now) const { mark(last_used_, now); }
  TimePoint last_used() const { return read(last_used_); }
  // A viewer was answered with a delta update (a serving loop's from the view, or the fetch
  // loop's own; written as touch() is): the fetch loop stops building deltas nobody asks for.
  void touch_delta(TimePoint now) const { mark(delta_used_, now); }
  TimePoint delta_used() const { return read(delta_used_); }

 private:
  struct Wake {
    core::EventLoop* loop;
    core::LifetimeWatch watch;
    std::function<void()> wake;
  };
  mutable std::mutex mutex_;
  View view_;
  mutable std::vector<Wake> wakes_;  // under mutex_
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> following_{false};
  std::atomic<bool> delivering_{false};
  mutable std::atomic<TimePoint::rep> last_used_{0};
  mutable std::atomic<TimePoint::rep> delta_used_{0};

  static void mark(std::atomic<TimePoint::rep>& at, TimePoint now) {
    auto ns = now.time_since_epoch().count();
    if (ns - at.load(std::memory_order_relaxed) > 100'000'000)
      at.store(ns, std::memory_order_relaxed);
  }
  static TimePoint read(const std::atomic<TimePoint::rep>& at) {
    return TimePoint(TimePoint::duration(at.load(std::memory_order_relaxed)));
  }
};

// Where one playlist of a channel lies on one of its sources.
struct SourceAddress {
  std::string origin_id;
  std::string origin_base;  // origin base URL, no trailing slash
  std::string target;       // "/path[?query]" on that origin
  bool operator==(const SourceAddress&) const = default;
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
  // A channel with several sources (source_health.h): this playlist on each, in order of
  // preference, the first being origin_id/origin_base/target. The copy is the channel's, fetched
  // from its active source and kept in one timeline across switches. Empty: one source.
  std::vector<SourceAddress> sources{};
  // The channel's id: its playlists' copies are refreshed together while any is watched
  // (SourceCache::last_used); with `sources`, part of the copy's key.
  std::string channel{};
  FailoverPolicy failover{};
};

// The key of a request's ordinary copy, in the source cache and in each loop's front: the
// origin and target, and the channel's target latency when it sets one (a channel with its own
// hold-backs gets a copy of its own).
std::string source_key(const SourceRequest& request);
// The same, written into `out` (its storage kept: a loop's scratch string costs no allocation).
void source_key_into(std::string& out, const SourceRequest& request);

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

using SourceCallback = std::function<void(const SourceResult&)>;

}  // namespace balancer
