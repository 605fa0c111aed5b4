// The operator's target latency written into a media playlist's EXT-X-SERVER-CONTROL: set or
// replaced, raised to RFC 8216bis's bounds, every other line and attribute kept, and the
// result parsed back to the same numbers.
#include "hls/hold_back.h"

#include <doctest/doctest.h>

#include "hls/playlist.h"

namespace {

hls::ServerControl control_of(const std::string& text) {
  auto parsed = hls::parse_playlist(text, "http://origin.test/live/index.m3u8", {});
  REQUIRE(parsed.ok());
  return parsed->media.server_control;
}

}  // namespace

TEST_CASE("hold back: the target, raised to three target durations and two part targets") {
  CHECK(hls::hold_back_for(10, 2, std::nullopt).hold_back_s == 10);
  CHECK(hls::hold_back_for(1, 2, std::nullopt).hold_back_s == 6);
  CHECK_FALSE(hls::hold_back_for(1, 2, std::nullopt).part_hold_back_s.has_value());
  const hls::HoldBack ll = hls::hold_back_for(0.5, 1, 0.334);
  CHECK(ll.hold_back_s == 3);
  REQUIRE(ll.part_hold_back_s.has_value());
  CHECK(*ll.part_hold_back_s == doctest::Approx(0.668));
  CHECK(*hls::hold_back_for(1.2, 1, 0.334).part_hold_back_s == doctest::Approx(1.2));
}

TEST_CASE("hold back: a playlist without SERVER-CONTROL gets one after TARGETDURATION") {
  const std::string text =
      "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-MEDIA-SEQUENCE:7\r\n"
      "#EXTINF:2.0,\r\ns7.ts\r\n";
  auto out = hls::with_hold_back(text, 9);
  REQUIRE(out.has_value());
  CHECK(*out ==
        "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-SERVER-CONTROL:HOLD-BACK="
        "9.000\r\n#EXT-X-MEDIA-SEQUENCE:7\r\n#EXTINF:2.0,\r\ns7.ts\r\n");
  CHECK(control_of(*out).hold_back == 9.0);
  // The last line without an ending.
  auto last = hls::with_hold_back("#EXTM3U\n#EXT-X-TARGETDURATION:4", 1);
  REQUIRE(last.has_value());
  CHECK(*last == "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:HOLD-BACK=12.000\n");
}

TEST_CASE("hold back: an LL playlist's SERVER-CONTROL keeps its other attributes") {
  const std::string text =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,CAN-SKIP-UNTIL=12.0,"
      "HOLD-BACK=3.0\n#EXT-X-PART-INF:PART-TARGET=0.334\n#EXT-X-MEDIA-SEQUENCE:1\n"
      "#EXTINF:1.0,\ns1.m4s\n#EXT-X-PART:DURATION=0.334,URI=\"s2.0.m4s\"\n";
  auto out = hls::with_hold_back(text, 2.5);
  REQUIRE(out.has_value());
  CHECK(out->find("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=3.000,"
                  "PART-HOLD-BACK=2.500\n") != std::string::npos);
  const hls::ServerControl c = control_of(*out);
  CHECK(c.can_block_reload);
  CHECK(c.can_skip_until == 12.0);
  CHECK(c.hold_back == 3.0);
  CHECK(c.part_hold_back == 2.5);
  // Everything else as it was.
  CHECK(out->size() == text.size() - std::string("PART-HOLD-BACK=1.002,HOLD-BACK=3.0").size() +
                           std::string("HOLD-BACK=3.000,PART-HOLD-BACK=2.500").size());
}

TEST_CASE("hold back: a master playlist, or a target duration that is no number, is left alone") {
  CHECK_FALSE(
      hls::with_hold_back("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", 3).has_value());
  CHECK_FALSE(hls::with_hold_back("#EXTM3U\n#EXT-X-TARGETDURATION:x\n", 3).has_value());
}
