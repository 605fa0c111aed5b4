// Freshness rules of source playlists and LL-HLS blocking-reload checks.
#include "balancer/sources/source_policy.h"

#include <doctest/doctest.h>

namespace balancer {
namespace {

using namespace std::chrono_literals;

hls::Playlist parse(std::string_view text) {
  auto r = hls::parse_playlist(text, "http://o.example/live/index.m3u8");
  REQUIRE(r.ok());
  return std::move(r).value();
}

TEST_CASE("playlists are classified as master, live or VOD") {
  CHECK(classify(parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")) == SourceKind::master);
  CHECK(classify(parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n")) ==
        SourceKind::live);
  CHECK(classify(parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n")) ==
        SourceKind::vod);
  CHECK(classify(parse(
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n")) ==
        SourceKind::vod);
  CHECK(classify(parse(
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n")) ==
        SourceKind::live);
}

TEST_CASE("a live copy is fresh for live_max_lag at most; masters and VOD for their TTLs") {
  PlaylistTimings t;
  t.live_max_lag = 500ms;
  t.master_ttl = 5000ms;
  t.vod_ttl = 300000ms;
  CHECK(is_fresh(SourceKind::live, 0ms, t));
  CHECK(is_fresh(SourceKind::live, 500ms, t));
  CHECK_FALSE(is_fresh(SourceKind::live, 501ms, t));
  CHECK(is_fresh(SourceKind::master, 4999ms, t));
  CHECK_FALSE(is_fresh(SourceKind::master, 5000ms, t));
  CHECK(is_fresh(SourceKind::vod, 299999ms, t));
  CHECK_FALSE(is_fresh(SourceKind::vod, 300000ms, t));
}

TEST_CASE(
    "after an origin failure the last good copy serves for media_stale, at least one target "
    "duration") {
  PlaylistTimings t;
  t.master_stale = 30000ms;
  t.media_stale = 0ms;
  CHECK(may_serve_stale(SourceKind::live, 2000ms, 2000ms, t));
  CHECK_FALSE(may_serve_stale(SourceKind::live, 2001ms, 2000ms, t));
  CHECK(may_serve_stale(SourceKind::vod, 6000ms, 6000ms, t));
  t.media_stale = 60000ms;
  CHECK(may_serve_stale(SourceKind::live, 60000ms, 2000ms, t));
  CHECK_FALSE(may_serve_stale(SourceKind::live, 60001ms, 2000ms, t));
  CHECK(may_serve_stale(SourceKind::vod, 60000ms, 6000ms, t));
  CHECK(may_serve_stale(SourceKind::master, 30000ms, 0ms, t));
  CHECK_FALSE(may_serve_stale(SourceKind::master, 30001ms, 0ms, t));
}

TEST_CASE("target duration has a floor and a default") {
  CHECK(target_duration_of(parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n")) ==
        4000ms);
  CHECK(target_duration_of(parse("#EXTM3U\n#EXT-X-TARGETDURATION:0\n#EXTINF:0.5,\na.ts\n")) ==
        1000ms);
}

const char* kLowLatency =
    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n"
    "#EXTINF:2,\ns10.m4s\n#EXTINF:2,\ns11.m4s\n"
    "#EXT-X-PART:DURATION=0.5,URI=\"s12.0.m4s\"\n#EXT-X-PART:DURATION=0.5,URI=\"s12.1.m4s\"\n"
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s12.2.m4s\"\n";

TEST_CASE("a copy answers a blocking reload when it holds the segment or part asked for") {
  hls::Playlist p = parse(kLowLatency);
  const hls::MediaInfo& m = p.media;
  CHECK(satisfies_blocking(m, 10, std::nullopt));
  CHECK(satisfies_blocking(m, 11, std::nullopt));
  CHECK(satisfies_blocking(m, 11, 3u));                  // a complete segment has all its parts
  CHECK_FALSE(satisfies_blocking(m, 12, std::nullopt));  // segment 12 is not complete
  CHECK(satisfies_blocking(m, 12, 0u));
  CHECK(satisfies_blocking(m, 12, 1u));
  CHECK_FALSE(satisfies_blocking(m, 12, 2u));  // only hinted
  CHECK_FALSE(satisfies_blocking(m, 13, 0u));
  // §6.2.5.2: 400 for an msn more than two past the last segment (11).
  CHECK_FALSE(directives_too_far(m, 13, std::nullopt));
  CHECK(directives_too_far(m, 14, std::nullopt));
  // Advance Part Limit: 3 / 0.5 s = 6 parts past the last part (12.1); later segments count
  // ceil(2 s / 0.5 s) = 4 parts each.
  CHECK(advance_part_limit(m) == 6);
  CHECK_FALSE(directives_too_far(m, 12, 7u));
  CHECK(directives_too_far(m, 12, 8u));
  CHECK_FALSE(directives_too_far(m, 13, 3u));
  CHECK(directives_too_far(m, 13, 4u));
  CHECK(directives_too_far(m, 12, 1000000u));
}

const char* kPartsOfComplete =
    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=1.0\n#EXT-X-MEDIA-SEQUENCE:10\n"
    "#EXTINF:2,\ns10.m4s\n"
    "#EXT-X-PART:DURATION=1.0,URI=\"s11.0.m4s\"\n#EXT-X-PART:DURATION=1.0,URI=\"s11.1.m4s\"\n"
    "#EXTINF:2,\ns11.m4s\n"
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s12.0.m4s\"\n";

TEST_CASE(
    "a part past the final part of a complete segment means part 0 of the next (RFC 8216bis "
    "6.2.5.2)") {
  hls::Playlist p = parse(kPartsOfComplete);
  const hls::MediaInfo& m = p.media;
  CHECK(normalize_blocking(m, 11, 1u) == BlockingTarget{11, 1u});
  CHECK(normalize_blocking(m, 11, 2u) == BlockingTarget{12, 0u});
  CHECK(normalize_blocking(m, 11, 9u) == BlockingTarget{12, 0u});
  // Segment 10's parts are no longer listed: complete, answered as it is.
  CHECK(normalize_blocking(m, 10, 7u) == BlockingTarget{10, 7u});
  CHECK(satisfies_blocking(m, 11, 1u));
  // Before, segment 11 being complete answered this at once; it waits for 12.0.
  CHECK_FALSE(satisfies_blocking(m, 11, 2u));
  CHECK(satisfies_blocking(m, 10, 7u));
  // PART-TARGET of a second: the limit is 3 parts past the last (11.1); 2 parts a segment.
  CHECK(advance_part_limit(m) == 3);
  CHECK_FALSE(directives_too_far(m, 12, 2u));  // 11.1 + 3
  CHECK(directives_too_far(m, 12, 3u));
  CHECK_FALSE(directives_too_far(m, 13, 0u));
  CHECK(directives_too_far(m, 13, 1u));
  CHECK(directives_too_far(m, 14, std::nullopt));
}

TEST_CASE("with EXT-X-ENDLIST blocking directives are ignored: answered at once, never 400") {
  hls::Playlist p = parse(std::string(kPartsOfComplete) + "#EXT-X-ENDLIST\n");
  const hls::MediaInfo& m = p.media;
  CHECK(satisfies_blocking(m, 12, 0u));
  CHECK(satisfies_blocking(m, 40, std::nullopt));
  CHECK_FALSE(directives_too_far(m, 40, 9u));
}

TEST_CASE("a low-latency playlist of an origin that can block is followed part by part") {
  const std::string can_block = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n";
  const std::string low_latency(kLowLatency);
  const std::string header = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n";
  // After the last part listed (12.1): 12.2.
  CHECK(next_part_to_follow(parse(header + can_block + low_latency.substr(header.size())).media) ==
        BlockingTarget{12, 2u});
  // A segment just completed, none of the next listed: its part 0.
  CHECK(next_part_to_follow(parse(std::string(kPartsOfComplete).insert(8, can_block)).media) ==
        BlockingTarget{12, 0u});
  // Not without CAN-BLOCK-RELOAD, without parts, or once ended.
  CHECK_FALSE(next_part_to_follow(parse(kLowLatency).media).has_value());
  CHECK_FALSE(
      next_part_to_follow(
          parse("#EXTM3U\n" + can_block + "#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns1.ts\n").media)
          .has_value());
  CHECK_FALSE(
      next_part_to_follow(
          parse(header + can_block + low_latency.substr(header.size()) + "#EXT-X-ENDLIST\n").media)
          .has_value());
}

TEST_CASE("a blocked reload waits at most three target durations") {
  CHECK(blocking_wait_limit(Millis(2000)) == Millis(6000));
  CHECK(blocking_wait_limit(Millis(200)) == Millis(3000));
}

}  // namespace
}  // namespace balancer

namespace balancer {
namespace {

using namespace std::chrono_literals;

TEST_CASE("refresh ahead: a near origin is refreshed every live_refresh, a far one in time") {
  PlaylistTimings t;
  t.live_max_lag = 500ms;
  t.live_refresh = 250ms;
  // Near: the period holds (no more origin load than before).
  CHECK(refresh_interval(0ms, t) == 250ms);
  CHECK(refresh_interval(150ms, t) == 250ms);
  // Far: sent so that the answer lands 100 ms before the copy in hand is live_max_lag old.
  CHECK(refresh_interval(200ms, t) == 200ms);
  CHECK(refresh_interval(300ms, t) == 100ms);
  // Too far for the margin: spread over the round trip, at most three at once.
  CHECK(refresh_interval(350ms, t) == 117ms);
  CHECK(refresh_interval(900ms, t) == 250ms);
  for (Millis rtt{0}; rtt <= 2000ms; rtt += 5ms) {
    CAPTURE(rtt.count());
    const Millis every = refresh_interval(rtt, t);
    CHECK(every <= t.live_refresh);
    // Fetches at once: a round trip over the interval, at most three (the cache caps it too).
    if (rtt <= 3 * t.live_refresh) CHECK((rtt + every - 1ms) / every <= 3);
    // The oldest copy served (an answer landing a round trip after its send, the next one an
    // interval later) stays within live_max_lag while a round trip allows (up to ~375 ms).
    if (rtt <= 370ms) CHECK(rtt + every <= t.live_max_lag);
    if (rtt + kRefreshMargin + t.live_refresh <= t.live_max_lag) CHECK(every == t.live_refresh);
  }
  t.live_max_lag = 0ms;  // every request fetches: refreshing faster would gain nothing
  CHECK(refresh_interval(350ms, t) == 250ms);
}

TEST_CASE("refresh ahead: the round trip rises at once with a slower answer, falls slowly") {
  CHECK(next_round_trip(0ms, 350ms) == 350ms);
  CHECK(next_round_trip(350ms, 400ms) == 400ms);
  CHECK(next_round_trip(400ms, 200ms) == 350ms);
  Millis estimate = 400ms;
  for (int i = 0; i < 4; ++i) estimate = next_round_trip(estimate, 200ms);
  CHECK(estimate > 250ms);  // four calm answers after a spike: still cautious
  for (int i = 0; i < 40; ++i) estimate = next_round_trip(estimate, 200ms);
  CHECK(estimate <= 203ms);
}

}  // namespace
}  // namespace balancer
