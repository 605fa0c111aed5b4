// A short rehearsal with real processes: a live two-variant source on the test origin, two
// cache nodes of one site, the balancer with a stream limit, and `audience` playing 240
// viewers for about a minute while the limit queues some, a share leaves (the queue moves
// in ticket order), a cache node is killed with kill -9 and a fifth walks out of the venue.
// The QoE bars at that size: every viewer plays, no stall, no fatal error, one origin fetch
// per segment per node, the queue served in order; the request budget is reported.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <sstream>

#include "support/audience_fixture.h"
#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("a rehearsal of 240 viewers: queue, walk-out and a killed node, without a stall") {
  TempDir dir;
  LiveSource source(dir.file("origin"));
  TestOrigin origin(serving_files(dir.file("origin")));
  CacheNodeProcess node_a(dir.file("cache-a"), origin.url("/files"),
                          {"node_id=venue-a", "site=venue"});
  CacheNodeProcess node_b(dir.file("cache-b"), origin.url("/files"),
                          {"node_id=venue-b", "site=venue"});
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/master.m3u8")}),
                           caches_json({cache_json("venue-a", "venue", node_a.port()),
                                        cache_json("venue-b", "venue", node_b.port())}),
                           {"limits.max_streams=200", "limits.idle_timeout_s=4",
                            "limits.per_address_exempt=[\"127.0.0.0/8\"]", "queue.retry_after_s=2",
                            "queue.ticket_grace_s=6", "queue.head_reservation_s=4"});
  REQUIRE(balancer.wait_cache_usable("venue-a", true, 10s));
  REQUIRE(balancer.wait_cache_usable("venue-b", true, 10s));

  rapidjson::Document doc = run_audience(dir, R"({
    "name": "ci venue", "balancer": ")" + balancer.url("") +
                                                  R"(", "channel": "demo",
    "playlist": "/hls/demo/live/master.m3u8", "duration_s": 58, "max_viewers": 300,
    "player": {"variant": "abr", "caches": ["venue-a", "venue-b"], "retries": 4, "start_buffer_s": 2},
    "processes": [{"name": "venue-a", "pid": )" + std::to_string(node_a.process().pid()) +
                                                  R"(}],
    "metrics": [{"name": "venue-a", "url": ")" + node_a.url("/metrics") +
                                                  R"("},
                {"name": "venue-b", "url": ")" + node_b.url("/metrics") +
                                                  R"("}],
    "phases": [
      {"at_s": 0, "do": "arrive", "viewers": 240, "over_s": 8},
      {"at_s": 14, "until_s": 22, "do": "window", "name": "steady"},
      {"at_s": 22, "do": "leave", "share": 0.25},
      {"at_s": 36, "do": "kill", "process": "venue-a"},
      {"at_s": 44, "do": "walk_out", "share": 0.2, "cache": ""}
    ]})");

  // Everyone got in: 200 at once, the other 40 from the queue as the leavers' slots freed.
  CHECK(number_at(doc, {"viewers", "started"}) == 240);
  CHECK(number_at(doc, {"queue", "peak_length"}) >= 30);
  CHECK(number_at(doc, {"queue", "admitted"}) == number_at(doc, {"queue", "viewers"}));
  CHECK(number_at(doc, {"queue", "order_inversions"}) == 0);
  // The QoE bars: no stall, no player error a real player would treat as fatal.
  CHECK(number_at(doc, {"stalls", "count"}) == 0);
  CHECK(doc["fatal"].MemberCount() == 0);
  CHECK(number_at(doc, {"startup_s", "p95"}) <= 3);
  // Viewers on the killed node moved: it served them before the kill, the balancer took it
  // out, and nobody stalled after. Most never see a failed segment (the balancer's first
  // refused health poll takes the node out within 250 ms, before their next segment); one
  // that does takes the segment from another host within a target duration.
  CHECK(number_at(doc, {"origin_fetches", "venue-a", "fetches"}) >= 1);
  CHECK(balancer.wait_cache_usable("venue-a", false, 1s));
  MESSAGE("viewers whose segment failed on the killed node: " << number_at(
              doc, {"failover_s", "count"}));
  if (number_at(doc, {"failover_s", "count"}) >= 1)
    CHECK(number_at(doc, {"failover_s", "max"}) <= kTargetDuration);
  // One origin fetch per segment per node (each node fetches at most every distinct segment once).
  CHECK(number_at(doc, {"origin_fetches", "venue-b", "per_segment"}) <= 1.0);
  CHECK(number_at(doc, {"origin_fetches", "venue-a", "per_segment"}) <= 1.0);
  // The steady playlist bar (issue 22: p99 ≤ 50 ms; a few ms on an idle machine). A latency
  // is measured when the tool's loop sees the answer: judged only when that loop kept up.
  const double tool_lag_p99 = number_at(doc, {"audience_loop_lag_ms", "p99"});
  const double playlist_p99 = number_at(doc, {"windows", "steady", "media_playlist_ms", "p99"});
  if (tool_lag_p99 <= 10) {
    CHECK(playlist_p99 <= 50);
  } else {
    MESSAGE(
        "playlist p99 " << playlist_p99
                        << " ms not judged: the machine was loaded (the tool's own loop late by "
                        << tool_lag_p99 << " ms at p99)");
  }
  // The request budget of a steady viewer: a playlist and a segment per target duration.
  const double media = number_at(doc, {"windows", "steady", "requests_per_viewer_minute", "media"});
  const double segments =
      number_at(doc, {"windows", "steady", "requests_per_viewer_minute", "segment"});
  CHECK(media == doctest::Approx(60.0 / kTargetDuration).epsilon(0.2));
  CHECK(segments == doctest::Approx(60.0 / kTargetDuration).epsilon(0.2));
  // Latency behind live by EXT-X-PROGRAM-DATE-TIME: a player starts three target durations
  // from the newest segment's end and a segment is published when it ends, so about 6 s
  // (more after a failover or a stall, never less than the hold-back minus a segment).
  const double behind_p50 = number_at(doc, {"behind_live_s", "samples", "p50"});
  MESSAGE("behind live: p50 " << behind_p50 << " s, p95 "
                              << number_at(doc, {"behind_live_s", "samples", "p95"}) << " s");
  CHECK(number_at(doc, {"behind_live_s", "viewer_mean", "count"}) >= 200);
  CHECK(behind_p50 >= 2 * kTargetDuration);
  CHECK(behind_p50 <= 5 * kTargetDuration);
  // The walk-out took effect: the balancer chose origin for viewers without a cache id.
  CHECK(balancer.metric("balancer_cache_choice_total{reason=\"origin\"}") > 0);
  std::ifstream html(dir.file("report.html"));
  std::stringstream page;
  page << html.rdbuf();
  CHECK(page.str().find("<svg") != std::string::npos);
  CHECK(page.str().find("Latency behind live") != std::string::npos);
  CHECK(page.str().find("<script") == std::string::npos);  // self-contained: nothing to load
  CHECK(page.str().find("<link") == std::string::npos);
}
