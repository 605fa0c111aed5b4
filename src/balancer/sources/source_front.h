// One loop's view of the process-wide SourceCache (which lives on the fetch
// loop, so origin sees one fetch per refresh whatever the number of loops).
// The cache publishes each source in a SourceSlot (immutable version +
// generation counter): the front keeps the slot and its own copy of the view,
// re-reads the view only when the generation moved (one atomic load per request
// otherwise, no lock), and answers while the version is fresh by the same rule
// the cache uses (age since origin vouched for it). Only a source it has no slot
// for, or whose copy went stale, is asked of the fetch loop (through a SourceAsker), once
// however many of its viewers wait.
//
// LL-HLS blocking reloads (_HLS_msn/_HLS_part, with or without _HLS_skip) are answered here
// too while the fetch loop follows the playlist (SourceSlot::following) and publishes versions
// in the numbers viewers ask in (View::parks_blocking): one the held version satisfies at once,
// a later one parked here (ParkedReloads) until a published version has its part, the slot
// waking this loop once per new version however many reloads it holds, or until its deadline
// (three target durations, at most blocking_timeout_ms: 503 playlist_not_ready, as the fetch
// loop answers). A skip request gets the delta update the slot carries. Everything else (no
// slot yet, no follow held, a master, too far ahead, a skip with no delta published, plain
// delta requests) goes to the fetch loop's cache, which keeps every rule of source_cache.h.
// Loop thread only: each entry point, timer and wake-up checks it (expect_on).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "balancer/sources/parked_reloads.h"
#include "balancer/sources/source_asker.h"
#include "balancer/sources/source_cache.h"
#include "core/answer_here.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/coalesced_fetch.h"

namespace balancer {

class SourceFront {
 public:
  // `fetch_loop_cache` (the fetch loop's cache, asked through it) and `metrics` outlive the
  // front; `timings` is read at each get().
  SourceFront(core::EventLoop& loop, SourceAsker& fetch_loop_cache, const core::Clock& clock,
              core::MetricsRegistry& metrics);
  SourceFront(const SourceFront&) = delete;
  SourceFront& operator=(const SourceFront&) = delete;

  // Same contract as SourceCache::get: `done` is called once, on this loop
  // (possibly before get() returns).
  void get(const SourceRequest& request, const PlaylistTimings& timings, SourceCallback done);

  // Blocking reloads parked on this loop now (tests, status).
  size_t parked() const;

 private:
  struct Entry {
    Entry(event_base& base, std::function<void()> on_deadline)
        : parked(base, std::move(on_deadline)) {}
    std::string origin_base;
    std::shared_ptr<const SourceSlot> slot;
    uint64_t seen_generation = 0;
    std::shared_ptr<const SourceVersion> version;
    std::shared_ptr<const SourceVersion> delta;  // the slot's delta update of `version`
    bool parks_blocking = false;                 // the slot's View::parks_blocking
    TimePoint validated_at{};
    TimePoint last_used{};
    ParkedReloads parked;  // blocking reloads waiting here for a later version
    // The one wake-up this entry waits for (0: none): its number, and the slot it asked.
    uint64_t wake = 0;
    const SourceSlot* wake_slot = nullptr;
  };
  Entry& entry_for(const std::string& key);
  // Re-reads the slot's view when its generation moved.
  static void read_view(Entry& entry);
  // Runs SourceCache::get on the fetch loop; the result comes back on this loop.
  void ask_fetch_loop(const SourceRequest& request, SourceCallback done);
  // A blocking reload answered or parked here: true when it took `done`. False (`done`
  // untouched) when the fetch loop must decide.
  bool wait_here(const SourceRequest& request, const PlaylistTimings& timings,
                 SourceCallback& done);
  // Parked reloads the slot's version satisfies are answered; while some remain, the loop
  // asks the slot to wake it at its next publish (unless it already waits for that).
  void answer_parked(const std::string& key);
  // Asks the slot to wake this loop at its next publish, unless the entry waits for that
  // already: false when the slot published since the entry read it (read it again first).
  bool asked_wake(const std::string& key, Entry& entry);
  // The slot's wake-up number `wake` arrived (an older one, from a slot replaced since, is
  // dropped).
  void on_wake(const std::string& key, uint64_t wake);
  void on_deadline(const std::string& key);
  void sweep();

  core::EventLoop& loop_;
  SourceAsker& fetch_loop_cache_;
  const core::Clock& clock_;
  std::unordered_map<std::string, Entry> entries_;
  std::string key_scratch_;  // get()'s key, its storage kept from one request to the next
  // Requests waiting on the fetch loop's answer, keyed like entries_ (one question each).
  http::CoalescedFetches<SourceCallback> asking_;
  core::Lifetime lifetime_;  // the fetch loop's answers after the front is gone are dropped
  core::EventPtr sweep_timer_;
  Millis evict_after_{60000};
  uint64_t wakes_asked_ = 0;  // numbers the wake-ups asked of slots
  // balancer_blocking_reloads_total{answered}: blocking reloads answered here or by the fetch
  // loop; balancer_blocking_wakeups_total: the slots' posts that woke parked ones here.
  core::Counter& answered_here_;
  core::Counter& answered_by_fetch_loop_;
  core::Counter& wakeups_;
};

}  // namespace balancer
