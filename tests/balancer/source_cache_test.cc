// SourceCache against a real test_origin, with a FakeClock deciding freshness:
// a live copy is served from memory until live_max_lag has passed on the
// injected clock, then never again without asking origin.
#include "balancer/sources/source_cache.h"

#include <doctest/doctest.h>

#include <functional>
#include <optional>

#include "support/balancer_fixture.h"
#include "support/origin_client_fixture.h"

namespace balancer {
namespace source_cache_test {

using namespace std::chrono_literals;

struct Fixture : test::OriginClient {
  std::unique_ptr<SourceCache> cache;

  explicit Fixture(PlaylistTimings timings) {
    cache = std::make_unique<SourceCache>(loop, *client, metrics, timings, clock);
  }

  // Asks for the playlist and runs the loop until the answer comes (10 s at most).
  SourceResult get(const std::string& path, DeliveryDirectives directives = {},
                   LiveEndPolicy live = {}, bool prefetch = false) {
    std::optional<SourceResult> answer;
    SourceRequest request{"demo", origin.base_url(), "/files" + path, directives, live, prefetch};
    cache->get(request, [&](const SourceResult& r) { answer = r; });
    REQUIRE(run_until([&] { return answer.has_value(); }));
    return *answer;
  }
};

// `adjust` changes what a test is about.
PlaylistTimings no_background_refresh(const std::function<void(PlaylistTimings&)>& adjust =
                                          [](PlaylistTimings&) {}) {
  PlaylistTimings timings;
  timings.live_max_lag = 500ms;
  // Real-time timers drive background refreshes; keep them out of this test so
  // only the injected clock decides.
  timings.live_refresh = std::chrono::hours(1);
  timings.live_idle = std::chrono::hours(1);
  adjust(timings);
  return timings;
}

TEST_CASE(
    "source cache: a live copy is fresh for live_max_lag on the injected clock, then refetched") {
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

TEST_CASE(
    "source cache: a failure answers for error_hold on the injected clock, then origin is asked "
    "again") {
  Fixture f(no_background_refresh([](PlaylistTimings& t) { t.error_hold = 250ms; }));
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

TEST_CASE(
    "source cache: LL-HLS directives against an origin that does not block cost no origin fetch") {
  Fixture f(no_background_refresh());
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  DeliveryDirectives directives;
  directives.msn = 105;
  // Before the ordinary copy is known: answered as the ordinary request.
  SourceResult first = f.get("/live.m3u8", directives);
  REQUIRE(first.version != nullptr);
  CHECK(f.origin.count("/files/live.m3u8") == 1);
  CHECK(f.origin.count("/files/live.m3u8?_HLS_msn=105") == 0);
  // Every distinct value afterwards: from the shared copy, no entry of its own.
  for (uint64_t msn = 100; msn < 164; ++msn) {
    DeliveryDirectives d;
    d.msn = msn;
    d.part = msn % 3;
    d.skip = msn % 2 ? "YES" : "";
    CAPTURE(msn);
    SourceResult r = f.get("/live.m3u8", d);
    CHECK(r.from == SourceResult::From::hit);
    CHECK(r.version == first.version);
  }
  CHECK(f.origin.total() == 1);
  CHECK(f.cache->entries() == 1);
}

TEST_CASE(
    "source cache: an origin that can block gets the directives, within a bound per playlist") {
  Fixture f(no_background_refresh([](PlaylistTimings& t) { t.max_directive_entries = 3; }));
  test::write_file(f.dir.file("ll.m3u8"),
                   test::live_playlist(10, 3, 2, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"));
  REQUIRE(f.get("/ll.m3u8").version != nullptr);
  auto ask = [&](uint64_t msn, std::optional<uint64_t> part) {
    DeliveryDirectives d;
    d.msn = msn;
    d.part = part;
    return f.get("/ll.m3u8", d);
  };
  CHECK(ask(13, 0).from == SourceResult::From::miss);
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=13&_HLS_part=0") == 1);
  CHECK(ask(13, 1).from == SourceResult::From::miss);
  CHECK(ask(14, std::nullopt).from == SourceResult::From::miss);
  // A fourth distinct key for this playlist: refused, origin not asked.
  SourceResult over = ask(13, 2);
  CHECK(over.from == SourceResult::From::error);
  CHECK(over.status == 503);
  CHECK(over.error.code == "busy");
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=13&_HLS_part=2") == 0);
  // Keys already held still answer; the skip directive is dropped (no CAN-SKIP-UNTIL).
  CHECK(ask(13, 0).status != 503);
  DeliveryDirectives skip;
  skip.skip = "YES";
  CHECK(f.get("/ll.m3u8", skip).from == SourceResult::From::hit);
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_skip=YES") == 0);
}

TEST_CASE(
    "source cache: a blocking reload asking for a delta update (YES or v2) gets one built from "
    "the full playlist, which is what origin is asked for: one upstream copy per part, skip or "
    "not") {
  Fixture f(no_background_refresh());
  test::write_file(
      f.dir.file("ll.m3u8"),
      test::live_playlist(10, 8, 1,
                          "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=3.0\n"));
  REQUIRE(f.get("/ll.m3u8").version != nullptr);
  DeliveryDirectives d;
  d.msn = 18;
  d.skip = "YES";
  SourceResult delta = f.get("/ll.m3u8", d);
  REQUIRE(delta.version != nullptr);
  CHECK(delta.version->playlist.media.is_delta_update());
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=18") == 1);
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=18&_HLS_skip=YES") == 0);
  // _HLS_skip=v2: the same delta update, from the same copy (origin is never asked for a v2
  // copy of each part: an attacker could make one fetch per distinct key).
  d.skip = "v2";
  SourceResult v2 = f.get("/ll.m3u8", d);
  REQUIRE(v2.version != nullptr);
  CHECK(v2.from == SourceResult::From::hit);
  CHECK(v2.version->playlist.media.is_delta_update());
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=18&_HLS_skip=v2") == 0);
  d.msn.reset();
  CHECK(f.get("/ll.m3u8", d).version->playlist.media.is_delta_update());
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_skip=v2") == 0);
  d.msn = 18;
  // The same part without the skip: the same copy, whole.
  d.skip.clear();
  SourceResult full = f.get("/ll.m3u8", d);
  REQUIRE(full.version != nullptr);
  CHECK(full.from == SourceResult::From::hit);
  CHECK(!full.version->playlist.media.is_delta_update());
  CHECK(f.origin.count("/files/ll.m3u8?_HLS_msn=18") == 1);
}

TEST_CASE(
    "source cache: a blocking reload the fresh shared copy answers, or shows too far ahead, costs "
    "no origin fetch") {
  Fixture f(no_background_refresh());
  test::write_file(f.dir.file("ll.m3u8"),
                   test::live_playlist(10, 3, 2, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"));
  SourceResult ordinary = f.get("/ll.m3u8");
  REQUIRE(ordinary.version != nullptr);
  DeliveryDirectives present;
  present.msn = 11;  // already in the copy (segments 10 to 12)
  SourceResult hit = f.get("/ll.m3u8", present);
  CHECK(hit.from == SourceResult::From::hit);
  CHECK(hit.version == ordinary.version);
  DeliveryDirectives far;
  far.msn = 16;  // more than two segments past the next one (13)
  SourceResult refused = f.get("/ll.m3u8", far);
  CHECK(refused.from == SourceResult::From::error);
  CHECK(refused.status == 400);
  CHECK(refused.error.code == "bad_request");
  CHECK(refused.error.message == "_HLS_msn or _HLS_part is too far ahead of the playlist.");
  CHECK(f.origin.total() == 1);
  CHECK(f.cache->entries() == 1);
}

TEST_CASE(
    "source cache: a new playlist beyond max_entries is refused 503 busy; those held still "
    "answer") {
  Fixture f(no_background_refresh([](PlaylistTimings& t) { t.max_entries = 2; }));
  for (const char* name : {"a.m3u8", "b.m3u8", "c.m3u8"})
    test::write_file(f.dir.file(name), test::live_playlist(1, 3));
  REQUIRE(f.get("/a.m3u8").version != nullptr);
  REQUIRE(f.get("/b.m3u8").version != nullptr);
  SourceResult over = f.get("/c.m3u8");
  CHECK(over.from == SourceResult::From::error);
  CHECK(over.status == 503);
  CHECK(over.error.code == "busy");
  CHECK(over.error.message == "Too many distinct playlists are being served; try again shortly.");
  CHECK(f.origin.count("/files/c.m3u8") == 0);
  CHECK(f.get("/a.m3u8").from == SourceResult::From::hit);
  CHECK(f.cache->entries() == 2);
}

TEST_CASE(
    "source cache: above max_segments a live playlist becomes its newest window, a VOD one is "
    "refused") {
  Fixture f(no_background_refresh([](PlaylistTimings& t) { t.max_segments = 16; }));
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 40));
  SourceResult live = f.get("/live.m3u8");
  REQUIRE(live.version != nullptr);
  const hls::MediaInfo& media = live.version->playlist.media;
  CHECK(media.segments.size() == 16);
  CHECK(media.media_sequence == 124);
  CHECK(live.version->kind == SourceKind::live);
  CHECK(live.version->plan.chunk_slots == 16);
  CHECK(live.version->total_duration_s == doctest::Approx(32));
  CHECK(f.metrics.render().find("balancer_playlist_windowed_total 1") != std::string::npos);

  // The same origin bytes again (a new ETag, as a packager rewriting the file would give):
  // the windowed version is kept, not parsed again.
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 40));
  f.clock.advance(501ms);
  SourceResult again = f.get("/live.m3u8");
  CHECK(again.version == live.version);
  CHECK(f.origin.count("/files/live.m3u8") == 2);

  // Within the limit: served whole, as before.
  test::write_file(f.dir.file("short.m3u8"), test::live_playlist(1, 16));
  CHECK(f.get("/short.m3u8").version->playlist.media.segments.size() == 16);

  test::write_file(f.dir.file("vod.m3u8"), test::live_playlist(1, 17) + "#EXT-X-ENDLIST\n");
  SourceResult vod = f.get("/vod.m3u8");
  CHECK(vod.from == SourceResult::From::error);
  CHECK(vod.status == 502);
  CHECK(vod.error.code == "source_too_many_segments");
  CHECK(vod.error.message.find("17 segments, over the limit of 16") != std::string::npos);
}

}  // namespace source_cache_test
}  // namespace balancer

namespace balancer::source_cache_test {

TEST_CASE(
    "source cache: a live end tag is held back, then passed on once due, with origin's copy "
    "unchanged (304)") {
  Fixture f(no_background_refresh());
  LiveEndPolicy live;
  live.end_confirm = 10s;
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  SourceResult first = f.get("/live.m3u8", {}, live);
  REQUIRE(first.version != nullptr);
  CHECK(first.version->kind == SourceKind::live);

  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5) + "#EXT-X-ENDLIST\n");
  f.clock.advance(1s);
  SourceResult held = f.get("/live.m3u8", {}, live);
  REQUIRE(held.version != nullptr);
  CHECK(held.version->kind == SourceKind::live);  // still refreshed at live cadence
  CHECK_FALSE(held.version->playlist.media.endlist);

