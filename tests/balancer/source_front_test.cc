// SourceFront, one loop's view of the fetch loop's SourceCache, against a real test_origin: a
// fresh copy is answered on the front's own loop without asking the fetch loop, requests for
// one source share one question, a version the cache published is picked up without asking,
// and errors, LL-HLS directives on a playlist that is not followed and a changed origin go to
// the fetch loop. Blocking reloads of a followed playlist are answered or parked on the front's
// loop, woken once per published version. Both loops are real EventLoops, run in turn on the
// test thread; a FakeClock decides freshness and the parked reloads' deadlines.
#include "balancer/sources/source_front.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "support/balancer_fixture.h"
#include "support/loops_by_hand.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer {
namespace source_front_test {

using namespace std::chrono_literals;

PlaylistTimings no_background_refresh() {
  PlaylistTimings timings;
  timings.live_max_lag = 500ms;
  timings.error_hold = 250ms;
  // Real-time timers drive the cache's background refreshes; keep them out so only the
  // injected clock decides.
  timings.live_refresh = std::chrono::hours(1);
  timings.live_idle = std::chrono::hours(1);
  return timings;
}

struct Fixture {
  test::TempDir dir;
  test::TestOrigin origin{test::serving_files(dir.path())};
  core::FakeClock clock;
  core::MetricsRegistry metrics;
  PlaylistTimings timings = no_background_refresh();
  core::EventLoop fetch_loop{0};
  core::EventLoop front_loop{1};
  std::unique_ptr<http::HttpClient> client;
  std::unique_ptr<SourceCache> cache;
  std::unique_ptr<SourceAsker> asker;
  std::unique_ptr<SourceFront> front;

  explicit Fixture(PlaylistTimings t = no_background_refresh()) : timings(t) {
    auto made = http::HttpClient::create(fetch_loop.base(), {});
    REQUIRE(made.ok());
    client = std::move(*made);
    cache = std::make_unique<SourceCache>(fetch_loop, *client, metrics, timings, clock);
    asker = std::make_unique<SourceAsker>(*cache);
    front = std::make_unique<SourceFront>(front_loop, *asker, clock, metrics);
  }

  // Outcomes the fetch loop's cache counted: grows with every question it is asked (one each,
  // except a failed fetch, which counts as a miss and an error).
  uint64_t cache_lookups() {
    uint64_t n = 0;
    for (const char* result : {"hit", "miss", "coalesced", "stale", "error"}) {
      n += metrics
               .counter("balancer_playlist_cache_total", "Playlist source lookups by outcome",
                        std::string("result=\"") + result + "\"")
               .value();
    }
    return n;
  }

  SourceRequest request(const std::string& path, DeliveryDirectives directives = {}) {
    return SourceRequest{"demo", origin.base_url(), "/files" + path, directives, {}};
  }

  // Runs both loops on this thread until `done` holds (10 s at most).
  bool run_until(const std::function<bool()>& done) {
    return test::run_loops_until({&fetch_loop, &front_loop}, done);
  }

  // Asks the front and runs the loops until it answers.
  SourceResult get(const SourceRequest& r) {
    std::optional<SourceResult> answer;
    front->get(r, timings, [&](const SourceResult& result) { answer = result; });
    REQUIRE(run_until([&] { return answer.has_value(); }));
    return *answer;
  }
  SourceResult get(const std::string& path) { return get(request(path)); }

  // Origin lists a live window from 100; the front's first get of it must bring a copy.
  SourceResult first_listing() {
    test::write_file(dir.file("live.m3u8"), test::live_playlist(100, 5));
    SourceResult first = get("/live.m3u8");
    REQUIRE(first.version != nullptr);
    return first;
  }

  // What the front answered before get() returned, if anything (no loop turned).
  std::optional<SourceResult> answer_without_turn(const std::string& path) {
    std::optional<SourceResult> answer;
    front->get(request(path), timings, [&](const SourceResult& result) { answer = result; });
    return answer;
  }

