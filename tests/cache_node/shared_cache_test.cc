// SharedCache on a real ChunkStore (LMDB in a temp dir) with a FakeClock: one
// flight per chunk whatever the number of asking threads, stored chunks found
// by every thread, remembered 404s kept exactly for the negative TTL.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cache_node/shared_cache.h"
#include "common/clock.h"
#include "common/handles.h"
#include "common/metrics.h"
#include "support/process.h"

using namespace cache_node;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  balancer::test::TempDir dir;
  common::EventBasePtr base{event_base_new()};
  common::MetricsRegistry metrics;
  common::FakeClock clock;
  std::unique_ptr<SharedCache> cache;

  Fixture() {
    StoreOptions options;
    options.dir = dir.file("store");
    auto store = ChunkStore::open(*base, options, metrics);
    REQUIRE(store.ok());
    cache = std::make_unique<SharedCache>(std::move(*store), clock);
  }
};

ChunkMeta meta_of(size_t size) {
  ChunkMeta m;
  m.size = size;
  m.stored_at = 1000;
  m.content_type = "video/mp2t";
  return m;
}

}  // namespace

TEST_CASE("shared cache: two threads asking for one chunk start one flight; the rest join") {
  Fixture f;
  constexpr int kPerThread = 2000;
  std::atomic<int> started{0}, joined{0}, other{0};
  std::atomic<bool> go{false};
  auto ask = [&](size_t loop) {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < kPerThread; ++i) {
      auto found = f.cache->find_or_start("/o/demo/seg1.ts", loop);
      if (found.kind == SharedCache::Lookup::Kind::started) ++started;
      else if (found.kind == SharedCache::Lookup::Kind::joined) ++joined;
      else ++other;
    }
  };
  std::thread a(ask, 0), b(ask, 1);
  go = true;
  a.join();
  b.join();
  CHECK(started == 1);
  CHECK(joined == 2 * kPerThread - 1);
  CHECK(other == 0);
  CHECK(f.cache->inflight() == 1);

  // Both loops subscribed; finishing stores the body and forgets the flight in one step.
  auto flight = f.cache->find_or_start("/o/demo/seg1.ts", 0).flight;
  REQUIRE(flight != nullptr);
  CHECK(flight->subscribers().size() == 2);
  flight->body()->append(std::string(100, 'x'));
  ChunkMeta meta = meta_of(100);
  f.cache->finish(*flight, &meta, std::nullopt);
  CHECK(f.cache->inflight() == 0);
  auto again = f.cache->find_or_start("/o/demo/seg1.ts", 1);
  CHECK(again.kind == SharedCache::Lookup::Kind::hit);
  REQUIRE(again.hit.has_value());
  CHECK(again.hit->meta.size == 100);
}

TEST_CASE("shared cache: a 404 is remembered for exactly the negative TTL on the injected clock") {
  Fixture f;
  auto first = f.cache->find_or_start("/o/demo/missing.ts", 0);
  REQUIRE(first.kind == SharedCache::Lookup::Kind::started);
  f.cache->finish(*first.flight, nullptr, std::chrono::duration_cast<common::SteadyTime::duration>(5s));
  CHECK(f.cache->inflight() == 0);

  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 1).kind == SharedCache::Lookup::Kind::negative);
  f.clock.advance(4999ms);
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 0).kind == SharedCache::Lookup::Kind::negative);
  f.cache->expire_negative();  // not due yet: still remembered
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 1).kind == SharedCache::Lookup::Kind::negative);
  f.clock.advance(1ms);
  auto after = f.cache->find_or_start("/o/demo/missing.ts", 0);
  CHECK(after.kind == SharedCache::Lookup::Kind::started);  // asked of origin again
  f.cache->finish(*after.flight, nullptr, std::nullopt);     // no TTL: nothing remembered
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 0).kind == SharedCache::Lookup::Kind::started);
}

TEST_CASE("shared cache: expire_negative drops only what is due") {
  Fixture f;
  auto remember = [&](const std::string& key, std::chrono::seconds ttl) {
    auto found = f.cache->find_or_start(key, 0);
    REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
    f.cache->finish(*found.flight, nullptr, std::chrono::duration_cast<common::SteadyTime::duration>(ttl));
  };
  remember("/o/demo/a.ts", 1s);
  remember("/o/demo/b.ts", 10s);
  f.clock.advance(2s);
  f.cache->expire_negative();
  CHECK(f.cache->find_or_start("/o/demo/a.ts", 0).kind == SharedCache::Lookup::Kind::started);
  CHECK(f.cache->find_or_start("/o/demo/b.ts", 0).kind == SharedCache::Lookup::Kind::negative);
}