  // Same bytes from origin (a 304): nothing changes until the end is due.
  f.clock.advance(1s);
  SourceResult still = f.get("/live.m3u8", {}, live);
  CHECK_FALSE(still.version->playlist.media.endlist);
  CHECK(still.version->serial == held.version->serial);
  f.clock.advance(10s);
  SourceResult due = f.get("/live.m3u8", {}, live);
  REQUIRE(due.version != nullptr);
  CHECK(due.version->playlist.media.endlist);
  CHECK(due.version->kind == SourceKind::vod);
  CHECK(f.origin.not_modified("/files/live.m3u8") >= 2);
}

TEST_CASE(
    "source cache: the operator marking a channel finished passes a held end tag on at the next "
    "request") {
  Fixture f(no_background_refresh());
  LiveEndPolicy live;
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  f.get("/live.m3u8", {}, live);
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5) + "#EXT-X-ENDLIST\n");
  f.clock.advance(1s);
  CHECK_FALSE(f.get("/live.m3u8", {}, live).version->playlist.media.endlist);
  live.finished = true;
  // Fresh by age, but built under the previous policy: origin is asked (a 304) and it is rebuilt.
  SourceResult finished = f.get("/live.m3u8", {}, live);
  REQUIRE(finished.version != nullptr);
  CHECK(finished.version->playlist.media.endlist);
}

}  // namespace balancer::source_cache_test

