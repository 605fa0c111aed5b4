// SharedCache on a real ChunkStore (LMDB in a temp dir) with a FakeClock: one
// flight per chunk whatever the number of asking threads, stored chunks found
// by every thread while fresh, one revalidation flight per stale chunk, remembered
// 404s kept exactly for the negative TTL.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cache_node/store/shared_cache.h"
#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "support/process.h"
#include "support/shared_cache_fixture.h"

using namespace cache_node;
using namespace std::chrono_literals;

namespace {

using Fixture = balancer::test::SharedCacheOnDisk;

// Fresh for `lifetime` from the clock's now.
ChunkMeta meta_of(size_t size, const core::Clock& clock,
                  std::chrono::milliseconds lifetime = 3600s) {
  ChunkMeta m;
  m.size = size;
  m.stored_at = clock.unix_now();
  m.content_type = "video/mp2t";
  m.etag = "\"v1\"";
  m.vouched_ms = clock.unix_now_ms();
  m.fresh_until_ms = m.vouched_ms + lifetime.count();
  m.stale_until_ms = m.fresh_until_ms;
  return m;
}

// Stores `key` through a flight, as a fetch would.
void store(Fixture& f, const std::string& key, const ChunkMeta& meta) {
  auto found = f.cache->find_or_start(key, 0);
  REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
  found.flight->body()->append(std::string(meta.size, 'x'));
  f.cache->finish(*found.flight, SharedCache::StoreUpdate::put, &meta, std::nullopt);
}

// Two threads (loops 0 and 1) ask for `key` `per_thread` times each, at once: how many asks
// came back as `first` (the one that starts the flight), joined it, or anything else.
struct Race {
  int first = 0, joined = 0, other = 0;
};
Race race_two_loops(Fixture& f, const std::string& key, SharedCache::Lookup::Kind first,
                    int per_thread) {
  std::atomic<int> firsts{0}, joined{0}, other{0};
  std::atomic<bool> go{false};
  auto ask = [&](size_t loop) {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < per_thread; ++i) {
      auto found = f.cache->find_or_start(key, loop);
      if (found.kind == first)
        ++firsts;
      else if (found.kind == SharedCache::Lookup::Kind::joined)
        ++joined;
      else
        ++other;
    }
  };
  std::thread a(ask, 0), b(ask, 1);
  go = true;
  a.join();
  b.join();
  return {firsts.load(), joined.load(), other.load()};
}

// Of `asks` racing asks, exactly one started the flight and every other one joined it.
void check_one_flight(const Race& race, int asks) {
  CHECK(race.first == 1);
  CHECK(race.joined == asks - 1);
  CHECK(race.other == 0);
}

}  // namespace

TEST_CASE("shared cache: two threads asking for one chunk start one flight; the rest join") {
  Fixture f;
  constexpr int kPerThread = 2000;
  const Race race =
      race_two_loops(f, "/o/demo/seg1.ts", SharedCache::Lookup::Kind::started, kPerThread);
  check_one_flight(race, 2 * kPerThread);
  CHECK(f.cache->inflight() == 1);

  // Both loops subscribed; finishing stores the body and forgets the flight in one step.
  auto flight = f.cache->find_or_start("/o/demo/seg1.ts", 0).flight;
  REQUIRE(flight != nullptr);
  CHECK(flight->subscribers().size() == 2);
  flight->body()->append(std::string(100, 'x'));
  ChunkMeta meta = meta_of(100, f.clock);
  f.cache->finish(*flight, SharedCache::StoreUpdate::put, &meta, std::nullopt);
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
  f.cache->finish(*first.flight, SharedCache::StoreUpdate::none, nullptr,
                  std::chrono::duration_cast<core::SteadyTime::duration>(5s));
  CHECK(f.cache->inflight() == 0);

  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 1).kind ==
        SharedCache::Lookup::Kind::negative);
  f.clock.advance(4999ms);
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 0).kind ==
        SharedCache::Lookup::Kind::negative);
  f.cache->expire_negative();  // not due yet: still remembered
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 1).kind ==
        SharedCache::Lookup::Kind::negative);
  f.clock.advance(1ms);
  auto after = f.cache->find_or_start("/o/demo/missing.ts", 0);
  CHECK(after.kind == SharedCache::Lookup::Kind::started);  // asked of origin again
  f.cache->finish(*after.flight, SharedCache::StoreUpdate::none, nullptr,
                  std::nullopt);  // no TTL: nothing remembered
  CHECK(f.cache->find_or_start("/o/demo/missing.ts", 0).kind == SharedCache::Lookup::Kind::started);
}