  // Asks the fetch loop's cache itself (as another loop's front would), on the fetch loop.
  SourceResult get_on_fetch_loop(const std::string& path) {
    std::optional<SourceResult> answer;
    cache->get(request(path), [&](const SourceResult& result) { answer = result; });
    REQUIRE(run_until([&] { return answer.has_value(); }));
    return *answer;
  }
};

// `answer` is a hit with the version of `copy`, validated when `copy` was.
void check_hit(const std::optional<SourceResult>& answer, const SourceResult& copy) {
  REQUIRE(answer.has_value());
  CHECK(answer->from == SourceResult::From::hit);
  CHECK(answer->version == copy.version);
  CHECK(answer->validated_at == copy.validated_at);
}

TEST_CASE(
    "source front: a fresh copy is answered at once on the front's loop, without asking the fetch "
    "loop") {
  Fixture f;
  SourceResult first = f.first_listing();
  CHECK(first.from == SourceResult::From::miss);
  CHECK(f.cache_lookups() == 1);

  f.clock.advance(499ms);
  // Before get() returns: no loop turn, no post to the fetch loop.
  check_hit(f.answer_without_turn("/live.m3u8"), first);
  CHECK(f.cache_lookups() == 1);
  CHECK(f.origin.count("/files/live.m3u8") == 1);
}

TEST_CASE(
    "source front: a copy older than live_max_lag on the injected clock is asked of the fetch loop "
    "again") {
  Fixture f;
  SourceResult first = f.first_listing();

  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(101, 5));
  f.clock.advance(501ms);
  SourceResult late = f.get("/live.m3u8");
  CHECK(late.from == SourceResult::From::miss);
  CHECK(f.cache_lookups() == 2);
  CHECK(f.origin.count("/files/live.m3u8") == 2);
  REQUIRE(late.version != nullptr);
  CHECK(late.version->serial > first.version->serial);

  // And the new copy is the front's own from then on.
  CHECK(f.get("/live.m3u8").from == SourceResult::From::hit);
  CHECK(f.cache_lookups() == 2);
}

TEST_CASE(
    "source front: requests for one source while the fetch loop is asked share one question") {
  Fixture f;
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  constexpr int kViewers = 20;
  std::vector<std::optional<SourceResult>> answers(kViewers);
  for (int i = 0; i < kViewers; ++i) {
    f.front->get(f.request("/live.m3u8"), f.timings,
                 [&answers, i](const SourceResult& result) { answers[i] = result; });
  }
  REQUIRE(f.run_until([&] {
    for (const auto& a : answers)
      if (!a) return false;
    return true;
  }));
  CHECK(f.cache_lookups() == 1);
  CHECK(f.origin.count("/files/live.m3u8") == 1);
  for (const auto& a : answers) {
    REQUIRE(a->version != nullptr);
    CHECK(a->version == answers[0]->version);
  }
}

TEST_CASE(
    "source front: a version the fetch loop's cache published is picked up without asking the "
    "fetch loop") {
  Fixture f;
  SourceResult first = f.first_listing();
  // The front has read the slot once (a hit from its own copy).
  REQUIRE(f.get("/live.m3u8").from == SourceResult::From::hit);

  // The front's copy goes stale; another loop's request makes the fetch loop's cache fetch and
  // publish a new version in the slot the front holds.
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(101, 5));
  f.clock.advance(501ms);
  SourceResult refreshed = f.get_on_fetch_loop("/live.m3u8");
  REQUIRE(refreshed.version != nullptr);
  REQUIRE(refreshed.version->serial > first.version->serial);
  const uint64_t lookups = f.cache_lookups();

  check_hit(f.answer_without_turn("/live.m3u8"), refreshed);
  CHECK(f.cache_lookups() == lookups);
}

