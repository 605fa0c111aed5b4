// `audience` on a Low-Latency HLS channel with real processes: ll_origin publishing CMAF parts
// that ffmpeg encoded, a cache node, the balancer. Viewers playing low-latency (parts, preload
// hints, blocking reloads, delta updates) play without a stall and are about PART-HOLD-BACK
// behind live by EXT-X-PROGRAM-DATE-TIME; the same viewers playing by segments sit target durations
// further back; every distinct part reached the origin once.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include "support/audience_fixture.h"
#include "support/ll_stack_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

std::string ll_scenario(const std::string& balancer, const std::string& node_metrics,
                        bool low_latency) {
  return R"({
    "name": "ll", "balancer": ")" +
         balancer + R"(", "channel": "ll",
    "playlist": "/hls/ll/master.m3u8", "duration_s": 16, "max_viewers": 40,
    "player": {"variant": "top", "caches": ["venue-a"], "start_buffer_s": 0.5,
               "low_latency": )" +
         (low_latency ? "true" : "false") + R"(},
    "metrics": [{"name": "venue-a", "url": ")" +
         node_metrics + R"("}],
    "phases": [
      {"at_s": 0, "do": "arrive", "viewers": 30, "over_s": 3},
      {"at_s": 6, "until_s": 16, "do": "window", "name": "steady"}
    ]})";
}

}  // namespace

TEST_CASE("audience plays an LL-HLS channel by parts: no stall, about PART-HOLD-BACK behind live") {
  SKIP_WITHOUT_FFMPEG();
  LlStack stack(low_and_high(), 4, {"limits.per_address_exempt=[\"127.0.0.0/8\"]"});
  auto& [dir, origin, node, balancer] = stack;

  rapidjson::Document parts =
      run_audience(dir, ll_scenario(balancer.url(""), node.url("/metrics"), true));
  CHECK(number_at(parts, {"viewers", "started"}) == 30);
  CHECK(number_at(parts, {"stalls", "count"}) == 0);
  CHECK(parts["fatal"].MemberCount() == 0);
  // About four parts a second per viewer, each asked for by a blocking reload first.
  CHECK(number_at(parts, {"windows", "steady", "requests_per_viewer_minute", "part"}) >= 200);
  CHECK(number_at(parts, {"windows", "steady", "requests_per_viewer_minute", "segment"}) == 0);
  CHECK(number_at(parts, {"windows", "steady", "requests_per_viewer_minute", "media"}) >= 200);
  const double ll_p50 = number_at(parts, {"behind_live_s", "samples", "p50"});
  const double ll_max = number_at(parts, {"behind_live_s", "samples", "max"});
  MESSAGE("low-latency viewers behind live: p50 " << ll_p50 << " s, max " << ll_max << " s");
  CHECK(number_at(parts, {"behind_live_s", "samples", "count"}) >= 200);
  CHECK(number_at(parts, {"behind_live_s", "viewer_mean", "count"}) == 30);
  CHECK(ll_p50 > 0.2);  // a player cannot be ahead of the encoder
  CHECK(ll_p50 <= 2.0);
  // One origin fetch per distinct part on the node, however many viewers asked.
  CHECK(number_at(parts, {"origin_fetches", "venue-a", "per_segment"}) <= 1.0);
  // After its first playlist each viewer asks for delta updates (CAN-SKIP-UNTIL) and merges
  // them into the segments it holds, as hls.js and Media3 do. The balancer answers in full
  // while no segment of its copy lies before the skip boundary (ll_origin's window is the
  // boundary plus three targets): about half the time here.
  const double full = number_at(parts, {"media_playlists", "full"});
  const double delta = number_at(parts, {"media_playlists", "delta"});
  MESSAGE("media playlists read: " << full << " full, " << delta << " delta updates");
  CHECK(full >= 30);
  CHECK(delta >= 0.25 * (full + delta));
  CHECK_FALSE(parts["media_playlists"].HasMember("delta_unmerged"));

  // The same stream played by segments (a player without low-latency mode): three target
  // durations back, so further behind than by parts.
  rapidjson::Document segments =
      run_audience(dir, ll_scenario(balancer.url(""), node.url("/metrics"), false));
  CHECK(number_at(segments, {"stalls", "count"}) == 0);
  CHECK(number_at(segments, {"windows", "steady", "requests_per_viewer_minute", "part"}) == 0);
  const double segment_p50 = number_at(segments, {"behind_live_s", "samples", "p50"});
  MESSAGE("segment viewers of the same stream behind live: p50 " << segment_p50 << " s");
  CHECK(segment_p50 >= ll_p50 + 1.0);
}