namespace balancer::source_cache_test {

TEST_CASE(
    "source cache: a refresh revealing new live segments names them for prefetch, to the caches "
    "viewers used") {
  Fixture f(no_background_refresh());
  struct Offer {
    std::string origin_id;
    std::vector<std::string> targets;
    uint64_t caches = 0;
  };
  std::vector<Offer> offers;
  f.cache->set_prefetch_sink(
      [&](const std::string& origin_id, const std::vector<std::string>& targets, uint64_t caches) {
        offers.push_back({origin_id, targets, caches});
      });
  auto refresh = [&](const std::string& path, uint64_t first, bool prefetch) {
    test::write_file(f.dir.file(path.substr(1)), test::live_playlist(first, 5));
    f.clock.advance(501ms);
    return f.get(path, {}, {}, prefetch);
  };
  SourceResult v1 = refresh("/live.m3u8", 100, true);
  REQUIRE(v1.version != nullptr);
  CHECK(offers.empty());  // nobody was sent to a cache with the version before
  v1.version->cache_use.note(2);
  v1.version->cache_use.note(2);
  v1.version->cache_use.note(70);  // past the 64 caches a mask holds: not noted
  CHECK(v1.version->cache_use.mask() == 4);

  SourceResult v2 = refresh("/live.m3u8", 102, true);
  REQUIRE(offers.size() == 1);
  CHECK(offers[0].origin_id == "demo");
  CHECK(offers[0].targets == std::vector<std::string>{"/files/seg105.ts", "/files/seg106.ts"});
  CHECK(offers[0].caches == 4);
  // No viewer of v2 yet: the viewers of v1 (the version before) are still asked.
  refresh("/live.m3u8", 103, true);
  REQUIRE(offers.size() == 2);
  CHECK(offers[1].targets == std::vector<std::string>{"/files/seg107.ts"});
  CHECK(offers[1].caches == 4);
  // Two versions without a viewer: nobody to ask.
  refresh("/live.m3u8", 104, true);
  CHECK(offers.size() == 2);
  // The same segments (origin rewrote the file): nothing new.
  SourceResult same = refresh("/live.m3u8", 104, true);
  same.version->cache_use.note(0);
  refresh("/live.m3u8", 104, true);
  CHECK(offers.size() == 2);
}

TEST_CASE(
    "source cache: LL-HLS: a new preload hint of a whole part is named for prefetch; parts, "
    "byte-range hints "
    "and a hint already named are not") {
  Fixture f(no_background_refresh());
  std::vector<std::vector<std::string>> offers;
  f.cache->set_prefetch_sink([&](const std::string&, const std::vector<std::string>& targets,
                                 uint64_t) { offers.push_back(targets); });
  // No CAN-BLOCK-RELOAD: the cache would follow the origin in the background (here the
  // injected clock alone decides when it asks).
  auto publish = [&](const std::string& parts_and_hint) {
    test::write_file(
        f.dir.file("ll.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.25\n"
        "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.75\n#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\nseg10.m4s\n" +
            parts_and_hint);
    f.clock.advance(501ms);
    return f.get("/ll.m3u8", {}, {}, true);
  };
  SourceResult v1 = publish(
      "#EXT-X-PART:DURATION=0.25,URI=\"seg11.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg11.1.m4s\"\n");
  REQUIRE(v1.version != nullptr);
  v1.version->cache_use.note(0);
  publish(
      "#EXT-X-PART:DURATION=0.25,URI=\"seg11.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PART:DURATION=0.25,URI=\"seg11.1.m4s\"\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg11.2.m4s\"\n");
  REQUIRE(offers.size() == 1);
  // Not seg11.1.m4s: listed now, it was the hint before (its viewers asked then).
  CHECK(offers[0] == std::vector<std::string>{"/files/seg11.2.m4s"});
  // A hint of a byte range of the segment in progress is left to the viewers' ranges.
  publish(
      "#EXT-X-PART:DURATION=0.25,URI=\"seg11.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PART:DURATION=0.25,URI=\"seg11.1.m4s\"\n#EXT-X-PART:DURATION=0.25,URI=\"seg11.2."
      "m4s\"\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg11.m4s\",BYTERANGE-START=3000\n");
  CHECK(offers.size() == 1);
}

TEST_CASE(
    "source cache: a channel with prefetch off, or a VOD playlist, is never named for prefetch") {
  Fixture f(no_background_refresh());
  int offers = 0;
  f.cache->set_prefetch_sink(
      [&](const std::string&, const std::vector<std::string>&, uint64_t) { ++offers; });
  test::write_file(f.dir.file("off.m3u8"), test::live_playlist(1, 5));
  SourceResult off = f.get("/off.m3u8", {}, {}, false);
  off.version->cache_use.note(0);
  test::write_file(f.dir.file("off.m3u8"), test::live_playlist(2, 5));
  f.clock.advance(501ms);
  f.get("/off.m3u8", {}, {}, false);
  CHECK(offers == 0);
  test::write_file(f.dir.file("vod.m3u8"), test::live_playlist(1, 5) + "#EXT-X-ENDLIST\n");
  SourceResult vod = f.get("/vod.m3u8", {}, {}, true);
  vod.version->cache_use.note(0);
  test::write_file(f.dir.file("vod.m3u8"), test::live_playlist(1, 6) + "#EXT-X-ENDLIST\n");
  f.clock.advance(std::chrono::hours(2));
  f.get("/vod.m3u8", {}, {}, true);
  CHECK(offers == 0);
}

}  // namespace balancer::source_cache_test

namespace balancer::source_cache_test {

// Background refreshes run on the loop's timers (real time), so these tests give the cache the
// real clock; the origin is test_origin holding each answer back (delay_ms).
struct RealTimeFixture : test::OriginClient {
  std::unique_ptr<SourceCache> cache;
  explicit RealTimeFixture(PlaylistTimings timings) {
    cache = std::make_unique<SourceCache>(loop, *client, metrics, timings, core::Clock::real());
  }
  SourceRequest request(const std::string& target) const {
    return SourceRequest{"demo", origin.base_url(), target, {}, {}, false};
  }
  double metric(const std::string& series) const {
    return test::metric_value(metrics.render(), series).value_or(-1);
  }
  // Origin lists a live window from 100: the request for it, with `query` (delay_ms=...).
  SourceRequest live_window(const std::string& query = "") {
    test::write_file(dir.file("live.m3u8"), test::live_playlist(100, 5));
    return request("/files/live.m3u8" + query);
  }
};

PlaylistTimings live_timings() {
  PlaylistTimings timings;
  timings.live_max_lag = 500ms;
  timings.live_refresh = 250ms;
  timings.live_idle = 10s;
  return timings;
}

// What viewers asking every 10 ms for `span` got: answers given at once from memory (and the
// oldest copy among them), and answers that waited for an origin fetch.
struct Watched {
  int at_once = 0;
  int waited = 0;
  Millis oldest{0};
};

Watched watch(RealTimeFixture& f, const SourceRequest& request, std::chrono::milliseconds span) {
  Watched watched;
  int pending = 0;
  core::LoopTimer asking(*f.base, core::LoopTimer::Repeat::every, [&] {
    auto inside_get = std::make_shared<bool>(true);
    ++pending;
    f.cache->get(request, [&, inside_get](const SourceResult& r) {
      --pending;
      if (!*inside_get || r.version == nullptr) {
        ++watched.waited;
        return;
      }
      ++watched.at_once;
      watched.oldest = std::max(watched.oldest,
                                std::chrono::duration_cast<Millis>(Clock::now() - r.validated_at));
    });
    *inside_get = false;
  });
  asking.start(10ms);
  const auto end = Clock::now() + span;
  REQUIRE(f.run_until([&] { return Clock::now() >= end; }, span + 1s));
  asking.cancel();
  // Answers still owed come after one origin fetch at most.
  REQUIRE(f.run_until([&] { return pending == 0; }, 5s));
  return watched;
}

// What viewers got, and the most refreshes origin held at once, in one line.
std::string seen(const Watched& watched, const RealTimeFixture& f) {
  return std::to_string(watched.at_once) + " answers at once (oldest copy " +
         std::to_string(watched.oldest.count()) + " ms), " + std::to_string(watched.waited) +
         " waited; origin held " + std::to_string(f.origin.max_in_flight()) +
         " refreshes at most at once";
}

TEST_CASE(
    "source cache: with a 300 ms origin, refreshes are sent ahead and overlap: no viewer waits "
    "and no copy served is older than live_max_lag") {
  RealTimeFixture f(live_timings());
  // One refresh at a time, a copy would be 600 ms old when the next answer lands. Sent ahead,
  // ~100 ms apart, each lands ~100 ms before the copy in hand is 500 ms old.
  const SourceRequest request = f.live_window("?delay_ms=300");
  // The first viewer waits for the first copy; refreshes then start once its round trip is
  // known. Until the first refresh lands (two round trips from the start) the copy is too old.
  Watched warm_up = watch(f, request, 1000ms);
  CHECK(warm_up.at_once > 0);
  REQUIRE(f.origin.reset());
  const double waits_before = f.metric("balancer_playlist_refresh_waits_total");

  Watched watched = watch(f, request, 2500ms);
  MESSAGE("300 ms origin: " << seen(watched, f));
  CHECK(watched.waited == 0);
  CHECK(watched.at_once >= 100);
  CHECK(watched.oldest <= 500ms);
  CHECK(f.metric("balancer_playlist_refresh_waits_total") == waits_before);
  // ~300 ms round trips ~100 ms apart: three at once, never more.
  CHECK(f.origin.max_in_flight() >= 2);
  CHECK(f.origin.max_in_flight() <= 3);
}

TEST_CASE(
    "source cache: an origin slower than live_max_lag gets at most three refreshes of a copy at "
    "once, and viewers of a copy too old wait (counted)") {
  RealTimeFixture f(live_timings());
  Watched watched = watch(f, f.live_window("?delay_ms=900"), 3000ms);
  MESSAGE("900 ms origin: " << seen(watched, f) << ", "
                            << f.metric("balancer_playlist_refresh_waits_total")
                            << " refresh waits counted");
  CHECK(f.origin.max_in_flight() == 3);
  // Every answer lands older than live_max_lag: whoever asks between two waits.
  CHECK(watched.waited > 0);
  CHECK(f.metric("balancer_playlist_refresh_waits_total") >= 1);
  CHECK(watched.oldest <= 500ms);
}

TEST_CASE(
    "source cache: a near origin is refreshed one fetch at a time, live_refresh apart, and "
    "nobody waits") {
  RealTimeFixture f(live_timings());
  const SourceRequest request = f.live_window();
  watch(f, request, 300ms);
  const double refreshes_before =
      f.metric("balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}");
  REQUIRE(f.origin.reset());
  Watched watched = watch(f, request, 2000ms);
  const double refreshes =
      f.metric("balancer_origin_fetches_total{resource=\"playlist\",trigger=\"refresh\"}") -
      refreshes_before;
  MESSAGE("near origin: " << refreshes << " refreshes in 2 s, oldest copy served "
                          << watched.oldest.count() << " ms");
  CHECK(watched.waited == 0);
  CHECK(f.origin.max_in_flight() == 1);
  // 2 s / 250 ms, plus the one a timer may have sent as the watch ended.
  CHECK(refreshes <= 9);
  CHECK(refreshes >= 6);
}

TEST_CASE(
    "source cache: each origin version is parsed once (the channel's hold-backs included); an "
    "unchanged copy is not parsed again") {
  Fixture f(no_background_refresh());
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  REQUIRE(f.get("/live.m3u8").version != nullptr);
  CHECK(f.cache->playlist_parses() == 1);
  // Origin unchanged: the same bytes are not parsed again.
  f.clock.advance(501ms);
  REQUIRE(f.get("/live.m3u8").version != nullptr);
  CHECK(f.origin.count("/files/live.m3u8") == 2);
  CHECK(f.cache->playlist_parses() == 1);
  // A new origin version: one parse.
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(101, 5));
  f.clock.advance(501ms);
  REQUIRE(f.get("/live.m3u8").version != nullptr);
  CHECK(f.cache->playlist_parses() == 2);
  // A channel with its own target latency: origin's body with its hold-backs, parsed once.
  std::optional<SourceResult> held;
  SourceRequest request{"demo", f.origin.base_url(), "/files/live.m3u8", {}, {}, false, 12.0};
  f.cache->get(request, [&](const SourceResult& r) { held = r; });
  REQUIRE(f.run_until([&] { return held.has_value(); }));
  REQUIRE(held->version != nullptr);
  CHECK(held->version->playlist.media.server_control.hold_back);
  CHECK(f.cache->playlist_parses() == 3);
}

}  // namespace balancer::source_cache_test
