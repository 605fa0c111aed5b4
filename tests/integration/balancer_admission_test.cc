// Admission against the real balancer binary (DESIGN.md flows 4 and 6): the operator's overload
// switch under both spellings with and without the key and with loopback allowed or not; a new
// viewer queued with 503 + Retry-After + the queue JSON while an admitted one keeps playing; a
// freed slot going to the head of the queue; the app's access check; /admin/status and /metrics;
// limits changed by SIGHUP without cutting anyone off.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kOperatorKey = "integration-operator-key-0001";

const std::string kMaster =
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\nhi/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=640x360\nlo/index.m3u8\n";

rapidjson::Document parse_json(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  REQUIRE_MESSAGE((!doc.HasParseError() && doc.IsObject()), body);
  return doc;
}

std::string error_code(const HttpResponse& r) {
  auto doc = parse_json(r.body);
  REQUIRE_MESSAGE(doc.HasMember("error"), r.body);
  return doc["error"]["code"].GetString();
}

// A cache entry whose health document is a static file on the test origin, so its egress is
// what the test wrote there. Chunk links to it are never followed.
std::string fake_cache(const std::string& id, const std::string& health_url) {
  return "{\"id\":\"" + id + "\",\"site\":\"venue\",\"url\":\"http://127.0.0.1:9\"," +
         "\"health_url\":\"" + health_url + "\"}";
}

struct Stack {
  using CachesFor = std::function<std::string(const TestOrigin&)>;

  explicit Stack(std::vector<std::string> overrides, const CachesFor& caches = {},
                 const std::string& main_config = "") {
    write_file(dir.file("root/live/master.m3u8"), kMaster);
    write_file(dir.file("root/live/hi/index.m3u8"), live_playlist(10, 3));
    write_file(dir.file("root/live/lo/index.m3u8"), live_playlist(10, 3));
    write_file(dir.file("root/health/a.json"), R"({"status":"ok","egress_mbps":1.0})");
    write_file(dir.file("root/health/b.json"), R"({"status":"ok","egress_mbps":0.5})");
    origin = std::make_unique<TestOrigin>(serving_files(dir.file("root")));
    overrides.insert(overrides.begin(), "operator.key=" + kOperatorKey);
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"),
        channels_json({channel_json("demo", "/live/master.m3u8"),
                       channel_json("gold", "/live/master.m3u8", false)}),
        caches ? caches(*origin) : caches_json({}), overrides, main_config);
  }

  // A playlist request of an anonymous viewer: the master, or variant "hi"/"lo".
  HttpResponse play(const std::string& viewer, const std::string& variant = "",
                    const std::string& cache = "") const {
    std::string target = variant.empty() ? "/hls/demo/live/master.m3u8"
                                         : "/hls/demo/live/" + variant + "/index.m3u8";
    target += "?viewer=" + viewer + (cache.empty() ? "" : "&cache=" + cache);
    return balancer->get(target);
  }
  HttpResponse access(const std::string& query) const {
    return balancer->get("/api/v1/access?" + query);
  }
  HttpResponse op(const std::string& target, const HttpHeaders& headers = {}) const {
    return http_get(balancer->url(target), headers);
  }
  rapidjson::Document status() const {
    HttpResponse r = op("/admin/status", {{"X-Operator-Key", kOperatorKey}});
    REQUIRE(r.status == 200);
    return parse_json(r.body);
  }
  bool emulation() const { return status()["emulation"].GetBool(); }

  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<BalancerProcess> balancer;
};

// Checks the queue answer of a playlist or access request; returns its ticket.
uint64_t check_queued(const HttpResponse& r, uint64_t position) {
  REQUIRE_MESSAGE(r.status == 503, r.body);
  CHECK(is_json_error(r, "queued"));
  CHECK(r.header("Cache-Control") == "no-store");
  CHECK(r.header("Access-Control-Allow-Origin") == "*");
  const auto retry_after = r.header("Retry-After");
  REQUIRE(retry_after.has_value());
  const int retry = std::stoi(*retry_after);
  CHECK(retry >= 1);
  CHECK(retry <= 10);
  auto doc = parse_json(r.body);
  const auto& q = doc["queue"];
  CHECK(q["position"].GetUint64() == position);
  CHECK(q["retry_after_s"].GetInt() == retry);
  CHECK((q["estimated_wait_s"].IsNull() || q["estimated_wait_s"].GetInt64() >= 0));
  CHECK(q["ticket"].GetUint64() > 0);
  return q["ticket"].GetUint64();
}

