// continued(): a live media playlist as a server continuing it lists it (the balancer's live
// restarts and source switches): the numbers, segments and lines it is given, spliced of the
// source's lines when it has none of its own, else written once and parsed.
#include <doctest/doctest.h>

#include <string>

#include "hls/window.h"
#include "support/hls_test_support.h"

using hls_test::kBase;
using hls_test::parse_ok;

namespace {

// Three segments (the second after a discontinuity), a map and a key declared before the first,
// then a segment in progress: its parts, a preload hint and a report on another rendition.
const std::string kLive =
    "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
    "#EXT-X-MEDIA-SEQUENCE:20\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    "#EXT-X-KEY:METHOD=AES-128,URI=\"k.bin\"\n#EXTINF:2,\ns20.m4s\n#EXT-X-DISCONTINUITY\n"
    "#EXTINF:2,\ns21.m4s\n#EXTINF:2,\ns22.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"s23.0.m4s\"\n"
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s23.1.m4s\"\n"
    "#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=22,LAST-PART=0\n#EXT-X-ENDLIST\n";

hls::Playlist continued_ok(const hls::Playlist& source, const hls::Continuation& plan) {
  auto out = hls::continued(source, plan, kBase);
  INFO("error: ", out.ok() ? std::string() : out.error().message);
  REQUIRE(out.ok());
  hls_test::check_as_parsed(out.value());
  return std::move(out).value();
}

}  // namespace

TEST_CASE(
    "a continuation of the source's lines alone leaves out the segments before the first "
    "listed and comes spliced, as its text parses") {
  const hls::Playlist source = parse_ok(kLive);
  hls::Continuation plan;
  plan.media_sequence = 121;
  plan.discontinuity_sequence = 4;
  plan.target_duration = 6;
  plan.first_segment = 1;
  CHECK_FALSE(hls::carries_own_lines(source, plan));
  const hls::Playlist copy = continued_ok(source, plan);
  CHECK(copy.tmpl.source() ==
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:6\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        "#EXT-X-MEDIA-SEQUENCE:121\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n#EXT-X-DISCONTINUITY\n"
        "#EXTINF:2,\ns21.m4s\n#EXTINF:2,\ns22.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"s23.0.m4s\"\n"
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s23.1.m4s\"\n"
        "#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=22,LAST-PART=0\n");
  REQUIRE(copy.media.segments.size() == 2);
  CHECK(copy.media.segments.front().sequence == 121);
  CHECK(copy.media.target_duration == 6);
  CHECK_FALSE(copy.media.endlist);
}

TEST_CASE(
    "a continuation with lines of its own (segments carried, the map and key restated, a lead "
    "before the parts, reports renumbered) is written once and parsed against the source's URL") {
  const hls::Playlist source = parse_ok(kLive);
  hls::Continuation plan;
  plan.media_sequence = 7;
  plan.carried = {"#EXT-X-MAP:URI=\"old/init.mp4\"\n#EXTINF:4,\nold/a.m4s\n",
                  "#EXTINF:4,\nb.m4s\n"};
  plan.first_segment = 2;
  plan.before_segments = "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init.mp4\"\n";
  plan.before_trailing = "#EXT-X-KEY:METHOD=NONE\n";
  plan.report_msn_offset = -20;
  plan.endlist = true;
  CHECK(hls::carries_own_lines(source, plan));
  const hls::Playlist copy = continued_ok(source, plan);
  CHECK(copy.tmpl.source() ==
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        "#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"old/init.mp4\"\n#EXTINF:4,\nold/a.m4s\n"
        "#EXTINF:4,\nb.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\n"
        "s22.m4s\n#EXT-X-KEY:METHOD=NONE\n#EXT-X-PART:DURATION=0.5,URI=\"s23.0.m4s\"\n"
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s23.1.m4s\"\n"
        "#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=2,LAST-PART=0\n#EXT-X-ENDLIST\n");
  REQUIRE(copy.media.segments.size() == 3);
  CHECK(copy.tmpl.slots()[copy.media.segments[0].uri_slot].uri ==
        "https://origin.example/live/channel/old/a.m4s");
  CHECK(copy.media.segments[2].discontinuity);
  CHECK(copy.media.segments[2].sequence == 9);
  CHECK(copy.media.rendition_reports.front().last_msn == 2);
  CHECK(copy.media.endlist);
}

TEST_CASE(
    "a continuation may list none of the source's segments and leave out its trailing lines; "
    "a report renumbered with them left out costs no parse") {
  const hls::Playlist source = parse_ok(kLive);
  hls::Continuation plan;
  plan.media_sequence = 30;
  plan.discontinuity_sequence = 1;
  plan.first_segment = source.media.segments.size();
  plan.before_segments = "#EXT-X-DISCONTINUITY\n";  // before no segment of the source: unwritten
  plan.trailing = false;
  plan.report_msn_offset = 5;
  CHECK_FALSE(hls::carries_own_lines(source, plan));
  const hls::Playlist empty = continued_ok(source, plan);
  CHECK(empty.tmpl.source() ==
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        "#EXT-X-MEDIA-SEQUENCE:30\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n");
  CHECK(empty.media.segments.empty());
  CHECK(empty.media.parts.empty());
  plan.carried = {"#EXTINF:2,\nkept.m4s\n"};
  const hls::Playlist kept = continued_ok(source, plan);
  REQUIRE(kept.media.segments.size() == 1);
  CHECK(kept.media.segments.front().sequence == 30);
}

TEST_CASE("a continuation whose own lines do not parse returns the parser's error") {
  const hls::Playlist source = parse_ok(kLive);
  hls::Continuation plan;
  plan.carried = {"#EXTINF:soon,\nlate.m4s\n"};
  auto out = hls::continued(source, plan, kBase);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error().code == "bad_extinf");
}

TEST_CASE(
    "a continuation renumbers a rendition report's LAST-MSN in the splice (a URI after it moves "
    "with the line); one whose LAST-MSN is not the attribute the parser read is parsed") {
  const hls::Playlist source = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:20\n#EXTINF:2,\ns20.m4s\n"
      "#EXT-X-RENDITION-REPORT:LAST-MSN=20,URI=\"other.m3u8\",LAST-PART=1\n"
      "#EXT-X-RENDITION-REPORT:URI=\"third.m3u8\",LAST-MSN=9\n");
  hls::Continuation plan;
  plan.media_sequence = 120;
  plan.report_msn_offset = 100;
  CHECK_FALSE(hls::carries_own_lines(source, plan));
  const hls::Playlist copy = continued_ok(source, plan);
  CHECK(copy.tmpl.source() ==
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:120\n#EXTINF:2,\ns20.m4s\n"
        "#EXT-X-RENDITION-REPORT:LAST-MSN=120,URI=\"other.m3u8\",LAST-PART=1\n"
        "#EXT-X-RENDITION-REPORT:URI=\"third.m3u8\",LAST-MSN=109\n");
  REQUIRE(copy.media.rendition_reports.size() == 2);
  CHECK(copy.media.rendition_reports[0].last_msn == 120);
  CHECK(copy.media.rendition_reports[1].last_msn == 109);

  const hls::Playlist in_uri = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:20\n#EXTINF:2,\ns20.m4s\n"
      "#EXT-X-RENDITION-REPORT:URI=\"other.m3u8?LAST-MSN=20\",LAST-MSN=20\n");
  CHECK(hls::carries_own_lines(in_uri, plan));
  continued_ok(in_uri, plan);
}
