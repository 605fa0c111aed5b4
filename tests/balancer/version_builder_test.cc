// The version builder (version_builder.h) as a pure function of origin's body, the moment
// passed in and the copy's lineage: no origin, no loop, no clock but the one each test moves.
#include "balancer/sources/version_builder.h"

#include <doctest/doctest.h>

#include <string>

#include "support/balancer_fixture.h"

namespace balancer {
namespace version_builder_test {

using namespace std::chrono_literals;

constexpr const char* kBase = "http://origin.test";
constexpr const char* kUrl = "http://origin.test/live/index.m3u8";
constexpr int64_t kUnixMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// One copy of one playlist, built version after version at a time the test moves.
struct Copy {
  explicit Copy(PlaylistTimings timings = {}) : builder(timings) {}

  core::Result<BuiltVersion> build(const std::string& body) {
    OriginAnswer answer;
    answer.body = body;
    answer.url = kUrl;
    answer.origin_base = kBase;
    answer.playlist_key = "demo\n/live/index.m3u8";
    answer.live = live;
    answer.target_latency_s = target_latency_s;
    notes = {};
    return builder.build(lineage, answer, {now, unix_ms}, notes);
  }
  std::shared_ptr<const SourceVersion> version(const std::string& body) {
    auto built = build(body);
    REQUIRE_MESSAGE(built.ok(), built.error().message);
    return built->version;
  }
  void advance(std::chrono::milliseconds d) {
    now += d;
    unix_ms += d.count();
  }