TEST_CASE("shared cache: expire_negative drops only what is due") {
  Fixture f;
  auto remember = [&](const std::string& key, std::chrono::seconds ttl) {
    auto found = f.cache->find_or_start(key, 0);
    REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
    f.cache->finish(*found.flight, SharedCache::StoreUpdate::none, nullptr,
                    std::chrono::duration_cast<core::SteadyTime::duration>(ttl));
  };
  remember("/o/demo/a.ts", 1s);
  remember("/o/demo/b.ts", 10s);
  f.clock.advance(2s);
  f.cache->expire_negative();
  CHECK(f.cache->find_or_start("/o/demo/a.ts", 0).kind == SharedCache::Lookup::Kind::started);
  CHECK(f.cache->find_or_start("/o/demo/b.ts", 0).kind == SharedCache::Lookup::Kind::negative);
}

TEST_CASE(
    "shared cache: remembered 404s are bounded by count; the ones over it are not remembered, and "
    "counted") {
  Fixture f(3);
  core::Counter& refused = f.metrics.counter("cache_negative_refused_total", "");
  auto remember = [&](const std::string& key) {
    auto found = f.cache->find_or_start(key, 0);
    REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
    f.cache->finish(
        *found.flight, SharedCache::StoreUpdate::none, nullptr,
        std::chrono::duration_cast<core::SteadyTime::duration>(std::chrono::seconds(60)));
  };
  for (int i = 0; i < 10; ++i) remember("demo/missing" + std::to_string(i) + ".ts");
  CHECK(f.cache->negative_entries() == 3);
  CHECK(refused.value() == 7);
  CHECK(f.cache->find_or_start("demo/missing0.ts", 0).kind == SharedCache::Lookup::Kind::negative);
  auto refused_one = f.cache->find_or_start("demo/missing9.ts", 0);
  CHECK(refused_one.kind == SharedCache::Lookup::Kind::started);  // asked of the origin again
  f.cache->finish(*refused_one.flight, SharedCache::StoreUpdate::none, nullptr, std::nullopt);
  // Once the remembered ones expire (the tick), there is room again.
  f.clock.advance(std::chrono::seconds(61));
  f.cache->expire_negative();
  CHECK(f.cache->negative_entries() == 0);
  remember("demo/missing9.ts");
  CHECK(f.cache->negative_entries() == 1);
  CHECK(f.cache->find_or_start("demo/missing9.ts", 0).kind == SharedCache::Lookup::Kind::negative);
}

TEST_CASE(
    "shared cache: a stored chunk is a hit until its deadline on the injected clock, then one "
    "flight revalidates it") {
  Fixture f;
  store(f, "/o/demo/live.m3u8", meta_of(100, f.clock, 1000ms));
  CHECK(f.cache->find_or_start("/o/demo/live.m3u8", 0).kind == SharedCache::Lookup::Kind::hit);
  f.clock.advance(999ms);
  CHECK(f.cache->find_or_start("/o/demo/live.m3u8", 1).kind == SharedCache::Lookup::Kind::hit);
  f.clock.advance(1ms);

  // Stale: two threads asking at once start exactly one flight, which carries the stored copy.
  constexpr int kPerThread = 2000;
  const Race race =
      race_two_loops(f, "/o/demo/live.m3u8", SharedCache::Lookup::Kind::revalidate, kPerThread);
  check_one_flight(race, 2 * kPerThread);
  auto flight = f.cache->find_or_start("/o/demo/live.m3u8", 0).flight;
  REQUIRE(flight != nullptr);
  REQUIRE(flight->stale() != nullptr);
  CHECK(flight->stale()->meta.etag == "\"v1\"");
  CHECK(flight->stale()->memory->size() == 100);
  CHECK(flight->body()->size() == 0);  // nothing downloaded for a 304
}

