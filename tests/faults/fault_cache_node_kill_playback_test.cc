// A cache node killed (kill -9) while ffmpeg plays a live stream through the balancer: the
// balancer's health view moves the viewer's chunk links to origin (the only node is gone),
// the player goes on by itself, and comes back to the node once it is restarted. Figures:
// how long until playlists lead elsewhere, the player's longest stall, segments it lost.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("cache node killed mid-playback: viewers move to origin and the player continues") {
  SKIP_WITHOUT_FFMPEG();
  constexpr int kPlaySeconds = 24;  // media seconds the player decodes before it stops
  LivePlaybackStack stack;
  CacheNodeProcess& node = *stack.node;
  const std::string& node_host = stack.node_host;
  const std::string origin_host = stack.origin->base_url();
  const std::string& poll_url = stack.poll_url;

  TimedPlayer player(stack.playlist_url("player"), kPlaySeconds);
  REQUIRE(player.started());
  const auto play_started = Clock::now();
  REQUIRE(player.wait_media(6, 30s));
  REQUIRE(fetch_media_playlist(poll_url).last_host() == node_host);
  const double baseline_stall = player.longest_stall(play_started, Clock::now());
  const double media_at_kill = player.media_s();

  node.kill_hard();
  const auto killed = Clock::now();
  // Detection: health interval (200 ms) x down_after (2) + the next playlist request.
  CHECK(wait_until([&] { return fetch_media_playlist(poll_url).last_host() == origin_host; }, 6s,
                   50ms));
  const double moved_s = seconds_since(killed);
  // The player keeps going on origin's links: 8 more media seconds.
  CHECK(player.wait_media(media_at_kill + 8, 30s));
  const double stall_s = player.longest_stall(killed, Clock::now());
  const auto advance_after_kill = player.first_advance_after(killed);

  node.start();
  const auto restarted = Clock::now();
  CHECK(wait_until([&] { return fetch_media_playlist(poll_url).last_host() == node_host; }, 8s,
                   50ms));
  const double back_s = seconds_since(restarted);

  const auto exit_code = player.wait_exit(60s);
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  const double played = player.media_s();
  const double wall = seconds_since(play_started);
  const size_t failed_segments = player.stderr_count("Failed to open segment");

  // What the restarted node serves is origin's bytes.
  const MediaPlaylist now = fetch_media_playlist(poll_url);
  REQUIRE(now.uris.size() >= 2);
  const std::string link = now.uris[now.uris.size() - 2];
  const std::string name = link.substr(0, link.find('?')).substr(link.rfind('/') + 1);
  const HttpResponse via_node = http_get(link);
  const HttpResponse via_origin = http_get(stack.origin->url("/files/live/" + name));
  CHECK(via_node.status == 200);
  CHECK(via_origin.status == 200);
  CHECK(via_node.body.size() > 1000);
  CHECK(sha256_hex(via_node.body) == sha256_hex(via_origin.body));

  MESSAGE("playlists led to origin "
          << moved_s << " s after the kill and back to the restarted node after " << back_s
          << " s");
  MESSAGE("player: longest stall "
          << stall_s << " s after the kill (" << baseline_stall
          << " s before it, segments arrive in 2 s bursts); first progress "
          << (advance_after_kill
                  ? std::chrono::duration<double>(*advance_after_kill - killed).count()
                  : -1)
          << " s after the kill; played " << played << " s of media in " << wall
          << " s; segments it could not open: " << failed_segments);
  CHECK(moved_s <= 0.2 * 2 + 2 + 0.6);
  CHECK(played >= kPlaySeconds - 1);
  CHECK(stall_s < 8);
  CHECK(failed_segments <= 3);
  stack.source->terminate();
}
