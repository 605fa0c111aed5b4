// A channel with two sources (source_health.h, LiveRunTracker::switch_source): renditions
// matched by name, each source's health from its playlists' answers and the clock, the choice
// of the source to play from, and one timeline for viewers across a switch.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "balancer/sources/live_restart.h"
#include "balancer/sources/source_health.h"
#include "hls/program_date.h"
#include "support/hls_test_support.h"

using namespace balancer;
using namespace std::chrono_literals;

namespace {

using SwitchTime = SourceHealth::TimePoint;
const SwitchTime kSwitchStart{std::chrono::hours(1)};
constexpr int64_t kSwitchEpochMs = 1'790'000'000'000;  // segment 0 of encoder A starts here

// An encoder's live window: `count` segments of 2 s from `first`, named <prefix><n>.ts, with
// program dates on the shared clock when `dated` (segment n starts at kSwitchEpochMs + 2 s * n +
// `offset_ms`; encoder B numbers its segments from `base`).
struct SwitchEncoder {
  std::string url;     // its media playlist
  std::string prefix;  // segment names
  uint64_t base = 0;   // its number for the segment that starts at kSwitchEpochMs
  bool dated = true;
  int64_t offset_ms = 0;

  std::string window(uint64_t first_clock_index, int count, bool ended = false) const {
    std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:" +
                      std::to_string(base + first_clock_index) + "\n#EXT-X-MAP:URI=\"init.mp4\"\n";
    for (int i = 0; i < count; ++i) {
      const uint64_t n = first_clock_index + static_cast<uint64_t>(i);
      if (dated && i == 0) {
        out += "#EXT-X-PROGRAM-DATE-TIME:" +
               hls::format_program_date_ms(kSwitchEpochMs + offset_ms +
                                           static_cast<int64_t>(n) * 2000) +
               "\n";
      }
      out += "#EXTINF:2.0,\n" + prefix + std::to_string(base + n) + ".ts\n";
    }
    if (ended) out += "#EXT-X-ENDLIST\n";
    return out;
  }
};

hls::Playlist parse_at(const std::string& text, const std::string& url) {
  auto parsed = hls::parse_playlist(text, url);
  REQUIRE_MESSAGE(parsed.ok(), text);
  return std::move(parsed).value();
}

LiveEndPolicy switch_live_policy() {
  LiveEndPolicy p;
  p.mode = LiveMode::live;
  return p;
}

// What viewers of one rendition were served, checked as a player would: numbers never go back,
// a number always names the same URI, and each number's discontinuity number never changes.
struct SwitchTimeline {
  std::map<uint64_t, std::string> uri_by_msn;
  std::map<uint64_t, uint64_t> discontinuity_by_msn;
  std::set<uint64_t> tagged;  // numbers listed with EXT-X-DISCONTINUITY
  int64_t last_media_sequence = -1;
  // The balancer's tracker for this rendition (absolute URIs), unless take() is given another.
  LiveRunTracker tracker;

  SwitchTimeline() { tracker.set_absolute_uris(true); }

  // `encoder`'s windows of `size` segments, first 0 to `last_first`, served in turn.
  void serve_from_start(const SwitchEncoder& encoder, uint64_t last_first, int size) {
    for (uint64_t first = 0; first <= last_first; ++first)
      take(tracker, encoder.window(first, size), encoder.url, kSwitchStart);
  }

