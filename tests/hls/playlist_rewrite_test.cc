// Rendering a Template: byte-for-byte preservation, roles, escaping of replacements.
#include <doctest/doctest.h>

#include <thread>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using hls::Role;
using namespace hls_test;

namespace {

std::string by_role(const hls::UriSlot& slot) {
  switch (slot.role) {
    case Role::playlist:
      return "https://balancer.example/p?u=" + hls::percent_encode_component(slot.uri);
    case Role::chunk:
      return "https://cache1.example/c?u=" + hls::percent_encode_component(slot.uri);
    case Role::key:
      return "https://balancer.example/k?u=" + hls::percent_encode_component(slot.uri);
    case Role::other:
      return slot.uri;
  }
  return slot.uri;
}

}  // namespace

TEST_CASE(
    "render with the identity mapper reproduces CRLF, BOM, blank lines, comments and unknown "
    "tags") {
  const std::string text =
      "\xEF\xBB\xBF#EXTM3U\r\n\r\n#EXT-X-TARGETDURATION:10\r\n   \r\n#EXTINF:10,\r\n"
      "  spaced name.ts  \r\n# a comment\r\n#EXT-UNKNOWN-TAG:A=1,URI=\"not-touched.ts\"\r\n"
      "#EXTINF:10,\r\n\tx\xE3\x80\x80y.ts\r\n#EXT-X-ENDLIST";
  auto pl = parse_ok(text);
  CHECK(hls::render(pl.tmpl, hls_test::identity_mapper) == text);
  const auto& slots = require_size(pl.tmpl.slots(), 2);
  CHECK(slots[0].original == "spaced name.ts");
  CHECK(slots[0].uri == "https://origin.example/live/channel/spaced%20name.ts");
  CHECK(slots[1].uri == "https://origin.example/live/channel/x%E3%80%80y.ts");
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"bom"});
  hls_test::check_rewrite_properties(pl, text);
}

TEST_CASE("render replaces only the URI bytes and keeps every other byte") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
      "#EXT-X-KEY:METHOD=AES-128, URI=\"k.bin\" ,IV=0x01\n"
      "#EXT-X-MAP:BYTERANGE=\"1@0\",URI=\"init.mp4\"\n"
      "#EXTINF:4,\n  seg.ts\t\n";
  auto pl = parse_ok(text);
  const std::string out = hls::render(pl.tmpl, by_role);
  const std::string enc = hls::percent_encode_component("https://origin.example/live/channel/");
  CHECK(out ==
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n"
        "#EXT-X-KEY:METHOD=AES-128, URI=\"https://balancer.example/k?u=" +
            enc +
            "k.bin\" ,IV=0x01\n"
            "#EXT-X-MAP:BYTERANGE=\"1@0\",URI=\"https://cache1.example/c?u=" +
            enc +
            "init.mp4\"\n"
            "#EXTINF:4,\n  https://cache1.example/c?u=" +
            enc + "seg.ts\t\n");
}

TEST_CASE("render sends each role where the mapper says; 'other' URIs go to origin absolute") {
  const std::string text =
      "#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"x\",URI=\"data.json\"\n#EXT-X-STREAM-INF:BANDWIDTH="
      "1\nv.m3u8\n";
  auto pl = parse_ok(text);
  CHECK(hls::render(pl.tmpl, by_role) ==
        "#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"x\",URI=\"https://origin.example/live/channel/"
        "data.json\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nhttps://balancer.example/p?u=" +
            hls::percent_encode_component("https://origin.example/live/channel/v.m3u8") + "\n");
}

TEST_CASE("the mapper is called once per slot, in source order") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:1,\na.ts\n"
      "#EXT-X-PART:DURATION=1,URI=\"p.ts\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"h.ts\"\n");
  std::vector<std::string> seen;
  hls::render(pl.tmpl, [&](const hls::UriSlot& s) {
    seen.emplace_back(s.original);
    return std::string(s.original);
  });
  CHECK(seen == std::vector<std::string>{"i.mp4", "a.ts", "p.ts", "h.ts"});
}

TEST_CASE(
    "replacements with quotes or line breaks are percent-encoded so the playlist keeps its shape") {
  auto pl =
      parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:1,\na.ts\n");
  const auto& map = pl.tmpl.slots()[0];
  const auto& seg = pl.tmpl.slots()[1];
  CHECK(hls::escape_replacement(map, "a\"b\r\nc\td") == "a%22b%0D%0Ac%09d");
  CHECK(hls::escape_replacement(map, " # ok ") == " # ok ");
  CHECK(hls::escape_replacement(seg, "#EXT-X-ENDLIST") == "%23EXT-X-ENDLIST");
  CHECK(hls::escape_replacement(seg, "  a b \"c\" ") == "%20%20a b \"c\"%20");
  CHECK(hls::escape_replacement(seg, "https://x/y?z=1") == "https://x/y?z=1");

  const std::string out = hls::render(pl.tmpl, [](const hls::UriSlot& s) {
    return s.quoted ? std::string("x\"\n#EXT-X-ENDLIST") : std::string("#EXT-X-ENDLIST\n");
  });
  CHECK(out ==
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"x%22%0A#EXT-X-ENDLIST\"\n"
        "#EXTINF:1,\n%23EXT-X-ENDLIST%0A\n");
  auto again = parse_ok(out);
  CHECK_FALSE(again.media.endlist);
  CHECK(again.media.segments.size() == 1);
}

TEST_CASE("render_to appends to an existing buffer") {
  auto pl = parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n");
  std::string out = "HTTP body: ";
  hls::render_to(out, pl.tmpl, [](const hls::UriSlot&) { return std::string("b.ts"); });
  CHECK(out == "HTTP body: #EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nb.ts\n");
}

TEST_CASE("a Template outlives its Playlist and can be rendered from several threads at once") {
  hls::Template tmpl;
  CHECK(hls::render(tmpl, hls_test::identity_mapper).empty());
  {
    auto pl = parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n");
    tmpl = pl.tmpl;  // shares the source bytes
  }
  CHECK(tmpl.literals().size() == tmpl.slots().size() + 1);
  CHECK(tmpl.literal_bytes() == tmpl.source().size() - 8);
  std::vector<std::string> outputs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outputs.size(); ++i) {
    threads.emplace_back([&, i] {
      outputs[i] = hls::render(tmpl, [i](const hls::UriSlot& s) {
        return "https://cache" + std::to_string(i) + ".example/" + std::string(s.original);
      });
    });
  }
  for (auto& t : threads) t.join();
  CHECK(outputs[3] ==
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttps://cache3.example/a.ts\n"
        "#EXTINF:1,\nhttps://cache3.example/b.ts\n");
}

TEST_CASE("a large playlist renders in one pass with a rewrite of every segment") {
  std::string text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n";
  for (int i = 0; i < 20000; ++i) text += "#EXTINF:2.000,\nseg" + std::to_string(i) + ".ts\n";
  text += "#EXT-X-ENDLIST\n";
  auto pl = parse_ok(text);
  REQUIRE(pl.media.segments.size() == 20000);
  CHECK(pl.media.segments.back().sequence == 20000u);
  const std::string out = hls::render(pl.tmpl, by_role);
  CHECK(out.size() > text.size());
  CHECK(hls::render(pl.tmpl, hls_test::identity_mapper) == text);
}
