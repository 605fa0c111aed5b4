// One loop's view of the process-wide SourceCache (which lives on the fetch
// loop, so origin sees one fetch per refresh whatever the number of loops).
// The cache publishes each source in a SourceSlot (immutable version +
// generation counter): the front keeps the slot and its own copy of the view,
// re-reads the view only when the generation moved (one atomic load per request
// otherwise, no lock), and answers while the version is fresh by the same rule
// the cache uses (age since origin vouched for it). Only a source it has no slot
// for, or whose copy went stale, is asked of the fetch loop (through a SourceAsker), once
// however many of its viewers wait. LL-HLS blocking and delta requests always go to the
// fetch loop's cache. Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "balancer/sources/source_asker.h"
#include "balancer/sources/source_cache.h"
#include "core/answer_here.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "http/client/coalesced_fetch.h"

namespace balancer {

class SourceFront {
 public:
  // `fetch_loop_cache` (the fetch loop's cache, asked through it) outlives the front;
  // `timings` is read at each get().
  SourceFront(core::EventLoop& loop, SourceAsker& fetch_loop_cache, const core::Clock& clock);
  SourceFront(const SourceFront&) = delete;
  SourceFront& operator=(const SourceFront&) = delete;

  // Same contract as SourceCache::get: `done` is called once, on this loop
  // (possibly before get() returns).
  void get(const SourceRequest& request, const PlaylistTimings& timings, SourceCallback done);

 private:
  struct Entry {
    std::string origin_base;
    std::shared_ptr<const SourceSlot> slot;
    uint64_t seen_generation = 0;
    std::shared_ptr<const SourceVersion> version;
    TimePoint validated_at{};
    TimePoint last_used{};
  };
  // Runs SourceCache::get on the fetch loop; the result comes back on this loop.
  void ask_fetch_loop(const SourceRequest& request, SourceCallback done);
  void sweep();

  core::EventLoop& loop_;
  SourceAsker& fetch_loop_cache_;
  const core::Clock& clock_;
  std::unordered_map<std::string, Entry> entries_;
  // Requests waiting on the fetch loop's answer, keyed like entries_ (one question each).
  http::CoalescedFetches<SourceCallback> asking_;
  core::Lifetime lifetime_;  // the fetch loop's answers after the front is gone are dropped
  core::EventPtr sweep_timer_;
  Millis evict_after_{60000};
};

}  // namespace balancer