  // The served copy at `url` (parsed with the URL of the source it came from).
  hls::Playlist take(LiveRunTracker& serving, const std::string& text, const std::string& url,
                     SwitchTime now) {
    hls::Playlist served = parse_at(text, url);
    if (auto listing = serving.next(served, switch_live_policy(), now, 1'700'000'000'000)) {
      auto copy = write_served(served, *listing, url);
      REQUIRE_MESSAGE(copy.ok(), copy.error().message);
      hls_test::check_as_parsed(copy->playlist, {}, url);
      served = std::move(copy->playlist);
    }
    const hls::MediaInfo& media = served.media;
    CHECK(static_cast<int64_t>(media.media_sequence) >= last_media_sequence);
    last_media_sequence = static_cast<int64_t>(media.media_sequence);
    uint64_t number = media.discontinuity_sequence;
    for (const hls::Segment& segment : media.segments) {
      if (segment.discontinuity) {
        ++number;
        tagged.insert(segment.sequence);
      }
      std::string uri = served.tmpl.slots()[segment.uri_slot].uri;
      auto [it, fresh] = uri_by_msn.emplace(segment.sequence, uri);
      CHECK_MESSAGE(it->second == uri, "number " << segment.sequence << " changed its URI");
      auto [d, dfresh] = discontinuity_by_msn.emplace(segment.sequence, number);
      CHECK_MESSAGE(d->second == number,
                    "number " << segment.sequence << " changed its discontinuity number");
    }
    return served;
  }
};

// An LL encoder's window: segments of 1 s (the three before `complete`), four parts of 0.25 s
// each, and `parts` parts of segment `complete` in progress; numbered from `base`.
std::string ll_window(const std::string& prefix, uint64_t base, uint64_t complete, int parts) {
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.25\n"
      "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.75\n#EXT-X-MEDIA-SEQUENCE:" +
      std::to_string(base + complete - 3) + "\n#EXT-X-MAP:URI=\"init.mp4\"\n";
  for (uint64_t n = complete - 3; n < complete; ++n) {
    if (n == complete - 3) {
      out += "#EXT-X-PROGRAM-DATE-TIME:" +
             hls::format_program_date_ms(kSwitchEpochMs + static_cast<int64_t>(n) * 1000) + "\n";
    }
    for (int p = 0; p < 4; ++p) {
      out += "#EXT-X-PART:DURATION=0.25,URI=\"" + prefix + std::to_string(base + n) + "." +
             std::to_string(p) + ".m4s\"\n";
    }
    out += "#EXTINF:1.0,\n" + prefix + std::to_string(base + n) + ".m4s\n";
  }
  for (int p = 0; p < parts; ++p) {
    out += "#EXT-X-PART:DURATION=0.25,URI=\"" + prefix + std::to_string(base + complete) + "." +
           std::to_string(p) + ".m4s\"" + (p == 0 ? ",INDEPENDENT=YES" : "") + "\n";
  }
  out += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"" + prefix + std::to_string(base + complete) + "." +
         std::to_string(parts) + ".m4s\"\n";
  out +=
      "#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=" + std::to_string(base + complete - 1) +
      ",LAST-PART=3\n";
  return out;
}

}  // namespace

TEST_CASE("renditions match by name under each source's directory") {
  const std::vector<std::string> sources{"/a/live/master.m3u8", "/b/master.m3u8?k=1"};
  CHECK(matched_targets(sources, "/a/live/master.m3u8") == sources);
  CHECK(matched_targets(sources, "/b/master.m3u8?k=1") == sources);
  CHECK(matched_targets(sources, "/a/live/720p/index.m3u8?x=2") ==
        std::vector<std::string>{"/a/live/720p/index.m3u8?x=2", "/b/720p/index.m3u8?x=2"});
  CHECK(matched_targets(sources, "/b/audio.m3u8") ==
        std::vector<std::string>{"/a/live/audio.m3u8", "/b/audio.m3u8"});
  CHECK_FALSE(matched_targets(sources, "/elsewhere/x.m3u8").has_value());
}

