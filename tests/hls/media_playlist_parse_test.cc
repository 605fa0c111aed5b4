// Media playlists: live, VOD, byte ranges, discontinuities, keys, fMP4 maps, dateranges.
#include <doctest/doctest.h>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using hls::Role;
using namespace hls_test;

TEST_CASE("live sliding window: media sequence numbers the segments, no ENDLIST means live") {
  auto pl = parse_clean(
      "#EXTM3U\n"
      "#EXT-X-VERSION:3\n"
      "#EXT-X-TARGETDURATION:8\n"
      "#EXT-X-MEDIA-SEQUENCE:2680\n"
      "#EXTINF:7.975,\n"
      "https://priv.example.com/fileSequence2680.ts\n"
      "#EXTINF:7.941,title, with comma\n"
      "fileSequence2681.ts?x=1&y=2\n"
      "#EXTINF:7.975\n"
      "./sub/../fileSequence2682.ts\n");
  CHECK(pl.kind == hls::PlaylistKind::media);
  const auto& m = pl.media;
  CHECK(m.target_duration == 8u);
  CHECK(m.media_sequence == 2680u);
  CHECK_FALSE(m.endlist);
  CHECK(m.type == hls::PlaylistType::unspecified);
  REQUIRE(m.segments.size() == 3);
  CHECK(m.segments[0].sequence == 2680u);
  CHECK(m.segments[2].sequence == 2682u);
  CHECK(m.segments[0].duration == doctest::Approx(7.975));
  CHECK(m.segments[1].line == 8);
  const auto& slots = pl.tmpl.slots();
  CHECK(slots[m.segments[0].uri_slot].uri == "https://priv.example.com/fileSequence2680.ts");
  CHECK(slots[m.segments[1].uri_slot].uri ==
        "https://origin.example/live/channel/fileSequence2681.ts?x=1&y=2");
  CHECK(slots[m.segments[2].uri_slot].uri ==
        "https://origin.example/live/channel/fileSequence2682.ts");
  for (const auto& s : slots) {
    CHECK(s.role == Role::chunk);
    CHECK(s.tag == "EXTINF");
    CHECK_FALSE(s.quoted);
  }
}

TEST_CASE(
    "VOD playlist: PLAYLIST-TYPE, ENDLIST and absolute, protocol-relative and root-relative URIs") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:10\n"
      "#EXTINF:10,\nhttp://media.example.com/a.ts\n"
      "#EXTINF:10,\n//other.example/b.ts\n"
      "#EXTINF:3.5,\n/root/c.ts\n"
      "#EXT-X-ENDLIST\n");
  CHECK(pl.media.type == hls::PlaylistType::vod);
  CHECK(pl.media.endlist);
  const auto& slots = require_size(pl.tmpl.slots(), 3);
  CHECK(slots[0].uri == "http://media.example.com/a.ts");
  CHECK(slots[1].uri == "https://other.example/b.ts");
  CHECK(slots[2].uri == "https://origin.example/root/c.ts");
}

TEST_CASE("EVENT playlist with GAP segments and a comma-less EXTINF") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:4\n"
      "#EXT-X-GAP\n#EXTINF:4,\ngap.ts\n#EXT-X-BITRATE:800\n#EXTINF:4\nnext.ts\n");
  CHECK(pl.media.type == hls::PlaylistType::event);
  REQUIRE(pl.media.segments.size() == 2);
  CHECK(pl.media.segments[0].gap);
  CHECK_FALSE(pl.media.segments[1].gap);
  CHECK(pl.media.segments[1].duration == doctest::Approx(4));
}

TEST_CASE("byte ranges apply to the next segment, before or after its EXTINF") {
  auto pl = parse_clean(
      "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:10\n"
      "#EXT-X-BYTERANGE:75232@0\n#EXTINF:10,\nall.ts\n"
      "#EXTINF:10,\n#EXT-X-BYTERANGE:82112\nall.ts\n"
      "#EXTINF:10,\nnone.ts\n"
      "#EXT-X-ENDLIST\n");
  const auto& seg = require_size(pl.media.segments, 3);
  REQUIRE(seg[0].byte_range.has_value());
  CHECK(seg[0].byte_range->length == 75232);
  CHECK(seg[0].byte_range->offset == 0u);
  REQUIRE(seg[1].byte_range.has_value());
  CHECK(seg[1].byte_range->length == 82112);
  CHECK_FALSE(seg[1].byte_range->offset.has_value());
  CHECK_FALSE(seg[2].byte_range.has_value());
}

TEST_CASE("byte range without offset after a different resource is tolerated with a warning") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-BYTERANGE:0@10\n#EXTINF:9,\nfirst.ts\n"
      "#EXT-X-BYTERANGE:20\n#EXTINF:9,\nsecond.ts\n#EXT-X-BYTERANGE:12@\n#EXTINF:1,\nthird.ts\n");
  CHECK(hls_test::warning_codes(pl) ==
        std::vector<std::string>{"byterange_without_offset", "bad_attribute_value"});
  CHECK(pl.warnings[0].line == 6);
  CHECK_FALSE(pl.media.segments[2].byte_range.has_value());
}

