// Master (multivariant) playlists: variants, renditions, session tags, roles.
#include <doctest/doctest.h>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using hls::Role;
using namespace hls_test;

TEST_CASE(
    "master playlist: STREAM-INF variants expose bandwidths, resolution, codecs and their URI "
    "line") {
  auto pl = parse_clean(
      "#EXTM3U\n"
      "#EXT-X-VERSION:6\n"
      "#EXT-X-INDEPENDENT-SEGMENTS\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=640x360,"
      "CODECS=\"avc1.4d401e,mp4a.40.2\",FRAME-RATE=29.970,AUDIO=\"aac\"\n"
      "low/index.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=2560000,CODECS=\"avc1.4d401f\"\n"
      "../hi/index.m3u8?quality=hi\n");
  CHECK(pl.kind == hls::PlaylistKind::master);
  CHECK(pl.version == 6u);
  CHECK(pl.independent_segments);
  REQUIRE(pl.master.variants.size() == 2);
  const auto& low = pl.master.variants[0];
  CHECK(low.kind == hls::Variant::Kind::stream);
  CHECK(low.bandwidth == 1280000u);
  CHECK(low.average_bandwidth == 1000000u);
  REQUIRE(low.resolution.has_value());
  CHECK(low.resolution->width == 640);
  CHECK(low.resolution->height == 360);
  CHECK(low.codecs == "avc1.4d401e,mp4a.40.2");
  CHECK(low.frame_rate == doctest::Approx(29.97));
  CHECK(low.audio == "aac");
  CHECK(low.line == 4);
  check_slot(slot_at(pl, low.uri_slot),
             {.role = Role::playlist,
              .quoted = false,
              .tag = "EXT-X-STREAM-INF",
              .original = "low/index.m3u8",
              .uri = "https://origin.example/live/channel/low/index.m3u8",
              .line = 5});
  const auto& hi = pl.master.variants[1];
  CHECK_FALSE(hi.average_bandwidth.has_value());
  CHECK_FALSE(hi.resolution.has_value());
  CHECK(pl.tmpl.slots()[*hi.uri_slot].uri ==
        "https://origin.example/live/hi/index.m3u8?quality=hi");
}

TEST_CASE(
    "master playlist: EXT-X-MEDIA renditions are playlist slots; those without URI have none") {
  auto pl = parse_checked(
      "#EXTM3U\n"
      "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,"
      "AUTOSELECT=YES,URI=\"audio/en.m3u8\"\n"
      "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"Deutsch, Original\",URI=\"audio/de.m3u8\"\n"
      "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",INSTREAM-ID=\"CC1\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aac\",CLOSED-CAPTIONS=\"cc\"\n"
      "video/800k.m3u8\n");
  REQUIRE(pl.master.renditions.size() == 3);
  const auto& en = pl.master.renditions[0];
  CHECK(en.type == "AUDIO");
  CHECK(en.group_id == "aac");
  CHECK(en.name == "English");
  CHECK(en.language == "en");
  CHECK(en.is_default);
  CHECK(en.autoselect);
  check_slot(slot_at(pl, en.uri_slot),
             {.role = Role::playlist,
              .quoted = true,
              .tag = "EXT-X-MEDIA",
              .attribute = "URI",
              .uri = "https://origin.example/live/channel/audio/en.m3u8"});
  CHECK(pl.master.renditions[1].name == "Deutsch, Original");
  CHECK_FALSE(pl.master.renditions[2].uri_slot.has_value());
  CHECK(pl.master.variants[0].closed_captions == "cc");
}

