// newest_segments(): a long live or EVENT playlist cut to its newest segments keeps
// the numbering, the keys, the map and the date-time a player needs for what is left.
#include <doctest/doctest.h>

#include <algorithm>

#include "hls/window.h"
#include "support/hls_test_support.h"

using hls_test::parse_ok;

namespace {

std::string window_of(std::string_view text, size_t max_segments) {
  auto pl = parse_ok(text);
  auto out = hls::newest_segments(pl, max_segments);
  INFO("error: ", out.ok() ? std::string() : out.error().message);
  REQUIRE(out.ok());
  hls_test::check_as_parsed(out.value());  // returned parsed: never parsed again
  return std::string(out.value().tmpl.source());
}

}  // namespace

TEST_CASE(
    "a window of the newest segments numbers them as the source did and drops "
    "PLAYLIST-TYPE:EVENT") {
  std::string text =
      "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n"
      "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  for (int i = 0; i < 10; ++i) text += "#EXTINF:2.0,\nseg" + std::to_string(100 + i) + ".ts\n";
  const std::string window = window_of(text, 3);
  CHECK(window ==
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:107\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:2\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXTINF:2.0,\nseg107.ts\n#EXTINF:2.0,\nseg108.ts\n#EXTINF:2.0,\nseg109.ts\n");
  auto pl = parse_ok(window);
  CHECK(pl.media.type == hls::PlaylistType::unspecified);
  CHECK(pl.media.media_sequence == 107);
  REQUIRE(pl.media.segments.size() == 3);
  CHECK(pl.media.segments.front().sequence == 107);
  CHECK(pl.tmpl.slots()[pl.media.segments.front().uri_slot].uri ==
        "https://origin.example/live/channel/seg107.ts");
}

TEST_CASE("a playlist within the window is returned unchanged") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n";
  CHECK(window_of(text, 1) == text);
  CHECK(window_of(text, 5) == text);
}

TEST_CASE(
    "dropped discontinuities advance EXT-X-DISCONTINUITY-SEQUENCE; the kept segment's own stays") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY-SEQUENCE:5\n"
      "#EXTINF:2,\ns0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns1.ts\n#EXTINF:2,\ns2.ts\n"
      "#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns3.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns4.ts\n#EXTINF:2,"
      "\ns5.ts\n";
  auto pl = parse_ok(window_of(text, 3));       // keeps s3, s4, s5
  CHECK(pl.media.discontinuity_sequence == 6);  // s1's went
  CHECK(pl.media.media_sequence == 3);
  REQUIRE(pl.media.segments.size() == 3);
  CHECK(pl.media.segments[0].discontinuity);
  CHECK(pl.media.segments[1].discontinuity);
  CHECK_FALSE(pl.media.segments[2].discontinuity);
  auto two = parse_ok(window_of(text, 2));  // keeps s4, s5: s3's discontinuity went with it
  CHECK(two.media.discontinuity_sequence == 7);
}

TEST_CASE("the keys and the map in force for the first kept segment are carried; older ones go") {
  const std::string text =
      "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n"
      "#EXT-X-KEY:METHOD=AES-128,URI=\"k1.key\"\n#EXT-X-MAP:URI=\"init1.mp4\"\n"
      "#EXTINF:2,\ns0.m4s\n"
      "#EXT-X-KEY:METHOD=AES-128,URI=\"k2.key\"\n"
      "#EXT-X-KEY:METHOD=SAMPLE-AES,KEYFORMAT=\"com.apple.streamingkeydelivery\",URI=\"skd://k2\"\n"
      "#EXT-X-MAP:URI=\"init2.mp4\"\n#EXTINF:2,\ns1.m4s\n#EXTINF:2,\ns2.m4s\n#EXTINF:2,\ns3.m4s\n";
  auto pl = parse_ok(window_of(text, 2));  // s2, s3
  REQUIRE(pl.media.keys.size() == 2);
  CHECK(pl.tmpl.slots()[*pl.media.keys[0].uri_slot].uri ==
        "https://origin.example/live/channel/k2.key");
  CHECK(pl.media.keys[1].keyformat == "com.apple.streamingkeydelivery");
  REQUIRE(pl.media.segments.size() == 2);
  REQUIRE(pl.media.segments[0].map_slot);
  CHECK(pl.tmpl.slots()[*pl.media.segments[0].map_slot].uri ==
        "https://origin.example/live/channel/init2.mp4");
  for (const auto& slot : pl.tmpl.slots()) {
    CHECK(slot.uri.find("k1.key") == std::string::npos);
    CHECK(slot.uri.find("init1.mp4") == std::string::npos);
  }
}