TEST_CASE("discontinuities and program date time flag the following segment") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-DISCONTINUITY-SEQUENCE:"
      "3\n"
      "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\n#EXTINF:6,\na.ts\n"
      "#EXT-X-DISCONTINUITY\n#EXTINF:6,\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T01:00:00.000Z\nb.ts\n"
      "#EXTINF:6,\nc.ts\n");
  CHECK(pl.media.discontinuity_sequence == 3u);
  const auto& seg = require_size(pl.media.segments, 3);
  CHECK_FALSE(seg[0].discontinuity);
  CHECK(seg[0].program_date_time == "2024-01-01T00:00:00.000Z");
  CHECK(seg[1].discontinuity);
  CHECK(seg[1].program_date_time == "2024-01-01T01:00:00.000Z");
  CHECK_FALSE(seg[2].discontinuity);
  CHECK(seg[2].program_date_time.empty());
}

TEST_CASE("AES-128 keys are 'key' slots; METHOD=NONE has no URI") {
  auto pl = parse_clean(
      "#EXTM3U\n#EXT-X-TARGETDURATION:15\n"
      "#EXT-X-KEY:METHOD=AES-128,URI=\"https://priv.example.com/"
      "key.php?r=52\",IV=0x9c7db8778570d05c3177c349fd9236aa\n"
      "#EXTINF:15,\ns1.ts\n"
      "#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k2.bin\", IV=0x10ef8f758ca555115584bb5b3c687f52\n"
      "#EXTINF:15,\ns2.ts\n"
      "#EXT-X-KEY:METHOD=NONE\n#EXTINF:15,\ns3.ts\n");
  const auto& keys = require_size(pl.media.keys, 3);
  CHECK(keys[0].method == "AES-128");
  CHECK(pl.tmpl.slots()[*keys[0].uri_slot].uri == "https://priv.example.com/key.php?r=52");
  CHECK(pl.tmpl.slots()[*keys[0].uri_slot].role == Role::key);
  CHECK(pl.tmpl.slots()[*keys[1].uri_slot].uri == "https://origin.example/live/keys/k2.bin");
  CHECK(keys[2].method == "NONE");
  CHECK_FALSE(keys[2].uri_slot.has_value());
}

TEST_CASE("SAMPLE-AES keys with skd:// and data: URIs keep their scheme") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
      "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://"
      "abc?keyId=1\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"\n"
      "#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;base64,AAAA/"
      "w==\",KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\"\n"
      "#EXTINF:2,\n1.ts\n";
  auto pl = parse_ok(text);
  const auto& slots = require_size(pl.tmpl.slots(), 3);
  CHECK(slots[0].uri == "skd://abc?keyId=1");
  CHECK(slots[1].uri == "data:text/plain;base64,AAAA/w==");
  CHECK(slots[0].role == Role::key);
  CHECK(slots[1].role == Role::key);
  CHECK(pl.media.keys[0].keyformat == "com.apple.streamingkeydelivery");
  hls_test::check_rewrite_properties(pl, text);
}

TEST_CASE("fMP4: EXT-X-MAP is a chunk and applies to the segments after it") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n"
      "#EXT-X-MAP:URI=\"init-a.mp4\",BYTERANGE=\"720@0\"\n#EXTINF:4,\na1.m4s\n"
      "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-b.mp4\",X=unknown\n#EXTINF:4,\nb1.m4s\n");
  const auto& seg = require_size(pl.media.segments, 2);
  check_slot(slot_at(pl, seg[0].map_slot),
             {.role = Role::chunk,
              .quoted = true,
              .tag = "EXT-X-MAP",
              .uri = "https://origin.example/live/channel/init-a.mp4"});
  CHECK(pl.tmpl.slots()[*seg[1].map_slot].uri == "https://origin.example/live/channel/init-b.mp4");
  CHECK(seg[1].discontinuity);
}

TEST_CASE("DATERANGE is kept as it is, except interstitial X-ASSET-URI/X-ASSET-LIST ('other')") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-TARGETDURATION:10\n"
      "#EXT-X-DATERANGE:ID=\"splice-6FFFFFF0\",START-DATE=\"2014-03-05T11:15:00Z\",PLANNED-"
      "DURATION=59.993,"
      "SCTE35-OUT=0xFC002F0000000000FF0\n"
      "#EXT-X-DATERANGE:ID=\"ad1\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2024-01-12T10:"
      "00:10.000Z\","
      "X-ASSET-LIST=\"list.json\",X-ASSET-URI=\"ads/ad1.m3u8?id=1\",X-AD-URL=\"rel/x\"\n"
      "#EXTINF:10,\na.ts\n");
  CHECK(pl.media.dateranges == 2);
  const auto& slots = require_size(pl.tmpl.slots(), 3);
  CHECK(slots[0].attribute == "X-ASSET-LIST");
  CHECK(slots[0].uri == "https://origin.example/live/channel/list.json");
  CHECK(slots[1].attribute == "X-ASSET-URI");
  CHECK(slots[1].uri == "https://origin.example/live/channel/ads/ad1.m3u8?id=1");
  CHECK(slots[0].role == Role::other);
  CHECK(slots[1].role == Role::other);
}

TEST_CASE("I-frames-only playlists and segments listed without EXTINF") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI=\"init.mp4\"\nintra0."
      "mp4");
  CHECK(pl.media.iframes_only);
  REQUIRE(pl.media.segments.size() == 1);
  CHECK_FALSE(pl.media.segments[0].duration.has_value());
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"segment_without_extinf"});
}

TEST_CASE("a fractional TARGETDURATION is rounded up with a warning") {
  auto pl = parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:6.006\n");
  CHECK(pl.media.target_duration == 7u);
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"bad_attribute_value"});
}