TEST_CASE(
    "a source's health: failures in a row, a stall by the clock, numbering that jumps, "
    "an end tag") {
  FailoverPolicy policy;  // 1.5 target durations
  SourceHealth health(kSwitchStart);
  CHECK_FALSE(health.known());
  PlaylistFacts facts;
  facts.has_segments = true;
  facts.first_msn = 10;
  facts.last_msn = 14;
  facts.target_duration = 2s;
  health.landed(facts, policy, kSwitchStart);
  CHECK(health.known());
  // Asked again (a fetch in flight) and no new segment for 1.5 target durations: stalled.
  CHECK(health.fault(policy, kSwitchStart + 2999ms, true) == SourceFault::none);
  CHECK(health.fault(policy, kSwitchStart + 3001ms, true) == SourceFault::stalled);
  // Not asked since (nobody plays this rendition now): nothing is known of a stall.
  CHECK(health.fault(policy, kSwitchStart + 3001ms) == SourceFault::none);
  // An unchanged answer is no progress; a new segment is.
  health.landed(facts, policy, kSwitchStart + 2s);
  CHECK(health.fault(policy, kSwitchStart + 3001ms) == SourceFault::stalled);
  facts.first_msn = 11;
  facts.last_msn = 15;
  health.landed(facts, policy, kSwitchStart + 3500ms);
  CHECK(health.fault(policy, kSwitchStart + 3500ms) == SourceFault::none);
  CHECK(health.healthy_since() == kSwitchStart + 3500ms);  // the stall ended here

  SUBCASE("one refused connection is not yet a fault; two are, until it answers again") {
    health.failed(SourceFault::unreachable, kSwitchStart + 3550ms);
    CHECK(health.fault(policy, kSwitchStart + 3600ms) == SourceFault::none);
    health.failed(SourceFault::unreachable, kSwitchStart + 3650ms);
    CHECK(health.fault(policy, kSwitchStart + 3700ms) == SourceFault::unreachable);
    facts.last_msn = 16;
    health.landed(facts, policy, kSwitchStart + 4s);
    CHECK(health.fault(policy, kSwitchStart + 4s) == SourceFault::none);
    CHECK(health.healthy_since() == kSwitchStart + 4s);
  }
  SUBCASE("a restart (numbers back) and a gap (numbers skipped) until it moves on normally") {
    PlaylistFacts restarted = facts;
    restarted.first_msn = 0;
    restarted.last_msn = 0;
    health.landed(restarted, policy, kSwitchStart + 4s);
    CHECK(health.fault(policy, kSwitchStart + 4s) == SourceFault::went_back);
    restarted.last_msn = 1;
    health.landed(restarted, policy, kSwitchStart + 6s);
    CHECK(health.fault(policy, kSwitchStart + 6s) == SourceFault::none);
    PlaylistFacts gap = restarted;
    gap.first_msn = 5;
    gap.last_msn = 9;
    health.landed(gap, policy, kSwitchStart + 7s);
    CHECK(health.fault(policy, kSwitchStart + 7s) == SourceFault::skipped);
  }
  SUBCASE("an end tag, while it lasts") {
    PlaylistFacts ended = facts;
    ended.endlist = true;
    health.landed(ended, policy, kSwitchStart + 4s);
    CHECK(health.fault(policy, kSwitchStart + 4s) == SourceFault::ended);
  }
  SUBCASE("a low-latency playlist stalls after a few part targets") {
    facts.part_target = 250ms;
    facts.trailing_parts = 1;
    health.landed(facts, policy, kSwitchStart + 4s);
    CHECK(health.fault(policy, kSwitchStart + 4s + 999ms, true) == SourceFault::none);
    CHECK(health.fault(policy, kSwitchStart + 5s + 1ms, true) == SourceFault::stalled);
    facts.trailing_parts = 2;
    health.landed(facts, policy, kSwitchStart + 5100ms);
    CHECK(health.fault(policy, kSwitchStart + 5100ms) == SourceFault::none);
  }
  SUBCASE(
      "a pause in the watch (nobody played the channel) is no fault; its timeline starts again") {
    // idle_after(): 10 s at least. Before it, silence with a request in flight is a stall;
    // after it, a pause; silence with nothing asked is none at any time.
    CHECK(health.fault(policy, kSwitchStart + 13400ms, true) == SourceFault::stalled);
    CHECK(health.fault(policy, kSwitchStart + 9s) == SourceFault::none);
    CHECK(health.fault(policy, kSwitchStart + 23600ms, true) == SourceFault::none);
    PlaylistFacts later = facts;
    later.first_msn = 30;  // far past 15: no gap, the balancer was not looking
    later.last_msn = 34;
    health.landed(later, policy, kSwitchStart + 25s);
    CHECK(health.fault(policy, kSwitchStart + 25s) == SourceFault::none);
    CHECK(health.healthy_since() == kSwitchStart + 25s);
    CHECK(health.fault(policy, kSwitchStart + 28001ms, true) == SourceFault::stalled);
    // A failure after a pause starts its count again.
    health.failed(SourceFault::unreachable, kSwitchStart + 27s);
    health.failed(SourceFault::unreachable, kSwitchStart + 60s);
    CHECK(health.fault(policy, kSwitchStart + 60s, true) == SourceFault::stalled);  // one in a row
  }
  SUBCASE("a source that never answers stalls from the start of its watch") {
    SourceHealth silent(kSwitchStart);
    CHECK(silent.fault(policy, kSwitchStart + 8999ms, true) == SourceFault::none);  // 6 s assumed
    CHECK(silent.fault(policy, kSwitchStart + 9001ms, true) == SourceFault::stalled);
  }
}