TEST_CASE(
    "source front: errors are not kept; each request asks the fetch loop, which holds the "
    "failure") {
  Fixture f;
  SourceResult missing = f.get("/absent.m3u8");
  CHECK(missing.from == SourceResult::From::error);
  CHECK(missing.status == 404);
  CHECK(missing.error.code == "not_found");
  const uint64_t after_first = f.cache_lookups();

  // Within error_hold: the cache answers from its held failure, origin is not asked.
  f.clock.advance(100ms);
  CHECK(f.get("/absent.m3u8").status == 404);
  CHECK(f.cache_lookups() == after_first + 1);
  CHECK(f.origin.count("/files/absent.m3u8") == 1);

  // The playlist appears; once the hold is over the front's next request gets it.
  test::write_file(f.dir.file("absent.m3u8"), test::live_playlist(1, 3));
  f.clock.advance(200ms);
  SourceResult found = f.get("/absent.m3u8");
  CHECK(found.from == SourceResult::From::miss);
  REQUIRE(found.version != nullptr);
  CHECK(f.origin.count("/files/absent.m3u8") == 2);
}

TEST_CASE(
    "source front: LL-HLS directives on a playlist the fetch loop does not follow go to its "
    "cache") {
  Fixture f;
  f.first_listing();
  CHECK(f.cache_lookups() == 1);
  DeliveryDirectives directives;
  directives.msn = 104;
  SourceResult r = f.get(f.request("/live.m3u8", directives));
  REQUIRE(r.version != nullptr);
  CHECK(f.cache_lookups() == 2);
}

TEST_CASE(
    "source front: a changed origin URL (reload) drops the front's copy and asks the fetch loop") {
  Fixture f;
  f.first_listing();
  CHECK(f.cache_lookups() == 1);

  // The same origin reached by another base URL: for the front, nothing it kept applies.
  SourceRequest moved = f.request("/live.m3u8");
  moved.origin_base = "http://localhost:" + std::to_string(f.origin.port());
  SourceResult r = f.get(moved);
  CHECK(r.from == SourceResult::From::miss);
  CHECK(f.cache_lookups() == 2);
  CHECK(f.origin.count("/files/live.m3u8") == 2);
}

TEST_CASE("source front: a front destroyed while the fetch loop is asked never calls its waiters") {
  Fixture f;
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  bool called = false;
  f.front->get(f.request("/live.m3u8"), f.timings, [&](const SourceResult&) { called = true; });
  f.front.reset();
  // Another loop asks too, before the front's question reaches the fetch loop: it starts the fetch
  // and the front's question joins it, so both are answered together, this one first.
  SourceResult other = f.get_on_fetch_loop("/live.m3u8");
  REQUIRE(other.version != nullptr);
  CHECK(f.cache_lookups() == 2);
  // The answer to the front was posted to its loop by then; a job posted now runs after it.
  bool marker_ran = false;
  f.front_loop.post([&] { marker_ran = true; });
  REQUIRE(f.run_until([&] { return marker_ran; }));
  CHECK_FALSE(called);
}

TEST_CASE("source front: on the fetch loop itself it asks the cache directly") {
  Fixture f;
  test::write_file(f.dir.file("live.m3u8"), test::live_playlist(100, 5));
  SourceFront fetch_loop_front(f.fetch_loop, *f.asker, f.clock, f.metrics);
  std::optional<SourceResult> answer;
  fetch_loop_front.get(f.request("/live.m3u8"), f.timings,
                       [&](const SourceResult& r) { answer = r; });
  REQUIRE(f.run_until([&] { return answer.has_value(); }));
  REQUIRE(answer->version != nullptr);
  CHECK(f.cache_lookups() == 1);

  // Its copy is its own: a fresh hit needs no loop turn.
  std::optional<SourceResult> hit;
  fetch_loop_front.get(f.request("/live.m3u8"), f.timings, [&](const SourceResult& r) { hit = r; });
  REQUIRE(hit.has_value());
  CHECK(hit->from == SourceResult::From::hit);
  CHECK(f.cache_lookups() == 1);
}

// A low-latency playlist whose follow the test drives by hand. Origin holds each blocking
// reload 700 ms and answers with the file as it was when the reload arrived; segments 0-11 are
// complete, segment 12 has its first `parts` parts listed. The fetch loop follows it (the
// blocking reload for the next part, sent as each answer lands, again live_refresh after one
// that brought nothing).
const std::string kLlPath = "/ll.m3u8?blocking_delay_ms=700";

