// Playlist URL mapping: every role, relative/absolute/foreign URIs, origin base
// prefixes, signing of chunk links and rendering of a viewer's copy.
#include "balancer/viewers/playlist_mapper.h"

#include <doctest/doctest.h>

#include <string>

#include "hls/playlist.h"

namespace balancer {
namespace {

const std::string kKey = "mapper-test-signing-key-01";
constexpr int64_t kExpires = 1'900'000'000;

hls::Playlist parse(std::string_view text, std::string_view url) {
  auto r = hls::parse_playlist(text, url);
  INFO("parse error: ", r.ok() ? std::string() : r.error().message);
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Links for channel "demo" carrying the viewer's parameters `viewer_query`.
ViewerLinks demo_links(std::string_view viewer_query,
                       const std::vector<std::string>* chunk_links = nullptr) {
  ViewerLinks links;
  links.channel = "demo";
  links.viewer_query = viewer_query;
  links.chunk_links = chunk_links;
  return links;
}

// A playlist parsed at `url` with its rewrite plan for the origin at `origin_base`.
struct MappedPlaylist {
  hls::Playlist playlist;
  RewritePlan plan;
};

MappedPlaylist map_playlist(std::string_view text, std::string_view url,
                            std::string_view origin_base) {
  hls::Playlist playlist = parse(text, url);
  RewritePlan plan = plan_rewrite(playlist.tmpl, origin_base);
  return {std::move(playlist), std::move(plan)};
}

// The signer of chunk links, with the test's key.
signing::UrlSigner test_signer() {
  auto signer = signing::UrlSigner::create({kKey});
  REQUIRE(signer.ok());
  return std::move(signer).value();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Checks that `text` has `count` lines and each of `expected` (line index, text) as given.
void check_lines(const std::string& text, size_t count,
                 const std::vector<std::pair<size_t, std::string>>& expected) {
  const std::vector<std::string> l = lines(text);
  REQUIRE(l.size() == count);
  for (const auto& [index, line] : expected) {
    INFO("line ", index);
    CHECK(l[index] == line);
  }
}

TEST_CASE("origin_target_of keeps path and query under the origin base, and nothing else") {
  const std::string base = "http://origin.example:8080/files";
  CHECK(origin_target_of("http://origin.example:8080/files/live/a.m3u8", base) == "/live/a.m3u8");
  CHECK(origin_target_of("http://origin.example:8080/files/live/a.ts?x=1&y=2", base) ==
        "/live/a.ts?x=1&y=2");
  CHECK(origin_target_of("http://ORIGIN.example:8080/files/a.ts#frag", base) == "/a.ts");
  CHECK(origin_target_of("HTTP://origin.example:8080/files/a.ts", base) == "/a.ts");
  CHECK_FALSE(
      origin_target_of("http://origin.example:8080/other/a.ts", base));  // outside the prefix
  CHECK_FALSE(origin_target_of("http://origin.example:8080/filesx/a.ts", base));
  CHECK_FALSE(origin_target_of("http://origin.example:8081/files/a.ts", base));   // other port
  CHECK_FALSE(origin_target_of("https://origin.example:8080/files/a.ts", base));  // other scheme
  CHECK_FALSE(origin_target_of("http://evil.example/files/a.ts", base));
  CHECK_FALSE(origin_target_of("http://user@origin.example:8080/files/a.ts", base));
  CHECK_FALSE(origin_target_of("data:text/plain,hello", base));
  CHECK_FALSE(origin_target_of("skd://key-id", base));
  // Default ports are equivalent to no port.
  CHECK(origin_target_of("http://o.example:80/a.ts", "http://o.example") == "/a.ts");
  CHECK(origin_target_of("https://o.example/a.ts", "https://o.example:443/") == "/a.ts");
}

TEST_CASE("normalize_chunk_target drops empty and signature parameters") {
  CHECK(normalize_chunk_target("/a.ts") == "/a.ts");
  CHECK(normalize_chunk_target("/a.ts?") == "/a.ts");
  CHECK(normalize_chunk_target("/a.ts?x=1&&y=2&") == "/a.ts?x=1&y=2");
  CHECK(normalize_chunk_target("/a.ts?bexp=1&x=1&bsig=abc") == "/a.ts?x=1");
}

const char* kMaster =
    "#EXTM3U\n"
    "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"keys/session.key\"\n"
    "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.info\",URI=\"info.json\"\n"
    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\"\n"
    "low/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=1600000,AUDIO=\"a\"\n"
    "../other/mid.m3u8?token=abc\n"
    "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI=\"low/iframes.m3u8\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=3000000\n"
    "https://cdn.example/high.m3u8\n";

TEST_CASE(
    "master: playlists and keys lead back to the balancer with the viewer's parameters; foreign "
    "URIs stay") {
  auto [p, plan] =
      map_playlist(kMaster, "http://o.example/files/live/master.m3u8", "http://o.example/files");
  CHECK(plan.chunk_slots == 0);
  ViewerLinks links = demo_links("cache=venue-a&viewer=abc");
  std::string out = render_for_viewer(p.tmpl, plan, links);
  check_lines(
      out, 11,
      {
          {1,
           "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"/key/demo/live/keys/"
           "session.key?cache=venue-a&viewer=abc\""},
          {2,
           "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.info\",URI=\"http://o.example/files/live/"
           "info.json\""},
          {3,
           "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"/hls/demo/live/audio/"
           "en.m3u8?cache=venue-a&viewer=abc\""},
          {4, "#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\""},
          {5, "/hls/demo/live/low/index.m3u8?cache=venue-a&viewer=abc"},
          {7, "/hls/demo/other/mid.m3u8?token=abc&cache=venue-a&viewer=abc"},
          {8,
           "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI=\"/hls/demo/live/low/"
           "iframes.m3u8?cache=venue-a&viewer=abc\""},
          {10, "https://cdn.example/high.m3u8"},  // another host: left absolute, never proxied
      });

  // With a public URL, links back to the balancer are absolute.
  links.balancer_base = "https://balancer.example";
  std::string absolute = render_for_viewer(p.tmpl, plan, links);
  CHECK(lines(absolute)[5] ==
        "https://balancer.example/hls/demo/live/low/index.m3u8?cache=venue-a&viewer=abc");
  // No viewer parameters: no dangling '?'.
  links.balancer_base = "";
  links.viewer_query = "";
  CHECK(lines(render_for_viewer(p.tmpl, plan, links))[5] == "/hls/demo/live/low/index.m3u8");
}

TEST_CASE("absolute and protocol-relative URIs on the origin are treated like relative ones") {
  auto [p, plan] = map_playlist(
      "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://O.example/files/live/abs.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=2\n//o.example/files/live/proto.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=3\n/files/live/rooted.m3u8\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=4\n/elsewhere/outside.m3u8\n",
      "http://o.example/files/live/master.m3u8", "http://o.example/files");
  ViewerLinks links = demo_links("viewer=v");
  check_lines(render_for_viewer(p.tmpl, plan, links), 9,
              {
                  {2, "/hls/demo/live/abs.m3u8?viewer=v"},
                  {4, "/hls/demo/live/proto.m3u8?viewer=v"},
                  {6, "/hls/demo/live/rooted.m3u8?viewer=v"},
                  // Same host but outside the origin's base path: not the channel's origin.
                  {8, "http://o.example/elsewhere/outside.m3u8"},
              });
}

const char* kMedia =
    "#EXTM3U\r\n"
    "#EXT-X-VERSION:9\r\n"
    "#EXT-X-TARGETDURATION:2\r\n"
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\r\n"
    "#EXT-X-PART-INF:PART-TARGET=0.5\r\n"
    "#EXT-X-MEDIA-SEQUENCE:7\r\n"
    "#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k7.key\"\r\n"
    "#EXT-X-MAP:URI=\"init.mp4\"\r\n"
    "#EXTINF:2.0,\r\n"
    "seg7.m4s\r\n"
    "#EXT-X-PART:DURATION=0.5,URI=\"seg8.0.m4s\"\r\n"
    "#EXTINF:2.0,\r\n"
    "seg8.m4s?v=2\r\n"
    "#EXTINF:2.0,\r\n"
    "https://cdn.example/seg9.m4s\r\n"
    "#EXTINF:2.0,\r\n"
    "data:video/mp4;base64,AAAA\r\n"
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg10.0.m4s\"\r\n"
    "#EXT-X-RENDITION-REPORT:URI=\"../high/index.m3u8\",LAST-MSN=9,LAST-PART=0\r\n";

// kMedia as served by the origin at http://o.example:8080/files.
MappedPlaylist map_media() {
  return map_playlist(kMedia, "http://o.example:8080/files/live/low/index.m3u8",
                      "http://o.example:8080/files");
}

TEST_CASE(
    "media: chunks (segments, map, parts, preload hints) lead to the cache, signed; keys and "
    "reports back") {
  auto [p, plan] = map_media();
  CHECK(plan.chunk_slots == 5);  // map, seg7, part, seg8, hint (seg9 and data: are not ours)
  const signing::UrlSigner signer = test_signer();
  // No first-listed times: good for 100 s from now; the map for kMapLinkLifetimeS.
  ChunkDestination d{"http://cache-a.example:8081", "demo", &signer, kExpires - 100, 100};
  std::vector<std::string> chunk_list = chunk_links(p.tmpl, plan, d);
  REQUIRE(chunk_list.size() == 5);
  ViewerLinks links = demo_links("cache=cache-a&ticket=T.S", &chunk_list);
  std::string out = render_for_viewer(p.tmpl, plan, links);
  auto l = lines(out);
  CHECK(l[6] ==
        "#EXT-X-KEY:METHOD=AES-128,URI=\"/key/demo/live/keys/k7.key?cache=cache-a&ticket=T.S\"\r");
  CHECK(l[7] == "#EXT-X-MAP:URI=\"" + chunk_list[0] + "\"\r");
  CHECK(chunk_list[0].rfind("http://cache-a.example:8081/o/demo/live/low/init.mp4?bexp=" +
                                std::to_string(kExpires - 100 + kMapLinkLifetimeS) + "&bsig=",
                            0) == 0);
  CHECK(chunk_list[1].rfind("http://cache-a.example:8081/o/demo/live/low/seg7.m4s?bexp=1900000000&",
                            0) == 0);
  CHECK(l[9] == chunk_list[1] + "\r");
  CHECK(chunk_list[2].rfind("http://cache-a.example:8081/o/demo/live/low/seg8.0.m4s?bexp=", 0) ==
        0);
  CHECK(chunk_list[3].rfind("http://cache-a.example:8081/o/demo/live/low/seg8.m4s?v=2&bexp=", 0) ==
        0);
  CHECK(l[14] == "https://cdn.example/seg9.m4s\r");  // foreign chunk: absolute, unsigned
  CHECK(l[16] == "data:video/mp4;base64,AAAA\r");
  CHECK(l[17] == "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"" + chunk_list[4] + "\"\r");
  CHECK(l[18] ==
        "#EXT-X-RENDITION-REPORT:URI=\"/hls/demo/live/high/"
        "index.m3u8?cache=cache-a&ticket=T.S\",LAST-MSN=9,LAST-PART=0\r");
  // Every other byte is kept, CRLF included.
  CHECK(l[3] == "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\r");

  // The cache node's check accepts each signed link (path + query after the host) until it
  // expires.
  for (const auto& link : chunk_list) {
    std::string target = link.substr(std::string("http://cache-a.example:8081").size());
    const int64_t expires = link == chunk_list[0] ? kExpires - 100 + kMapLinkLifetimeS : kExpires;
    CHECK_MESSAGE(signer.verify(target, expires - 10) == signing::SignatureVerdict::ok, target);
    CHECK(signer.verify(target, expires + 1) == signing::SignatureVerdict::expired);
  }
}

TEST_CASE("media without a usable cache: chunk links are the absolute origin URLs") {
  auto [p, plan] = map_media();
  ChunkDestination d;  // cache_url empty = origin
  d.origin_id = "demo";
  std::vector<std::string> chunk_list = chunk_links(p.tmpl, plan, d);
  REQUIRE(chunk_list.size() == 5);
  CHECK(chunk_list[0] == "http://o.example:8080/files/live/low/init.mp4");
  CHECK(chunk_list[1] == "http://o.example:8080/files/live/low/seg7.m4s");
  CHECK(chunk_list[3] == "http://o.example:8080/files/live/low/seg8.m4s?v=2");
}

TEST_CASE("switching the destination changes only the host part of chunk links") {
  auto [p, plan] = map_media();
  const signing::UrlSigner signer = test_signer();
  ChunkDestination a{"http://cache-a.example", "demo", &signer, kExpires};
  ChunkDestination b{"http://cache-b.example", "demo", &signer, kExpires};
  auto la = chunk_links(p.tmpl, plan, a);
  auto lb = chunk_links(p.tmpl, plan, b);
  for (size_t i = 0; i < la.size(); ++i) {
    CHECK(la[i].substr(std::string("http://cache-a.example").size()) ==
          lb[i].substr(std::string("http://cache-b.example").size()));
  }
}

TEST_CASE(
    "chunks whose path the cache node would refuse keep their origin URL instead of a signed "
    "link") {
  auto [p, plan] = map_playlist(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
      "#EXTINF:2.0,\n.//x.ts\n"  // resolves to live//x.ts: an empty segment
      "#EXTINF:2.0,\na//b.ts\n"
      "#EXTINF:2.0,\n%2e%2e/up.ts\n"  // encoded dot segments survive resolution
      "#EXTINF:2.0,\nsub/%2E/y.ts\n"
      "#EXTINF:2.0,\nq.ts?x=%zz\n"  // malformed escape in the query
      "#EXTINF:2.0,\nok.ts\n",
      "http://o.example/files/live/index.m3u8", "http://o.example/files");
  CHECK(plan.chunk_slots == 1);
  const signing::UrlSigner signer = test_signer();
  std::vector<std::string> chunk_list = chunk_links(
      p.tmpl, plan, ChunkDestination{"http://cache-a.example", "demo", &signer, kExpires});
  REQUIRE(chunk_list.size() == 1);
  CHECK(chunk_list[0].rfind("http://cache-a.example/o/demo/live/ok.ts?bexp=", 0) == 0);
  ViewerLinks links = demo_links("", &chunk_list);
  check_lines(render_for_viewer(p.tmpl, plan, links), 14,
              {
                  {3, "http://o.example/files/live//x.ts"},
                  {5, "http://o.example/files/live/a//b.ts"},
                  {7, "http://o.example/files/live/%2e%2e/up.ts"},
                  {9, "http://o.example/files/live/sub/%2E/y.ts"},
                  {11, "http://o.example/files/live/q.ts?x=%zz"},
                  {13, chunk_list[0]},
              });
}

}  // namespace
TEST_CASE(
    "link expiry: fixed from when a chunk was first listed, so its link does not change while "
    "listed") {
  // Listed at 1000 with a 120 s lifetime: the same expiry at every refresh up to 60 s later.
  for (int64_t now = 1000; now <= 1060; now += 7) CHECK(link_expiry(1000, now, 120) == 1120);
  // Listed longer than half a lifetime: moved on by a whole lifetime, never expired.
  CHECK(link_expiry(1000, 1061, 120) == 1240);
  CHECK(link_expiry(1000, 1180, 120) == 1240);
  CHECK(link_expiry(1000, 1181, 120) == 1360);
  for (int64_t now = 1000; now < 2000; now += 13) CHECK(link_expiry(1000, now, 120) >= now + 60);
  // Unknown (or in the future): counted from now.
  CHECK(link_expiry(-1, 5000, 120) == 5120);
  CHECK(link_expiry(9000, 5000, 120) == 5120);
}

TEST_CASE(
    "chunk links: with first-listed times, two renderings seconds apart sign each chunk the same") {
  auto [p, plan] = map_media();
  plan.chunk_first_listed.assign(plan.chunk_slots, 1'800'000'000);
  const signing::UrlSigner signer = test_signer();
  ChunkDestination d{"http://cache-a.example:8081", "demo", &signer, 1'800'000'003, 120};
  const std::vector<std::string> first = chunk_links(p.tmpl, plan, d);
  d.now_unix = 1'800'000'041;
  CHECK(chunk_links(p.tmpl, plan, d) == first);
  CHECK(first[1].find("bexp=1800000120&") != std::string::npos);
}

TEST_CASE(
    "chunk links: parts and their preload hint carry the signed part target; segments and the map "
    "do not") {
  const std::string ll =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.27\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.81\n#EXT-X-MEDIA-SEQUENCE:7\n"
      "#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\nseg7.m4s\n"
      "#EXT-X-PART:DURATION=0.27,URI=\"seg8.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg8.1.m4s\"\n";
  auto [p, plan] = map_playlist(ll, "http://o.example/ll/low/index.m3u8", "http://o.example");
  plan.part_target_ms = 270;
  const signing::UrlSigner signer = test_signer();
  ChunkDestination d{"http://cache-a.example:8081", "ll", &signer, 1'800'000'000, 120};
  const std::vector<std::string> links = chunk_links(p.tmpl, plan, d);
  REQUIRE(links.size() == 4);  // map, segment, part, hint (in slot order)
  for (const std::string& link : links) {
    CAPTURE(link);
    const bool part_or_hint = link.find("seg8.") != std::string::npos;
    CHECK((link.find("?bpt=270&bexp=") != std::string::npos) == part_or_hint);
    // Signed with it: the node verifies the whole query, so a viewer cannot change it.
    const std::string target = link.substr(link.find("/o/"));
    CHECK(signer.verify(target, d.now_unix) == signing::SignatureVerdict::ok);
  }
  // Without a part target (a regular playlist) nothing is added.
  plan.part_target_ms = 0;
  for (const std::string& link : chunk_links(p.tmpl, plan, d))
    CHECK(link.find("bpt=") == std::string::npos);
}

TEST_CASE(
    "chunk links: a map listed for hours keeps its link (VHS appends a map whose URI changed "
    "again); a segment listed as long moves on") {
  const std::string ll =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n"
      "#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\nseg7.m4s\n";
  auto [p, plan] = map_playlist(ll, "http://o.example/ll/low/index.m3u8", "http://o.example");
  const int64_t listed = 1'800'000'000;
  plan.chunk_first_listed.assign(plan.chunk_slots, listed);
  const signing::UrlSigner signer = test_signer();
  ChunkDestination d{"http://cache-a.example:8081", "ll", &signer, listed, 120};
  const std::vector<std::string> first = chunk_links(p.tmpl, plan, d);
  REQUIRE(first.size() == 2);  // map, segment
  CHECK(first[0].find("bexp=" + std::to_string(listed + kMapLinkLifetimeS)) != std::string::npos);
  // Three hours later (a match and more): the map's link is the one first listed.
  d.now_unix = listed + 3 * 3600;
  const std::vector<std::string> later = chunk_links(p.tmpl, plan, d);
  CHECK(later[0] == first[0]);
  CHECK(later[1] != first[1]);
  for (const std::string& link : later)
    CHECK(signer.verify(link.substr(link.find("/o/")), d.now_unix) ==
          signing::SignatureVerdict::ok);
}

TEST_CASE(
    "segment_chunks and map_chunks flag the chunk slots of segment lines and maps, in slot order") {
  const std::string ll =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
      "#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init.mp4\"\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"seg7.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"seg7.1.m4s\"\n#EXTINF:1.0,\nseg7.m4s\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"seg8.0.m4s\",INDEPENDENT=YES\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg8.1.m4s\"\n"
      "#EXT-X-RENDITION-REPORT:URI=\"../high/index.m3u8\",LAST-MSN=8,LAST-PART=0\n";
  auto [p, plan] = map_playlist(ll, "http://o.example/ll/low/index.m3u8", "http://o.example");
  // map, two parts, the segment, a part, the hint; the report is a playlist, not a chunk.
  CHECK(segment_chunks(p.tmpl, plan) == std::vector<bool>{false, false, false, true, false, false});
  CHECK(map_chunks(p.tmpl, plan) == std::vector<bool>{true, false, false, false, false, false});
  // Foreign and data: URIs are no chunk slots.
  auto [mixed, mixed_plan] = map_media();
  CHECK(segment_chunks(mixed.tmpl, mixed_plan) ==
        std::vector<bool>{false, true, false, true, false});
  hls::Playlist regular = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.ts\n",
                                "http://o.example/live/index.m3u8");
  CHECK(segment_chunks(regular.tmpl, plan_rewrite(regular.tmpl, "http://o.example")) ==
        std::vector<bool>{true});
}

}  // namespace balancer
