// Low-latency HLS: parts, preload hints, rendition reports, server control, delta updates.
#include <doctest/doctest.h>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using hls::Role;
using namespace hls_test;

namespace {

const std::string kLowLatency =
    "#EXTM3U\n"
    "#EXT-X-TARGETDURATION:4\n"
    "#EXT-X-VERSION:6\n"
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,CAN-SKIP-DATERANGES=YES,"
    "HOLD-BACK=12,PART-HOLD-BACK=1.0\n"
    "#EXT-X-PART-INF:PART-TARGET=0.33334\n"
    "#EXT-X-MEDIA-SEQUENCE:266\n"
    "#EXT-X-MAP:URI=\"init.mp4\"\n"
    "#EXTINF:4.00008,\n"
    "fileSequence266.mp4\n"
    "#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.0.mp4\",INDEPENDENT=YES\n"
    "#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.1.mp4\",BYTERANGE=\"1000@0\"\n"
    "#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.2.mp4\",GAP=YES\n"
    "#EXTINF:1.0,\n"
    "fileSequence267.mp4\n"
    "#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.0.mp4\"\n"
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart268.1.mp4\"\n"
    "#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init2.mp4\",BYTERANGE-START=0,BYTERANGE-LENGTH=700\n"
    "#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2\n"
    "#EXT-X-RENDITION-REPORT:URI=\"/4M/waitForMSN.php\",LAST-MSN=273,LAST-PART=1\n";

}  // namespace

TEST_CASE("LL-HLS: server control and part target are exposed") {
  auto pl = parse_ok(kLowLatency);
  CHECK(pl.warnings.empty());
  const auto& sc = pl.media.server_control;
  CHECK(sc.can_block_reload);
  CHECK(sc.can_skip_until == doctest::Approx(24));
  CHECK(sc.can_skip_dateranges);
  CHECK(sc.hold_back == doctest::Approx(12));
  CHECK(sc.part_hold_back == doctest::Approx(1.0));
  CHECK(pl.media.part_target == doctest::Approx(0.33334));
  CHECK_FALSE(pl.media.is_delta_update());
}

TEST_CASE("LL-HLS: parts belong to the segment whose URI follows them, or to the one in progress") {
  auto pl = parse_ok(kLowLatency);
  const auto& parts = require_size(pl.media.parts, 4);
  CHECK(parts[0].segment_index == 1);
  CHECK(parts[0].independent);
  CHECK(parts[0].duration == doctest::Approx(0.33334));
  REQUIRE(parts[1].byte_range.has_value());
  CHECK(parts[1].byte_range->length == 1000);
  CHECK(parts[1].byte_range->offset == 0u);
  CHECK(parts[2].gap);
  CHECK(parts[3].segment_index == 2);  // == segments.size(): still being produced
  CHECK(pl.media.segments.size() == 2);
  check_slot(slot_at(pl, parts[0].uri_slot),
             {.role = Role::chunk,
              .tag = "EXT-X-PART",
              .uri = "https://origin.example/live/channel/filePart267.0.mp4"});
}

TEST_CASE("LL-HLS: preload hints are chunks, rendition reports are playlists") {
  auto pl = parse_ok(kLowLatency);
  const auto& hints = require_size(pl.media.preload_hints, 2);
  CHECK(hints[0].type == "PART");
  CHECK(pl.tmpl.slots()[*hints[0].uri_slot].role == Role::chunk);
  CHECK(hints[1].type == "MAP");
  CHECK(hints[1].byterange_start == 0u);
  CHECK(hints[1].byterange_length == 700u);
  const auto& reports = require_size(pl.media.rendition_reports, 2);
  CHECK(reports[0].last_msn == 273u);
  CHECK(reports[0].last_part == 2u);
  check_slot(slot_at(pl, reports[0].uri_slot),
             {.role = Role::playlist,
              .tag = "EXT-X-RENDITION-REPORT",
              .uri = "https://origin.example/live/1M/waitForMSN.php"});
  CHECK(pl.tmpl.slots()[*reports[1].uri_slot].uri == "https://origin.example/4M/waitForMSN.php");
  hls_test::check_rewrite_properties(pl, kLowLatency);
}

TEST_CASE(
    "LL-HLS: EXT-X-SKIP makes a delta update whose segments are numbered after the skipped ones") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL="
      "12\n"
      "#EXT-X-MEDIA-SEQUENCE:100\n"
      "#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES=\"a\tb\"\n"
      "#EXTINF:4,\n103.ts\n#EXTINF:4,\n104.ts\n");
  CHECK(pl.media.is_delta_update());
  CHECK(pl.media.skipped_segments == 3u);
  REQUIRE(pl.media.segments.size() == 2);
  CHECK(pl.media.segments[0].sequence == 103u);
  CHECK(pl.media.segments[1].sequence == 104u);
}

TEST_CASE("LL-HLS: an EXT-X-SKIP without a usable SKIPPED-SEGMENTS is rejected") {
  check_rejected("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=x\n", "bad_skip",
                 3);
  CHECK(hls_test::parse_error("#EXTM3U\n#EXTINF:1,\na.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n").code ==
        "bad_skip");
}

TEST_CASE("LL-HLS: an unknown PRELOAD-HINT TYPE is still a chunk, with a warning") {
  auto pl =
      parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PRELOAD-HINT:TYPE=FOO,URI=\"x.ts\"\n");
  CHECK(pl.tmpl.slots()[0].role == Role::chunk);
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"bad_attribute_value"});
}