TEST_CASE("master playlist: I-frame and image streams are variants with a quoted playlist URI") {
  auto pl = parse_checked(
      "#EXTM3U\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=800000\n"
      "v.m3u8\n"
      "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,CODECS=\"avc1.4d001f\",URI=\"iframe/v.m3u8\"\n"
      "#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=16460,RESOLUTION=320x180,CODECS=\"jpeg\",URI=\"thumbs/"
      "320.m3u8\"\n");
  REQUIRE(pl.master.variants.size() == 3);
  CHECK(pl.master.variants[1].kind == hls::Variant::Kind::iframe);
  CHECK(pl.master.variants[1].bandwidth == 86000u);
  CHECK(pl.tmpl.slots()[*pl.master.variants[1].uri_slot].tag == "EXT-X-I-FRAME-STREAM-INF");
  CHECK(pl.tmpl.slots()[*pl.master.variants[1].uri_slot].quoted);
  CHECK(pl.master.variants[2].kind == hls::Variant::Kind::image);
  CHECK(pl.tmpl.slots()[*pl.master.variants[2].uri_slot].uri ==
        "https://origin.example/live/channel/thumbs/320.m3u8");
}

TEST_CASE("master playlist: SESSION-DATA and CONTENT-STEERING are 'other', SESSION-KEY is 'key'") {
  auto pl = parse_checked(
      "#EXTM3U\n"
      "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.lyrics\",URI=\"lyrics.json\"\n"
      "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",VALUE=\"Title, with comma\"\n"
      "#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://"
      "key-id\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n"
      "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steering?video=1\",PATHWAY-ID=\"CDN-A\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1000\n"
      "//cdn-a.example/v.m3u8\n");
  const auto& slots = require_size(pl.tmpl.slots(), 4);
  CHECK(slots[0].role == Role::other);
  CHECK(slots[0].tag == "EXT-X-SESSION-DATA");
  CHECK(slots[0].uri == "https://origin.example/live/channel/lyrics.json");
  CHECK(slots[1].role == Role::key);
  CHECK(slots[1].uri == "skd://key-id");
  CHECK(slots[2].role == Role::other);
  CHECK(slots[2].attribute == "SERVER-URI");
  CHECK(slots[2].uri == "https://origin.example/steering?video=1");
  CHECK(slots[3].uri == "https://cdn-a.example/v.m3u8");
  REQUIRE(pl.master.session_keys.size() == 1);
  CHECK(pl.master.session_keys[0].method == "SAMPLE-AES");
  CHECK(pl.master.session_keys[0].keyformat == "com.apple.streamingkeydelivery");
  CHECK(pl.master.session_keys[0].session);
}

TEST_CASE("master playlist: comments and blank lines may sit between STREAM-INF and its URI") {
  auto pl = parse_checked(
      "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\n# some comment\r\n\r\nv.m3u8#cell=core\r\n");
  REQUIRE(pl.master.variants.size() == 1);
  REQUIRE(pl.master.variants[0].uri_slot.has_value());
  CHECK(pl.tmpl.slots()[0].uri == "https://origin.example/live/channel/v.m3u8#cell=core");
  CHECK(pl.tmpl.slots()[0].line == 5);
}

TEST_CASE("master playlist: a STREAM-INF without URI line is kept and reported") {
  auto pl =
      parse_ok("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nb.m3u8");
  REQUIRE(pl.master.variants.size() == 2);
  CHECK_FALSE(pl.master.variants[0].uri_slot.has_value());
  CHECK(pl.master.variants[1].uri_slot == 0u);
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"missing_uri"});
  CHECK(pl.warnings[0].line == 2);
}

TEST_CASE(
    "master playlist: a URI line after a tag other than STREAM-INF is rewritten as a playlist") {
  auto pl = parse_checked(
      "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"A1.m3u8\"\nA1.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1\n01.m3u8\n");
  REQUIRE(pl.tmpl.slots().size() == 3);
  CHECK(pl.tmpl.slots()[1].role == Role::playlist);
  CHECK(pl.tmpl.slots()[1].tag == "");
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"stray_uri"});
  CHECK(pl.master.variants.size() == 1);
}

TEST_CASE(
    "master playlist: a missing or malformed BANDWIDTH is a warning, the fact is left empty") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x2\na.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=12k,RESOLUTION=big\nb.m3u8\n");
  CHECK_FALSE(pl.master.variants[0].bandwidth.has_value());
  CHECK_FALSE(pl.master.variants[1].bandwidth.has_value());
  CHECK_FALSE(pl.master.variants[1].resolution.has_value());
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"missing_attribute",
                                                                "bad_attribute_value",
                                                                "bad_attribute_value"});
}