TEST_CASE(
    "an origin's chunks: two failed fetches at the nodes with none answered since are a fault, "
    "held ten seconds past the last failure; any answered one ends it") {
  OriginChunkHealth chunks;
  const auto t = kSwitchStart;
  CHECK_FALSE(chunks.failing("a", t));
  CHECK_FALSE(chunks.fault_ended("a", t).has_value());
  chunks.reported("a", 0, 1, t);
  CHECK_FALSE(chunks.failing("a", t));  // one failure: a glitch, not yet a fault
  chunks.reported("a", 0, 1, t + 200ms);
  CHECK(chunks.failing("a", t + 200ms));
  CHECK_FALSE(chunks.failing("b", t + 200ms));  // per origin
  SUBCASE("nothing more is heard (the channel left it): the fault ends with its hold") {
    CHECK(chunks.failing("a", t + 200ms + OriginChunkHealth::kChunkFaultHold));
    CHECK_FALSE(chunks.failing("a", t + 201ms + OriginChunkHealth::kChunkFaultHold));
    CHECK(chunks.fault_ended("a", t + 60s) == t + 200ms + OriginChunkHealth::kChunkFaultHold);
    // A later failure with still no answer in between is a fault again at once.
    chunks.reported("a", 0, 1, t + 30s);
    CHECK(chunks.failing("a", t + 30s));
  }
  SUBCASE("an answered fetch (in a report with failures too) ends it") {
    chunks.reported("a", 1, 3, t + 1s);
    CHECK_FALSE(chunks.failing("a", t + 1s));
    CHECK(chunks.fault_ended("a", t + 5s) == t + 1s);
    chunks.reported("a", 0, 1, t + 2s);
    CHECK_FALSE(chunks.failing("a", t + 2s));  // counted from the answer again
  }
  SUBCASE("a report with nothing in it changes nothing") {
    chunks.reported("a", 0, 0, t + 1s);
    CHECK(chunks.failing("a", t + 1s));
  }
}

TEST_CASE(
    "the channel's source: away from a failing one, back only after the preferred one has "
    "been healthy for a while, or where the operator says") {
  FailoverPolicy policy;
  policy.failback_after = 30s;
  std::vector<SourceState> states(2);
  for (auto& s : states) {
    s.known = true;
    s.healthy_since = kSwitchStart;
  }
  CHECK_FALSE(choose_source(states, 0, policy, kSwitchStart + 1s).has_value());
  states[0].fault = SourceFault::stalled;
  auto move = choose_source(states, 0, policy, kSwitchStart + 1s);
  REQUIRE(move.has_value());
  CHECK(move->to == 1);
  CHECK(move->reason == SourceFault::stalled);
  // Nowhere healthy to go: stay.
  states[1].fault = SourceFault::unreachable;
  CHECK_FALSE(choose_source(states, 0, policy, kSwitchStart + 1s).has_value());
  // An unknown standby is not a place to go.
  states[1] = {SourceFault::none, false, kSwitchStart};
  CHECK_FALSE(choose_source(states, 0, policy, kSwitchStart + 1s).has_value());

  // On the backup: the preferred source recovers at +10 s; failback at +40 s, not before.
  states[1] = {SourceFault::none, true, kSwitchStart};
  states[0] = {SourceFault::none, true, kSwitchStart + 10s};
  CHECK_FALSE(choose_source(states, 1, policy, kSwitchStart + 39s).has_value());
  move = choose_source(states, 1, policy, kSwitchStart + 40s);
  REQUIRE(move.has_value());
  CHECK(move->to == 0);
  CHECK(move->reason == SourceFault::failback);
  // A source that fails every 10 s is never taken back.
  for (int cycle = 0; cycle < 6; ++cycle) {
    const SwitchTime t = kSwitchStart + std::chrono::seconds(10 * cycle);
    states[0].healthy_since = t;  // each failure ends its healthy spell
    CHECK_FALSE(choose_source(states, 1, policy, t + 9s).has_value());
  }
  policy.failback = false;
  states[0].healthy_since = kSwitchStart;
  CHECK_FALSE(choose_source(states, 1, policy, kSwitchStart + 1h).has_value());
  // The operator's choice, healthy or not.
  states[0].fault = SourceFault::unreachable;
  move = choose_source(states, 1, policy, kSwitchStart + 1s, 0);
  REQUIRE(move.has_value());
  CHECK(move->to == 0);
  CHECK(move->reason == SourceFault::operator_choice);
  states[0].fault = SourceFault::none;
  CHECK_FALSE(choose_source(states, 0, policy, kSwitchStart + 1s, 0).has_value());
  // On the chosen source: it stays while healthy, with no failback from it; once it fails the
  // channel moves to a healthy one (a choice never holds viewers on a dead source).
  policy.failback = true;
  states[0] = {SourceFault::none, true, kSwitchStart};
  states[1] = {SourceFault::none, true, kSwitchStart};
  CHECK_FALSE(choose_source(states, 1, policy, kSwitchStart + 1h, 1).has_value());
  states[1].fault = SourceFault::unreachable;
  move = choose_source(states, 1, policy, kSwitchStart + 1h, 1);
  REQUIRE(move.has_value());
  CHECK(move->to == 0);
  CHECK(move->reason == SourceFault::unreachable);
}