bool switch_reply_is(const HttpResponse& r, bool emulation, bool changed) {
  INFO(r.body);
  if (r.status != 200) return false;
  auto doc = parse_json(r.body);
  return doc["emulation"].GetBool() == emulation && doc["changed"].GetBool() == changed;
}

std::string main_config_with(const std::string& limits) {
  return R"({"listen":{"host":"127.0.0.1","port":0},"channels_file":"c.json","caches_file":"d.json",)"
         R"("origins":{"demo":{"url":"http://127.0.0.1:9"}},)"
         R"("signing":{"keys":["placeholder-signing-key-0001"]},)"
         R"("playback":{"ticket_keys":["placeholder-ticket-key-0001"]},)"
         R"("queue":{"retry_after_s":1,"ticket_grace_s":30,"head_reservation_s":30},)"
         R"("limits":)" +
         limits + "}";
}

}  // namespace

TEST_CASE("the overload switch: both spellings, ?state=on|off, bad state, key or loopback") {
  Stack s({});
  // Loopback is allowed by default: no key needed.
  CHECK(switch_reply_is(s.op("/access_queue_swith"), true, true));
  CHECK(s.emulation());
  HttpResponse r = s.op("/access_queue_swith");
  CHECK(switch_reply_is(r, false, true));
  CHECK(r.header("Content-Type").value_or("").find("application/json") == 0);
  CHECK(r.header("Cache-Control") == "no-store");
  CHECK_FALSE(r.header("Access-Control-Allow-Origin").has_value());  // operator-only
  CHECK(switch_reply_is(s.op("/access_queue_switch"), true, true));
  CHECK(switch_reply_is(s.op("/access_queue_switch?state=on"), true, false));
  CHECK(switch_reply_is(s.op("/access_queue_switch?state=off"), false, true));
  CHECK(switch_reply_is(s.op("/access_queue_swith?state=on"), true, true));
  for (const char* bad : {"?state=maybe", "?state=", "?state=ON", "?state=on&state=off"}) {
    check_json_error(s.op(std::string("/access_queue_switch") + bad), 400, "bad_request");
  }
  CHECK(s.emulation());  // a refused request changes nothing
  CHECK(switch_reply_is(s.op("/access_queue_switch?state=off", {{"X-Operator-Key", kOperatorKey}}),
                        false, true));
  // A wrong key is refused even from loopback.
  check_json_error(s.op("/access_queue_swith", {{"X-Operator-Key", "not-the-operator-key-000"}}),
                   403, "operator_key_invalid");
  CHECK(s.op("/access_queue_swith?key=not-the-operator-key-000").status == 403);
  CHECK(http_request("POST", s.balancer->url("/access_queue_swith")).status == 405);
  CHECK_FALSE(s.emulation());

  // Every change is logged with who asked; the key itself never is.
  const std::string log = s.balancer->process().stderr_text();
  CHECK(log.find("overload emulation switched ON by 127.0.0.1 (loopback, /access_queue_swith)") !=
        std::string::npos);
  CHECK(log.find("overload emulation switched OFF by 127.0.0.1 (operator key, "
                 "/access_queue_switch)") != std::string::npos);
  CHECK(log.find(kOperatorKey) == std::string::npos);
}