TEST_CASE("METHOD=NONE before the window ends the keys: none is carried") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k1.key\"\n#EXTINF:2,\ns0."
      "ts\n"
      "#EXT-X-KEY:METHOD=NONE\n#EXTINF:2,\ns1.ts\n#EXTINF:2,\ns2.ts\n";
  auto pl = parse_ok(window_of(text, 1));
  for (const auto& key : pl.media.keys) CHECK(key.method == "NONE");
}

TEST_CASE("the first kept segment gets its program date-time, extrapolated when it had none") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2026-11-23T23:59:58.500+01:00\n"
      "#EXTINF:2.0,\ns0.ts\n#EXTINF:1.5,\ns1.ts\n#EXTINF:2.0,\ns2.ts\n";
  auto pl = parse_ok(window_of(text, 1));
  REQUIRE(pl.media.segments.size() == 1);
  CHECK(pl.media.segments[0].program_date_time == "2026-11-23T23:00:02.000Z");
  // A kept segment with its own date-time keeps it, unchanged.
  const std::string own =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\n#EXTINF:2,"
      "\ns0.ts\n"
      "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02Z\n#EXTINF:2,\ns1.ts\n";
  auto kept = parse_ok(window_of(own, 1));
  CHECK(kept.media.segments[0].program_date_time == "2026-01-01T00:00:02Z");
}

TEST_CASE("LL-HLS: parts of dropped segments go, the live edge's parts, hints and reports stay") {
  const std::string text =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD="
      "YES,PART-HOLD-BACK=3\n"
      "#EXT-X-PART-INF:PART-TARGET=1\n#EXT-X-MEDIA-SEQUENCE:10\n"
      "#EXT-X-PART:DURATION=1,URI=\"p10.0.m4s\"\n#EXTINF:4,\ns10.m4s\n"
      "#EXT-X-PART:DURATION=1,URI=\"p11.0.m4s\"\n#EXTINF:4,\ns11.m4s\n"
      "#EXT-X-PART:DURATION=1,URI=\"p12.0.m4s\"\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p12.1.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"../b/"
      "i.m3u8\",LAST-MSN=12\n";
  auto pl = parse_ok(window_of(text, 1));
  CHECK(pl.media.media_sequence == 11);
  CHECK(pl.media.server_control.can_block_reload);
  REQUIRE(pl.media.part_target);
  REQUIRE(pl.media.parts.size() == 2);
  CHECK(pl.tmpl.slots()[pl.media.parts[0].uri_slot].uri.ends_with("p11.0.m4s"));
  CHECK(pl.media.preload_hints.size() == 1);
  CHECK(pl.media.rendition_reports.size() == 1);
}

TEST_CASE("variables, CRLF and a BOM survive the cut; comments and tags of dropped segments go") {
  const std::string text =
      "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-DEFINE:NAME=\"p\",VALUE=\"media\"\r\n#EXT-X-TARGETDURATION:"
      "2\r\n"
      "# packager note\r\n#EXT-X-DATERANGE:ID=\"ad\",START-DATE=\"2026-01-01T00:00:00Z\"\r\n"
      "#EXT-X-BITRATE:800\r\n#EXTINF:2,\r\n{$p}/s0.ts\r\n#EXTINF:2,\r\n{$p}/s1.ts\r\n";
  const std::string window = window_of(text, 1);
  CHECK(window.find("packager") == std::string::npos);
  CHECK(window.find("DATERANGE") == std::string::npos);
  CHECK(window.find("BITRATE") == std::string::npos);
  auto pl = parse_ok(window);
  REQUIRE(pl.media.segments.size() == 1);
  CHECK(pl.tmpl.slots()[pl.media.segments[0].uri_slot].uri ==
        "https://origin.example/live/channel/media/s1.ts");
}

TEST_CASE("delta updates and master playlists are not cut") {
  auto delta = parse_ok(
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL="
      "12\n"
      "#EXT-X-SKIP:SKIPPED-SEGMENTS=10\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n");
  auto cut = hls::newest_segments(delta, 1);
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.error().code == "delta_update");
  auto master = parse_ok("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n");
  CHECK(hls::newest_segments(master, 1).error().code == "not_media");
}