TEST_CASE(
    "shared cache: a 304 refreshes the stored metadata (new deadline, Age from now), the body "
    "stays") {
  Fixture f;
  store(f, "/o/demo/live.m3u8", meta_of(100, f.clock, 1000ms));
  f.clock.advance(5s);
  auto found = f.cache->find_or_start("/o/demo/live.m3u8", 0);
  REQUIRE(found.kind == SharedCache::Lookup::Kind::revalidate);
  ChunkMeta refreshed = meta_of(100, f.clock, 1000ms);
  refreshed.etag = "\"v1\"";
  f.cache->finish(*found.flight, SharedCache::StoreUpdate::refresh, &refreshed, std::nullopt);
  CHECK(f.cache->inflight() == 0);
  auto hit = f.cache->find_or_start("/o/demo/live.m3u8", 1);
  REQUIRE(hit.kind == SharedCache::Lookup::Kind::hit);
  CHECK(hit.hit->meta.vouched_ms == f.clock.unix_now_ms());
  CHECK(hit.hit->memory->copy() == std::string(100, 'x'));
  f.clock.advance(1000ms);
  CHECK(f.cache->find_or_start("/o/demo/live.m3u8", 1).kind ==
        SharedCache::Lookup::Kind::revalidate);
}

TEST_CASE(
    "shared cache: a revalidation answered 404 or no-store drops the copy; a failure keeps it "
    "stale") {
  Fixture f;
  store(f, "/o/demo/a.ts", meta_of(10, f.clock, 1s));
  store(f, "/o/demo/b.ts", meta_of(10, f.clock, 1s));
  f.clock.advance(2s);
  auto a = f.cache->find_or_start("/o/demo/a.ts", 0);
  REQUIRE(a.kind == SharedCache::Lookup::Kind::revalidate);
  f.cache->finish(*a.flight, SharedCache::StoreUpdate::erase, nullptr, std::nullopt);
  CHECK(f.cache->find_or_start("/o/demo/a.ts", 0).kind ==
        SharedCache::Lookup::Kind::started);  // a plain miss

  auto b = f.cache->find_or_start("/o/demo/b.ts", 0);
  REQUIRE(b.kind == SharedCache::Lookup::Kind::revalidate);
  f.cache->finish(*b.flight, SharedCache::StoreUpdate::none, nullptr, std::nullopt);
  CHECK(f.cache->find_or_start("/o/demo/b.ts", 1).kind == SharedCache::Lookup::Kind::revalidate);
}

TEST_CASE(
    "shared cache: a body that may not be stored (no-store) reaches its flight, and the next asker "
    "fetches again") {
  Fixture f;
  auto first = f.cache->find_or_start("/o/demo/private.ts", 0);
  REQUIRE(first.kind == SharedCache::Lookup::Kind::started);
  CHECK(f.cache->find_or_start("/o/demo/private.ts", 1).kind == SharedCache::Lookup::Kind::joined);
  first.flight->body()->append("secret");
  f.cache->finish(*first.flight, SharedCache::StoreUpdate::none, nullptr, std::nullopt);
  CHECK(first.flight->body()->copy() == "secret");  // the waiters still read it from the flight
  CHECK(f.cache->find_or_start("/o/demo/private.ts", 1).kind == SharedCache::Lookup::Kind::started);
}