std::string ll_playlist(int parts) {
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.75,CAN-SKIP-UNTIL=6.0\n"
      "#EXT-X-PART-INF:PART-TARGET=0.25\n#EXT-X-MEDIA-SEQUENCE:0\n";
  for (int i = 0; i < 12; ++i) out += "#EXTINF:1.0,\ns" + std::to_string(i) + ".m4s\n";
  for (int p = 0; p < parts; ++p)
    out += "#EXT-X-PART:DURATION=0.25,URI=\"s12." + std::to_string(p) + ".m4s\"\n";
  return out + "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s12." + std::to_string(parts) + ".m4s\"\n";
}

PlaylistTimings followed_timings() {
  PlaylistTimings timings = no_background_refresh();
  timings.live_refresh = std::chrono::milliseconds(50);  // a follow that brought nothing
  return timings;
}

struct FollowedFixture : Fixture {
  std::shared_ptr<const SourceSlot> slot;

  FollowedFixture() : Fixture(followed_timings()) {}

  DeliveryDirectives part(uint64_t msn, uint64_t index, const std::string& skip = "") {
    DeliveryDirectives d;
    d.msn = msn;
    d.part = index;
    d.skip = skip;
    return d;
  }
  double metric(const std::string& name, const std::string& labels = "") {
    return static_cast<double>(metrics.counter(name, "", labels).value());
  }
  double wakeups() { return metric("balancer_blocking_wakeups_total"); }

  int64_t follows_for(int index) {
    return origin.count("/files" + kLlPath + "&_HLS_msn=12&_HLS_part=" + std::to_string(index));
  }

  // The front holds the slot; the fetch loop's follow for 12.1 brought it (so the follows
  // deliver part after part) and the one for 12.2 is held at origin, which has 12.2 by then
  // when `with_next` (else it answers without it).
  void follow_delivers(bool with_next) {
    test::write_file(dir.file("ll.m3u8"), ll_playlist(1));
    SourceResult first = get(request(kLlPath));
    REQUIRE(first.version != nullptr);
    slot = first.slot;
    REQUIRE(slot != nullptr);
    // The first follow for 12.1 finds nothing new (it arrived before 12.1 was written); the
    // next, live_refresh after its answer, finds 12.1.
    REQUIRE(run_until([&] { return follows_for(1) >= 1; }));
    test::write_file(dir.file("ll.m3u8"), ll_playlist(2));
    REQUIRE(run_until([&] { return follows_for(1) >= 2; }));
    if (with_next) test::write_file(dir.file("ll.m3u8"), ll_playlist(3));
    REQUIRE(run_until([&] { return slot->delivering(); }));
    REQUIRE(follows_for(2) <= 1);
  }

  // A viewer's delta reload, which the fetch loop answers: it publishes a delta beside each
  // version from then on.
  void deltas_asked() {
    SourceResult first = get(request(kLlPath, part(12, 1, "YES")));
    REQUIRE(first.version != nullptr);
    REQUIRE(first.version->playlist.media.is_delta_update());
    REQUIRE(run_until([&] { return slot->view().delta != nullptr; }));
  }

  // A viewer's plain blocking reload for 12.3, answered by the version that brings it (the copy
  // stays in use); the slot then holds that version.
  void next_version_for_a_plain_reload() {
    std::optional<SourceResult> plain;
    front->get(request(kLlPath, part(12, 3)), timings, [&](const SourceResult& r) { plain = r; });
    test::write_file(dir.file("ll.m3u8"), ll_playlist(4));
    REQUIRE(run_until([&] { return plain.has_value(); }));
    REQUIRE(plain->version != nullptr);
    CHECK(satisfies_blocking(plain->version->playlist.media, 12, 3));
    CHECK(slot->view().version == plain->version);
  }
};

// How many of `answers` came.
size_t answered(const std::vector<std::optional<SourceResult>>& answers) {
  return static_cast<size_t>(
      std::count_if(answers.begin(), answers.end(), [](const auto& a) { return a.has_value(); }));
}

