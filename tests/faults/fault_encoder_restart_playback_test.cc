// The live encoder (ffmpeg) is stopped (it writes EXT-X-ENDLIST) and started again in the
// same folder (numbering from seg_00000.ts again, with other bytes) while ffmpeg plays the
// channel through the balancer and a cache node that holds the first run's chunks. The
// player must not stop at the end tag and must go on with the new run by itself.
// Figures: the player's stall, and the time from the encoder's restart to new media.
#include <doctest/doctest.h>

#include <filesystem>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("the live encoder stops and starts again: the player goes on with the new run") {
  SKIP_WITHOUT_FFMPEG();
  LivePlaybackStack stack(
      R"({"id":"live","origin":"demo","source":"/files/live/index.m3u8","free":true,"kind":"live"})");
  BalancerProcess& balancer = *stack.balancer;
  const std::string& poll_url = stack.poll_url;

  TimedPlayer player(stack.playlist_url("player"), 180);
  REQUIRE(player.started());
  // Long enough that the new run's timestamps are well behind the old run's.
  REQUIRE(player.wait_media(14, 40s));

  stack.source->terminate();  // ffmpeg ends the playlist with EXT-X-ENDLIST
  REQUIRE(stack.source->wait_exit(deadline_in(10s)));
  const auto stopped = Clock::now();
  const double media_at_stop = player.media_s();
  CHECK(wait_until([&] { return balancer.metric("balancer_live_ends_held_total") == 1; }, 10s,
                   100ms));
  // Down for a few seconds, as an operator restarting an encoder would be.
  wait_until([] { return false; }, 4s, 500ms);
  const bool alive_before_restart = player.running();

  stack.start_source();
  const auto restarted = Clock::now();
  wait_until([&] { return player.media_s() >= media_at_stop + 8 || !player.running(); }, 40s,
             100ms);
  const bool resumed = player.media_s() >= media_at_stop + 8;
  const auto advance = player.first_advance_after(restarted);
  const double resumed_after_s =
      advance ? std::chrono::duration<double>(*advance - restarted).count() : -1;
  const double stall_s = player.longest_stall(stopped, Clock::now());
  const MediaPlaylist after = fetch_media_playlist(poll_url);
  const std::string metrics = balancer.metrics();
  MESSAGE("encoder down " << std::chrono::duration<double>(restarted - stopped).count()
                          << " s; player "
                          << std::string(alive_before_restart ? "still running" : "had exited")
                          << " when it came back; "
                          << std::string(resumed ? "resumed" : "did not resume")
                          << ", first progress " << resumed_after_s
                          << " s after the encoder's restart; longest stall " << stall_s << " s; "
                          << player.media_s() << " s of media; restarts seen by the balancer "
                          << metric_value(metrics, "balancer_live_restarts_total").value_or(-1)
                          << "; player stderr: " << player.stderr_text().substr(0, 600));
  CHECK(alive_before_restart);
  CHECK(resumed);
  CHECK(metric_value(metrics, "balancer_live_restarts_total") == 1);
  CHECK(after.media_sequence > 0);
  player.kill();
  stack.source->terminate();
}
