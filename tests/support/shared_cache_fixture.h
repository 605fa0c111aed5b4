// A cache node's SharedCache on a real ChunkStore (LMDB in a temp dir) with a FakeClock: what
// the unit tests of the node's cache and of its flights stand on.
#pragma once

#include <doctest/doctest.h>
#include <event2/event.h>

#include <cstddef>
#include <memory>
#include <utility>

#include "cache_node/store/chunk_store.h"
#include "cache_node/store/shared_cache.h"
#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "support/process.h"

namespace balancer::test {

struct SharedCacheOnDisk {
  TempDir dir;
  core::EventBasePtr base{event_base_new()};
  core::MetricsRegistry metrics;
  core::FakeClock clock;
  std::unique_ptr<cache_node::SharedCache> cache;

  // `max_negative`: remembered 404s at the most.
  explicit SharedCacheOnDisk(size_t max_negative = 10000) {
    cache_node::StoreOptions options;
    options.dir = dir.file("store");
    auto store = cache_node::ChunkStore::open(*base, options, metrics);
    REQUIRE(store.ok());
    cache = std::make_unique<cache_node::SharedCache>(
        std::move(*store), clock, max_negative,
        metrics.counter("cache_negative_refused_total", ""));
  }
};

}  // namespace balancer::test
