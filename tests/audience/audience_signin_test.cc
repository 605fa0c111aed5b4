// `audience` with signed-in viewers against a real balancer and its REST API: half the crowd
// signed in ahead and only refreshes its session at the gate, the rest signs in there
// within half a second through a small password-check queue (a busy answer is followed after
// its Retry-After), lists channels, gets its playback ticket from the access check; the overload
// switch queues newcomers until it is switched off; a command followed by SIGHUP reloads the
// balancer while everyone plays on.
#include <doctest/doctest.h>

#include "support/api_fixture.h"
#include "support/audience_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("signed-in viewers, the overload switch and a reload: everyone plays, nobody stalls") {
  ApiStack api({"api.login_limits.per_address=1000", "api.kdf_queue=4",
                "api.kdf_queue_per_address=4", "queue.retry_after_s=2", "queue.ticket_grace_s=6",
                "queue.head_reservation_s=4"});
  LiveSource source(api.dir.file("root"), /*with_key=*/true);
  constexpr int kViewers = 24, kLate = 6, kAhead = 12;
  for (int n = 0; n < kViewers + kLate; ++n) api.add_user("fan" + std::to_string(n), "stadium-0");
  const double reloads_before =
      api.balancer->metric("balancer_config_reloads_total{result=\"ok\"}");

  rapidjson::Document doc = run_audience(api.dir, R"({
    "name": "ci sign-in", "balancer": ")" + api.balancer->url("") +
                                                      R"(", "channel": "demo",
    "duration_s": 24, "max_viewers": 40,
    "player": {"variant": "top", "sign_in": true, "login": "fan{n}", "password": "stadium-0"},
    "processes": [{"name": "balancer", "pid": )" + std::to_string(api.balancer->process().pid()) +
                                                      R"(}],
    "phases": [
      {"at_s": 0, "do": "sign_in", "viewers": )" + std::to_string(kAhead) +
                                                      R"(, "over_s": 0.5},
      {"at_s": 2, "do": "arrive", "viewers": )" + std::to_string(kViewers) +
                                                      R"(, "over_s": 0.5},
      {"at_s": 8, "do": "overload", "on": true},
      {"at_s": 9, "do": "arrive", "viewers": )" + std::to_string(kLate) +
                                                      R"(, "over_s": 1},
      {"at_s": 10, "do": "signal", "process": "balancer", "signal": "HUP", "command": ["true"]},
      {"at_s": 14, "do": "overload", "on": false}
    ]})");

  CHECK(number_at(doc, {"viewers", "started"}) == kViewers + kLate);
  CHECK(number_at(doc, {"stalls", "count"}) == 0);
  CHECK(doc["fatal"].MemberCount() == 0);
  // Every viewer signed in once (more attempts when the check queue was full), ahead or at the
  // gate; those signed in ahead only refreshed there; all listed the channels and asked for
  // access with their token.
  CHECK(number_at(doc, {"requests", "login", "count"}) >= kViewers + kLate);
  CHECK(number_at(doc, {"requests", "refresh", "count"}) == kAhead);
  CHECK(number_at(doc, {"requests", "channels", "count"}) == kViewers + kLate);
  // Each player fetched its variant's key once (through the balancer, which checks the ticket).
  CHECK(number_at(doc, {"requests", "key", "count"}) >= kViewers + kLate);
  CHECK(number_at(doc, {"requests", "key", "count"}) <= 2 * (kViewers + kLate));
  CHECK(doc["errors"].MemberCount() == 0);  // busy answers are waits (waits_told), not errors
  // The late ones met the switch: queued, then admitted once it was off.
  CHECK(number_at(doc, {"queue", "viewers"}) == kLate);
  CHECK(number_at(doc, {"queue", "admitted"}) == kLate);
  CHECK(number_at(doc, {"queue", "wait_s", "p50"}) >= 3);
  CHECK(api.balancer->metric("balancer_config_reloads_total{result=\"ok\"}") == reloads_before + 1);
}