TEST_CASE("a window costs what it keeps: 160,000 segments cut to 100") {
  std::string text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:EVENT\n";
  for (int i = 0; i < 160000; ++i) text += "#EXTINF:1,\n" + std::to_string(i) + ".ts\n";
  hls::ParseOptions options;
  options.max_bytes = 8 << 20;
  auto pl = parse_ok(text, options);
  auto window = hls::newest_segments(pl, 100);
  REQUIRE(window.ok());
  CHECK(window->tmpl.source().size() < 2500);
  hls_test::check_as_parsed(*window);
  auto cut = parse_ok(window->tmpl.source());
  CHECK(cut.media.segments.size() == 100);
  CHECK(cut.media.media_sequence == 159900);
}

// ---- delta_update(): a Playlist Delta Update (RFC 8216bis §6.2.5.1) of a full playlist ----

namespace {

// A low-latency playlist of `segments` one-second segments from sequence 20 (the first dated),
// then two parts of the segment being written; CAN-SKIP-UNTIL=6.
std::string ll_playlist(int segments, std::string_view before_segments = "") {
  std::string text =
      "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=6.0\n"
      "#EXT-X-MEDIA-SEQUENCE:20\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-MAP:URI=\"init.mp4\"\n";
  text += before_segments;
  text += "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T10:00:00.000Z\n";
  for (int i = 0; i < segments; ++i)
    text += "#EXTINF:1.0,\nseg" + std::to_string(20 + i) + ".m4s\n";
  const std::string open = std::to_string(20 + segments);
  text += "#EXT-X-PART:DURATION=0.5,URI=\"seg" + open + ".0.m4s\",INDEPENDENT=YES\n";
  text += "#EXT-X-PART:DURATION=0.5,URI=\"seg" + open + ".1.m4s\"\n";
  text += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg" + open + ".2.m4s\"\n";
  return text;
}

std::string delta_of(std::string_view text) {
  auto out = hls::delta_update(parse_ok(text));
  INFO("error: ", out.ok() ? std::string() : out.error().message);
  REQUIRE(out.ok());
  hls_test::check_as_parsed(out.value().playlist);  // returned parsed: never parsed again
  return std::string(out.value().playlist.tmpl.source());
}

}  // namespace

TEST_CASE(
    "a delta update skips the segments ending more than CAN-SKIP-UNTIL before the end, numbering "
    "kept") {
  // 12 segments + 1 s of parts: 13 s. seg20..seg25 end 7..12 s before the end (skipped);
  // seg26 ends exactly 6 s before it (kept: not more than CAN-SKIP-UNTIL).
  const std::string full = ll_playlist(12);
  const std::string delta = delta_of(full);
  CHECK(delta ==
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=6.0\n"
        "#EXT-X-MEDIA-SEQUENCE:20\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n"
        "#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n#EXT-X-MAP:URI=\"init.mp4\"\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T10:00:06.000Z\n"
        "#EXTINF:1.0,\nseg26.m4s\n#EXTINF:1.0,\nseg27.m4s\n#EXTINF:1.0,\nseg28.m4s\n#EXTINF:1.0,"
        "\nseg29.m4s\n"
        "#EXTINF:1.0,\nseg30.m4s\n#EXTINF:1.0,\nseg31.m4s\n"
        "#EXT-X-PART:DURATION=0.5,URI=\"seg32.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.5,URI=\"seg32.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg32.2."
        "m4s\"\n");
  // What a player reads of it: the same numbers, segments and parts as the full playlist's.
  const hls::Playlist parsed = parse_ok(delta);
  const hls::Playlist whole = parse_ok(full);
  CHECK(parsed.media.skipped_segments == std::optional<std::uint64_t>(6));
  CHECK(parsed.media.media_sequence == 20);
  REQUIRE(parsed.media.segments.size() == 6);
  CHECK(parsed.media.segments.front().sequence == 26);
  CHECK(parsed.media.segments.back().sequence == whole.media.segments.back().sequence);
  CHECK(parsed.media.parts.size() == whole.media.parts.size());
  REQUIRE(parsed.media.segments.front().map_slot);
  CHECK(parsed.tmpl.slots()[*parsed.media.segments.front().map_slot].uri ==
        "https://origin.example/live/channel/init.mp4");
  // Each of its slots is the full playlist's slot of the same URI (the balancer reuses their
  // links).
  const hls::DeltaUpdate update = hls::delta_update(whole).value();
  CHECK(update.skipped == 6);
  REQUIRE(update.slots.size() == parsed.tmpl.slots().size());
  for (size_t i = 0; i < update.slots.size(); ++i) {
    CHECK(parsed.tmpl.slots()[i].uri == whole.tmpl.slots()[update.slots[i]].uri);
  }
  // Not one more can be skipped: a delta of a delta is refused.
  auto again = hls::delta_update(parsed);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "delta_update");
}

