// EXT-X-PROGRAM-DATE-TIME as Unix seconds, and where a live playlist's newest media ends on
// the wall clock (segments and the parts of the one in progress).
#include <doctest/doctest.h>

#include "hls/program_date.h"

using namespace hls;

TEST_CASE("program dates: ISO 8601 with a zone, fractions of any length") {
  CHECK(parse_program_date("1970-01-01T00:00:00Z") == 0.0);
  CHECK(parse_program_date("2026-11-24T23:18:05.595Z").value() == doctest::Approx(1795562285.595));
  CHECK(parse_program_date("2026-11-24T23:18:05Z") == 1795562285.0);
  CHECK(parse_program_date("2026-11-25T00:18:05+01:00") == 1795562285.0);
  CHECK(parse_program_date("2026-11-24T17:48:05-0530") == 1795562285.0);
  CHECK(parse_program_date("2000-02-29T12:00:00.5Z").value() == doctest::Approx(951825600.5));
  for (const char* bad :
       {"", "2026-11-24", "2026-11-24T23:18:05", "2026-13-24T23:18:05Z", "2026-11-24 23:18:05Z",
        "2026-11-24T23:18:05.Z", "2026-11-24T23:18:05Zjunk", "2026-11-24T25:18:05Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_program_date(bad).has_value());
  }
}

TEST_CASE(
    "newest media end: the last program date plus what follows it, parts in progress included") {
  const char* text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:"
      "10\n"
      "#EXT-X-PROGRAM-DATE-TIME:2026-11-24T23:00:00.000Z\n#EXTINF:2,\ns10.m4s\n"
      "#EXT-X-PROGRAM-DATE-TIME:2026-11-24T23:00:02.000Z\n#EXTINF:2,\ns11.m4s\n#EXTINF:2,\ns12."
      "m4s\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"s13.0.m4s\"\n#EXT-X-PART:DURATION=0.5,URI=\"s13.1.m4s\"\n";
  auto parsed = parse_playlist(text, "http://o.example/live/index.m3u8");
  REQUIRE(parsed.ok());
  const auto end = newest_media_end(parsed.value().media);
  REQUIRE(end.has_value());
  CHECK(*end == doctest::Approx(*parse_program_date("2026-11-24T23:00:07.000Z")));
  auto undated = parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n",
                                "http://o.example/a.m3u8");
  REQUIRE(undated.ok());
  CHECK_FALSE(newest_media_end(undated.value().media).has_value());
}
