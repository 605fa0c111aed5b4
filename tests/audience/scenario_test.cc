// Scenario files: typed, bounded, unknown keys and impossible phases refused with the key named.
#include <doctest/doctest.h>

#include "audience/recorder.h"
#include "audience/scenario.h"

using namespace audience;

namespace {
const std::string kMinimal =
    R"({"balancer":"http://127.0.0.1:8080","playlist":"/hls/demo/live/master.m3u8",
  "phases":[{"at_s":0,"do":"arrive","viewers":10,"over_s":5}]})";
}

TEST_CASE("a minimal scenario takes the defaults") {
  auto s = parse_scenario("s.json", kMinimal);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->balancer == "http://127.0.0.1:8080");
  CHECK(s->player.variant == VariantPolicy::abr);
  CHECK(s->planned_viewers() == 10);
  REQUIRE(s->phases.size() == 1);
  CHECK(s->phases[0].action == Action::arrive);
}

TEST_CASE("phases are sorted by time, processes and windows read") {
  auto s =
      parse_scenario("s.json", R"({"balancer":"http://b:1","playlist":"/p.m3u8","duration_s":90,
    "player":{"variant":"top","caches":["venue-a","venue-b"]},
    "processes":[{"name":"node-a","pid":1234,"restart":["cache_node","--config","x.json"]}],
    "metrics":[{"name":"node-a","url":"http://127.0.0.1:8081/metrics"}],
    "phases":[{"at_s":30,"do":"kill","process":"node-a"},{"at_s":0,"do":"arrive","rate_per_s":10,"until_s":20},
              {"at_s":40,"do":"restart","process":"node-a"},{"at_s":10,"until_s":30,"do":"window","name":"steady"},
              {"at_s":50,"do":"signal","process":"node-a","signal":"HUP"}]})");
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->phases[0].action == Action::arrive);
  CHECK(s->phases[1].action == Action::window);
  CHECK(s->phases[2].action == Action::kill);
  CHECK(s->planned_viewers() == 200);
  CHECK(s->processes[0].pid == 1234);
  CHECK(s->player.caches.size() == 2);
}

TEST_CASE("bad scenarios are refused naming the key") {
  auto unknown = parse_scenario("s.json", R"({"balancer":"http://b","playlist":"/p","viewerz":3})");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message.find("viewerz") != std::string::npos);
  auto action = parse_scenario(
      "s.json", R"({"balancer":"http://b","playlist":"/p","phases":[{"do":"explode"}]})");
  REQUIRE_FALSE(action.ok());
  CHECK(action.error().message.find("explode") != std::string::npos);
  auto process = parse_scenario(
      "s.json",
      R"({"balancer":"http://b","playlist":"/p","phases":[{"do":"kill","process":"x"}]})");
  REQUIRE_FALSE(process.ok());
  CHECK(process.error().message.find("\"x\"") != std::string::npos);
  auto too_many =
      parse_scenario("s.json", R"({"balancer":"http://b","playlist":"/p","max_viewers":5,
    "phases":[{"do":"arrive","viewers":6}]})");
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.error().message.find("max_viewers") != std::string::npos);
  auto anonymous = parse_scenario("s.json", R"({"balancer":"http://b"})");
  REQUIRE_FALSE(anonymous.ok());
  CHECK(anonymous.error().message.find("playlist") != std::string::npos);
  auto not_url = parse_scenario("s.json", R"({"balancer":"b:80","playlist":"/p"})");
  CHECK_FALSE(not_url.ok());
  auto ahead_anonymous = parse_scenario("s.json", R"({"balancer":"http://b","playlist":"/p",
    "phases":[{"do":"sign_in","viewers":3}]})");
  REQUIRE_FALSE(ahead_anonymous.ok());
  CHECK(ahead_anonymous.error().message.find("player.sign_in") != std::string::npos);
}

TEST_CASE("viewers signed in ahead are the arrivals' first: they count once") {
  auto s = parse_scenario("s.json", R"({"balancer":"http://b","max_viewers":100,
    "player":{"sign_in":true,"password":"x"},
    "phases":[{"do":"sign_in","viewers":80},{"at_s":5,"do":"arrive","viewers":100}]})");
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->planned_viewers() == 100);
}

