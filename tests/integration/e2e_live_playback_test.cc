// End to end with real processes: a live HLS source made by ffmpeg, served over
// HTTP by the test origin; two cache nodes of one site; the balancer; ffmpeg as
// the player. Checks continuous playback, one origin fetch per chunk per cache
// node, and that viewers move between cache nodes and origin without a gap.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <sstream>

#include "support/live_venue.h"

using namespace balancer::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct MediaPlaylist {
  long status = 0;
  int64_t media_sequence = -1;
  std::vector<std::string> uris;
  std::string segment_name(size_t i) const {  // last path component, no query
    std::string u = uris[i].substr(0, uris[i].find('?'));
    return u.substr(u.rfind('/') + 1);
  }
  std::string host(size_t i) const {  // "http://127.0.0.1:port" or "" for relative
    const std::string& u = uris[i];
    if (u.rfind("http://", 0) != 0) return "";
    return u.substr(0, u.find('/', 7));
  }
};

MediaPlaylist fetch_media(const BalancerProcess& balancer, const std::string& target) {
  MediaPlaylist p;
  auto r = balancer.get(target);
  p.status = r.status;
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("#EXT-X-MEDIA-SEQUENCE:", 0) == 0)
      p.media_sequence = std::stoll(line.substr(22));
    if (!line.empty() && line[0] != '#') p.uris.push_back(line);
  }
  return p;
}

std::string first_variant(const BalancerProcess& balancer, const std::string& master_target) {
  auto r = balancer.get(master_target);
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != '#') return line;
  }
  return "";
}

}  // namespace

