// The viewer endpoints (/hls/, /key/, /steering/) of a real Balancer on two real event
// loops (home and one more, run in turn on the test thread) against a real test_origin:
// a viewer's copy of a playlist, its key, its steering manifest; every refusal in the
// error contract's JSON shape and counted by code; admission's queue answer; a request
// on the second loop reaching the fetchers through post() (on the home loop here: the test
// gives the host no fetch loop, and the home loop then does the fetching).
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "balancer/balancer.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "http/server/http_server.h"
#include "signing/playback_ticket.h"
#include "support/balancer_fixture.h"
#include "support/in_process_balancer.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer {
namespace viewer_endpoints_test {

using namespace std::chrono_literals;

const char* kKeyBytes = "0123456789abcdef";

test::TestOriginOptions origin_options(const test::TempDir& dir) {
  // The origin's files, written before it starts: a master, a live media playlist with a key,
  // and the key.
  test::write_file(dir.file("live/master.m3u8"),
                   "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nindex.m3u8\n");
  test::write_file(dir.file("live/index.m3u8"),
                   test::live_playlist(10, 3, 2, "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n"));
  test::write_file(dir.file("live/key.bin"), kKeyBytes);
  test::TestOriginOptions options;
  options.root = dir.path();
  return options;
}

using test::Answer;

struct Fixture : test::InProcessLoops {
  test::TempDir dir;
  test::TestOrigin origin{origin_options(dir)};

  explicit Fixture(const std::string& main_extra = "")
      : InProcessLoops(ClockKind::fake, FetchLoopKind::home_loop) {
    start(test::in_process_config(origin.base_url(),
                                  {test::channel_json("live", "/files/live/master.m3u8"),
                                   test::channel_json("paid", "/files/live/master.m3u8", false)},
                                  main_extra));
  }

  // GET `target` from loop 1's server, which must answer 200.
  Answer get_ok(const std::string& target) {
    Answer answer = get(target);
    REQUIRE_MESSAGE(answer.status == 200, target, ": ", answer.body);
    return answer;
  }

  std::string ticket(const std::string& channel, const std::string& viewer,
                     int64_t lifetime_s = 3600) {
    auto tickets = signing::PlaybackTickets::create({test::kTicketKey});
    REQUIRE(tickets.ok());
    auto issued = tickets->issue({channel, viewer, clock.unix_now() + lifetime_s});
    REQUIRE(issued.ok());
    return *issued;
  }

