// The real balancer against a real origin (and a real cache node): per-viewer
// rewriting of master and media playlists end to end, entitlement of playlists
// and keys, error replies, and reload of channels on SIGHUP.
#include <doctest/doctest.h>

#include <map>

#include "support/venue_stack.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const char* kMaster =
    "#EXTM3U\n"
    "#EXT-X-VERSION:4\n"
    "#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"keys/k1.key\"\n"
    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,URI=\"audio/en.m3u8\"\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO=\"aud\"\n"
    "low/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,AUDIO=\"aud\"\n"
    "high/index.m3u8?tok=1\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=4000000\n"
    "https://elsewhere.example/uhd.m3u8\n";

const char* kLowMedia =
    "#EXTM3U\n"
    "#EXT-X-VERSION:4\n"
    "#EXT-X-TARGETDURATION:2\n"
    "#EXT-X-MEDIA-SEQUENCE:100\n"
    "#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k1.key\",IV=0x00000000000000000000000000000001\n"
    "#EXT-X-MAP:URI=\"init.mp4\"\n"
    "#EXTINF:2.000,\n"
    "seg100.ts\n"
    "#EXTINF:2.000,\n"
    "seg101.ts?part=a\n"
    "#EXTINF:2.000,\n"
    "http://elsewhere.example/seg102.ts\n";

const std::string kKeyBytes = "0123456789abcdef";
const std::string kSegment100 = std::string(1000, 'x') + "segment-100";

struct Stack : VenueStack {
  Stack() {
    write_file(dir.file("root/live/master.m3u8"), kMaster);
    write_file(dir.file("root/live/low/index.m3u8"), kLowMedia);
    write_file(dir.file("root/live/high/index.m3u8"), live_playlist(100, 3));
    write_file(dir.file("root/live/audio/en.m3u8"), live_playlist(100, 3));
    write_file(dir.file("root/live/keys/k1.key"), kKeyBytes);
    write_file(dir.file("root/live/low/init.mp4"), "init-bytes");
    write_file(dir.file("root/live/low/seg100.ts"), kSegment100);
    write_file(dir.file("root/live/low/seg101.ts"), "segment-101");
    write_file(dir.file("root/bad/index.m3u8"), "this is not a playlist\n");
    write_file(dir.file("root/other/secret.m3u8"), live_playlist(1, 3));
    start(channels_json({channel_json("demo", "/live/master.m3u8"),
                         channel_json("gold", "/live/master.m3u8", false),
                         channel_json("broken", "/bad/index.m3u8"),
                         channel_json("gone", "/missing/index.m3u8")}));
  }
};

}  // namespace

