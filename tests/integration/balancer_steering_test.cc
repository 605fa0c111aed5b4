// HLS content steering on the real balancer: a viewer's master lists its variants on the
// cache choice's pathway only (what players without steering play), passes the players'
// rules and names its steering manifest by an absolute URI (the configured public URL, else
// the host the viewer reached); /steering/<channel> orders the usable pathways by the cache
// choice with a 30 s TTL, drops a node that goes down and offers the other pathways (the
// site's other nodes, origin) as clones of the listed one; a pathway's media playlist keeps
// its chunk host; once
// its node is down it still answers 200: the chunks it listed to the viewer keep their
// URIs and new ones go to the usable sibling (no player sees an error);
// steering.enabled=false leaves masters as before. A channel whose source is a bare media
// playlist is answered with a master of one variant, steered like the others.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>

#include "support/balancer_fixture.h"
#include "support/steering_rules.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kMaster =
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhi/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=500000\nlo/index.m3u8\n";

// A cache entry whose health document is a static file on the test origin; its chunk
// links lead to `url` and are never followed.
std::string fake_cache(const std::string& id, const std::string& url,
                       const std::string& health_url) {
  return "{\"id\":\"" + id + "\",\"site\":\"venue\",\"url\":\"" + url + "\",\"health_url\":\"" +
         health_url + "\"}";
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<std::string> without_query(std::vector<std::string> uris) {
  for (auto& uri : uris) uri = uri.substr(0, uri.find('?'));
  return uris;
}

struct Stack : BalancerOnOrigin {
  explicit Stack(std::vector<std::string> overrides = {}) {
    overrides.insert(overrides.begin(), "steering.media_masters=true");  // off in the fixture
    write_file(dir.file("root/live/master.m3u8"), kMaster);
    write_file(dir.file("root/live/hi/index.m3u8"), live_playlist(10, 3));
    write_file(dir.file("root/live/lo/index.m3u8"), live_playlist(10, 3));
    write_file(dir.file("root/health/a.json"), R"({"status":"ok"})");
    write_file(dir.file("root/health/b.json"), R"({"status":"ok"})");
    start_origin(serving_files(dir.file("root")));
    start_balancer(
        channels_json({channel_json("demo", "/live/master.m3u8"),
                       channel_json("bare", "/live/hi/index.m3u8")}),
        caches_json({fake_cache("a", "http://127.0.0.1:9", origin->url("/files/health/a.json")),
                     fake_cache("b", "http://127.0.0.2:9", origin->url("/files/health/b.json"))}),
        overrides);
    REQUIRE(balancer->wait_cache_usable("a", true, 10s));
    REQUIRE(balancer->wait_cache_usable("b", true, 10s));
  }
};

}  // namespace

