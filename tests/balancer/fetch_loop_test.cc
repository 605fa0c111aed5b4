// The balancer's fetch loop (ServiceContext::fetch): a real Balancer whose fetchers run on a
// loop of their own thread, against a real test_origin. While every serving loop is stalled
// (not run at all, as a loop busy with thousands of viewers' requests is late), a watched live
// playlist is still refreshed on its schedule, so the next viewer gets a current copy without
// waiting for origin.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "balancer/balancer.h"
#include "support/balancer_fixture.h"
#include "support/in_process_balancer.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer {
namespace fetch_loop_test {

using namespace std::chrono_literals;

test::TestOriginOptions origin_options(const test::TempDir& dir) {
  test::write_file(dir.file("live/master.m3u8"),
                   "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nindex.m3u8\n");
  test::write_file(dir.file("live/index.m3u8"), test::live_playlist(10, 3, 2));
  test::TestOriginOptions options;
  options.root = dir.path();
  return options;
}

struct Fixture : test::InProcessLoops {
  test::TempDir dir;
  test::TestOrigin origin{origin_options(dir)};

  Fixture() : InProcessLoops(ClockKind::real, FetchLoopKind::own_thread) {
    start(test::in_process_config(origin.base_url(),
                                  {test::channel_json("live", "/files/live/master.m3u8")}));
  }

  int get_status(const std::string& target) { return get(target).status; }

  uint64_t refresh_waits() {
    return metrics.counter("balancer_playlist_refresh_waits_total", "(registered by the balancer)")
        .value();
  }
};

TEST_CASE("fetch loop: a watched live playlist is refreshed while every serving loop stalls") {
  Fixture f;
  const std::string media = "/hls/live/files/live/index.m3u8?cache=venue-a&viewer=ann";
  REQUIRE(f.get_status(media) == 200);
  const int64_t before = f.origin.count("/files/live/index.m3u8");
  REQUIRE(before >= 1);
  // No serving loop runs from here: only the fetch loop's thread can refresh (every
  // live_refresh_ms, 250 ms). Four refreshes in 3 s at most.
  const bool refreshed = test::wait_until(
      [&] { return f.origin.count("/files/live/index.m3u8") >= before + 4; }, 3s, 10ms);
  CHECK_MESSAGE(refreshed, "origin saw ", f.origin.count("/files/live/index.m3u8") - before,
                " refreshes while the serving loops stalled");
  // The copy stayed current: the next viewer is answered from it, without waiting on origin.
  const uint64_t waits = f.refresh_waits();
  CHECK(f.get_status(media) == 200);
  CHECK(f.refresh_waits() == waits);
}

}  // namespace fetch_loop_test
}  // namespace balancer