TEST_CASE(
    "master and media are rewritten per viewer: variants and keys back here, chunks to the cache, "
    "signed") {
  Stack s;
  auto master = s.balancer->get_ok("/hls/demo/live/master.m3u8?cache=venue-a&viewer=abc");
  CHECK(master.header("Content-Type") ==
        std::optional<std::string>("application/vnd.apple.mpegurl"));
  auto variants = uri_lines(master.body);
  // Content steering lists them on the cache choice's pathway (balancer_steering_test).
  const std::string q = "cache=venue-a&viewer=abc&pathway=venue-a";
  REQUIRE(variants.size() == 3);
  CHECK(variants[0] == "/hls/demo/live/low/index.m3u8?" + q);
  CHECK(variants[1] == "/hls/demo/live/high/index.m3u8?tok=1&" + q);
  CHECK(variants[2] ==
        "https://elsewhere.example/uhd.m3u8");  // another host: not proxied, left absolute
  CHECK(tag_uri(master.body, "#EXT-X-MEDIA:") == "/hls/demo/live/audio/en.m3u8?" + q);
  CHECK(tag_uri(master.body, "#EXT-X-SESSION-KEY:") == "/key/demo/live/keys/k1.key?" + q);
  // Every other byte is as the origin wrote it (steering adds the pathway to ids and variants).
  CHECK(master.body.find("#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO=\"aud@"
                         "venue-a\",PATHWAY-ID=\"venue-a\"\n") != std::string::npos);

  // Follow the variant link as a player would.
  auto media = s.balancer->get_ok(variants[0]);
  auto chunks = uri_lines(media.body);
  REQUIRE(chunks.size() == 3);
  const std::string cache_prefix =
      "http://127.0.0.1:" + std::to_string(s.node->port()) + "/o/demo/live/low/";
  CHECK(chunks[0].rfind(cache_prefix + "seg100.ts?bexp=", 0) == 0);
  CHECK(chunks[1].rfind(cache_prefix + "seg101.ts?part=a&bexp=", 0) == 0);
  CHECK(chunks[2] == "http://elsewhere.example/seg102.ts");
  std::string map = tag_uri(media.body, "#EXT-X-MAP:");
  CHECK(map.rfind(cache_prefix + "init.mp4?bexp=", 0) == 0);
  // The signature expires well after the next refresh (target duration 2 s).
  int64_t expires = std::stoll(chunks[0].substr(chunks[0].find("bexp=") + 5));
  CHECK(expires >= static_cast<int64_t>(time(nullptr)) + 60);

  // Chunks come through the real cache node, which accepts the signature.
  auto chunk = http_get(chunks[0]);
  REQUIRE(chunk.status == 200);
  CHECK(chunk.body == kSegment100);
  auto again = http_get(chunks[0]);
  CHECK(again.header("X-Cache") == std::optional<std::string>("HIT"));
  CHECK(s.origin->count("/files/live/low/seg100.ts") == 1);
  CHECK(http_get(chunks[1]).body == "segment-101");
  CHECK(http_get(map).body == "init-bytes");
  // A tampered link is refused by the cache.
  std::string tampered = chunks[0];
  tampered.replace(tampered.find("seg100"), 6, "seg101");
  CHECK(http_get(tampered).status == 403);

  // The key comes from the balancer, never from a cache.
  std::string key_uri = tag_uri(media.body, "#EXT-X-KEY:");
  CHECK(key_uri == "/key/demo/live/keys/k1.key?" + q);
  auto key = s.balancer->get_ok(key_uri);
  CHECK(key.body == kKeyBytes);
  CHECK(key.header("Cache-Control") == std::optional<std::string>("private, no-store"));

  // Rendition playlists lead back here too and are served.
  CHECK(s.balancer->get(tag_uri(master.body, "#EXT-X-MEDIA:")).status == 200);
  CHECK(s.balancer->get(variants[1]).status == 200);
  CHECK(s.origin->count("/files/live/high/index.m3u8?tok=1") == 1);
}

TEST_CASE("paid channels and their keys need a ticket for that channel") {
  Stack s;
  const std::string master = "/hls/gold/live/master.m3u8?cache=venue-a";
  const std::string key = "/key/gold/live/keys/k1.key";
  auto none = s.balancer->get(master);
  CHECK(none.status == 401);
  CHECK(is_json_error(none, "ticket_required"));
  auto made_up = s.balancer->get(master + "&viewer=abc");  // anonymous is only for free channels
  CHECK(made_up.status == 403);
  CHECK(is_json_error(made_up, "not_entitled"));
  auto other = s.balancer->get(master + "&ticket=" + make_ticket("demo", "u1"));
  CHECK(other.status == 403);
  CHECK(is_json_error(other, "ticket_wrong_channel"));
  auto expired = s.balancer->get(master + "&ticket=" + make_ticket("gold", "u1", -5));
  CHECK(expired.status == 401);
  CHECK(is_json_error(expired, "ticket_expired"));
  auto forged = s.balancer->get(
      master + "&ticket=" + make_ticket("gold", "u1", 300, "some-other-issuer-key-01"));
  CHECK(forged.status == 401);
  CHECK(is_json_error(forged, "ticket_invalid"));

  const std::string ticket = make_ticket("gold", "u1");
  auto ok = s.balancer->get_ok(master + "&ticket=" + ticket);
  // The ticket travels on in the viewer's links.
  CHECK(uri_lines(ok.body)[0] ==
        "/hls/gold/live/low/index.m3u8?cache=venue-a&ticket=" + ticket + "&pathway=venue-a");
  CHECK(s.balancer->get(uri_lines(ok.body)[0]).status == 200);
  CHECK(s.balancer->get(key + "?ticket=" + ticket).body == kKeyBytes);
  auto key_without = s.balancer->get(key + "?viewer=abc");
  CHECK(key_without.status == 403);
  CHECK(is_json_error(key_without, "not_entitled"));
  CHECK(is_json_error(s.balancer->get(key), "ticket_required"));
  CHECK(s.balancer->get(key + "?ticket=" + make_ticket("demo", "u1")).status == 403);
  // An all-channels ticket works too; free channels need a ticket or a viewer id.
  CHECK(s.balancer->get(master + "&ticket=" + make_ticket("*", "u2")).status == 200);
  auto anonymous = s.balancer->get("/hls/demo/live/master.m3u8");
  CHECK(anonymous.status == 401);
  CHECK(is_json_error(anonymous, "credentials_required"));
}