TEST_CASE(
    "end to end: live playback through balancer and cache nodes, across node failure and cache "
    "switching") {
  SKIP_WITHOUT_FFMPEG();
  // Two variants (320x180 at 300 kbit/s, 160x90 at 120 kbit/s).
  LiveVenue venue({{"", "300k"}, {"160:90", "120k"}});
  TestOrigin& origin = venue.origin;
  CacheNodeProcess& node_a = venue.node_a;
  BalancerProcess& balancer = venue.balancer;
  const std::string host_a = "http://127.0.0.1:" + std::to_string(node_a.port());
  const std::string host_b = "http://127.0.0.1:" + std::to_string(venue.node_b.port());
  const std::string master = "/hls/live/files/live/master.m3u8?cache=venue-a&viewer=e2e";
  // ffmpeg needs a few segments before the stream is playable.
  REQUIRE(wait_until(
      [&] {
        return fetch_media(balancer, "/hls/live/files/live/v0/index.m3u8?cache=venue-a&viewer=e2e")
                   .uris.size() >= 3;
      },
      30s, 100ms));
  REQUIRE(balancer.wait_cache_usable("venue-a", true, 10s));
  REQUIRE(balancer.wait_cache_usable("venue-b", true, 10s));
  const std::string variant = first_variant(balancer, master);
  REQUIRE(variant.rfind("/hls/live/", 0) == 0);

  SUBCASE("ffmpeg plays 20+ s while its cache node dies and comes back") {
    ChildProcess player;
    REQUIRE(
        player.start({"ffmpeg", "-hide_banner", "-loglevel", "warning", "-i", balancer.url(master),
                      "-t", "26", "-f", "null", "-progress", "pipe:1", "-nostats", "-"}));
    const auto started = Clock::now();
    int64_t last_sequence = -1;
    bool sequence_continuous = true;
    auto poll = [&](const std::string& expected_host) {
      MediaPlaylist p = fetch_media(balancer, variant);
      if (p.status != 200 || p.uris.empty()) return false;
      if (p.media_sequence < last_sequence) sequence_continuous = false;
      last_sequence = p.media_sequence;
      return p.host(p.uris.size() - 1) == expected_host;
    };
    REQUIRE(wait_until([&] { return poll(host_a); }, 5s, 200ms));
    REQUIRE(wait_until([&] { return Clock::now() - started > 8s && poll(host_a); }, 20s, 200ms));

    node_a.kill_hard();
    const auto killed = Clock::now();
    // Detection: one health interval (200 ms: the refused poll takes the node down), plus one
    // target duration (2 s) for the next refresh.
    CHECK(wait_until([&] { return poll(host_b); }, 6s, 100ms));
    double moved_s = std::chrono::duration<double>(Clock::now() - killed).count();
    MESSAGE("playlists moved to the sibling " << moved_s << " s after the kill");
    CHECK(moved_s <= 0.2 * 2 + 2 + 0.6);

    REQUIRE(wait_until([&] { return Clock::now() - killed > 5s; }, 10s, 100ms));
    node_a.start();
    const auto restarted = Clock::now();
    CHECK(wait_until([&] { return poll(host_a); }, 8s, 100ms));
    MESSAGE("playlists back on the restarted node after "
            << std::chrono::duration<double>(Clock::now() - restarted).count() << " s");

    auto exit_code = player.wait_exit(deadline_in(60s));
    REQUIRE(exit_code.has_value());
    CHECK(*exit_code == 0);
    double played_s = 0;
    for (const auto& line : player.stdout_lines()) {
      if (line.rfind("out_time_us=", 0) == 0 && line.find("N/A") == std::string::npos) {
        played_s = std::max(played_s, std::stod(line.substr(12)) / 1e6);
      }
    }
    double wall_s = std::chrono::duration<double>(Clock::now() - started).count();
    MESSAGE("played " << played_s << " s of media in " << wall_s << " s");
    CHECK(played_s >= 20);
    CHECK(sequence_continuous);
    // Only segments listed before the failure was detected may have failed.
    std::string errors = player.stderr_text();
    size_t failed = 0;
    for (size_t at = errors.find("Failed to open segment"); at != std::string::npos;
         at = errors.find("Failed to open segment", at + 1)) {
      ++failed;
    }
    MESSAGE("segments the player could not open: " << failed);
    CHECK(failed <= 3);

    // Origin: one request per chunk per cache node (two nodes at most per chunk); the player
    // probes the variants of its master, all on its node's pathway, so nothing of its own.
    std::string stats = origin.stats_json();
    size_t chunks = 0, over = 0;
    for (size_t at = stats.find("/seg_"); at != std::string::npos;
         at = stats.find("/seg_", at + 1)) {
      size_t colon = stats.find("\":", at);
      int64_t count = std::stoll(stats.substr(colon + 2));
      ++chunks;
      if (count > 2) ++over;
    }
    MESSAGE("chunks fetched from origin: " << chunks);
    CHECK(chunks >= 5);
    CHECK(over == 0);
  }

  SUBCASE(
      "a viewer walking out of the venue and back: only chunk hosts change, names and sequence "
      "continue") {
    const std::string with_a = variant;  // carries cache=venue-a (and venue-a's pathway)
    // Outside, the app asks again without a cache: the master it gets leads to origin.
    const std::string without_cache =
        first_variant(balancer, "/hls/live/files/live/master.m3u8?cache=&viewer=e2e");
    REQUIRE(without_cache.find("viewer=e2e") != std::string::npos);
    CHECK(without_cache.find("cache=venue-a") == std::string::npos);
    MediaPlaylist inside = fetch_media(balancer, with_a);
    REQUIRE(inside.status == 200);
    REQUIRE(!inside.uris.empty());
    CHECK(inside.host(0) == host_a);
    MediaPlaylist outside = fetch_media(balancer, without_cache);
    REQUIRE(outside.status == 200);
    REQUIRE(!outside.uris.empty());
    CHECK(outside.host(0) == origin.base_url());
    CHECK(outside.media_sequence >= inside.media_sequence);
    // The same segment names appear under the new host.
    std::set<std::string> inside_names;
    for (size_t i = 0; i < inside.uris.size(); ++i) inside_names.insert(inside.segment_name(i));
    size_t shared = 0;
    for (size_t i = 0; i < outside.uris.size(); ++i)
      shared += inside_names.count(outside.segment_name(i));
    CHECK(shared >= outside.uris.size() - 2);
    // Both links of the same chunk deliver the same bytes.
    std::string name = outside.segment_name(outside.uris.size() - 2);
    std::string via_origin, via_cache;
    for (size_t i = 0; i < outside.uris.size(); ++i) {
      if (outside.segment_name(i) == name) via_origin = outside.uris[i];
    }
    MediaPlaylist back = fetch_media(balancer, with_a);
    CHECK(back.media_sequence >= outside.media_sequence);
    for (size_t i = 0; i < back.uris.size(); ++i) {
      if (back.segment_name(i) == name) via_cache = back.uris[i];
    }
    REQUIRE(!via_origin.empty());
    REQUIRE(!via_cache.empty());
    CHECK(back.host(0) == host_a);
    auto from_origin = http_get(via_origin);
    auto from_cache = http_get(via_cache);
    CHECK(from_origin.status == 200);
    CHECK(from_cache.status == 200);
    CHECK(from_origin.body.size() > 1000);
    CHECK(from_cache.body == from_origin.body);
  }
  venue.source.terminate();
}