TEST_CASE("with loopback not allowed, the switch and /admin/status need the operator key") {
  Stack s({"operator.allow_loopback=false"});
  check_json_error(s.op("/access_queue_swith"), 401, "operator_key_required");
  CHECK(s.op("/access_queue_switch?state=on").status == 401);
  check_json_error(s.op("/access_queue_swith", {{"X-Operator-Key", "not-the-operator-key-000"}}),
                   403, "operator_key_invalid");
  CHECK(s.op("/admin/status").status == 401);

  CHECK(switch_reply_is(s.op("/access_queue_switch?state=on&key=" + kOperatorKey), true, true));
  CHECK(switch_reply_is(s.op("/access_queue_swith", {{"X-Operator-Key", kOperatorKey}}), false,
                        true));
  CHECK(switch_reply_is(s.op("/access_queue_swith?key=" + kOperatorKey), true, true));
  CHECK(s.emulation());
  CHECK(s.balancer->metric("balancer_errors_total{code=\"operator_key_required\"}") == 3);
}

TEST_CASE("emulation on: a new viewer waits with 503 + Retry-After; an admitted one keeps 200") {
  Stack s({});
  REQUIRE(s.play("alice").status == 200);
  REQUIRE(s.play("alice", "hi").status == 200);
  REQUIRE(switch_reply_is(s.op("/access_queue_switch?state=on"), true, true));

  const uint64_t bob = check_queued(s.play("bob"), 1);
  for (int i = 0; i < 3; ++i) {
    CHECK(s.play("alice", "hi").status == 200);  // never cut off by emulation
    CHECK(s.play("alice", "lo").status == 200);  // switching variant keeps the one slot
    CHECK(s.play("alice").status == 200);
  }
  CHECK(check_queued(s.play("bob", "hi"), 1) == bob);  // renewing keeps the ticket
  const uint64_t carol = check_queued(s.play("carol"), 2);
  CHECK(carol > bob);
  // The access check answers the same way, with the same ticket.
  CHECK(check_queued(s.access("channel=demo&viewer=bob"), 1) == bob);
  HttpResponse granted = s.access("channel=demo&viewer=alice");
  CHECK(granted.status == 200);
  CHECK(parse_json(granted.body)["access"].GetString() == std::string("granted"));

  auto st = s.status();
  CHECK(st["emulation"].GetBool());
  CHECK(st["viewers"]["active"].GetUint64() == 1);
  CHECK(st["queue"]["length"].GetUint64() == 2);

  // Off: admissions resume in queue order.
  REQUIRE(switch_reply_is(s.op("/access_queue_swith"), false, true));
  CHECK(s.play("carol").status == 200);
  CHECK(s.play("bob").status == 200);
  st = s.status();
  CHECK(st["viewers"]["active"].GetUint64() == 3);
  CHECK(st["queue"]["length"].GetUint64() == 0);
  CHECK(st["counters"]["admitted_from_queue"].GetUint64() == 2);
}

TEST_CASE(
    "max_streams=1: the second viewer waits at position 1 and gets the slot once the first "
    "goes idle") {
  Stack s({"limits.max_streams=1", "limits.idle_timeout_s=1", "queue.retry_after_s=1",
           "queue.ticket_grace_s=30", "queue.head_reservation_s=30"});
  REQUIRE(s.play("alice", "hi").status == 200);
  const uint64_t bob = check_queued(s.play("bob", "hi"), 1);

  // Alice stops playing. Bob renews as told until the freed slot is his.
  const auto started = Clock::now();
  int polls = 0;
  const bool admitted = wait_until(
      [&] {
        ++polls;
        HttpResponse r = s.play("bob", "hi");
        if (r.status == 503) CHECK(check_queued(r, 1) == bob);
        return r.status == 200;
      },
      10s, 200ms);
  REQUIRE(admitted);
  CHECK(Clock::now() - started >= 900ms);  // not before alice's idle timeout
  CHECK(polls >= 2);

  // Alice comes back: a newcomer now, behind nobody but with a new ticket.
  const uint64_t alice = check_queued(s.play("alice", "hi"), 1);
  CHECK(alice != bob);
  auto st = s.status();
  CHECK(st["viewers"]["active"].GetUint64() == 1);
  CHECK(st["counters"]["slots_expired"].GetUint64() == 1);
  CHECK(st["counters"]["admitted_from_queue"].GetUint64() == 1);
}