TEST_CASE("bad sources and bad requests get JSON errors with the right status") {
  Stack s;
  auto malformed = s.balancer->get("/hls/broken/bad/index.m3u8?viewer=abc");
  CHECK(malformed.status == 502);
  CHECK(is_json_error(malformed, "bad_source_playlist"));
  CHECK(malformed.body.find("missing_header") != std::string::npos);
  auto missing = s.balancer->get("/hls/gone/missing/index.m3u8?viewer=abc");
  CHECK(missing.status == 404);
  CHECK(is_json_error(missing, "not_found"));
  auto unknown = s.balancer->get("/hls/nope/live/master.m3u8?viewer=abc");
  CHECK(unknown.status == 404);
  CHECK(is_json_error(unknown, "unknown_channel"));
  // A path on the origin that the channel never linked to is not fetched.
  auto foreign = s.balancer->get("/hls/demo/other/secret.m3u8?viewer=abc");
  CHECK(foreign.status == 404);
  CHECK(s.origin->count("/files/other/secret.m3u8") == 0);
  auto foreign_key = s.balancer->get("/key/demo/other/secret.m3u8?viewer=abc");
  CHECK(foreign_key.status == 404);
  CHECK(s.origin->count("/files/other/secret.m3u8") == 0);
  HttpRequest dots;
  dots.url = s.balancer->url("/hls/demo/live/../master.m3u8?viewer=abc");
  dots.path_as_is = true;  // curl would resolve the dots itself
  auto bad = http_request(dots);
  CHECK(bad.status == 400);
  CHECK(is_json_error(bad, "bad_request"));
  CHECK(is_json_error(s.balancer->get("/hls/demo/live/master.m3u8?viewer=abc&_HLS_part=1"),
                      "bad_request"));
  auto metrics = s.balancer->metrics();
  CHECK(metric_value(metrics, "balancer_errors_total{code=\"bad_source_playlist\"}") == 1);
}

TEST_CASE(
    "SIGHUP adds a channel without a restart; a broken channels file is refused and the old one "
    "stays") {
  Stack s;
  CHECK(s.balancer->get("/hls/fresh/live/master.m3u8?viewer=abc").status == 404);
  s.balancer->write_channels(channels_json(
      {channel_json("demo", "/live/master.m3u8"), channel_json("fresh", "/live/master.m3u8")}));
  REQUIRE(s.balancer->reload("ok"));
  CHECK(s.balancer->get("/hls/fresh/live/master.m3u8?viewer=abc").status == 200);

  s.balancer->write_channels(
      "{\"channels\":[{\"id\":\"x\",\"origin\":\"nowhere\",\"source\":\"/"
      "a.m3u8\",\"free\":true}]}");
  REQUIRE(s.balancer->reload("rejected"));
  CHECK(s.balancer->get("/hls/fresh/live/master.m3u8?viewer=abc").status == 200);
  CHECK(s.balancer->process().stderr_text().find("unknown origin 'nowhere'") != std::string::npos);
  CHECK(s.balancer->process().running());
}