  uint64_t errors(const std::string& code) {
    return metrics
        .counter("balancer_errors_total", "Error replies by code", "code=\"" + code + "\"")
        .value();
  }
};

bool has(const std::string& text, const std::string& part) {
  INFO(text);
  return text.find(part) != std::string::npos;
}

// The error contract: status, JSON shape with `code`, and one count of it.
void check_error(Fixture& f, const Answer& r, int status, const std::string& code,
                 uint64_t counted_before) {
  CHECK(r.status == status);
  CHECK(has(r.body, "{\"error\":{\"code\":\"" + code + "\",\"message\":\""));
  CHECK(f.errors(code) == counted_before + 1);
}

TEST_CASE(
    "viewer endpoints: a ticket gets the viewer's copy of the master and of the media playlist") {
  Fixture f;
  const std::string query = "?cache=venue-a&ticket=" + f.ticket("live", "ann");
  Answer master = f.get_ok("/hls/live/files/live/master.m3u8" + query);
  INFO(master.body);
  CHECK(master.head.header("Content-Type") ==
        std::optional<std::string>("application/vnd.apple.mpegurl"));
  // The variant leads back to the balancer with the viewer's parameters; steering is offered.
  CHECK(has(master.body, "/hls/live/files/live/index.m3u8" + query));
  // Its node is down: the master lists origin's pathway only (players without steering play
  // it); the manifest offers the node's pathway as origin's clone, for when it comes back.
  CHECK(has(master.body, "#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://127.0.0.1:" +
                             std::to_string(f.servers[1]->port()) + "/steering/live" + query +
                             "&pathway=origin\",PATHWAY-ID=\"origin\"\n"));
  CHECK(has(master.body, "/hls/live/files/live/index.m3u8" + query + "&pathway=origin"));
  CHECK_FALSE(has(master.body, "pathway=venue-a"));

  Answer media = f.get_ok("/hls/live/files/live/index.m3u8" + query);
  // No cache node is usable: chunks lead to origin, the key back to the balancer.
  CHECK(media.head.header("X-Cache-Choice") == std::optional<std::string>("origin"));
  CHECK(has(media.body, "seg10.ts"));
  CHECK(has(media.body, "seg12.ts"));
  CHECK(has(media.body, "URI=\"/key/live/files/live/key.bin" + query));
  CHECK(media.head.header("Cache-Control") == std::optional<std::string>("private, no-cache"));
}

TEST_CASE(
    "viewer endpoints: a listed key is served to its viewer; an unlisted path is 404 not_found") {
  Fixture f;
  const std::string query = "?ticket=" + f.ticket("live", "ann");
  // Asked on the second loop before anyone fetched the media playlist: the balancer learns the
  // key from the channel's playlists (through the fetchers' loop) first.
  Answer key = f.get_ok("/key/live/files/live/key.bin" + query);
  CHECK(key.body == kKeyBytes);
  CHECK(key.head.header("Cache-Control") == std::optional<std::string>("private, no-store"));

  uint64_t before = f.errors("not_found");
  check_error(f, f.get("/key/live/files/live/other.bin" + query), 404, "not_found", before);
  check_error(f, f.get("/hls/live/files/live/other.m3u8" + query), 404, "not_found", before + 1);
}

TEST_CASE(
    "viewer endpoints: bad requests and credentials are refused in the error contract's shape") {
  Fixture f;
  uint64_t before = f.errors("bad_request");
  check_error(f, f.get("/hls/live/files/live/index.m3u8?viewer=v1&viewer=v2"), 400, "bad_request",
              before);

  before = f.errors("unknown_channel");
  check_error(f, f.get("/hls/nope/files/live/index.m3u8?viewer=v1"), 404, "unknown_channel",
              before);

  before = f.errors("credentials_required");
  check_error(f, f.get("/hls/live/files/live/index.m3u8"), 401, "credentials_required", before);

  before = f.errors("ticket_required");
  check_error(f, f.get("/hls/paid/files/live/index.m3u8"), 401, "ticket_required", before);

  // A made-up viewer id never unlocks a paid channel; nor does another channel's ticket.
  before = f.errors("not_entitled");
  check_error(f, f.get("/hls/paid/files/live/index.m3u8?viewer=v1"), 403, "not_entitled", before);
  before = f.errors("ticket_wrong_channel");
  check_error(f, f.get("/hls/paid/files/live/index.m3u8?ticket=" + f.ticket("live", "ann")), 403,
              "ticket_wrong_channel", before);

  // An anonymous viewer plays the free channel.
  CHECK(f.get("/hls/live/files/live/index.m3u8?viewer=v1").status == 200);
}

TEST_CASE(
    "viewer endpoints: beyond limits.max_streams a new viewer is queued: 503, Retry-After, queue "
    "JSON") {
  Fixture f(R"(, "limits": {"max_streams": 1})");
  CHECK(f.get("/hls/live/files/live/index.m3u8?viewer=first").status == 200);
  uint64_t before = f.errors("queued");
  Answer queued = f.get("/hls/live/files/live/index.m3u8?viewer=second");
  check_error(f, queued, 503, "queued", before);
  CHECK(queued.head.header("Retry-After").has_value());
  CHECK(has(queued.body, "\"queue\":{\"ticket\":"));
  CHECK(has(queued.body, "\"position\":"));
  // The admitted viewer keeps playing.
  CHECK(f.get("/hls/live/files/live/index.m3u8?viewer=first").status == 200);
}

TEST_CASE(
    "viewer endpoints: the steering manifest lists the viewer's pathways; unknown channels are "
    "404") {
  Fixture f;
  Answer steering = f.get_ok("/steering/live?viewer=v1&cache=venue-a");
  CHECK(steering.head.header("Content-Type") == std::optional<std::string>("application/json"));
  CHECK(has(steering.body, "\"VERSION\":1"));
  CHECK(steering.body == "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"origin\"]}\n");
  // Asked with the pathway its master lists: the others are that one's clones.
  Answer cloned = f.get_ok("/steering/live?viewer=v1&cache=venue-a&pathway=origin");
  CHECK(cloned.body ==
        "{\"VERSION\":1,\"TTL\":30,\"PATHWAY-PRIORITY\":[\"origin\"],"
        "\"PATHWAY-CLONES\":[{\"BASE-ID\":\"origin\",\"ID\":\"venue-a\","
        "\"URI-REPLACEMENT\":{\"HOST\":\"127.0.0.1:" +
            std::to_string(f.servers[1]->port()) + "\",\"PARAMS\":{\"pathway\":\"venue-a\"}}}]}\n");
  uint64_t before = f.errors("unknown_channel");
  check_error(f, f.get("/steering/nope?viewer=v1"), 404, "unknown_channel", before);
}

}  // namespace viewer_endpoints_test
}  // namespace balancer