TEST_CASE(
    "a switch continues the timeline: the backup's segments after the last one served by "
    "program date, one discontinuity, the map restated, every URI on its own origin") {
  const SwitchEncoder a{"http://a.test/live/720p.m3u8", "a", 0};
  const SwitchEncoder b{"http://b.test/backup/720p.m3u8", "b", 5000};
  SwitchTimeline timeline;
  LiveRunTracker& tracker = timeline.tracker;
  // A serves segments 0..9 (numbers 5..9 listed last).
  timeline.serve_from_start(a, 5, 5);
  CHECK(timeline.last_media_sequence == 5);
  // A dies after segment 9; B's window is at 7..11 (on the clock) when the switch comes.
  tracker.switch_source();
  hls::Playlist served = timeline.take(tracker, b.window(7, 5), b.url, kSwitchStart + 1s);
  CHECK(tracker.switches() == 1);
  // A's last (the window keeps its length), then B's 10 and 11 as 10 and 11: nothing repeated
  // or skipped.
  REQUIRE(served.media.segments.size() == 5);
  CHECK(served.media.media_sequence == 7);
  CHECK(timeline.uri_by_msn[9] == "http://a.test/live/a9.ts");
  CHECK(timeline.uri_by_msn[10] == "http://b.test/backup/b5010.ts");
  CHECK(timeline.uri_by_msn[11] == "http://b.test/backup/b5011.ts");
  CHECK(timeline.tagged == std::set<uint64_t>{10});
  // The backup's map is declared before its first segment.
  const hls::Segment& first_b = served.media.segments[3];
  REQUIRE(first_b.map_slot.has_value());
  CHECK(served.tmpl.slots()[*first_b.map_slot].uri == "http://b.test/backup/init.mp4");
  CHECK(served.tmpl.slots()[*served.media.segments[2].map_slot].uri ==
        "http://a.test/live/init.mp4");
  // B moves on; A's segments leave the window; numbers and discontinuity numbers hold.
  for (uint64_t first = 8; first <= 14; ++first)
    served = timeline.take(tracker, b.window(first, 5), b.url, kSwitchStart + 2s);
  CHECK(served.media.segments.back().sequence == 18);
  CHECK(timeline.uri_by_msn[18] == "http://b.test/backup/b5018.ts");
  CHECK(served.media.discontinuity_sequence == 1);
  CHECK(served.media.segments.front().sequence > 11);
}