TEST_CASE("--check-config accepts the example config and names the key of a bad one") {
  ChildProcess ok;
  REQUIRE(ok.start({binary_path("balancer"), "--config",
                    std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json", "--check-config"}));
  CHECK(ok.wait_exit(deadline_in(10s)) == 0);
  ChildProcess bad;
  REQUIRE(bad.start({binary_path("balancer"), "--config",
                     std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json", "--check-config",
                     "--set", "health.up_after=0"}));
  CHECK(bad.wait_exit(deadline_in(10s)) == 2);
  CHECK(bad.stderr_text().find("balancer.json: key 'health.up_after'") != std::string::npos);
}

TEST_CASE("SIGTERM drains and exits cleanly") {
  Stack s;
  REQUIRE(s.balancer->get("/hls/demo/live/master.m3u8?viewer=abc").status == 200);
  s.balancer->process().terminate();
  CHECK(s.balancer->process().wait_exit(deadline_in(15s)) == 0);
}

TEST_CASE("a chunk's or part's link is byte-identical in every playlist version that lists it") {
  Stack s;
  write_file(s.dir.file("root/live/low/index.m3u8"), low_latency_playlist(100, 3));
  const std::string url = "/hls/demo/live/low/index.m3u8?cache=venue-a&viewer=abc";
  auto first = s.balancer->get_ok(url);
  const auto before = chunk_links_by_name(first.body);
  REQUIRE(before.count("seg101.1.m4s") == 1);
  REQUIRE(before.count("seg103.1.m4s") == 1);  // the hint
  CHECK(before.at("seg101.m4s").find("/o/demo/live/low/seg101.m4s?bexp=") != std::string::npos);

  // Two seconds on (the signing clock moves), the encoder has moved on by a segment.
  const auto written = std::chrono::steady_clock::now();
  REQUIRE(
      wait_until([&] { return std::chrono::steady_clock::now() - written >= 2100ms; }, 5s, 50ms));
  write_file(s.dir.file("root/live/low/index.m3u8"), low_latency_playlist(101, 3));
  std::map<std::string, std::string> after;
  REQUIRE(wait_until(
      [&] {
        auto second = s.balancer->get(url);
        after = chunk_links_by_name(second.body);
        return second.status == 200 && after.count("seg104.1.m4s") == 1;
      },
      5s, 100ms));
  size_t compared = 0;
  for (const auto& [name, link] : after) {
    auto was = before.find(name);
    if (was == before.end()) continue;
    CAPTURE(name);
    CHECK(link == was->second);
    ++compared;
  }
  // init, seg101–102 and their parts, seg103.0; seg103.1 (the hint before) now listed as a part.
  CHECK(compared >= 8);
  CHECK(after.at("seg103.1.m4s") == before.at("seg103.1.m4s"));
  // The cache node accepts the link it was given first.
  write_file(s.dir.file("root/live/low/seg101.m4s"), "segment-101-bytes");
  auto chunk = http_get(before.at("seg101.m4s"));
  CHECK(chunk.status == 200);
  CHECK(chunk.body == "segment-101-bytes");
}

TEST_CASE(
    "a channel's target_latency_s is the HOLD-BACK (and PART-HOLD-BACK) its viewers get, raised "
    "to the spec's bounds; origin's stays without it") {
  TempDir dir;
  write_file(dir.file("root/live/index.m3u8"), live_playlist(10, 3));
  write_file(dir.file("root/ll/index.m3u8"),
             "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
             "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0\n"
             "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n"
             "#EXTINF:1.0,\ns10.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"s11.0.m4s\"\n");
  TestOrigin origin(serving_files(dir.file("root")));
  auto with_target = [](std::string entry, const std::string& seconds) {
    entry.pop_back();
    return entry + ",\"target_latency_s\":" + seconds + "}";
  };
  BalancerProcess balancer(
      dir, origin.url("/files"),
      channels_json({with_target(channel_json("far", "/live/index.m3u8"), "9"),
                     with_target(channel_json("near", "/live/index.m3u8"), "1"),
                     with_target(channel_json("ll", "/ll/index.m3u8"), "1.5"),
                     channel_json("plain", "/live/index.m3u8")}),
      caches_json({}));
  auto control = [&](const std::string& channel, const std::string& path) {
    const HttpResponse r = balancer.get("/hls/" + channel + path + "?viewer=v");
    REQUIRE(r.status == 200);
    const size_t at = r.body.find("#EXT-X-SERVER-CONTROL:");
    return at == std::string::npos ? std::string() : r.body.substr(at, r.body.find('\n', at) - at);
  };
  CHECK(control("far", "/live/index.m3u8") == "#EXT-X-SERVER-CONTROL:HOLD-BACK=9.000");
  // Three target durations of 2 s at least. The same source, with another target: a copy of
  // its own.
  CHECK(control("near", "/live/index.m3u8") == "#EXT-X-SERVER-CONTROL:HOLD-BACK=6.000");
  CHECK(control("ll", "/ll/index.m3u8") ==
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.000,PART-HOLD-BACK=1.500");
  CHECK(control("plain", "/live/index.m3u8").empty());
}