TEST_CASE("the access check: credentials like a playlist request, the same slot and queue") {
  Stack s({"limits.max_streams=1"});
  const std::string alice = make_ticket("demo", "alice");
  check_json_refusals({{"", 400, "bad_request"},
                       {"channel=nope&viewer=x", 404, "unknown_channel"},
                       {"channel=demo", 401, "credentials_required"},
                       {"channel=gold&viewer=x", 403, "not_entitled"},
                       {"channel=gold&ticket=" + alice, 403, "ticket_wrong_channel"}},
                      [&](const std::string& query) { return s.access(query); });
  CHECK(error_code(s.access("channel=demo&ticket=garbage")) == "ticket_malformed");
  CHECK(s.access("channel=demo&viewer=has%20space").status == 400);

  HttpResponse r = s.access("channel=demo&ticket=" + alice);
  CHECK(r.status == 200);
  auto doc = parse_json(r.body);
  CHECK(doc["access"].GetString() == std::string("granted"));
  CHECK(doc["channel"].GetString() == std::string("demo"));
  CHECK(r.header("Cache-Control") == "no-store");
  // The playlist with the same ticket uses the slot the access check gave.
  CHECK(s.balancer->get("/hls/demo/live/hi/index.m3u8?ticket=" + alice).status == 200);
  CHECK(s.status()["viewers"]["active"].GetUint64() == 1);

  const uint64_t bob = check_queued(s.access("channel=demo&viewer=bob"), 1);
  CHECK(check_queued(s.play("bob"), 1) == bob);
  CHECK(http_request("POST", s.balancer->url("/api/v1/access?channel=demo&viewer=bob")).status ==
        405);
  CHECK(s.balancer->metric(
            "balancer_admission_requests_total{endpoint=\"access\",result=\"queued\"}") == 1);
  CHECK(s.balancer->metric(
            "balancer_admission_requests_total{endpoint=\"playlist\",result=\"queued\"}") == 1);
}

