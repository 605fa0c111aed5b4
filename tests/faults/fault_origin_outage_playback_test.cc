// Origin down for 30 s while ffmpeg plays a live stream through the balancer and a cache
// node: every /gen and /files request answers 502 (test_origin's outage switch). The
// chunks already listed stay on the cache node; when origin is back the player must go
// on by itself (live: it jumps over what expired meanwhile) and decode further media.
// Figures: what the balancer answered during the outage, the player's stall, how long
// after origin's return it moved again, segments it skipped.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("origin down 30 s during playback: the player resumes by itself when origin is back") {
  SKIP_WITHOUT_FFMPEG();
  constexpr auto kOutage = 30s;
  LivePlaybackStack stack;
  TestOrigin& origin = *stack.origin;
  BalancerProcess& balancer = *stack.balancer;
  const std::string& node_host = stack.node_host;
  const std::string& poll_url = stack.poll_url;

  // -t bounds the player; the test kills it once it has seen enough.
  TimedPlayer player(stack.playlist_url("player"), 180);
  REQUIRE(player.started());
  const auto play_started = Clock::now();
  REQUIRE(player.wait_media(8, 30s));
  const MediaPlaylist before = fetch_media_playlist(poll_url);
  REQUIRE(before.last_host() == node_host);

  REQUIRE(origin.outage(502));
  const auto down = Clock::now();
  const double media_at_down = player.media_s();
  // While origin is down: the balancer's answers for the live playlist, and the cache
  // node's answer for the last chunk listed before the outage, about every 250 ms.
  std::map<long, int> playlist_statuses;
  int chunk_ok = 0, chunk_failed = 0;
  double last_200_s = -1;
  wait_until(
      [&] {
        const MediaPlaylist p = fetch_media_playlist(poll_url, 1s);
        ++playlist_statuses[p.status];
        if (p.status == 200) last_200_s = seconds_since(down);
        const HttpResponse chunk = http_get(before.uris.back(), {}, 1s);
        (chunk.status == 200 && chunk.body.size() > 1000 ? chunk_ok : chunk_failed)++;
        return Clock::now() - down >= kOutage;
      },
      kOutage + 5s, 250ms);
  REQUIRE(origin.outage(0));
  const auto up = Clock::now();
  const double outage_s = std::chrono::duration<double>(up - down).count();
  const bool alive_at_up = player.running();

  // The balancer serves the live playlist again (the first fetch after the outage).
  CHECK(wait_until([&] { return fetch_media_playlist(poll_url).status == 200; }, 10s, 100ms));
  const double playlist_back_s = seconds_since(up);
  // The player decodes further media on its own: 6 s more than it had when origin went
  // down (or it has given up).
  wait_until([&] { return player.media_s() >= media_at_down + 6 || !player.running(); }, 30s, 50ms);
  const bool resumed = player.media_s() >= media_at_down + 6;
  const auto advance_after_up = player.first_advance_after(up);
  const double resumed_after_s =
      advance_after_up ? std::chrono::duration<double>(*advance_after_up - up).count() : -1;
  // The longest time without progress since origin went down (still open if it never resumed).
  const double stall_s = std::max(player.longest_stall(down, Clock::now()),
                                  resumed ? 0.0 : seconds_since(player.last_advance()));
  const double played = player.media_s();
  const bool alive_at_end = player.running();
  const auto exit_code = alive_at_end ? std::optional<int>() : player.wait_exit(1s);
  const size_t reload_failures = player.stderr_count("Failed to reload playlist");
  const size_t skipped = player.stderr_count("expired from playlists");
  const size_t failed_segments = player.stderr_count("Failed to open segment");
  player.kill();

  // A viewer who presses play again after the outage gets media at once.
  TimedPlayer again(balancer.url("/hls/live/files/live/index.m3u8?cache=venue-a&viewer=again"), 60);
  REQUIRE(again.started());
  const auto again_started = Clock::now();
  CHECK(again.wait_media(4, 20s));
  const double again_s = seconds_since(again_started);
  again.kill();

  std::string statuses;
  for (const auto& [status, n] : playlist_statuses) {
    statuses += (statuses.empty() ? "" : ", ") + std::to_string(n) + " x " + std::to_string(status);
  }
  const std::string state_at_up = alive_at_up ? "still running" : "had exited";
  const std::string outcome = resumed ? "resumed" : "did not resume";
  MESSAGE("outage " << outage_s << " s: the balancer answered the live playlist " << statuses
                    << " (last 200 at " << last_200_s
                    << " s); the cache node served the last listed chunk " << chunk_ok << " times ("
                    << chunk_failed << " failures); playlists 200 again " << playlist_back_s
                    << " s after origin's return");
  MESSAGE("player: " << media_at_down << " s of media decoded when origin went down, "
                     << state_at_up << " when it came back; " << outcome << ", first progress "
                     << resumed_after_s << " s after origin's return; longest stall " << stall_s
                     << " s; " << played << " s of media in " << seconds_since(play_started)
                     << " s; reload failures " << reload_failures
                     << ", 'expired from playlists' skips " << skipped
                     << ", segments it could not open " << failed_segments
                     << (exit_code ? ", exit code " + std::to_string(*exit_code) : std::string())
                     << "; a new player had 4 s of media " << again_s << " s after it started");
  // Nothing the stack holds is lost: the cache node keeps serving what it has, the balancer
  // answers again at once, a viewer starting again plays.
  CHECK(chunk_failed == 0);
  CHECK(playlist_back_s < 5);
  CHECK(again_s < 20);
  // The running player rides through: the balancer holds the last good live copy through
  // the outage (playlists.media_stale_s, 60 s), so ffmpeg keeps reloading a playlist that
  // does not move instead of giving up on 502s, and goes on by itself when origin is back.
  CHECK(alive_at_up);
  CHECK(resumed);
  CHECK(stall_s < outage_s + 10);
  stack.source->terminate();
}
