// A stream is a device's stream (docs/admission.md, "Streams, devices and accounts"), against the
// real balancer binary and its REST API: two devices signed in to one account are two streams;
// with the overload switch on the second device waits in the queue like anyone else while the
// first keeps playing; limits.max_streams_per_account refuses one device more with 429
// too_many_streams; /admin/status, /metrics and the declared traffic count both devices; signing
// out frees the device's stream at once. Every API response is validated against
// docs/openapi.json (api_fixture.h).
#include <doctest/doctest.h>

#include <string>

#include "support/api_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kShowMaster =
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\nhi/index.m3u8\n";

// A stack whose channel "show" has a master with one 2 Mbit/s variant.
ApiStackOptions show_options(std::vector<std::string> overrides) {
  ApiStackOptions o;
  o.channels = channels_json({channel_json("show", "/show/master.m3u8")});
  o.overrides = std::move(overrides);
  return o;
}

void write_show(ApiStack& api) {
  write_file(api.dir.file("root/show/master.m3u8"), kShowMaster);
  write_file(api.dir.file("root/show/hi/index.m3u8"), live_playlist(10, 3));
}

// A device's access check; on 200, its playlist URL (path and query).
struct Access {
  HttpResponse response;
  std::string playlist;  // "" unless granted
};

Access access_show(ApiStack& api, const std::string& token) {
  Access a{api.get("/api/v1/access?channel=show", token), ""};
  if (a.response.status == 200) {
    a.playlist = target_of(parse_json(a.response.body)["playlist_url"].GetString());
  }
  return a;
}

// The variant playlist of a granted device, as its player would ask for it next.
HttpResponse play_variant(const ApiStack& api, const std::string& playlist) {
  std::string target = playlist;
  target.replace(target.find("master.m3u8"), std::string("master.m3u8").size(), "hi/index.m3u8");
  return api.balancer->get(target);
}

// A device that gets access and starts playing its variant.
Access start_playing(ApiStack& api, const std::string& token) {
  Access a = access_show(api, token);
  REQUIRE_MESSAGE(a.response.status == 200, a.response.body);
  REQUIRE(play_variant(api, a.playlist).status == 200);
  return a;
}

// The stack with user alice signed in on two devices (two sessions).
struct TwoDevices {
  explicit TwoDevices(std::vector<std::string> overrides)
      : api(show_options(std::move(overrides))) {
    write_show(api);
    api.add_user("alice", "pw");
    first = api.token_of(api.login("alice", "pw"));
    second = api.token_of(api.login("alice", "pw"));
  }
  ApiStack api;
  std::string first, second;  // session tokens
};

rapidjson::Document admin_status(const ApiStack& api) {
  HttpResponse r = api.balancer->get("/admin/status");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return parse_json(r.body);
}

}  // namespace

TEST_CASE(
    "switch on: a second device of a signed-in account is queued while the first plays on; off: "
    "it is admitted, and status, metrics and declared traffic count two streams") {
  TwoDevices alice({"limits.max_streams=100"});
  ApiStack& api = alice.api;
  const std::string& phone = alice.first;
  const std::string& tablet = alice.second;

  const Access first = start_playing(api, phone);
  REQUIRE(api.balancer->get("/access_queue_switch?state=on").status == 200);

  const Access second = access_show(api, tablet);
  REQUIRE_MESSAGE(second.response.status == 503, second.response.body);
  CHECK(error_code(second.response) == "queued");
  CHECK(second.response.header("Retry-After").has_value());
  const uint64_t ticket = parse_json(second.response.body)["queue"]["ticket"].GetUint64();
  CHECK(parse_json(second.response.body)["queue"]["position"].GetUint64() == 1);
  // The first device is never cut off: its playlists and its access checks keep their slot.
  CHECK(play_variant(api, first.playlist).status == 200);
  CHECK(access_show(api, phone).response.status == 200);
  // A refreshed token is the same device: the same stream, not a new one.
  REQUIRE(api.refresh(phone).status == 200);
  CHECK(access_show(api, phone).response.status == 200);
  // The waiting device keeps its ticket when it asks again.
  const Access again = access_show(api, tablet);
  REQUIRE(again.response.status == 503);
  CHECK(parse_json(again.response.body)["queue"]["ticket"].GetUint64() == ticket);
  auto st = admin_status(api);
  CHECK(st["viewers"]["active"].GetUint64() == 1);
  CHECK(st["queue"]["length"].GetUint64() == 1);

  REQUIRE(api.balancer->get("/access_queue_switch?state=off").status == 200);
  const Access admitted = access_show(api, tablet);
  REQUIRE_MESSAGE(admitted.response.status == 200, admitted.response.body);
  CHECK(admitted.playlist != first.playlist);  // its own ticket: its own stream
  REQUIRE(play_variant(api, admitted.playlist).status == 200);
  REQUIRE(play_variant(api, first.playlist).status == 200);

  st = admin_status(api);
  CHECK(st["viewers"]["active"].GetUint64() == 2);
  REQUIRE(st["viewers"]["channels"].Size() == 1);
  CHECK(st["viewers"]["channels"][0]["viewers"].GetUint64() == 2);
  CHECK(st["viewers"]["channels"][0]["declared_mbps"].GetDouble() == doctest::Approx(4));
  CHECK(st["traffic"]["declared_mbps"].GetDouble() == doctest::Approx(4));
  CHECK(st["counters"]["admitted_from_queue"].GetUint64() == 1);
  CHECK(api.balancer->metric("balancer_active_viewers") == 2);
  CHECK(api.balancer->metric("balancer_viewers{channel=\"show\"}") == 2);
  CHECK(api.balancer->metric("balancer_traffic_declared_mbps_by_channel{channel=\"show\"}") ==
        doctest::Approx(4));
  CHECK(api.balancer->health().find("\"viewers\":2,") != std::string::npos);
}

