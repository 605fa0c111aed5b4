// Malformed input: what is tolerated (with a warning) and what is rejected, and how.
#include <doctest/doctest.h>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using namespace hls_test;

TEST_CASE("blank and comment lines before #EXTM3U are tolerated with a warning") {
  auto pl = parse_ok("\n\n# RFC prose\n#EXTM3U\n#EXT-X-TARGETDURATION:1\n");
  CHECK(warning_codes(pl) == std::vector<std::string>{"late_header"});
  CHECK(pl.warnings[0].line == 4);
}

TEST_CASE("a UTF-8 BOM is tolerated with a warning; anything else before #EXTM3U is rejected") {
  CHECK(warning_codes(parse_ok("\xEF\xBB\xBF#EXTM3U\n#EXT-X-TARGETDURATION:1\n")) ==
        std::vector<std::string>{"bom"});
  check_rejected("#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/a.ts\n", "missing_header", 1);
  CHECK(parse_error("\\\n#EXTM3U\n").code == "missing_header");
  CHECK(parse_error("#EXTM3U#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n").code == "missing_header");
  CHECK(parse_error("# only a comment\n").code == "missing_header");
  CHECK(parse_error("#extm3u\n").code == "missing_header");  // tags are case-sensitive
}

TEST_CASE("an empty body and an oversized body are rejected") {
  CHECK(parse_error("").code == "empty_playlist");
  CHECK(parse_error("\xEF\xBB\xBF").code == "empty_playlist");
  hls::ParseOptions small;
  small.max_bytes = 16;
  auto err = parse_error("#EXTM3U\n#EXT-X-TARGETDURATION:1\n", small);
  CHECK(err.code == "too_large");
  CHECK(err.message.find("16") != std::string::npos);
  CHECK(hls::ParseOptions{}.max_bytes == 4u * 1024 * 1024);
}

TEST_CASE("a relative or malformed playlist URL is rejected") {
  CHECK(parse_error("#EXTM3U\n", {}, "/live/index.m3u8").code == "bad_base_url");
  CHECK(parse_error("#EXTM3U\n", {}, "https://o.example/a\nb").code == "bad_base_url");
}

TEST_CASE("a second #EXTM3U (two playlists concatenated) is rejected") {
  check_rejected("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n#EXTM3U\n", "duplicate_header",
                 4);
}

TEST_CASE("master and media tags in one playlist are rejected, naming both lines") {
  auto err = check_rejected("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXTINF:1,\na.ts\n",
                            "mixed_playlist", 4);
  CHECK(err.message ==
        "line 4: media playlist tag #EXTINF in a master playlist "
        "(#EXT-X-STREAM-INF on line 2)");
  // A media playlist's first tag decides; the master tag is found where it stands, however far.
  std::string media = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n";
  for (int i = 0; i < 50; ++i) media += "#EXTINF:1,\ns" + std::to_string(i) + ".ts\n";
  media += "#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
  err = check_rejected(media, "mixed_playlist", 103);
  CHECK(err.message ==
        "line 103: master playlist tag #EXT-X-STREAM-INF in a media playlist "
        "(#EXT-X-TARGETDURATION on line 2)");
}

TEST_CASE("EXT-X-SESSION-KEY in a media playlist is tolerated and rewritten as a key") {
  auto pl =
      parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k\"\n");
  CHECK(pl.kind == hls::PlaylistKind::media);
  CHECK(pl.tmpl.slots()[0].role == hls::Role::key);
  CHECK(warning_codes(pl) == std::vector<std::string>{"misplaced_tag"});
}

TEST_CASE("a negative or non-numeric EXTINF duration is rejected (IPTV M3U is not HLS)") {
  check_rejected("#EXTM3U\n#EXTINF:-1,Radio\nhttp://radio.example:8000/stream\n", "bad_extinf", 2);
  CHECK(parse_error("#EXTM3U\n#EXTINF:-1 tvg-id=\"x\",Channel\nhttp://x/\n").code == "bad_extinf");
  CHECK(parse_error("#EXTM3U\n#EXTINF:,\nhttp://x/\n").code == "bad_extinf");
}

TEST_CASE("timeline tags with malformed numbers are rejected") {
  CHECK(parse_error("#EXTM3U\n#EXT-X-TARGETDURATION:ten\n").code == "bad_target_duration");
  CHECK(parse_error("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-3\n").code == "bad_media_sequence");
  CHECK(parse_error("#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:x\n").code ==
        "bad_discontinuity_sequence");
}

TEST_CASE("a URI attribute whose position is ambiguous is rejected, never guessed") {
  // Unterminated quote: the URI may be anywhere after it.
  check_rejected("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\n",
                 "bad_attribute_list", 3);
  // Bytes after a closing quote: clients disagree on where the next attribute starts.
  CHECK(parse_error("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,X=\"a\"b,URI=\"k\"\n").code ==
        "bad_attribute_list");
  // Two URI attributes, an unquoted URI, "URI=" inside another value.
  CHECK(parse_error("#EXTM3U\n#EXT-X-MAP:URI=\"a\",URI=\"b\"\n").code == "bad_attribute_list");
  CHECK(parse_error("#EXTM3U\n#EXT-X-MAP:URI=init.mp4\n").code == "bad_attribute_list");
  CHECK(parse_error("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,X=\"URI=\",URI=\"k\"\n").code ==
        "bad_attribute_list");
}