TEST_CASE(
    "steering: the master lists the choice's pathway; the manifest orders the pathways by health "
    "and clones the others from it; a dead pathway keeps the URIs it listed and sends new "
    "segments to the sibling") {
  Stack s;
  auto master = s.balancer->get_ok("/hls/demo/live/master.m3u8?cache=a&viewer=v1");
  INFO(master.body);
  const std::string base = "http://127.0.0.1:" + std::to_string(s.balancer->port());
  CHECK(master.body.find(
            "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"" + base +
            "/steering/demo?cache=a&viewer=v1&pathway=a\",PATHWAY-ID=\"a\"\n#EXT-X-VERSION:3\n") ==
        0);
  CHECK(test_support::steering_rules_problem(master.body) == "");
  // Only the choice's pathway: players without steering play it and probe no other host.
  CHECK(uri_lines(master.body) ==
        std::vector<std::string>{"/hls/demo/live/hi/index.m3u8?cache=a&viewer=v1&pathway=a",
                                 "/hls/demo/live/lo/index.m3u8?cache=a&viewer=v1&pathway=a"});
  CHECK(count(master.body, "#EXT-X-STREAM-INF:") == 2);
  CHECK(count(master.body, ",PATHWAY-ID=\"a\"\n") == 3);  // the tag's and each variant's

  auto manifest =
      s.balancer->get_ok("/steering/demo?cache=a&viewer=v1&_HLS_pathway=a&_HLS_throughput=1000000");
  CHECK(manifest.header("Content-Type") == "application/json");
  CHECK(manifest.header("Cache-Control") == "no-store");
  CHECK(manifest.header("Access-Control-Allow-Origin") == "*");
  CHECK(manifest.body ==
        "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"a\",\"b\",\"origin\"]}\n");
  // Asked as the master names it (with the listed pathway): the others are its clones, on the
  // balancer's host, their URIs with their own pathway parameter.
  const std::string host = "127.0.0.1:" + std::to_string(s.balancer->port());
  auto cloned = s.balancer->get_ok("/steering/demo?cache=a&viewer=v1&pathway=a&_HLS_pathway=a");
  CHECK(cloned.body ==
        "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"a\",\"b\",\"origin\"],"
        "\"PATHWAY-CLONES\":[{\"BASE-ID\":\"a\",\"ID\":\"b\",\"URI-REPLACEMENT\":{\"HOST\":\"" +
            host +
            "\",\"PARAMS\":{\"pathway\":\"b\"}}},{\"BASE-ID\":\"a\",\"ID\":\"origin\","
            "\"URI-REPLACEMENT\":{\"HOST\":\"" +
            host + "\",\"PARAMS\":{\"pathway\":\"origin\"}}}]}\n");
  CHECK(s.balancer->get("/steering/demo?cache=b&viewer=v1").body.find("[\"b\",\"a\",\"origin\"]") !=
        std::string::npos);
  CHECK(s.balancer->get("/steering/nope?cache=a").status == 404);

  const std::string media = "/hls/demo/live/hi/index.m3u8?cache=a&viewer=v1&pathway=";
  auto on_b = s.balancer->get_ok(media + "b");
  for (const auto& uri : uri_lines(on_b.body))
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  auto on_origin = s.balancer->get(media + "origin");
  for (const auto& uri : uri_lines(on_origin.body))
    CHECK(uri.rfind(s.origin->url("/files/live/hi/seg"), 0) == 0);
  CHECK(s.balancer->get(media + "bad%20id").status == 400);
  auto listed_on_a = s.balancer->get_ok(media + "a");
  REQUIRE(uri_lines(listed_on_a.body).size() == 3);
  for (const auto& uri : uri_lines(listed_on_a.body))
    CHECK(uri.rfind("http://127.0.0.1:9/o/demo/", 0) == 0);

  // Node a goes down: the manifest leaves it within a health poll. Its pathway's playlist
  // still answers 200 (an error makes Shaka Player ban the balancer's host name and VHS wait
  // for its manifest): what it listed to this viewer keeps its URIs (hls.js compares them
  // per media sequence number), new segments go to b; a viewer that never listed it gets b.
  std::filesystem::remove(s.dir.file("root/health/a.json"));
  REQUIRE(s.balancer->wait_cache_usable("a", false, 10s));
  CHECK(s.balancer->get("/steering/demo?cache=a&viewer=v1")
            .body.find("\"PATHWAY-PRIORITY\":[\"b\",\"origin\"]") != std::string::npos);
  auto on_a = s.balancer->get_ok(media + "a");
  CHECK(without_query(uri_lines(on_a.body)) == without_query(uri_lines(listed_on_a.body)));
  write_file(s.dir.file("root/live/hi/index.m3u8"), live_playlist(11, 3));
  std::vector<std::string> moved;
  // Until the balancer's copy of the source refreshes.
  CHECK(wait_until(
      [&] {
        moved = uri_lines(s.balancer->get(media + "a").body);
        return moved.size() == 3 && moved.back().find("seg13") != std::string::npos;
      },
      10s, 100ms));
  INFO(moved.size());
  REQUIRE(moved.size() == 3);
  // Signed links carry a fresh expiry at every copy: the URI without its query stays.
  CHECK(without_query(moved)[0] == without_query(uri_lines(listed_on_a.body))[1]);
  CHECK(without_query(moved)[1] == without_query(uri_lines(listed_on_a.body))[2]);
  CHECK(moved[2].rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  CHECK(moved[2].find("seg13") != std::string::npos);
  for (const auto& uri :
       uri_lines(s.balancer->get("/hls/demo/live/hi/index.m3u8?cache=a&viewer=v2&pathway=a").body))
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  // Without a pathway the viewer's copy moves as before (players without steering).
  for (const auto& uri :
       uri_lines(s.balancer->get("/hls/demo/live/hi/index.m3u8?cache=a&viewer=v1").body)) {
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  }
  // A master asked for now lists b; its manifest still offers a (it may come back).
  auto later = s.balancer->get("/hls/demo/live/master.m3u8?cache=a&viewer=v1");
  CHECK(later.body.find("PATHWAY-ID=\"b\"") != std::string::npos);
  CHECK(later.body.find("pathway=a") == std::string::npos);
  CHECK(test_support::steering_rules_problem(later.body) == "");
  CHECK(s.balancer->get("/steering/demo?cache=a&viewer=v1&pathway=b")
            .body.find("{\"BASE-ID\":\"b\",\"ID\":\"a\",") != std::string::npos);
  // It comes back: its pathway plays again.
  write_file(s.dir.file("root/health/a.json"), R"({"status":"ok"})");
  REQUIRE(s.balancer->wait_cache_usable("a", true, 10s));
  CHECK(s.balancer->get(media + "a").status == 200);
}

namespace {

// The host (before "/o/") of every chunk link of a viewer's copy, by the chunk's name.
std::map<std::string, std::string> chunk_hosts(const std::string& body) {
  std::map<std::string, std::string> out;
  for (const auto& [name, link] : chunk_links_by_name(body))
    out[name] = link.substr(0, link.find("/o/"));
  return out;
}

}  // namespace

TEST_CASE(
    "steering: a dead pathway's Low-Latency playlist keeps its listed segments on the node, and "
    "its map while the viewer plays it; its listed parts and preload hint move to the sibling") {
  Stack s;
  write_file(s.dir.file("root/live/hi/index.m3u8"), low_latency_playlist(10, 2));
  const std::string media = "/hls/bare/live/hi/index.m3u8?cache=a&viewer=v1&pathway=a";
  const std::string away = "/hls/bare/live/hi/index.m3u8?cache=a&viewer=v2&pathway=a";
  const std::string a = "http://127.0.0.1:9", b = "http://127.0.0.2:9";
  auto listed = chunk_hosts(s.balancer->get(media).body);
  REQUIRE(listed.size() == 9);  // map, 2 segments, 5 parts, the hint
  for (const auto& [name, host] : listed) CHECK_MESSAGE(host == a, name);
  const auto away_listed_at = std::chrono::steady_clock::now();
  REQUIRE(chunk_hosts(s.balancer->get(away).body).at("init.mp4") == a);

  // Node a dies while v1 plays (reloads every 200 ms). Shaka Player retries a part it was about
  // to load on the node it was listed on for seconds; parts are matched by position (hls.js) or
  // reloaded when their URI changes (Media3), so they move at once. Segments keep their URIs
  // (hls.js compares a segment's URI per media sequence number), and so does the map of a
  // playlist the viewer plays: the player holds the init, and VHS appends a moved one again
  // before each part until one playlist version gives it two, dropping the rest of the segment.
  std::filesystem::remove(s.dir.file("root/health/a.json"));
  std::map<std::string, std::string> moved;
  REQUIRE(wait_until(
      [&] {
        moved = chunk_hosts(s.balancer->get(media).body);
        return moved.at("seg12.0.m4s") == b;
      },
      10s, 200ms));
  const std::map<std::string, std::string> expected_moved = {
      {"init.mp4", a},    {"seg10.m4s", a},   {"seg11.m4s", a},
      {"seg10.0.m4s", b}, {"seg10.1.m4s", b}, {"seg11.0.m4s", b},
      {"seg11.1.m4s", b}, {"seg12.0.m4s", b}, {"seg12.1.m4s", b}};
  CHECK(moved == expected_moved);
  // The next version: the new part and hint go to b, what moved stays there, the map on a.
  write_file(s.dir.file("root/live/hi/index.m3u8"), low_latency_playlist(10, 2, 2));
  std::map<std::string, std::string> next;
  REQUIRE(wait_until(
      [&] {
        next = chunk_hosts(s.balancer->get(media).body);
        return next.count("seg12.2.m4s") == 1;
      },
      10s, 200ms));
  std::map<std::string, std::string> expected = expected_moved;
  expected["seg12.2.m4s"] = b;
  CHECK(next == expected);
  // v2 comes back to the playlist more than two target durations (4 s) after its last copy (a
  // rendition switch back, which needs the init): its map is on b, its listed segments on a.
  REQUIRE(wait_until([&] { return std::chrono::steady_clock::now() > away_listed_at + 4500ms; },
                     10s, 100ms));
  auto back = chunk_hosts(s.balancer->get(away).body);
  CHECK(back.at("init.mp4") == b);
  CHECK(back.at("seg10.m4s") == a);
  CHECK(back.at("seg12.2.m4s") == b);
}

TEST_CASE("steering: the steering URI is absolute on the configured public URL") {
  Stack s({"public_url=https://tv.example"});
  auto master = s.balancer->get_ok("/hls/demo/live/master.m3u8?cache=a&viewer=v1");
  CHECK(master.body.find("#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://tv.example/steering/"
                         "demo?cache=a&viewer=v1&pathway=a\"") != std::string::npos);
  CHECK(test_support::steering_rules_problem(master.body) == "");
  // Clones keep the public host.
  CHECK(s.balancer->get("/steering/demo?cache=a&viewer=v1&pathway=a")
            .body.find("\"HOST\":\"tv.example\"") != std::string::npos);
}

TEST_CASE("steering: steering.enabled=false leaves masters unchanged and has no manifest") {
  Stack s({"steering.enabled=false"});
  auto master = s.balancer->get_ok("/hls/demo/live/master.m3u8?cache=a&viewer=v1");
  CHECK(master.body.find("CONTENT-STEERING") == std::string::npos);
  CHECK(uri_lines(master.body).size() == 2);
  CHECK(s.balancer->get("/steering/demo?cache=a&viewer=v1").status == 404);
}

TEST_CASE(
    "stable hosts: chunks listed before keep a usable host when the choice moves; new ones "
    "follow") {
  Stack s;
  const std::string media = "/hls/demo/live/hi/index.m3u8?cache=a&viewer=v2";
  auto hosts_by_segment = [&](const std::string& body) {
    std::map<std::string, std::string> out;  // "segNN.ts" → host
    for (const auto& uri : uri_lines(body)) {
      auto name_at = uri.rfind('/');
      out[uri.substr(name_at + 1, uri.find('?') - name_at - 1)] = uri.substr(0, uri.find("/o/"));
    }
    return out;
  };
  const std::string a = "http://127.0.0.1:9", b = "http://127.0.0.2:9";
  // Node a is down: the viewer's copy leads to its sibling b.
  std::filesystem::remove(s.dir.file("root/health/a.json"));
  REQUIRE(s.balancer->wait_cache_usable("a", false, 10s));
  auto first = hosts_by_segment(s.balancer->get(media).body);
  CHECK(first ==
        std::map<std::string, std::string>{{"seg10.ts", b}, {"seg11.ts", b}, {"seg12.ts", b}});
  // a comes back and the playlist moves on: listed chunks stay on b, the new one goes to a.
  write_file(s.dir.file("root/health/a.json"), R"({"status":"ok"})");
  REQUIRE(s.balancer->wait_cache_usable("a", true, 10s));
  struct Step {
    uint64_t first;      // the source playlist's first segment, of three
    std::string newest;  // waited for in the viewer's copy
    std::map<std::string, std::string> hosts;
  };
  const Step steps[] = {
      {11, "seg13.ts", {{"seg11.ts", b}, {"seg12.ts", b}, {"seg13.ts", a}}},
      {12, "seg14.ts", {{"seg12.ts", b}, {"seg13.ts", a}, {"seg14.ts", a}}},
  };
  for (const Step& step : steps) {
    CAPTURE(step.newest);
    write_file(s.dir.file("root/live/hi/index.m3u8"), live_playlist(step.first, 3));
    std::map<std::string, std::string> hosts;
    REQUIRE(wait_until(
        [&] {
          hosts = hosts_by_segment(s.balancer->get(media).body);
          return hosts.count(step.newest) == 1;
        },
        5s));
    CHECK(hosts == step.hosts);
  }
  // Another viewer, new to this playlist, gets a for everything.
  auto other =
      hosts_by_segment(s.balancer->get("/hls/demo/live/hi/index.m3u8?cache=a&viewer=v3").body);
  CHECK(other ==
        std::map<std::string, std::string>{{"seg12.ts", a}, {"seg13.ts", a}, {"seg14.ts", a}});
  // b goes down: its chunks move at once (a dead host is content steering's case).
  std::filesystem::remove(s.dir.file("root/health/b.json"));
  REQUIRE(s.balancer->wait_cache_usable("b", false, 10s));
  auto fourth = hosts_by_segment(s.balancer->get(media).body);
  CHECK(fourth ==
        std::map<std::string, std::string>{{"seg12.ts", a}, {"seg13.ts", a}, {"seg14.ts", a}});
}

TEST_CASE(
    "steering: a bare media playlist channel gets a master of one variant on the choice's "
    "pathway; its variant is the media playlist") {
  Stack s;
  const std::string entry = "/hls/bare/live/hi/index.m3u8?cache=a&viewer=v1";
  auto master = s.balancer->get_ok(entry);
  INFO(master.body);
  const std::string base = "http://127.0.0.1:" + std::to_string(s.balancer->port());
  CHECK(master.body.find("#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"" + base +
                         "/steering/bare?cache=a&viewer=v1&pathway=a\",PATHWAY-ID=\"a\"\n") == 0);
  CHECK(test_support::steering_rules_problem(master.body) == "");
  CHECK(uri_lines(master.body) == std::vector<std::string>{entry + "&pathway=a"});
  CHECK(count(master.body, "#EXT-X-STREAM-INF:BANDWIDTH=") == 1);
  CHECK(count(master.body, "#EXTINF") == 0);
  // The variant is the media playlist; so is each pathway's ("." with the viewer's default
  // links, as masters before listed it).
  auto default_copy = s.balancer->get_ok(entry + "&pathway=.");
  CHECK(count(default_copy.body, "#EXTINF") == 3);
  for (const auto& uri : uri_lines(default_copy.body))
    CHECK(uri.rfind("http://127.0.0.1:9/o/demo/", 0) == 0);
  for (const auto& uri : uri_lines(s.balancer->get(entry + "&pathway=b").body))
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  // An LL-HLS reload of the entry is a media playlist's, never a master.
  CHECK(count(s.balancer->get(entry + "&_HLS_msn=11").body, "#EXTINF") == 3);
  // The master channel's variant at the same path stays a media playlist.
  CHECK(count(s.balancer->get("/hls/demo/live/hi/index.m3u8?cache=a&viewer=v1").body, "#EXTINF") ==
        3);
  // Node a goes down: the master lists b, a's pathway sends new viewers to b, "." moves to b.
  std::filesystem::remove(s.dir.file("root/health/a.json"));
  REQUIRE(s.balancer->wait_cache_usable("a", false, 10s));
  auto later = s.balancer->get(entry).body;
  CHECK(uri_lines(later) == std::vector<std::string>{entry + "&pathway=b"});
  auto dead_pathway = s.balancer->get("/hls/bare/live/hi/index.m3u8?cache=a&viewer=v8&pathway=a");
  CHECK(dead_pathway.status == 200);
  CHECK(uri_lines(dead_pathway.body).size() == 3);
  for (const auto& uri : uri_lines(dead_pathway.body))
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
  for (const auto& uri :
       uri_lines(s.balancer->get("/hls/bare/live/hi/index.m3u8?cache=a&viewer=v9&pathway=.").body))
    CHECK(uri.rfind("http://127.0.0.2:9/o/demo/", 0) == 0);
}

TEST_CASE("steering: steering.media_masters=false serves a bare media playlist as it is") {
  Stack s({"steering.media_masters=false"});
  auto media = s.balancer->get_ok("/hls/bare/live/hi/index.m3u8?cache=a&viewer=v1");
  CHECK(count(media.body, "#EXTINF") == 3);
  CHECK(media.body.find("CONTENT-STEERING") == std::string::npos);
}