TEST_CASE("/admin/status and /metrics: viewers per channel and cache, queue, traffic estimate") {
  Stack s({"limits.max_streams=2"}, [](const TestOrigin& origin) {
    return caches_json({fake_cache("venue-a", origin.url("/files/health/a.json")),
                        fake_cache("venue-b", origin.url("/files/health/b.json"))});
  });
  REQUIRE(s.balancer->wait_cache_usable("venue-a", true, 10s));
  REQUIRE(s.balancer->wait_cache_usable("venue-b", true, 10s));
  HttpResponse r = s.play("alice", "hi", "venue-a");
  REQUIRE(r.status == 200);
  CHECK(r.header("X-Cache-Choice") == "venue-a");
  REQUIRE(s.play("bob", "lo", "venue-b").status == 200);
  check_queued(s.play("carol"), 1);

  // Declared: 2 + 0.5 Mbit/s on the caches, which report 1 + 0.5 measured: correction 0.6.
  REQUIRE(wait_until(
      [&] { return std::abs(s.status()["traffic"]["correction"].GetDouble() - 0.6) < 1e-3; }, 10s,
      50ms));
  auto st = s.status();
  CHECK_FALSE(st["emulation"].GetBool());
  const auto& v = st["viewers"];
  CHECK(v["active"].GetUint64() == 2);
  CHECK(v["origin"].GetUint64() == 0);
  REQUIRE(v["channels"].Size() == 1);
  CHECK(v["channels"][0]["id"].GetString() == std::string("demo"));
  CHECK(v["channels"][0]["viewers"].GetUint64() == 2);
  CHECK(v["channels"][0]["declared_mbps"].GetDouble() == doctest::Approx(2.5));
  REQUIRE(v["caches"].Size() == 2);
  CHECK(v["caches"][0]["id"].GetString() == std::string("venue-a"));
  CHECK(v["caches"][0]["viewers"].GetUint64() == 1);
  CHECK(v["caches"][0]["declared_mbps"].GetDouble() == doctest::Approx(2));
  CHECK(v["caches"][1]["declared_mbps"].GetDouble() == doctest::Approx(0.5));
  CHECK(st["queue"]["length"].GetUint64() == 1);
  CHECK(st["queue"]["head_wait_s"].GetInt64() >= 0);
  CHECK(st["queue"]["next_wait_s"].IsNull());  // no slot has freed yet: unknown
  const auto& tr = st["traffic"];
  CHECK(tr["declared_mbps"].GetDouble() == doctest::Approx(2.5));
  CHECK(tr["measured_cache_mbps"].GetDouble() == doctest::Approx(1.5));
  CHECK(tr["correction"].GetDouble() == doctest::Approx(0.6));
  CHECK(tr["estimate_mbps"].GetDouble() == doctest::Approx(1.5));
  CHECK(st["limits"]["max_streams"].GetUint64() == 2);
  CHECK(st["limits"]["retry_after_s"].GetDouble() == doctest::Approx(10));
  CHECK(st["counters"]["admitted"].GetUint64() == 2);
  CHECK(st["counters"]["tickets_issued"].GetUint64() == 1);
  CHECK(s.balancer->health().find("\"viewers\":2,\"queued\":1") != std::string::npos);

  const std::string m = s.balancer->metrics();
  auto metric = [&](const std::string& series) {
    INFO(series);
    auto value = metric_value(m, series);
    CHECK(value.has_value());
    return value.value_or(-1);
  };
  // Counts and limits, then the traffic figures (fractions of Mbps).
  const std::pair<std::string, double> exact[] = {
      {"balancer_active_viewers", 2},
      {"balancer_viewers{channel=\"demo\"}", 2},
      {"balancer_viewers{channel=\"gold\"}", 0},
      {"balancer_viewers_by_cache{cache=\"venue-a\"}", 1},
      {"balancer_viewers_by_cache{cache=\"venue-b\"}", 1},
      {"balancer_viewers_by_cache{cache=\"origin\"}", 0},
      {"balancer_queue_length", 1},
      {"balancer_queue_reserved_slots", 0},
      {"balancer_limit_max_streams", 2},
      {"balancer_limit_max_traffic_mbps", 8000},
      {"balancer_overload_emulation", 0},
      {"balancer_admissions_total{from=\"direct\"}", 2},
      {"balancer_admissions_total{from=\"queue\"}", 0},
      {"balancer_queue_tickets_issued_total", 1},
      {"balancer_queue_tickets_dropped_total{reason=\"not_renewed\"}", 0},
      {"balancer_slots_expired_total", 0},
      {"balancer_admission_requests_total{endpoint=\"playlist\",result=\"admitted\"}", 2},
      {"balancer_admission_requests_total{endpoint=\"playlist\",result=\"queued\"}", 1},
      {"balancer_errors_total{code=\"queued\"}", 1},
  };
  for (const auto& [series, value] : exact) CHECK(metric(series) == value);
  const std::pair<std::string, double> approximately[] = {
      {"balancer_traffic_declared_mbps_by_channel{channel=\"demo\"}", 2.5},
      {"balancer_traffic_declared_mbps_by_cache{cache=\"venue-a\"}", 2},
      {"balancer_traffic_declared_mbps", 2.5},
      {"balancer_traffic_estimate_mbps", 1.5},
      {"balancer_traffic_correction", 0.6},
      {"balancer_traffic_measured_cache_mbps", 1.5},
  };
  for (const auto& [series, value] : approximately) CHECK(metric(series) == doctest::Approx(value));
  CHECK(metric("balancer_queue_head_wait_seconds") >= 0);
  CHECK(std::isnan(metric("balancer_queue_next_wait_seconds")));
  CHECK(m.find("# TYPE balancer_admissions_total counter") != std::string::npos);
}

