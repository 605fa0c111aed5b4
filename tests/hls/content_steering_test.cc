// Content steering by pathway cloning: the EXT-X-CONTENT-STEERING tag added to a
// multivariant playlist (everything else kept), the playlists left alone, and the
// steering manifest with one clone per pathway.
#include <doctest/doctest.h>

#include "hls/steering.h"

using hls::add_content_steering;

TEST_CASE("steering: the tag goes right after #EXTM3U; the variants stay as they are") {
  const std::string master =
      "#EXTM3U\n#EXT-X-VERSION:3\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n/hls/demo/v0/"
      "index.m3u8?cache=a&ticket=T\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=200000\nhttp://b.example/v1.m3u8\n";
  auto out = add_content_steering(master, "/steering/demo?cache=a&ticket=T");
  REQUIRE(out.has_value());
  CHECK(*out ==
        "#EXTM3U\n"
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steering/demo?cache=a&ticket=T\",PATHWAY-ID=\".\"\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n/hls/demo/v0/"
        "index.m3u8?cache=a&ticket=T\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=200000\nhttp://b.example/v1.m3u8\n");
}

TEST_CASE("steering: CRLF line ends and a BOM are kept") {
  auto out =
      add_content_steering("\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8", "/s");
  REQUIRE(out.has_value());
  CHECK(*out ==
        "\xEF\xBB\xBF#EXTM3U\r\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/s\",PATHWAY-ID=\".\"\r\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8");
}

TEST_CASE("steering: playlists and inputs it leaves alone") {
  const std::string master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
  CHECK(add_content_steering(master, "/s").has_value());
  CHECK_FALSE(add_content_steering(master, "/s\"x").has_value());
  CHECK_FALSE(add_content_steering(master, "/s\nx").has_value());
  CHECK_FALSE(add_content_steering(master, "").has_value());
  CHECK_FALSE(add_content_steering("#EXTM3U\n#EXTINF:2,\nseg1.ts\n", "/s")
                  .has_value());  // a media playlist
  CHECK_FALSE(add_content_steering("#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", "/s").has_value());
  CHECK_FALSE(
      add_content_steering(
          "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"x\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv\n",
          "/s")
          .has_value());
  CHECK_FALSE(
      add_content_steering("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID=\"x\"\nv\n", "/s")
          .has_value());
}

TEST_CASE("steering: the manifest clones the default pathway once per pathway") {
  CHECK(
      hls::steering_manifest(2, {"venue-b", "origin"}, {"venue-a", "venue-b", "origin"}) ==
      "{\"VERSION\":1,\"TTL\":2,\"PATHWAY-PRIORITY\":[\"venue-b\",\"origin\"],\"PATHWAY-CLONES\":["
      "{\"BASE-ID\":\".\",\"ID\":\"venue-a\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"pathway\":\"venue-"
      "a\"}}},"
      "{\"BASE-ID\":\".\",\"ID\":\"venue-b\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"pathway\":\"venue-"
      "b\"}}},"
      "{\"BASE-ID\":\".\",\"ID\":\"origin\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"pathway\":"
      "\"origin\"}}}]}\n");
  CHECK(
      hls::steering_manifest(5, {".", "a"}, {"a"}, "/s?x=\"1\"\n") ==
      "{\"VERSION\":1,\"TTL\":5,\"RELOAD-URI\":\"/"
      "s?x=\\\"1\\\"\",\"PATHWAY-PRIORITY\":[\".\",\"a\"],\"PATHWAY-CLONES\":["
      "{\"BASE-ID\":\".\",\"ID\":\"a\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"pathway\":\"a\"}}}]}\n");
  CHECK(hls::valid_pathway_id("venue-a.1_x"));
  CHECK_FALSE(hls::valid_pathway_id("a/b"));
  CHECK_FALSE(hls::valid_pathway_id(""));
  CHECK_FALSE(hls::valid_pathway_id(std::string(65, 'a')));
}