  VersionBuilder builder;
  CopyLineage lineage;
  LiveEndPolicy live;
  double target_latency_s = 0;
  TimePoint now{std::chrono::hours(1)};
  int64_t unix_ms = kUnixMs;
  BuildNotes notes;
};

// The chunk targets of a version, in slot order.
std::vector<std::string> chunk_targets(const SourceVersion& version) {
  std::vector<std::string> out;
  for (const SlotTarget& slot : version.plan.slots) {
    if (slot.kind == SlotTarget::Kind::chunk) out.push_back(slot.origin_target);
  }
  return out;
}

TEST_CASE("version builder: origin's body becomes a version with its facts, plan and serial") {
  Copy copy;
  auto first = copy.version(test::live_playlist(100, 3));
  CHECK(first->kind == SourceKind::live);
  CHECK(first->target_duration == 2000ms);
  CHECK(first->total_duration_s == doctest::Approx(6.0));
  CHECK(chunk_targets(*first) ==
        std::vector<std::string>{"/live/seg100.ts", "/live/seg101.ts", "/live/seg102.ts"});
  CHECK(copy.lineage.origin_body.empty());  // the version's own bytes are origin's
  CHECK(copy.lineage.origin_bytes(first.get()) == test::live_playlist(100, 3));
  auto second = copy.version(test::live_playlist(101, 3));
  CHECK(second->serial > first->serial);

  auto malformed = copy.build("not a playlist");
  REQUIRE(!malformed.ok());
  CHECK(malformed.error().code == "bad_source_playlist");
  CHECK(copy.notes.warnings.size() == 1);
}

TEST_CASE(
    "version builder: a chunk's first-listed stamp is the injected wall clock when it first "
    "appeared, kept while it is listed") {
  Copy copy;
  auto first = copy.version(test::live_playlist(100, 2));
  const int64_t t0 = kUnixMs / 1000;
  CHECK(first->plan.chunk_first_listed == std::vector<int64_t>{t0, t0});
  copy.advance(10s);
  auto second = copy.version(test::live_playlist(101, 2));
  CHECK(second->plan.chunk_first_listed == std::vector<int64_t>{t0, t0 + 10});
  // A playlist nobody serves any more starts over.
  copy.builder.forget("demo\n/live/index.m3u8");
  copy.advance(5s);
  CHECK(copy.version(test::live_playlist(101, 2))->plan.chunk_first_listed ==
        std::vector<int64_t>{t0 + 15, t0 + 15});
}

TEST_CASE(
    "version builder: a restart continues the numbering after a discontinuity, its chunks "
    "named by the run the injected wall clock dates") {
  Copy copy;
  copy.live.mode = LiveMode::automatic;
  copy.version(test::live_playlist(100, 3));
  copy.advance(2s);
  auto restarted = copy.version(test::live_playlist(0, 2));
  CHECK(copy.notes.restarted);
  CHECK(restarted->playlist.media.media_sequence >= 100);
  const std::string text(restarted->playlist.tmpl.source());
  CHECK(text.find("#EXT-X-DISCONTINUITY") != std::string::npos);
  const std::string run = std::string(kRunParameter) + "=" + std::to_string(kUnixMs + 2000);
  const std::vector<std::string> chunks = chunk_targets(*restarted);
  REQUIRE(!chunks.empty());
  CHECK(chunks.back().find(run) != std::string::npos);
  CHECK(!copy.lineage.origin_numbering);
  CHECK(!copy.lineage.origin_body.empty());  // the served copy is the balancer's own
}

TEST_CASE(
    "version builder: a live channel's end tag is held back until end_confirm has passed "
    "on the injected clock") {
  Copy copy;
  copy.live.mode = LiveMode::live;
  copy.live.end_confirm = 30s;
  copy.version(test::live_playlist(100, 3));
  auto ended = copy.version(test::live_playlist(100, 3) + "#EXT-X-ENDLIST\n");
  CHECK(copy.notes.end_held);
  CHECK(ended->kind == SourceKind::live);
  CHECK(!ended->playlist.media.endlist);
  CHECK(!copy.lineage.runs.end_due(copy.live, copy.now + 29s));
  copy.advance(30s);
  CHECK(copy.lineage.runs.end_due(copy.live, copy.now));
  auto confirmed = copy.version(test::live_playlist(100, 3) + "#EXT-X-ENDLIST\n");
  CHECK(confirmed->kind == SourceKind::vod);
}

TEST_CASE(
    "version builder: a long live playlist is served as a window of its newest segments; "
    "a long VOD playlist is refused") {
  PlaylistTimings timings;
  timings.max_segments = 3;
  Copy copy(timings);
  auto windowed = copy.version(test::live_playlist(100, 5));
  CHECK(copy.notes.windowed_from == 5);
  CHECK(windowed->playlist.media.media_sequence == 102);
  CHECK(chunk_targets(*windowed) ==
        std::vector<std::string>{"/live/seg102.ts", "/live/seg103.ts", "/live/seg104.ts"});
  CHECK(copy.lineage.origin_bytes(windowed.get()) == test::live_playlist(100, 5));
  CHECK(!copy.lineage.origin_numbering);

  Copy vod(timings);
  auto refused = vod.build(test::live_playlist(100, 5) + "#EXT-X-ENDLIST\n");
  REQUIRE(!refused.ok());
  CHECK(refused.error().code == "source_too_many_segments");
}

TEST_CASE(
    "version builder: the channel's target latency is written into the hold-backs, "
    "origin's bytes kept apart") {
  Copy copy;
  copy.target_latency_s = 12;
  auto version = copy.version(test::live_playlist(100, 3));
  REQUIRE(version->playlist.media.server_control.hold_back);
  CHECK(*version->playlist.media.server_control.hold_back == doctest::Approx(12.0));
  CHECK(copy.lineage.origin_bytes(version.get()) == test::live_playlist(100, 3));
}

TEST_CASE(
    "version builder: a delta update is built once per version, linking each chunk as the "
    "full version does") {
  Copy copy;
  auto full = copy.version(test::live_playlist(
      10, 8, 1, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=3.0\n"));
  BuildNotes notes;
  auto delta = copy.builder.delta_of(copy.lineage, full, kUrl, notes);
  CHECK(notes.delta_built);
  REQUIRE(delta != full);
  CHECK(delta->playlist.media.is_delta_update());
  const std::vector<std::string> all = chunk_targets(*full);
  const std::vector<std::string> listed = chunk_targets(*delta);
  REQUIRE(listed.size() < all.size());
  CHECK(std::equal(listed.rbegin(), listed.rend(), all.rbegin()));
  BuildNotes again;
  CHECK(copy.builder.delta_of(copy.lineage, full, kUrl, again) == delta);
  CHECK(!again.delta_built);
}

TEST_CASE(
    "version builder: origin's version is parsed once: with the channel's hold-backs, cut "
    "to a window, and its delta update built without a parse of its own") {
  PlaylistTimings timings;
  timings.max_segments = 6;
  Copy copy(timings);
  copy.target_latency_s = 6;
  const std::string ll =
      "#EXT-X-PART-INF:PART-TARGET=0.5\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=3.0\n";
  auto version = copy.version(test::live_playlist(10, 12, 1, ll));
  CHECK(copy.notes.windowed_from == 12);
  REQUIRE(version->playlist.media.server_control.hold_back);
  CHECK(*version->playlist.media.server_control.hold_back == doctest::Approx(6.0));
  CHECK(version->playlist.media.segments.size() == 6);
  CHECK(copy.builder.parses() == 1);
  BuildNotes notes;
  auto delta = copy.builder.delta_of(copy.lineage, version, kUrl, notes);
  CHECK(notes.delta_built);
  CHECK(delta->playlist.media.is_delta_update());
  CHECK(copy.builder.parses() == 1);
  // The next origin version: one more.
  copy.version(test::live_playlist(11, 12, 1, ll));
  CHECK(copy.builder.parses() == 2);
}

TEST_CASE(
    "version builder: a live channel's own copy (its run named, an end tag held back) is "
    "parsed once per origin version") {
  Copy copy;
  copy.live.mode = LiveMode::live;
  auto first = copy.version(test::live_playlist(100, 3));
  CHECK(!copy.lineage.origin_body.empty());  // the balancer's copy, not origin's
  const std::vector<std::string> chunks = chunk_targets(*first);
  REQUIRE(!chunks.empty());
  CHECK(chunks.front().find(kRunParameter) != std::string::npos);
  CHECK(copy.builder.parses() == 1);
  auto held = copy.version(test::live_playlist(101, 3) + "#EXT-X-ENDLIST\n");
  CHECK(copy.notes.end_held);
  CHECK(!held->playlist.media.endlist);
  CHECK(copy.builder.parses() == 2);
}

TEST_CASE(
    "version builder: the chunks a version lists that the one before did not are named for "
    "prefetch") {
  Copy copy;
  auto before = copy.version(test::live_playlist(100, 3));
  auto after = copy.version(test::live_playlist(101, 4));
  CHECK(new_chunk_targets(*before, *after) ==
        std::vector<std::string>{"/live/seg103.ts", "/live/seg104.ts"});
  CHECK(new_chunk_targets(*after, *after).empty());
}

}  // namespace version_builder_test
}  // namespace balancer