TEST_CASE("SIGHUP changes limits.max_streams: the head gets the new room, nobody is cut off") {
  TempDir config_dir("balancer-admission-config");
  const std::string main = config_dir.file("balancer.json");
  write_file(main, main_config_with(R"({"max_streams":1})"));
  Stack s({}, {}, main);
  REQUIRE(s.play("alice", "hi").status == 200);
  check_queued(s.play("bob", "hi"), 1);

  write_file(main, main_config_with(R"({"max_streams":2})"));
  REQUIRE(s.balancer->reload());
  CHECK(s.status()["limits"]["max_streams"].GetUint64() == 2);
  CHECK(s.status()["queue"]["reserved_slots"].GetUint64() == 1);
  CHECK(s.play("carol", "hi").status == 503);  // the new room is bob's
  CHECK(s.play("bob", "hi").status == 200);
  check_queued(s.play("carol", "hi"), 1);

  // Lowering the limit cuts nobody off; newcomers wait.
  write_file(main, main_config_with(R"({"max_streams":1})"));
  REQUIRE(s.balancer->reload());
  for (int i = 0; i < 3; ++i) {
    CHECK(s.play("alice", "hi").status == 200);
    CHECK(s.play("bob", "lo").status == 200);
  }
  check_queued(s.play("carol", "hi"), 1);
  auto st = s.status();
  CHECK(st["limits"]["max_streams"].GetUint64() == 1);
  CHECK(st["viewers"]["active"].GetUint64() == 2);

  // A bad value is refused naming the key; the running limits stay.
  write_file(main, main_config_with(R"({"max_streams":5,"idle_timeout_s":0})"));
  REQUIRE(s.balancer->reload("rejected"));
  CHECK(s.status()["limits"]["max_streams"].GetUint64() == 1);
  CHECK(s.balancer->process().stderr_text().find("key 'limits.idle_timeout_s': must be > 0") !=
        std::string::npos);
}

TEST_CASE(
    "one client inventing viewer ids holds max_anonymous_per_address slots, then gets 429; ids are "
    "not logged") {
  Stack s({"limits.max_anonymous_per_address=5", "server.access_log=true"});
  int admitted = 0, refused = 0;
  for (int i = 0; i < 200; ++i) {
    HttpResponse r = s.play("flood" + std::to_string(i));
    if (r.status == 200) {
      ++admitted;
    } else {
      CAPTURE(r.body);
      REQUIRE(r.status == 429);
      CHECK(is_json_error(r, "too_many_viewers"));
      CHECK(r.header("Retry-After").has_value());
      ++refused;
    }
  }
  CHECK(admitted == 5);
  CHECK(refused == 195);
  auto status = s.status();
  CHECK(status["viewers"]["active"].GetUint64() == 5);
  CHECK(status["counters"]["refused_per_address"].GetUint64() == 195);
  // The app's access check applies the same bound; the admitted ones keep playing.
  HttpResponse access = s.access("channel=demo&viewer=one-more");
  CHECK(access.status == 429);
  CHECK(is_json_error(access, "too_many_viewers"));
  CHECK(s.play("flood0").status == 200);
  // The access log shows the requests without the made-up ids.
  const std::string log = s.balancer->process().stderr_text();
  CHECK(log.find("viewer=***") != std::string::npos);
  CHECK(log.find("flood1") == std::string::npos);
}

TEST_CASE("clients in limits.per_address_exempt (a venue's NAT) are not bounded per address") {
  Stack s(
      {"limits.max_anonymous_per_address=5", R"(limits.per_address_exempt=["127.0.0.0/8","::1"])"});
  for (int i = 0; i < 40; ++i) {
    CAPTURE(i);
    CHECK(s.play("venue" + std::to_string(i)).status == 200);
  }
  CHECK(s.status()["viewers"]["active"].GetUint64() == 40);
}

TEST_CASE("limits.max_entries bounds admitted plus queued viewers with a 503 busy") {
  Stack s({"limits.max_streams=2", "limits.max_entries=3", "limits.max_anonymous_per_address=0",
           "queue.max_tickets_per_address=0"});
  CHECK(s.play("a").status == 200);
  CHECK(s.play("b").status == 200);
  check_queued(s.play("c"), 1);
  HttpResponse full = s.play("d");
  CHECK(full.status == 503);
  CHECK(is_json_error(full, "busy"));
  CHECK(full.header("Retry-After").has_value());
  check_queued(s.play("c"), 1);  // the one waiting keeps its place
}
