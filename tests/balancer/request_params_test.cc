// The viewer-facing URL scheme: channel, origin target, viewer parameters and
// LL-HLS delivery directives.
#include "balancer/viewers/request_params.h"

#include <doctest/doctest.h>

namespace balancer {
namespace {

ViewerRequest ok(std::string_view target, std::string_view prefix = kPlaylistPrefix) {
  auto r = parse_viewer_request(target, prefix);
  INFO("error: ", r.ok() ? std::string() : r.error().message);
  REQUIRE(r.ok());
  return std::move(r).value();
}

TEST_CASE("a master request splits into channel, origin target and viewer parameters") {
  auto r = ok("/hls/demo/live/master.m3u8?cache=venue-a&viewer=abc");
  CHECK(r.channel == "demo");
  CHECK(r.origin_target == "/live/master.m3u8");
  CHECK(r.cache == "venue-a");
  CHECK(r.viewer == "abc");
  CHECK(r.ticket.empty());
  CHECK_FALSE(r.directives.any());
  CHECK(r.viewer_query == "cache=venue-a&viewer=abc");
}

TEST_CASE("other parameters belong to the origin path and keep their order") {
  auto r = ok("/hls/demo/v/index.m3u8?token=1&cache=c1&b=2&ticket=AB.cd-_&a");
  CHECK(r.origin_target == "/v/index.m3u8?token=1&b=2&a");
  CHECK(r.ticket == "AB.cd-_");
  CHECK(r.viewer_query == "cache=c1&ticket=AB.cd-_");
}

TEST_CASE("a steering pathway is the viewer's but stays out of the links back") {
  auto r = ok("/hls/demo/v/index.m3u8?cache=venue-a&ticket=T&pathway=venue-b");
  CHECK(r.pathway == "venue-b");
  CHECK(r.origin_target == "/v/index.m3u8");
  CHECK(r.viewer_query == "cache=venue-a&ticket=T");
  CHECK(ok("/hls/demo/v/index.m3u8?viewer=x&pathway=origin").pathway == "origin");
  CHECK_FALSE(
      parse_viewer_request("/hls/demo/v.m3u8?viewer=x&pathway=a&pathway=b", kPlaylistPrefix).ok());
  CHECK_FALSE(
      parse_viewer_request("/hls/demo/v.m3u8?viewer=x&pathway=a%2Fb", kPlaylistPrefix).ok());
}

TEST_CASE("pathway=. names the default copy's variant of a made master: not a pinned pathway") {
  auto r = ok("/hls/demo/v/index.m3u8?cache=venue-a&viewer=x&pathway=.");
  CHECK(r.pathway == ".");
  CHECK_FALSE(r.pinned_pathway());
  CHECK(r.viewer_query == "cache=venue-a&viewer=x");
  CHECK(ok("/hls/demo/v/index.m3u8?viewer=x&pathway=venue-b").pinned_pathway());
  CHECK_FALSE(ok("/hls/demo/v/index.m3u8?viewer=x").pinned_pathway());
  CHECK_FALSE(parse_viewer_request("/hls/demo/v.m3u8?viewer=x&pathway=..", kPlaylistPrefix).ok());
}

TEST_CASE("LL-HLS delivery directives are parsed and rebuilt in a canonical order") {
  auto r = ok("/hls/demo/v.m3u8?_HLS_skip=YES&_HLS_part=2&viewer=x&_HLS_msn=41");
  CHECK(r.directives.msn == 41u);
  CHECK(r.directives.part == 2u);
  CHECK(r.directives.skip == "YES");
  CHECK(r.directives.blocking());
  CHECK(r.directives.query() == "_HLS_msn=41&_HLS_part=2&_HLS_skip=YES");
  CHECK(r.origin_target == "/v.m3u8");
  CHECK(ok("/hls/demo/v.m3u8?_HLS_skip=v2").directives.query() == "_HLS_skip=v2");
}

TEST_CASE("bad requests are refused with a message") {
  for (const char* bad : {"/hls/",
                          "/hls/demo",
                          "/hls/demo/",
                          "/hls/de mo/a.m3u8",
                          "/hls/demo//a.m3u8",
                          "/hls/demo/a/../b.m3u8",
                          "/hls/demo/a/%2e%2e/b.m3u8",
                          "/hls/demo/./a.m3u8",
                          "/hls/demo/a%zz.m3u8",
                          "/hls/demo/a.m3u8?cache=a&cache=b",
                          "/hls/demo/a.m3u8?_HLS_part=1",
                          "/hls/demo/a.m3u8?_HLS_msn=-1",
                          "/hls/demo/a.m3u8?_HLS_msn=x",
                          "/hls/demo/a.m3u8?_HLS_skip=NO",
                          "/hls/demo/a.m3u8?cache=bad%20id",
                          "/hls/demo/a.m3u8?viewer=has%20space",
                          "/hls/demo/a%5cb.m3u8",
                          "/hls/demo/a.m3u8?x=%zz",
                          "/hls/demo/a\x01.m3u8",
                          "/hls/demo/a\\b.m3u8",
                          "/hls/demo/a.m3u8?viewer=a+b"}) {
    auto r = parse_viewer_request(bad, kPlaylistPrefix);
    CHECK_MESSAGE(!r.ok(), bad);
    if (!r.ok()) CHECK(r.error().code == "bad_request");
  }
}

TEST_CASE("key URLs take viewer parameters but no delivery directives") {
  auto r = ok("/key/demo/keys/k1.key?viewer=abc", kKeyPrefix);
  CHECK(r.origin_target == "/keys/k1.key");
  CHECK_FALSE(parse_viewer_request("/key/demo/k.key?_HLS_msn=1", kKeyPrefix).ok());
  CHECK_FALSE(parse_viewer_request("/hls/demo/k.key", kKeyPrefix).ok());
}

TEST_CASE("a key URL's source (bsrc) is the viewer's on keys only, and must be an origin id") {
  auto key = parse_viewer_request("/key/ch/live/k.bin?bsrc=backup&viewer=v1", kKeyPrefix);
  REQUIRE(key.ok());
  CHECK(key.value().key_origin == "backup");
  CHECK(key.value().origin_target == "/live/k.bin");
  CHECK(key.value().viewer_query == "viewer=v1");
  CHECK_FALSE(parse_viewer_request("/key/ch/k.bin?bsrc=a&bsrc=b", kKeyPrefix).ok());
  CHECK_FALSE(parse_viewer_request("/key/ch/k.bin?bsrc=..%2Fx", kKeyPrefix).ok());
  // On a playlist it is the origin's own parameter.
  auto playlist = parse_viewer_request("/hls/ch/live/index.m3u8?bsrc=backup", kPlaylistPrefix);
  REQUIRE(playlist.ok());
  CHECK(playlist.value().key_origin.empty());
  CHECK(playlist.value().origin_target == "/live/index.m3u8?bsrc=backup");
}

TEST_CASE("viewer parameter values are decoded and re-encoded safely") {
  auto r = ok("/hls/demo/a.m3u8?viewer=a%2Bb");
  CHECK(r.viewer == "a+b");
  CHECK(r.viewer_query == "viewer=a%2Bb");
}

}  // namespace
}  // namespace balancer