TEST_CASE("a delta update carries the keys in force and keeps the skipped region's date ranges") {
  const std::string before =
      "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k1.key\"\n"
      "#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2026-11-25T10:00:00.000Z\",DURATION=2.0\n";
  const hls::Playlist parsed = parse_ok(delta_of(ll_playlist(12, before)));
  REQUIRE(parsed.media.keys.size() == 1);
  CHECK(parsed.tmpl.slots()[*parsed.media.keys[0].uri_slot].uri ==
        "https://origin.example/live/channel/k1.key");
  CHECK(parsed.media.dateranges == 1);  // _HLS_skip=YES skips segments, not date ranges
  CHECK(parsed.media.skipped_segments == std::optional<std::uint64_t>(6));
}

TEST_CASE(
    "a delta update never skips a discontinuity: a player counting the tags it reads numbers "
    "every timeline as the full playlist does") {
  const auto with_discontinuity_at = [](int sequence) {
    std::string text = ll_playlist(12);
    const std::string uri = "#EXTINF:1.0,\nseg" + std::to_string(sequence) + ".m4s\n";
    text.insert(text.find(uri), "#EXT-X-DISCONTINUITY\n");
    return text;
  };
  // Up to 6 may go (seg20..seg25); a discontinuity at seg23 keeps seg23 on: 3 skipped.
  const std::string delta = delta_of(with_discontinuity_at(23));
  CHECK(delta.find("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n") != std::string::npos);
  CHECK(delta.find("#EXT-X-DISCONTINUITY\n#EXTINF:1.0,\nseg23.m4s\n") != std::string::npos);
  // EXT-X-DISCONTINUITY-SEQUENCE (3) plus the tags read: timeline 4 for the last segment, as in
  // the full playlist.
  const hls::Playlist parsed = parse_ok(delta);
  CHECK(parsed.media.discontinuity_sequence == 3);
  CHECK(std::count_if(parsed.media.segments.begin(), parsed.media.segments.end(),
                      [](const hls::Segment& seg) { return seg.discontinuity; }) == 1);
  // On the first segment: nothing skipped; past the skipped ones: the usual 6.
  const std::string first = with_discontinuity_at(20);
  CHECK(delta_of(first) == first);
  CHECK(delta_of(with_discontinuity_at(27)).find("#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n") !=
        std::string::npos);
}

TEST_CASE(
    "no delta update where nothing is far enough from the end, and none without CAN-SKIP-UNTIL") {
  const std::string short_one = ll_playlist(7);  // 8 s: seg20 ends 7 s before the end...
  CHECK(delta_of(short_one).find("#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n") != std::string::npos);
  const std::string shorter = ll_playlist(6);  // 7 s: seg20 ends 6 s before it: nothing to skip
  CHECK(delta_of(shorter) == shorter);

  std::string no_skip = ll_playlist(12);
  no_skip.replace(no_skip.find(",CAN-SKIP-UNTIL=6.0"), 19, "");
  auto refused = hls::delta_update(parse_ok(no_skip));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "cannot_skip");
  auto master = hls::delta_update(parse_ok("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"));
  REQUIRE_FALSE(master.ok());
  CHECK(master.error().code == "not_media");
}

// ---- renumbered(): the balancer's continued live copy, written of origin's lines ----

TEST_CASE(
    "a renumbered playlist writes its playlist tags first with the numbers given, every other "
    "line as it was, and its end tag only when asked; it comes parsed") {
  const std::string source =
      "#EXTM3U\r\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n"
      "#EXTINF:2,\ns0.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns1.m4s\n#EXT-X-ENDLIST\n";
  const hls::Playlist origin = parse_ok(source);
  const hls::Playlist held = hls::renumbered(origin, 107, 3, /*endlist=*/false);
  CHECK(held.tmpl.source() ==
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:107\n#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\ns0.m4s\n"
        "#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns1.m4s\n");
  hls_test::check_as_parsed(held);
  CHECK(held.media.media_sequence == 107);
  CHECK(held.media.segments.back().sequence == 108);
  CHECK_FALSE(held.media.endlist);
  const hls::Playlist ended = hls::renumbered(origin, 7, 0, /*endlist=*/true);
  hls_test::check_as_parsed(ended);
  CHECK(ended.media.endlist);
  CHECK(std::string(ended.tmpl.source()).ends_with("s1.m4s\n#EXT-X-ENDLIST\n"));
}