TEST_CASE(
    "source front: blocking reloads parked on the front's loop are answered when the version with "
    "their part is published: one wake-up for them all, the fetch loop never asked") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/true);
  const uint64_t lookups = f.cache_lookups();
  const double wakeups = f.wakeups();
  constexpr int kViewers = 10;
  std::vector<std::optional<SourceResult>> answers(kViewers);
  for (int i = 0; i < kViewers; ++i) {
    f.front->get(f.request(kLlPath, f.part(12, 2)), f.timings,
                 [&answers, i](const SourceResult& r) { answers[i] = r; });
  }
  CHECK(answered(answers) == 0);
  CHECK(f.front->parked() == kViewers);

  REQUIRE(f.run_until([&] { return answered(answers) == kViewers; }));
  CHECK(f.wakeups() - wakeups == 1);
  CHECK(f.cache_lookups() == lookups);
  CHECK(f.front->parked() == 0);
  for (const auto& a : answers) {
    CHECK(a->from == SourceResult::From::coalesced);
    REQUIRE(a->version != nullptr);
    CHECK(satisfies_blocking(a->version->playlist.media, 12, 2));
    CHECK(a->version == answers[0]->version);
  }
  // Origin saw that part's blocking reload once: the follow's.
  CHECK(f.origin.count("/files" + kLlPath + "&_HLS_msn=12&_HLS_part=2") == 1);
  CHECK(f.metric("balancer_blocking_reloads_total", "answered=\"here\"") == kViewers);
  CHECK(f.metric("balancer_blocking_reloads_total", "answered=\"fetch_loop\"") == 0);
}

TEST_CASE(
    "source front: a blocking reload the held version satisfies is answered before get() returns, "
    "with no post either way") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/false);
  const uint64_t lookups = f.cache_lookups();
  const double wakeups = f.wakeups();
  std::optional<SourceResult> answer;
  f.front->get(f.request(kLlPath, f.part(12, 1)), f.timings,
               [&](const SourceResult& r) { answer = r; });
  REQUIRE(answer.has_value());
  CHECK(answer->from == SourceResult::From::hit);
  REQUIRE(answer->version != nullptr);
  CHECK(satisfies_blocking(answer->version->playlist.media, 12, 1));
  // Any part of a complete segment (its parts no longer listed): held too.
  answer.reset();
  f.front->get(f.request(kLlPath, f.part(11, 9)), f.timings,
               [&](const SourceResult& r) { answer = r; });
  CHECK(answer.has_value());
  CHECK(f.cache_lookups() == lookups);
  CHECK(f.wakeups() == wakeups);

  // Too far ahead: the fetch loop decides (400), as before.
  SourceResult far = f.get(f.request(kLlPath, f.part(15, 0)));
  CHECK(far.status == 400);
  CHECK(f.cache_lookups() == lookups + 1);
  CHECK(f.metric("balancer_blocking_reloads_total", "answered=\"fetch_loop\"") == 1);
}

TEST_CASE(
    "source front: a parked blocking reload not satisfied by its deadline gets 503 "
    "playlist_not_ready on the front's loop") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/false);
  const uint64_t lookups = f.cache_lookups();
  // Three target durations (3 s) or blocking_timeout_ms, the shorter.
  PlaylistTimings timings = f.timings;
  timings.blocking_timeout = std::chrono::milliseconds(200);
  std::optional<SourceResult> answer;
  f.front->get(f.request(kLlPath, f.part(12, 2)), timings,
               [&](const SourceResult& r) { answer = r; });
  REQUIRE(f.run_until([&] { return f.front->parked() == 1; }));
  f.clock.advance(std::chrono::milliseconds(199));
  REQUIRE(f.run_until([&] { return answer.has_value(); }));
  CHECK(answer->from == SourceResult::From::error);
  CHECK(answer->status == 503);
  CHECK(answer->error.code == "playlist_not_ready");
  CHECK(f.cache_lookups() == lookups);
  CHECK(f.front->parked() == 0);
}

