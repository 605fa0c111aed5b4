// What a channel's viewers may make the balancer fetch: its source, and the playlists and keys
// its own parsed playlists link to on its origin; what each variant costs. Pure (no I/O).
#include "balancer/viewers/channel_allowlist.h"

#include <doctest/doctest.h>

#include <string>

#include "balancer/viewers/playlist_mapper.h"
#include "hls/playlist.h"

namespace balancer {
namespace channel_allowlist_test {

const std::string kOriginBase = "http://o.example/files";

ChannelConfig channel(const std::string& id, const std::string& source = "/live/master.m3u8",
                      const std::string& origin = "demo") {
  ChannelConfig c;
  c.id = id;
  c.origin = origin;
  c.source = source;
  return c;
}

// A version of the playlist `text` found at `target` on the origin, numbered `serial`.
SourceVersion version_of(const std::string& text, const std::string& target, uint64_t serial) {
  auto parsed = hls::parse_playlist(text, kOriginBase + target);
  INFO("parse error: ", parsed.ok() ? std::string() : parsed.error().message);
  REQUIRE(parsed.ok());
  SourceVersion v;
  v.playlist = std::move(parsed).value();
  v.plan = plan_rewrite(v.playlist.tmpl, kOriginBase);
  v.serial = serial;
  return v;
}

const std::string kMaster =
    "#EXTM3U\n"
    "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"../keys/session.key\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=800000\nhigh/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=200000\nlow/index.m3u8\n"
    "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"iframes/index.m3u8\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=500000\nhttp://elsewhere.example/other.m3u8\n";

const std::string kMedia =
    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n"
    "#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k1.key\"\n#EXTINF:2.0,\ns1.ts\n";

TEST_CASE(
    "channel allowlist: the source at once; other playlists and keys once its playlists link to "
    "them") {
  ChannelAllowlist allow;
  const ChannelConfig demo = channel("demo");
  CHECK(allow.allows_playlist(demo, "/live/master.m3u8"));
  CHECK_FALSE(allow.allows_playlist(demo, "/live/high/index.m3u8"));
  CHECK_FALSE(allow.allows_key(demo, "/keys/session.key"));
  CHECK(allow.variant_bandwidth(demo, "/live/high/index.m3u8") == 0);

  allow.learn(demo, version_of(kMaster, "/live/master.m3u8", 1));
  for (const char* variant :
       {"/live/high/index.m3u8", "/live/low/index.m3u8", "/live/iframes/index.m3u8"}) {
    CHECK_MESSAGE(allow.allows_playlist(demo, variant), variant);
  }
  CHECK(allow.allows_key(demo, "/keys/session.key"));
  // Off the origin: never fetched, so never allowed.
  CHECK_FALSE(allow.allows_playlist(demo, "/other.m3u8"));
  // A key is not a playlist, nor the other way round.
  CHECK_FALSE(allow.allows_playlist(demo, "/keys/session.key"));
  CHECK_FALSE(allow.allows_key(demo, "/live/high/index.m3u8"));
  // What each variant costs; an I-frame playlist is fetched beside a variant: not counted.
  CHECK(allow.variant_bandwidth(demo, "/live/high/index.m3u8") == 800000);
  CHECK(allow.variant_bandwidth(demo, "/live/low/index.m3u8") == 200000);
  CHECK(allow.variant_bandwidth(demo, "/live/iframes/index.m3u8") == 0);

  // A media playlist's keys (relative to it).
  allow.learn(demo, version_of(kMedia, "/live/high/index.m3u8", 2));
  CHECK(allow.allows_key(demo, "/live/keys/k1.key"));
  const auto learned = allow.playlists(demo, 10);
  CHECK(learned.size() == 3);
  CHECK(allow.playlists(demo, 1).size() == 1);
}

TEST_CASE("channel allowlist: what one channel learned allows nothing to another") {
  ChannelAllowlist allow;
  const ChannelConfig demo = channel("demo");
  const ChannelConfig other = channel("other", "/other/master.m3u8");
  allow.learn(demo, version_of(kMaster, "/live/master.m3u8", 1));
  CHECK(allow.allows_playlist(demo, "/live/high/index.m3u8"));
  for (const char* demos : {"/live/high/index.m3u8", "/live/master.m3u8"}) {
    CHECK_FALSE_MESSAGE(allow.allows_playlist(other, demos), demos);
  }
  CHECK_FALSE(allow.allows_key(other, "/keys/session.key"));
  CHECK(allow.allows_playlist(other, "/other/master.m3u8"));
}

TEST_CASE(
    "channel allowlist: a channel whose origin or source changed starts over; one gone is "
    "forgotten") {
  ChannelAllowlist allow;
  allow.learn(channel("demo"), version_of(kMaster, "/live/master.m3u8", 1));
  REQUIRE(allow.allows_playlist(channel("demo"), "/live/high/index.m3u8"));

  // Another source: what the old one linked to is no longer the channel's.
  const ChannelConfig moved = channel("demo", "/new/master.m3u8");
  CHECK_FALSE(allow.allows_playlist(moved, "/live/high/index.m3u8"));
  CHECK_FALSE(allow.allows_key(moved, "/keys/session.key"));
  CHECK(allow.allows_playlist(moved, "/new/master.m3u8"));
  // Back to the first source: learned again from scratch, not remembered.
  CHECK_FALSE(allow.allows_playlist(channel("demo"), "/live/high/index.m3u8"));

  allow.learn(channel("demo"), version_of(kMaster, "/live/master.m3u8", 2));
  CHECK_FALSE(allow.allows_playlist(channel("demo", "/live/master.m3u8", "backup"),
                                    "/live/high/index.m3u8"));

  allow.learn(channel("demo"), version_of(kMaster, "/live/master.m3u8", 3));
  allow.learn(channel("kept"), version_of(kMaster, "/live/master.m3u8", 4));
  BalancerConfig config;
  config.channels.push_back(channel("kept"));
  allow.retain(config);
  CHECK(allow.allows_playlist(channel("kept"), "/live/high/index.m3u8"));
  CHECK(allow.playlists(channel("demo"), 10).empty());
}

TEST_CASE("channel allowlist: at most 4,096 distinct playlists per channel are learned") {
  std::string master = "#EXTM3U\n";
  for (int i = 0; i < 4100; ++i) {
    master += "#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(1000 + i) + "\nv" +
              std::to_string(i) + ".m3u8\n";
  }
  ChannelAllowlist allow;
  const ChannelConfig demo = channel("demo");
  allow.learn(demo, version_of(master, "/live/master.m3u8", 1));
  CHECK(allow.playlists(demo, 10000).size() == 4096);
  int allowed = 0;
  for (int i = 0; i < 4100; ++i)
    allowed += allow.allows_playlist(demo, "/live/v" + std::to_string(i) + ".m3u8");
  CHECK(allowed == 4096);
  CHECK_FALSE(allow.allows_playlist(demo, "/live/v4099.m3u8"));  // learned in playlist order
}

}  // namespace channel_allowlist_test
}  // namespace balancer
