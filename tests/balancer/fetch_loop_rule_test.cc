// The fetch loop's own objects (SourceCache, KeyStore) keep to their loop: while that loop runs
// on its thread, each entry point called from another thread aborts (builds with the thread
// checks, BALANCER_THREAD_CHECKS), and the same calls made on the loop's thread run.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "balancer/sources/key_store.h"
#include "balancer/sources/source_cache.h"
#include "core/thread_rule.h"
#include "support/balancer_fixture.h"
#include "support/origin_client_fixture.h"
#include "support/running_loop.h"

namespace balancer {
namespace fetch_loop_rule_test {

using namespace std::chrono_literals;

struct Fixture : test::OriginClient {
  std::unique_ptr<SourceCache> cache;
  std::unique_ptr<KeyStore> keys;

  Fixture() {
    PlaylistTimings timings;
    cache = std::make_unique<SourceCache>(loop, *client, metrics, timings, clock);
    keys = std::make_unique<KeyStore>(loop, *client, metrics, KeyStoreOptions{}, clock);
    test::write_file(dir.file("live.m3u8"), test::live_playlist(100, 5));
    test::write_file(dir.file("k.key"), "0123456789abcdef");
  }
  SourceRequest request() const {
    return SourceRequest{"demo", origin.base_url(), "/files/live.m3u8", {}, {}, false};
  }
};

TEST_CASE("fetch loop: its source cache and key store abort a call from another thread") {
  if (!core::kThreadChecks) {
    MESSAGE("thread checks are off in this build (BALANCER_THREAD_CHECKS): nothing to check");
    return;
  }
  Fixture f;
  test::RunningLoop running(f.loop);
  SourceCache& cache = *f.cache;
  test::check_stopped_off_its_loop([&] { cache.get(f.request(), [](const SourceResult&) {}); });
  test::check_stopped_off_its_loop([&] { cache.stop_refreshing(); });
  test::check_stopped_off_its_loop([&] { cache.force_source("live", std::nullopt); });
  test::check_stopped_off_its_loop([&] { cache.channel_sources("live"); });
  test::check_stopped_off_its_loop([&] { cache.channels_with_sources(); });
  test::check_stopped_off_its_loop([&] { cache.set_timings(PlaylistTimings{}); });
  test::check_stopped_off_its_loop([&] { cache.set_prefetch_sink({}); });
  test::check_stopped_off_its_loop([&] { cache.entries(); });
  test::check_stopped_off_its_loop([&] { cache.refreshing(); });
  test::check_stopped_off_its_loop([&] { cache.playlist_parses(); });
  KeyStore& keys = *f.keys;
  test::check_stopped_off_its_loop([&] { keys.get(f.origin.url("/files/k.key"), {}); });
  test::check_stopped_off_its_loop([&] { keys.set_options(KeyStoreOptions{}); });
}

TEST_CASE("fetch loop: on its own thread the source cache and key store answer") {
  Fixture f;
  std::atomic<bool> playlist_answered{false}, playlist_found{false};
  std::atomic<bool> key_answered{false}, key_found{false};
  std::atomic<size_t> entries{0};
  {
    test::RunningLoop running(f.loop);
    f.loop.post([&] {
      f.cache->get(f.request(), [&](const SourceResult& r) {
        entries = f.cache->entries();
        playlist_found = r.version != nullptr;
        playlist_answered = true;
      });
      f.keys->get(f.origin.url("/files/k.key"), [&](const KeyResult& r) {
        key_found = r.key != nullptr;
        key_answered = true;
      });
    });
    REQUIRE(test::wait_until([&] { return playlist_answered && key_answered; }, 10s, 1ms));
  }
  CHECK(playlist_found);
  CHECK(key_found);
  CHECK(entries == 1);
}

}  // namespace fetch_loop_rule_test
}  // namespace balancer