TEST_CASE(
    "source front: blocking reloads with _HLS_skip=YES get the delta update the fetch loop "
    "publishes beside each version once its viewers asked for one") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/true);
  const uint64_t lookups = f.cache_lookups();
  // The first asks the fetch loop, which builds the delta and publishes it from then on.
  SourceResult first = f.get(f.request(kLlPath, f.part(12, 1, "YES")));
  REQUIRE(first.version != nullptr);
  CHECK(first.version->playlist.media.is_delta_update());
  CHECK(f.cache_lookups() == lookups + 1);

  std::optional<SourceResult> held;
  f.front->get(f.request(kLlPath, f.part(12, 1, "YES")), f.timings,
               [&](const SourceResult& r) { held = r; });
  REQUIRE(held.has_value());
  REQUIRE(held->version != nullptr);
  CHECK(held->version->playlist.media.is_delta_update());

  std::vector<std::optional<SourceResult>> answers(2);
  f.front->get(f.request(kLlPath, f.part(12, 2, "YES")), f.timings,
               [&](const SourceResult& r) { answers[0] = r; });
  f.front->get(f.request(kLlPath, f.part(12, 2, "v2")), f.timings,
               [&](const SourceResult& r) { answers[1] = r; });
  CHECK(f.front->parked() == 2);
  REQUIRE(f.run_until([&] { return answered(answers) == 2; }));
  for (const auto& a : answers) {
    REQUIRE(a->version != nullptr);
    CHECK(a->version->playlist.media.is_delta_update());
    CHECK(satisfies_blocking(a->version->playlist.media, 12, 2));
  }
  CHECK(f.cache_lookups() == lookups + 1);
  CHECK(f.origin.count("/files" + kLlPath + "&_HLS_msn=12&_HLS_part=2&_HLS_skip=YES") == 0);
}

TEST_CASE(
    "source front: a copy whose viewers stopped asking for delta updates stops building one per "
    "version, and builds them again when asked") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/true);
  f.deltas_asked();
  // More than 30 s later, the next version.
  f.clock.advance(std::chrono::seconds(31));
  f.next_version_for_a_plain_reload();
  CHECK(f.slot->view().delta == nullptr);

  // A viewer asks for one again: the fetch loop builds it and publishes deltas from then on.
  SourceResult again = f.get(f.request(kLlPath, f.part(12, 3, "YES")));
  REQUIRE(again.version != nullptr);
  CHECK(again.version->playlist.media.is_delta_update());
  CHECK(f.run_until([&] { return f.slot->view().delta != nullptr; }));
}

TEST_CASE(
    "source front: delta updates a serving loop answers count as asked for: the fetch loop goes "
    "on building them") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/true);
  f.deltas_asked();
  const uint64_t lookups = f.cache_lookups();

  // 20 s later a viewer's delta reload is answered on the front's loop, 20 s after that comes
  // the next version: 40 s after the fetch loop's last delta, 20 s after the front's.
  f.clock.advance(std::chrono::seconds(20));
  std::optional<SourceResult> here;
  f.front->get(f.request(kLlPath, f.part(12, 2, "YES")), f.timings,
               [&](const SourceResult& r) { here = r; });
  REQUIRE(f.run_until([&] { return here.has_value(); }));
  REQUIRE(here->version != nullptr);
  CHECK(here->version->playlist.media.is_delta_update());
  CHECK(f.cache_lookups() == lookups);
  f.clock.advance(std::chrono::seconds(20));
  f.next_version_for_a_plain_reload();
  CHECK(f.slot->view().delta != nullptr);
}

TEST_CASE("source front: a front destroyed with blocking reloads parked is never woken") {
  FollowedFixture f;
  f.follow_delivers(/*with_next=*/true);
  bool called = false;
  f.front->get(f.request(kLlPath, f.part(12, 2)), f.timings,
               [&](const SourceResult&) { called = true; });
  REQUIRE(f.front->parked() == 1);
  const uint64_t generation = f.slot->generation();
  f.front.reset();
  // The follow brings 12.2; the slot's wake-up for the gone front runs and does nothing.
  REQUIRE(f.run_until([&] { return f.slot->generation() > generation; }));
  bool marker_ran = false;
  f.front_loop.post([&] { marker_ran = true; });
  REQUIRE(f.run_until([&] { return marker_ran; }));
  CHECK_FALSE(called);
  CHECK(f.wakeups() == 0);
}

}  // namespace source_front_test
}  // namespace balancer