TEST_CASE("a stray quote inside an unquoted value is tolerated: the URI is unambiguous") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
      "#EXT-X-KEY:METHOD=AES-128,IV=00112233445566778899aabbccddeeff\",URI=\"https://magic.com/"
      "secret\"\n");
  CHECK(pl.tmpl.slots()[0].uri == "https://magic.com/secret");
  CHECK(warning_codes(pl) == std::vector<std::string>{"irregular_attribute_list"});
}

TEST_CASE("URIs with control characters, backslashes or nothing at all are rejected") {
  check_rejected("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nC:\\HLS Video\\test1.ts\n",
                 "bad_uri", 4);
  CHECK(parse_error("#EXTM3U\n#EXT-X-MAP:URI=\"\"\n").code == "bad_uri");
  CHECK(parse_error(std::string("#EXTM3U\n#EXT-X-MAP:URI=\"a\x01b\"\n")).code == "bad_uri");
  CHECK(parse_error("#EXTM3U\n#EXTINF:1,\na\tb.ts\n").code == "bad_uri");
}

TEST_CASE("a URI line without EXTINF is still a segment; stray lines never keep a relative URI") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:5220\n#EXTINF:5220,\nentire.ts\nJUNK\n#EXT-X-ENDLIST\n");
  REQUIRE(pl.media.segments.size() == 2);
  CHECK(pl.tmpl.slots()[1].uri == "https://origin.example/live/channel/JUNK");
  CHECK(warning_codes(pl) == std::vector<std::string>{"segment_without_extinf"});
}

TEST_CASE("an EXTINF at the end without a URI line is reported") {
  auto pl = parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n#EXTINF:6,\n");
  CHECK(warning_codes(pl) == std::vector<std::string>{"missing_uri"});
  CHECK(pl.warnings[0].line == 5);
  CHECK(pl.media.segments.size() == 1);
}

TEST_CASE("a missing final newline, a lone CR line ending and whitespace-only lines are fine") {
  auto pl = parse_ok("#EXTM3U\r#EXT-X-TARGETDURATION:1\r  \t \r#EXTINF:1,\ra.ts");
  CHECK(pl.warnings.empty());
  REQUIRE(pl.media.segments.size() == 1);
  CHECK(pl.tmpl.slots()[0].line == 5);
}

TEST_CASE("a media playlist without TARGETDURATION is tolerated with a warning") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXTINF:5220,Title with a comma, end\nhttp://media.example.com/entire.ts\n");
  CHECK(warning_codes(pl) == std::vector<std::string>{"missing_target_duration"});
  CHECK_FALSE(pl.media.target_duration.has_value());
}

TEST_CASE("unknown tags and tags with odd content are kept byte for byte and not interpreted") {
  auto pl = parse_clean(
      "#EXTM3U\n#EXT-X-TARGETDURATION:8\n"
      "#EXT-X-SCTE35:TYPE=0x34,CUE=\xE2\x80\x9D/"
      "DA0AAAA+\xE2\x80\xA6\xE2\x80\x9D,ID=\xE2\x80\x9DpIViS5\xE2\x80\x9D\n"
      "#EXT-FAKE-TAG4:FAKE-KEY:Value,URI=\"x\n#EXT-X-ENDLISTjunk\n#EXTINF:8,\n1.ts\n");
  CHECK_FALSE(pl.media.endlist);
  CHECK(pl.tmpl.slots().size() == 1);
}

TEST_CASE("warnings are capped by ParseOptions::max_warnings") {
  std::string text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n";
  for (int i = 0; i < 200; ++i) text += "stray" + std::to_string(i) + ".ts\n";
  hls::ParseOptions options;
  options.max_warnings = 10;
  auto pl = parse_ok(text, options);
  CHECK(pl.warnings.size() == 10);
  CHECK(pl.media.segments.size() == 200);
}

TEST_CASE("too many URIs, or variables expanding past max_bytes, are rejected as too_large") {
  hls::ParseOptions options;
  options.max_uris = 3;
  std::string text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n";
  for (int i = 0; i < 4; ++i) text += "#EXTINF:1,\ns" + std::to_string(i) + ".ts\n";
  check_rejected(text, "too_large", 10, options);

  // Short references to a long value: the expansion is bounded by max_bytes.
  std::string bomb = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"" +
                     std::string(1000, 'x') + "\"\n#EXTINF:1,\n";
  for (int i = 0; i < 200; ++i) bomb += "{$a}";
  bomb += "\n";
  hls::ParseOptions limited;
  limited.max_bytes = 100000;
  CHECK(parse_error(bomb, limited).code == "too_large");
  CHECK(parse_ok(bomb).tmpl.slots()[0].uri.size() > 200000);
}

TEST_CASE("error messages are ASCII and show the offending text") {
  auto err = parse_error(
      "#EXTM3U\n#EXTINF:\xE2\x80\x9C"
      "5\xE2\x80\x9D,\na.ts\n");
  CHECK(err.message ==
        "line 2: #EXTINF duration \"\\xe2\\x80\\x9c5\\xe2\\x80\\x9d\" is not a "
        "non-negative decimal number");
}