TEST_CASE("two renditions switched at different moments agree on numbers and discontinuities") {
  const SwitchEncoder a1{"http://a.test/live/720p.m3u8", "a720_", 0};
  const SwitchEncoder b1{"http://b.test/live/720p.m3u8", "b720_", 300};
  const SwitchEncoder a2{"http://a.test/live/360p.m3u8", "a360_", 0};
  const SwitchEncoder b2{"http://b.test/live/360p.m3u8", "b360_", 300};
  LiveRunTracker hd, sd;
  hd.set_absolute_uris(true);
  sd.set_absolute_uris(true);
  SwitchTimeline hd_line, sd_line;
  for (uint64_t first = 0; first <= 3; ++first) {
    hd_line.take(hd, a1.window(first, 4), a1.url, kSwitchStart);
    sd_line.take(sd, a2.window(first, 4), a2.url, kSwitchStart);
  }
  hd.switch_source();
  sd.switch_source();
  // The 720p playlist is switched while B's newest is 7; the 360p one a refresh later (8).
  hd_line.take(hd, b1.window(4, 4), b1.url, kSwitchStart + 1s);
  sd_line.take(sd, b2.window(5, 4), b2.url, kSwitchStart + 1s);
  hd_line.take(hd, b1.window(5, 4), b1.url, kSwitchStart + 2s);
  for (uint64_t msn = 0; msn <= 8; ++msn) {
    CAPTURE(msn);
    REQUIRE(hd_line.discontinuity_by_msn.count(msn) == 1);
    REQUIRE(sd_line.discontinuity_by_msn.count(msn) == 1);
    CHECK(hd_line.discontinuity_by_msn[msn] == sd_line.discontinuity_by_msn[msn]);
  }
  CHECK(hd_line.tagged == std::set<uint64_t>{7});
  CHECK(sd_line.tagged == std::set<uint64_t>{7});
}

TEST_CASE(
    "a backup behind what was served waits; one without program dates starts at its newest "
    "segment; declared-identical sources add no discontinuity") {
  const SwitchEncoder a{"http://a.test/live/index.m3u8", "a", 0};
  SwitchTimeline timeline;
  LiveRunTracker& tracker = timeline.tracker;
  timeline.serve_from_start(a, 6, 4);
  // A listed up to 9.
  SUBCASE("behind") {
    const SwitchEncoder b{"http://b.test/live/index.m3u8", "b", 0};
    tracker.switch_source();
    hls::Playlist served =
        timeline.take(tracker, b.window(5, 4), b.url, kSwitchStart);  // B's newest: 8
    CHECK(served.media.segments.back().sequence == 9);
    CHECK(timeline.uri_by_msn[9] == "http://a.test/live/a9.ts");
    CHECK(tracker.switches() == 0);
    served = timeline.take(tracker, b.window(7, 4), b.url, kSwitchStart);  // 10 now
    CHECK(tracker.switches() == 1);
    CHECK(timeline.uri_by_msn[10] == "http://b.test/live/b10.ts");
  }
  SUBCASE("far behind (an encoder that resumed 10 s late): from its newest segment at once") {
    const SwitchEncoder b{"http://b.test/live/index.m3u8", "b", 0};
    tracker.switch_source();
    timeline.take(tracker, b.window(1, 4), b.url,
                  kSwitchStart);  // B's newest: clock 4, ended at 10 s
    CHECK(tracker.switches() == 1);
    CHECK(timeline.uri_by_msn[10] == "http://b.test/live/b4.ts");
    CHECK(timeline.tagged == std::set<uint64_t>{10});
  }
  SUBCASE("without program dates") {
    SwitchEncoder b{"http://b.test/live/index.m3u8", "b", 40};
    b.dated = false;
    tracker.switch_source();
    timeline.take(tracker, b.window(8, 4), b.url, kSwitchStart);  // B's newest is its 51
    CHECK(timeline.uri_by_msn[10] == "http://b.test/live/b51.ts");
    CHECK(timeline.uri_by_msn.count(11) == 0);
    timeline.take(tracker, b.window(9, 4), b.url, kSwitchStart);
    CHECK(timeline.uri_by_msn[11] == "http://b.test/live/b52.ts");
  }
  SUBCASE("segment boundaries off by a third of a segment: the one mostly after the end") {
    SwitchEncoder b{"http://b.test/live/index.m3u8", "b", 0};
    b.offset_ms = -700;  // B's 10 runs 19.3-21.3 s, A's 9 ended at 20 s
    tracker.switch_source();
    timeline.take(tracker, b.window(7, 4), b.url, kSwitchStart);
    CHECK(timeline.uri_by_msn[10] == "http://b.test/live/b10.ts");
  }
  SUBCASE("identical timestamps") {
    const SwitchEncoder b{"http://b.test/live/index.m3u8", "b", 0};
    tracker.switch_source(/*seamless=*/true);
    timeline.take(tracker, b.window(7, 4), b.url, kSwitchStart);
    CHECK(timeline.uri_by_msn[10] == "http://b.test/live/b10.ts");
    CHECK(timeline.tagged.empty());
  }
}

