// SourceCache against a real test_origin, with a FakeClock deciding freshness:
// a live copy is served from memory until live_max_lag has passed on the
// injected clock, then never again without asking origin.
#include "balancer/source_cache.h"

#include <doctest/doctest.h>

#include <optional>

#include "common/clock.h"
#include "common/handles.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "support/origin_fixture.h"
#include "support/process.h"
#include "balancer_fixture.h"

namespace balancer {
namespace {

using namespace std::chrono_literals;

test::TestOriginOptions origin_options(const test::TempDir& dir) {
  test::TestOriginOptions options;
  options.root = dir.path();
  return options;
}

struct Fixture {
  test::TempDir dir;
  test::TestOrigin origin{origin_options(dir)};
  common::EventBasePtr base{event_base_new()};
  common::MetricsRegistry metrics;
  common::FakeClock clock;
  std::unique_ptr<common::HttpClient> client;
  std::unique_ptr<SourceCache> cache;

  explicit Fixture(PlaylistTimings timings) {
    auto made = common::HttpClient::create(*base, {});
    REQUIRE(made.ok());
    client = std::move(*made);
    cache = std::make_unique<SourceCache>(*base, *client, metrics, timings, clock);
  }

  // Asks for the playlist and runs the loop until the answer comes (10 s at most).
  SourceResult get(const std::string& path) {
    std::optional<SourceResult> answer;
    SourceRequest request{"demo", origin.base_url(), "/files" + path, {}};
    cache->get(request, [&](const SourceResult& r) { answer = r; });
    REQUIRE(test::wait_until(
        [&] {
          event_base_loop(base.get(), EVLOOP_NONBLOCK);
          return answer.has_value();
        },
        10s, 1ms));
    return *answer;
  }
};

PlaylistTimings no_background_refresh() {
  PlaylistTimings timings;
  timings.live_max_lag = 500ms;
  // Real-time timers drive background refreshes; keep them out of this test so
  // only the injected clock decides.
  timings.live_refresh = std::chrono::hours(1);
  timings.live_idle = std::chrono::hours(1);
  return timings;
}

}  // namespace

TEST_CASE("source cache: a live copy is fresh for live_max_lag on the injected clock, then refetched") {
  Fixture f(no_background_refresh());
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));

  SourceResult first = f.get("/live.m3u8");
  REQUIRE(first.version != nullptr);
  CHECK(first.from == SourceResult::From::miss);
  CHECK(f.origin.count("/files/live.m3u8") == 1);

  f.clock.advance(499ms);
  CHECK(f.get("/live.m3u8").from == SourceResult::From::hit);
  CHECK(f.origin.count("/files/live.m3u8") == 1);

  // Origin has moved on; one more millisecond and the old copy is too old to serve.
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(101, 5));
  f.clock.advance(2ms);
  SourceResult late = f.get("/live.m3u8");
  CHECK(late.from != SourceResult::From::hit);
  CHECK(f.origin.count("/files/live.m3u8") == 2);
  REQUIRE(late.version != nullptr);
  CHECK(late.version->serial > first.version->serial);
}

TEST_CASE("source cache: a failure answers for error_hold on the injected clock, then origin is asked again") {
  PlaylistTimings timings = no_background_refresh();
  timings.error_hold = 250ms;
  Fixture f(timings);
  SourceResult missing = f.get("/absent.m3u8");
  CHECK(missing.from == SourceResult::From::error);
  CHECK(missing.status == 404);
  CHECK(f.origin.count("/files/absent.m3u8") == 1);
  f.clock.advance(249ms);
  CHECK(f.get("/absent.m3u8").status == 404);
  CHECK(f.origin.count("/files/absent.m3u8") == 1);  // held
  test::write_file(f.dir.file("absent.m3u8"), test::live_playlist(1, 3));
  f.clock.advance(2ms);
  SourceResult found = f.get("/absent.m3u8");
  CHECK(found.from == SourceResult::From::miss);
  CHECK(f.origin.count("/files/absent.m3u8") == 2);
}

}  // namespace balancer