TEST_CASE(
    "limits.max_streams_per_account=2: a third device gets 429 too_many_streams with "
    "Retry-After; another account is not affected; a device that stops makes room") {
  ApiStack api(show_options({"limits.max_streams_per_account=2", "limits.idle_timeout_s=3",
                             "queue.retry_after_s=1", "queue.ticket_grace_s=1",
                             "queue.head_reservation_s=1"}));
  write_show(api);
  api.add_user("alice", "pw");
  std::vector<std::string> devices;
  for (int i = 0; i < 3; ++i) devices.push_back(api.token_of(api.login("alice", "pw")));
  const std::string bob = api.user_token("bob", "pw");

  const Access phone = access_show(api, devices[0]);
  const Access tablet = access_show(api, devices[1]);
  REQUIRE(phone.response.status == 200);
  REQUIRE(tablet.response.status == 200);
  const HttpResponse third = access_show(api, devices[2]).response;
  REQUIRE_MESSAGE(third.status == 429, third.body);
  CHECK(is_json_error(third, "too_many_streams"));
  CHECK(third.header("Retry-After") == "1");
  CHECK(third.header("Cache-Control") == "no-store");
  CHECK(parse_json(third.body)["error"]["message"].GetString() != std::string());
  CHECK(access_show(api, bob).response.status == 200);
  CHECK(access_show(api, devices[0]).response.status == 200);  // the known devices go on

  auto st = admin_status(api);
  CHECK(st["limits"]["max_streams_per_account"].GetUint64() == 2);
  CHECK(st["counters"]["refused_per_account"].GetUint64() == 1);
  CHECK(st["viewers"]["active"].GetUint64() == 3);
  CHECK(api.balancer->metric("balancer_admission_refused_total{reason=\"per_account\"}") == 1);
  CHECK(api.balancer->metric("balancer_errors_total{code=\"too_many_streams\"}") == 1);
  CHECK(api.balancer->metric("balancer_limit_max_streams_per_account") == 2);

  // The tablet stops (no more playlist requests); the phone plays on. Within a bounded wait the
  // tablet's stream idles out and the third device fits.
  HttpResponse later;
  const bool fits = wait_until(
      [&] {
        play_variant(api, phone.playlist);
        later = access_show(api, devices[2]).response;
        return later.status == 200;
      },
      10s, 100ms);
  CHECK_MESSAGE(fits, later.body);
}

TEST_CASE(
    "signing out frees the device's stream at once: with max_streams_per_account=1 the next device "
    "plays without waiting for the idle timeout") {
  TwoDevices alice({"limits.max_streams_per_account=1"});
  start_playing(alice.api, alice.first);
  CHECK(is_json_error(access_show(alice.api, alice.second).response, "too_many_streams"));

  REQUIRE(alice.api.logout(alice.first).status == 200);
  CHECK(access_show(alice.api, alice.second).response.status == 200);  // idle_timeout_s is 30 s
  auto st = admin_status(alice.api);
  CHECK(st["viewers"]["active"].GetUint64() == 1);
  CHECK(st["counters"]["released"].GetUint64() == 1);
}