TEST_CASE("overrides apply as the servers' --set") {
  auto s = parse_scenario("s.json", kMinimal, {"duration_s=120", "player.variant=bottom"});
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->duration_s == 120);
  CHECK(s->player.variant == VariantPolicy::bottom);
}

TEST_CASE("the recorder's request budget is per playing viewer per minute, in its window") {
  Recorder r(60, {{"steady", 10, 20}}, 1);
  for (int s = 0; s < 60; ++s) {
    if (s == 15) continue;  // a second the timer skipped takes the next reading
    r.tick(s + 0.5, 100, s >= 10 && s < 20 ? 100 : 0, 0, 0);
  }
  for (int s = 10; s < 20; ++s) {
    for (int i = 0; i < 50; ++i) {
      r.request(RequestKind::media, s + 0.1, 0.01, 200, 100);
      r.request(RequestKind::segment, s + 0.2, 0.01, 200, 100);
    }
  }
  r.request(RequestKind::media, 30.5, 0.01, 200, 100);  // outside the window
  auto budget = r.budget("steady");
  CHECK(budget["media"] == doctest::Approx(30));
  CHECK(budget["segment"] == doctest::Approx(30));
  CHECK(budget["balancer"] == doctest::Approx(30));
  CHECK(r.requests(RequestKind::media) == 501);
  CHECK(percentile({3, 1, 2, 4}, 0.5) == 2);
  CHECK(percentile({3, 1, 2, 4}, 1.0) == 4);
}

TEST_CASE("queue order: a viewer told to wait after a later ticket was admitted counts") {
  Recorder r(60, {}, 1);
  auto record = [](uint64_t ticket, double last_told, double admitted) {
    QueueRecord q;
    q.ticket = ticket;
    q.last_told_wait_at_s = last_told;
    q.admitted_at_s = admitted;
    return q;
  };
  r.queued(record(1, 9, 19));  // polls every 10 s: admitted after ticket 2, but never told to
  r.queued(record(2, 4, 14));  // wait once ticket 2 was in
  r.queued(record(3, 12, 20));
  CHECK(r.queue_order_inversions() == 0);
  r.queued(record(0, 15, 25));  // still told to wait at 15 s, after ticket 2 got in at 14 s
  CHECK(r.queue_order_inversions() == 1);
  r.queued(record(4, 30, 0));  // never admitted, last told at 30 s: tickets 1-3 were earlier
  CHECK(r.queue_order_inversions() == 1);
}

TEST_CASE("the recorder's spread behind live: p5 to p95 of the viewers within each second") {
  Recorder r(10, {}, 1);
  // Second 2: viewers from 1.0 to 2.9 s behind (twenty of them, 0.1 s apart); second 3: all at
  // 1.5 s; second 5: nobody.
  for (int i = 0; i < 20; ++i) r.behind_live(2.5, 1.0 + 0.1 * i);
  for (int i = 0; i < 20; ++i) r.behind_live(3.5, 1.5);
  const std::vector<double> spreads = r.behind_live_spreads();
  REQUIRE(spreads.size() == 2);
  // p5 is the first viewer's bin (1.0 s), p95 the nineteenth's (2.8 s), to 50 ms bins.
  CHECK(spreads[0] == doctest::Approx(1.8).epsilon(0.05));
  CHECK(spreads[1] == doctest::Approx(0.0).epsilon(0.05));
  CHECK(r.behind_live_in_second(5, 0.05) == std::nullopt);
}

TEST_CASE("own connections: each viewer's loopback address is its own") {
  auto s = parse_scenario("s.json", kMinimal, {"own_connections=true", "ca_file=\"cert.pem\""});
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->own_connections);
  CHECK(s->ca_file == "cert.pem");
  CHECK_FALSE(parse_scenario("s.json", kMinimal)->own_connections);
  CHECK(own_address(0) == "127.16.0.1");
  CHECK(own_address(255) == "127.16.1.0");
  CHECK(own_address(65535) == "127.17.0.0");
  CHECK(own_address(kMaxViewers - 1) == "127.17.134.160");
}
