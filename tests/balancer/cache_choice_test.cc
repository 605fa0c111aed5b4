// Cache choice order (DESIGN.md flow 2) and health hysteresis with a fake clock.
#include "balancer/caches/cache_choice.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "balancer/caches/cache_health.h"
#include "balancer/caches/health_poller.h"

namespace balancer {
namespace {

using namespace std::chrono_literals;

std::vector<core::Cidr> nets(std::initializer_list<const char*> list) {
  std::vector<core::Cidr> out;
  for (const char* s : list) out.push_back(*core::Cidr::parse(s));
  return out;
}

struct Fleet {
  std::vector<core::Cidr> venue_nets = nets({"10.20.0.0/16", "fd00:20::/48"});
  std::vector<core::Cidr> narrow_nets = nets({"10.20.5.0/24"});
  std::vector<core::Cidr> park_nets = nets({"10.30.0.0/16"});
  std::vector<CacheCandidate> caches = {
      {"venue-a", "venue", &venue_nets, true},
      {"venue-b", "venue", &venue_nets, true},
      {"venue-c", "venue", &narrow_nets, true},
      {"park-a", "park", &park_nets, true},
  };
  CacheCandidate& by_id(std::string_view id) {
    for (auto& c : caches) {
      if (c.id == id) return c;
    }
    FAIL("no cache ", std::string(id));
    return caches[0];
  }
  std::string choose(std::string_view requested, const char* ip, uint64_t hash = 0) {
    auto parsed = ip ? core::IpAddress::parse(ip) : std::nullopt;
    CacheChoice c = choose_cache(caches, requested, parsed, hash);
    return c.index ? std::string(caches[*c.index].id) : std::string("origin");
  }
  CacheChoice::Reason reason(std::string_view requested, const char* ip) {
    auto parsed = ip ? core::IpAddress::parse(ip) : std::nullopt;
    return choose_cache(caches, requested, parsed, 0).reason;
  }
};

TEST_CASE("the viewer's cache wins when it is configured and usable") {
  Fleet f;
  CHECK(f.choose("venue-b", "203.0.113.1") == "venue-b");
  CHECK(f.reason("venue-b", "203.0.113.1") == CacheChoice::Reason::requested);
  CHECK(f.choose("park-a", "10.20.1.1") == "park-a");  // the viewer's choice beats coverage
}

TEST_CASE("an unhealthy or overloaded requested cache gives way to a sibling of the same site") {
  Fleet f;
  f.by_id("venue-a").usable = false;
  std::string chosen = f.choose("venue-a", "203.0.113.1");
  CHECK((chosen == "venue-b" || chosen == "venue-c"));
  CHECK(f.reason("venue-a", "203.0.113.1") == CacheChoice::Reason::same_site);
  // The viewer hash spreads viewers over the siblings and keeps each on one.
  CHECK(f.choose("venue-a", nullptr, 0) != f.choose("venue-a", nullptr, 1));
  CHECK(f.choose("venue-a", nullptr, 7) == f.choose("venue-a", nullptr, 7));
  // Never a node of another site.
  f.by_id("venue-b").usable = false;
  f.by_id("venue-c").usable = false;
  CHECK(f.choose("venue-a", nullptr) == "origin");
}

TEST_CASE("without a usable same-site node, coverage networks of the viewer's address decide") {
  Fleet f;
  for (auto& c : f.caches) c.usable = c.site != "venue";
  CHECK(f.choose("venue-a", "10.30.9.9") == "park-a");
  CHECK(f.reason("venue-a", "10.30.9.9") == CacheChoice::Reason::network);
  // Unknown or absent cache ids go straight to coverage.
  Fleet g;
  CHECK(g.choose("", "10.30.1.1") == "park-a");
  CHECK(g.choose("no-such-cache", "10.30.1.1") == "park-a");
  // IPv6 coverage.
  std::string v6 = g.choose("", "fd00:20::99");
  CHECK((v6 == "venue-a" || v6 == "venue-b"));
}

TEST_CASE("the longest matching prefix wins among covering nodes") {
  Fleet f;
  CHECK(f.choose("", "10.20.5.7") == "venue-c");  // /24 beats the /16 of venue-a and venue-b
  f.by_id("venue-c").usable = false;
  std::string chosen = f.choose("", "10.20.5.7");
  CHECK((chosen == "venue-a" || chosen == "venue-b"));
}

TEST_CASE("origin when nothing else applies") {
  Fleet f;
  CHECK(f.choose("", "203.0.113.1") == "origin");
  CHECK(f.reason("", "203.0.113.1") == CacheChoice::Reason::origin);
  CHECK(f.choose("", nullptr) == "origin");  // unparsable client address
  for (auto& c : f.caches) c.usable = false;
  CHECK(f.choose("venue-a", "10.20.1.1") == "origin");
  CHECK(choose_cache({}, "venue-a", core::IpAddress::parse("10.20.1.1"), 0).index == std::nullopt);
}

TEST_CASE("viewer_hash is stable and spreads") {
  CHECK(viewer_hash("v:abc") == viewer_hash("v:abc"));
  CHECK(viewer_hash("v:abc") != viewer_hash("v:abd"));
}

TimePoint at(double seconds) {
  return TimePoint(std::chrono::hours(1)) +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// A node whose poll answered at `seconds`, not overloaded.
CacheHealth answered_at(HealthThresholds thresholds, double seconds) {
  CacheHealth health(thresholds);
  health.record_success(false, at(seconds));
  return health;
}

TEST_CASE("the first health result decides at once; later changes need N consecutive results") {
  CacheHealth h(HealthThresholds{2, 3, 0ms});
  CHECK(h.state() == CacheHealth::State::unknown);
  CHECK_FALSE(h.usable(at(0)));
  h.record_success(false, at(0));
  CHECK(h.usable(at(0)));
  h.record_failure("refused", at(1));
  h.record_failure("refused", at(2));
  CHECK(h.usable(at(2)));          // two failures are not three
  h.record_success(false, at(3));  // a success resets the count
  h.record_failure("refused", at(4));
  h.record_failure("refused", at(5));
  CHECK(h.usable(at(5)));
  h.record_failure("refused", at(6));
  CHECK(h.state() == CacheHealth::State::down);
  CHECK_FALSE(h.usable(at(6)));
  CHECK(h.last_error() == "refused");
  CHECK(h.last_change() == at(6));
  h.record_success(false, at(7));
  CHECK_FALSE(h.usable(at(7)));  // one success is not two
  h.record_failure("refused", at(8));
  h.record_success(false, at(9));
  CHECK_FALSE(h.usable(at(9)));
  h.record_success(false, at(10));
  CHECK(h.usable(at(10)));
  CHECK(h.last_change() == at(10));

  CacheHealth first_fails(HealthThresholds{2, 2, 0ms});
  first_fails.record_failure("timeout", at(0));
  CHECK(first_fails.state() == CacheHealth::State::down);
}

TEST_CASE(
    "a refused connection takes an up node down at once; other failures wait for down_after") {
  CacheHealth h = answered_at(HealthThresholds{2, 3, 0ms}, 0);
  h.record_failure("timeout", at(1));
  CHECK(h.usable(at(1)));
  h.record_failure("connection refused", at(2), /*refused=*/true);
  CHECK(h.state() == CacheHealth::State::down);
  CHECK_FALSE(h.usable(at(2)));
  CHECK(h.last_change() == at(2));
  h.record_success(false, at(3));
  CHECK_FALSE(h.usable(at(3)));  // coming back still takes up_after
  h.record_success(false, at(4));
  CHECK(h.usable(at(4)));
}

TEST_CASE("the overloaded flag takes effect at once and does not count as down") {
  CacheHealth h = answered_at(HealthThresholds{2, 2, 0ms}, 0);
  h.record_success(true, at(1));
  CHECK(h.state() == CacheHealth::State::up);
  CHECK(h.overloaded());
  CHECK_FALSE(h.usable(at(1)));
  h.record_success(false, at(2));
  CHECK(h.usable(at(2)));
}

TEST_CASE("a node not heard from for stale_after is not used") {
  CacheHealth h = answered_at(HealthThresholds{1, 1, 3000ms}, 0);
  CHECK(h.usable(at(2.9)));
  CHECK_FALSE(h.usable(at(3.1)));
  h.record_success(false, at(4));
  CHECK(h.usable(at(4)));
}

TEST_CASE("usable_until is the last moment a node stays usable without a new poll result") {
  CacheHealth h = answered_at(HealthThresholds{1, 1, 3000ms}, 1);
  REQUIRE(h.usable_until() == at(4));
  CHECK(h.usable(h.usable_until()));
  CHECK_FALSE(h.usable(h.usable_until() + std::chrono::nanoseconds(1)));
  CacheHealth never_stale = answered_at(HealthThresholds{1, 1, 0ms}, 1);
  CHECK(never_stale.usable_until() == TimePoint::max());
}

TEST_CASE(
    "health replies: 200 JSON is up; overloaded by flag or status; anything else is a failure") {
  bool overloaded = true;
  std::string reason;
  CHECK(interpret_health_reply(200, R"({"status":"ok","node_id":"a","overloaded":false})",
                               overloaded, reason));
  CHECK_FALSE(overloaded);
  CHECK(interpret_health_reply(200, R"({"status":"ok","overloaded":true})", overloaded, reason));
  CHECK(overloaded);
  CHECK(interpret_health_reply(200, R"({"status":"overloaded"})", overloaded, reason));
  CHECK(overloaded);
  CHECK_FALSE(interpret_health_reply(200, R"({"status":"draining"})", overloaded, reason));
  CHECK_FALSE(interpret_health_reply(503, R"({"status":"ok"})", overloaded, reason));
  CHECK(reason.find("503") != std::string::npos);
  CHECK_FALSE(interpret_health_reply(200, "not json", overloaded, reason));
  CHECK_FALSE(interpret_health_reply(200, "[1,2]", overloaded, reason));
  // A node answering a deeply nested body is down, not a crash of the balancer.
  CHECK_FALSE(interpret_health_reply(200, "{\"status\":\"ok\",\"x\":" + std::string(1'000'000, '['),
                                     overloaded, reason));
  CHECK(reason.find("deeper than") != std::string::npos);
}

TEST_CASE("health replies: a reply cut at the read bound is read as far as it goes") {
  bool overloaded = false;
  std::string reason;
  std::optional<double> egress;
  const std::string head = R"({"status":"overloaded","egress_mbps":7,"playback":{"mix":{"1":2,"3")";
  // Cut inside a name, a number, between members: the members before the cut count.
  for (size_t cut : {head.size(), head.size() - 2, head.find("{\"1\"") + 2}) {
    CAPTURE(cut);
    CHECK(interpret_health_reply(200, head.substr(0, cut), overloaded, reason, &egress, true));
    CHECK(overloaded);
    CHECK(egress == 7.0);
  }
  // The same bytes as a whole reply are no JSON object; nor is garbage before the cut, nor a
  // document that is no object, cut or not.
  CHECK_FALSE(interpret_health_reply(200, head, overloaded, reason));
  CHECK_FALSE(interpret_health_reply(200, R"({"status":"ok",]]]]]]]]}", overloaded, reason,
                                     nullptr, true));
  CHECK_FALSE(interpret_health_reply(200, R"([{"status":"ok")",
                                     overloaded, reason, nullptr, true));
  CHECK_FALSE(interpret_health_reply(200, "12", overloaded, reason, nullptr, true));
  // Only top-level members count.
  CHECK(interpret_health_reply(200, R"({"nested":{"status":"draining","overloaded":true}})",
                               overloaded, reason));
  CHECK_FALSE(overloaded);
}

TEST_CASE("health replies: egress_mbps is read when it is a number >= 0, and kept by the node") {
  bool overloaded = false;
  std::string reason;
  std::optional<double> egress;
  CHECK(interpret_health_reply(200, R"({"status":"ok","egress_mbps":12.5})", overloaded, reason,
                               &egress));
  REQUIRE(egress.has_value());
  CHECK(*egress == doctest::Approx(12.5));
  CHECK(interpret_health_reply(200, R"({"status":"ok","egress_mbps":0})", overloaded, reason,
                               &egress));
  CHECK(egress == 0.0);
  for (const char* body : {R"({"status":"ok"})", R"({"status":"ok","egress_mbps":-1})",
                           R"({"status":"ok","egress_mbps":"9"})"}) {
    CHECK(interpret_health_reply(200, body, overloaded, reason, &egress));
    CHECK_FALSE(egress.has_value());
  }
  egress = 3.0;
  CHECK_FALSE(interpret_health_reply(503, R"({"egress_mbps":4})", overloaded, reason, &egress));
  CHECK_FALSE(egress.has_value());

  CacheHealth h(HealthThresholds{1, 1, 0ms});
  h.record_success(false, at(0), 7.0);
  CHECK(h.egress_mbps() == 7.0);
  h.record_success(false, at(1));
  CHECK_FALSE(h.egress_mbps().has_value());
  h.record_success(false, at(2), 8.0);
  h.record_failure("refused", at(3));
  CHECK_FALSE(h.egress_mbps().has_value());  // a failed poll measures nothing
}

TEST_CASE(
    "health reply: a node's chunk fetches per origin are read; what is not a count, or past "
    "the bound, is skipped") {
  bool overloaded = false;
  std::string reason;
  std::vector<OriginChunkFetches> chunks;
  REQUIRE(interpret_health_reply(
      200,
      R"({"status":"ok","origin_chunk_fetches":{"demo":{"answered":12,"failed":3},)"
      R"("backup":{"failed":5000000000,"answered":-1,"x":[1,{"answered":9}]},"odd":7},)"
      R"("answered":4,"node":{"failed":2}})",
      overloaded, reason, nullptr, false, &chunks));
  CHECK(chunks == std::vector<OriginChunkFetches>{{"demo", 12, 3}, {"backup", 0, 5000000000}});
  REQUIRE(interpret_health_reply(200, R"({"status":"ok"})", overloaded, reason, nullptr, false,
                                 &chunks));
  CHECK(chunks.empty());
  std::string many = R"({"origin_chunk_fetches":{)";
  for (size_t i = 0; i < kMaxReportedOrigins + 10; ++i) {
    many += (i == 0 ? "" : ",") + std::string("\"o") + std::to_string(i) + "\":{\"failed\":1}";
  }
  many += "}}";
  REQUIRE(interpret_health_reply(200, many, overloaded, reason, nullptr, false, &chunks));
  CHECK(chunks.size() == kMaxReportedOrigins);
}

}  // namespace
}  // namespace balancer
