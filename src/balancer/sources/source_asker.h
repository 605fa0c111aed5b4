// What a serving loop may do with the fetch loop's SourceCache, and nothing more: ask it for a
// source, the answer coming back on the asking loop. Serving loops (their SourceFront) hold one
// of these, never the cache, so they cannot call a method that only the fetch loop may run.
#pragma once

#include <utility>

#include "balancer/sources/source_cache.h"
#include "core/answer_here.h"
#include "core/event_loop.h"

namespace balancer {

class SourceAsker {
 public:
  // Main thread, before the loops run: `cache` (on its fetch loop) outlives the asker.
  explicit SourceAsker(SourceCache& cache) : cache_(cache) {}
  SourceAsker(const SourceAsker&) = delete;
  SourceAsker& operator=(const SourceAsker&) = delete;

  // Any loop: runs SourceCache::get on the fetch loop; `done` runs on `back` while `asker`
  // lives. On the fetch loop itself, get() at once (`done` possibly before ask() returns).
  void ask(core::EventLoop& back, core::LifetimeWatch asker, const SourceRequest& request,
           SourceCallback done) {
    core::EventLoop& fetch_loop = cache_.loop();
    if (&back == &fetch_loop) return cache_.get(request, std::move(done));
    core::ask_there_answer_here(
        fetch_loop, back, std::move(asker),
        [cache = &cache_, request](auto reply) { cache->get(request, std::move(reply)); },
        std::move(done));
  }

 private:
  SourceCache& cache_;
};

}  // namespace balancer