TEST_CASE(
    "LL: the segment in progress when a source stops is closed with the parts served and a gap; "
    "the backup's segment nearest its end follows with its parts; reports and numbers follow "
    "the channel's numbering") {
  const std::string a_url = "http://a.test/ll/low.m3u8", b_url = "http://b.test/ll/low.m3u8";
  SwitchTimeline timeline;
  LiveRunTracker& tracker = timeline.tracker;
  for (uint64_t complete = 3; complete <= 5; ++complete) {
    timeline.take(tracker, ll_window("a", 0, complete, 3), a_url, kSwitchStart);
  }
  SUBCASE("three parts served of six (0.75 s): the backup's next segment follows") {
    timeline.take(tracker, ll_window("a", 0, 6, 3), a_url, kSwitchStart);
    tracker.switch_source();
    // B's 306 in progress began 0.75 s before the served media ends: it waits for B's 307.
    hls::Playlist waiting = timeline.take(tracker, ll_window("b", 300, 6, 3), b_url, kSwitchStart);
    REQUIRE(waiting.media.segments.size() == 4);
    CHECK(waiting.media.segments.back().gap);
    CHECK(waiting.media.segments.back().duration == doctest::Approx(0.75));
    CHECK(waiting.media.parts.size() == 3 * 4 + 3);  // no part of B's yet
    hls::Playlist served = timeline.take(tracker, ll_window("b", 300, 7, 1), b_url, kSwitchStart);
    CHECK(tracker.switches() == 1);
    const std::string text(served.tmpl.source());
    CHECK(text.find("b306") == std::string::npos);
    CHECK(text.find("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"http://b.test/ll/init.mp4\"") <
          text.find("b307.0.m4s"));
    served = timeline.take(tracker, ll_window("b", 300, 8, 1), b_url, kSwitchStart);
    CHECK(timeline.uri_by_msn[6] == "http://a.test/ll/a6.0.m4s");
    CHECK(timeline.uri_by_msn[7] == "http://b.test/ll/b307.m4s");
    CHECK(timeline.tagged == std::set<uint64_t>{7});
  }
  SUBCASE("two parts served of six (0.5 s): the backup's segment in progress follows") {
    timeline.take(tracker, ll_window("a", 0, 6, 2), a_url, kSwitchStart);
    // A served 3..5 complete and 6.0, 6.1; it dies. B's segment 306 (clock 6) is in progress.
    tracker.switch_source();
    hls::Playlist served = timeline.take(tracker, ll_window("b", 300, 6, 3), b_url, kSwitchStart);
    CHECK(tracker.switches() == 1);
    const hls::MediaInfo& media = served.media;
    REQUIRE(media.segments.size() == 4);
    // The channel's 6 stays A's: its two parts served, then a gap for the rest, never loaded.
    const hls::Segment& closed = media.segments.back();
    CHECK(closed.sequence == 6);
    CHECK(closed.gap);
    CHECK(closed.duration == doctest::Approx(0.5));
    std::vector<std::string> parts_of_six;
    for (const hls::Part& part : media.parts) {
      if (part.segment_index == 3) parts_of_six.push_back(served.tmpl.slots()[part.uri_slot].uri);
    }
    CHECK(parts_of_six ==
          std::vector<std::string>{"http://a.test/ll/a6.0.m4s", "http://a.test/ll/a6.1.m4s"});
    // B's parts of its segment in progress (from the moment the closed one began) are the parts
    // of the channel's 7, after a discontinuity and B's map.
    const std::string text(served.tmpl.source());
    const size_t disc =
        text.find("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"http://b.test/ll/init.mp4\"");
    REQUIRE(disc != std::string::npos);
    CHECK(text.find("b306.0.m4s") > disc);
    CHECK(text.find("#EXT-X-GAP") < disc);
    REQUIRE(media.preload_hints.size() == 1);
    CHECK(served.tmpl.slots()[*media.preload_hints[0].uri_slot].uri ==
          "http://b.test/ll/b306.3.m4s");
    // The report is in the channel's numbers: B's 305 is the channel's 6.
    CHECK(text.find("LAST-MSN=6,LAST-PART=3") != std::string::npos);
    // B completes 306: it is the channel's 7, with the discontinuity before it; 6 is still A's.
    served = timeline.take(tracker, ll_window("b", 300, 7, 1), b_url, kSwitchStart);
    CHECK(timeline.uri_by_msn[6] == "http://a.test/ll/a6.0.m4s");
    CHECK(timeline.uri_by_msn[7] == "http://b.test/ll/b306.m4s");
    CHECK(timeline.tagged == std::set<uint64_t>{7});
    CHECK(std::string(served.tmpl.source()).find("LAST-MSN=7,LAST-PART=3") != std::string::npos);
  }
}

TEST_CASE("LL: a switch between two complete segments closes nothing") {
  auto window = [](const std::string& prefix, uint64_t base, uint64_t complete, bool part) {
    std::string out =
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        "#EXT-X-MEDIA-SEQUENCE:" +
        std::to_string(base + complete - 2) + "\n#EXT-X-PROGRAM-DATE-TIME:" +
        hls::format_program_date_ms(kSwitchEpochMs + static_cast<int64_t>(complete - 2) * 1000) +
        "\n";
    for (uint64_t n = complete - 2; n < complete; ++n) {
      out += "#EXTINF:1.0,\n" + prefix + std::to_string(base + n) + ".m4s\n";
    }
    if (part) {
      out += "#EXT-X-PART:DURATION=0.5,URI=\"" + prefix + std::to_string(base + complete) +
             ".0.m4s\",INDEPENDENT=YES\n";
    }
    return out;
  };
  SwitchTimeline timeline;
  timeline.take(timeline.tracker, window("a", 0, 4, true), "http://a.test/l.m3u8", kSwitchStart);
  // A completes 4 and dies before any part of 5.
  timeline.take(timeline.tracker, window("a", 0, 5, false), "http://a.test/l.m3u8", kSwitchStart);
  timeline.tracker.switch_source();
  const hls::Playlist served = timeline.take(timeline.tracker, window("b", 100, 6, false),
                                             "http://b.test/l.m3u8", kSwitchStart);
  CHECK(std::string(served.tmpl.source()).find("#EXT-X-GAP") == std::string::npos);
  CHECK(timeline.uri_by_msn[5] == "http://b.test/b105.m4s");
  CHECK(timeline.tagged == std::set<uint64_t>{5});
}

TEST_CASE(
    "LL: renditions close the same segment at a switch, one whose last copy listed none of its "
    "parts too, and number the backup's segments alike") {
  const std::string a_low = "http://a.test/ll/low.m3u8", b_low = "http://b.test/ll/low.m3u8";
  const std::string a_high = "http://a.test/ll/high.m3u8", b_high = "http://b.test/ll/high.m3u8";
  SwitchTimeline low, high;
  for (uint64_t complete = 3; complete <= 5; ++complete) {
    low.take(low.tracker, ll_window("a", 0, complete, 3), a_low, kSwitchStart);
    high.take(high.tracker, ll_window("a", 0, complete, 3), a_high, kSwitchStart);
  }
  // A published 6.0 and died: low's last copy lists it, high's was fetched just before.
  low.take(low.tracker, ll_window("a", 0, 6, 1), a_low, kSwitchStart);
  high.take(high.tracker, ll_window("a", 0, 6, 0), a_high, kSwitchStart);
  const auto closing = low.tracker.in_progress();
  REQUIRE(closing.has_value());
  CHECK(closing->msn == 6);
  CHECK(closing->end_ms - closing->start_ms == 250);
  CHECK_FALSE(high.tracker.in_progress().has_value());
  low.tracker.switch_source(false, closing);
  high.tracker.switch_source(false, closing);
  for (uint64_t complete = 6; complete <= 7; ++complete) {
    low.take(low.tracker, ll_window("b", 300, complete, 1), b_low, kSwitchStart);
    high.take(high.tracker, ll_window("b", 300, complete, 1), b_high, kSwitchStart);
  }
  // 6 is A's in both (high's all gap), B's 306 is 7 in both, after one discontinuity.
  CHECK(low.uri_by_msn[6] == "http://a.test/ll/a6.0.m4s");
  CHECK(high.uri_by_msn[6] == "http://a.test/ll/a5.m4s");  // never loaded: EXT-X-GAP
  CHECK(low.uri_by_msn[7] == "http://b.test/ll/b306.m4s");
  CHECK(high.uri_by_msn[7] == "http://b.test/ll/b306.m4s");
  CHECK(low.tagged == std::set<uint64_t>{7});
  CHECK(high.tagged == std::set<uint64_t>{7});
  CHECK(low.discontinuity_by_msn[7] == high.discontinuity_by_msn[7]);
}
