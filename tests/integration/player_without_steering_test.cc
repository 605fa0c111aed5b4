// A player that ignores content steering (ffmpeg here; native players and Media3 before 1.11
// alike) plays from the viewer's cache node while that node is up: the master it gets lists
// only that node's pathway, so it neither probes nor picks another host. Real processes: a
// live ffmpeg source of three variants (the demo's ladder) served by the test origin, two cache
// nodes of one site, the balancer (steering on), and `ffmpeg -t 10 -i <master>` as the player; the
// origin counts requests by User-Agent, so the player's own requests are told from the node's and
// the balancer's.
#include <doctest/doctest.h>

#include <chrono>
#include <sstream>

#include "support/live_venue.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

size_t unsteered_uri_count(const std::string& body) {
  size_t n = 0;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != '#') ++n;
  }
  return n;
}

}  // namespace

TEST_CASE(
    "a player without content steering (ffmpeg) plays 10 s from the viewer's node and makes no "
    "request to origin while the node is up") {
  SKIP_WITHOUT_FFMPEG();
  // The demo's ladder of three variants, scaled down.
  LiveVenue venue({{"", "300k"}, {"240:136", "200k"}, {"160:90", "120k"}});
  TestOrigin& origin = venue.origin;
  BalancerProcess& balancer = venue.balancer;
  const std::string master = "/hls/live/files/live/master.m3u8?cache=venue-a&viewer=unsteered";
  // ffmpeg needs a few segments before the stream is playable.
  REQUIRE(wait_until(
      [&] {
        auto r = balancer.get("/hls/live/files/live/v1/index.m3u8?cache=venue-a&viewer=x");
        return r.status == 200 && unsteered_uri_count(r.body) >= 3;
      },
      30s, 100ms));
  REQUIRE(balancer.wait_cache_usable("venue-a", true, 10s));
  REQUIRE(balancer.wait_cache_usable("venue-b", true, 10s));
  auto listed = balancer.get_ok(master);
  INFO(listed.body);
  CHECK(listed.body.find("CONTENT-STEERING") != std::string::npos);  // steering is on
  CHECK(unsteered_uri_count(listed.body) == 3);  // the three variants, on venue-a's pathway only
  REQUIRE(origin.reset());

  ChildProcess player;
  REQUIRE(
      player.start({"ffmpeg", "-hide_banner", "-loglevel", "warning", "-t", "10", "-i",
                    balancer.url(master), "-f", "null", "-progress", "pipe:1", "-nostats", "-"}));
  auto exit_code = player.wait_exit(deadline_in(60s));
  REQUIRE(exit_code.has_value());
  INFO(player.stderr_text());
  CHECK(*exit_code == 0);
  double played_s = 0;
  for (const auto& line : player.stdout_lines()) {
    if (line.rfind("out_time_us=", 0) == 0 && line.find("N/A") == std::string::npos)
      played_s = std::max(played_s, std::stod(line.substr(12)) / 1e6);
  }
  CHECK(played_s >= 9.5);
  // Every request origin saw came from the balancer (playlists) or a cache node (chunks).
  // The balancer and the nodes keep fetching meanwhile, so each figure is one read of the origin.
  const int64_t ours = origin.count_from("balancer");
  const int64_t not_ours = origin.count_not_from("balancer");
  const int64_t from_player = origin.count_from("Lavf");
  MESSAGE("origin requests while ffmpeg played: " << ours << " from us, " << not_ours
                                                  << " from others, " << from_player
                                                  << " from ffmpeg itself");
  CHECK(ours > 0);
  CHECK(from_player == 0);
  CHECK(not_ours == 0);
}
