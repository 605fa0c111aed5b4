// Encoder restarts on a live channel (live_restart.h): end tags held back as a
// state to confirm, a restart that reuses numbers and names continued with a
// discontinuity, and chunks of the new run named by their run.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>

#include "balancer/sources/live_restart.h"
#include "balancer/sources/source_policy.h"
#include "balancer/viewers/stable_links.h"
#include "hls/program_date.h"
#include "support/hls_corpus.h"
#include "support/hls_test_support.h"

using namespace balancer;
using namespace std::chrono_literals;

namespace {

constexpr const char* kUrl = "http://origin.test/live/index.m3u8";
const std::chrono::steady_clock::time_point kStart{std::chrono::hours(1)};

// A live window of `count` segments from `first`, named seg_<n>.ts as an encoder numbering from 0
// does.
std::string window(uint64_t first, int count, bool ended = false,
                   const std::string& extra_head = "") {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:" +
                    std::to_string(first) + "\n" + extra_head;
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "seg_%05llu.ts", static_cast<unsigned long long>(first + i));
    out += "#EXTINF:2.0,\n" + std::string(name) + "\n";
  }
  if (ended) out += "#EXT-X-ENDLIST\n";
  return out;
}

hls::Playlist parse(const std::string& text) {
  auto parsed = hls::parse_playlist(text, kUrl);
  REQUIRE_MESSAGE(parsed.ok(), text);
  return std::move(parsed).value();
}

// What a viewer would be served: the continued copy when there is one, else origin's.
struct Served {
  hls::Playlist playlist;
  RewritePlan plan;
  // Chunk target (with its run marker) per served media sequence number.
  std::map<uint64_t, std::string> chunk_by_msn;
};

Served serve(LiveRunTracker& tracker, const std::string& origin_text, const LiveEndPolicy& policy,
             std::chrono::steady_clock::time_point now, int64_t unix_ms = 1'700'000'000'000) {
  hls::Playlist origin = parse(origin_text);
  auto listing = tracker.next(origin, policy, now, unix_ms);
  Served out;
  std::vector<std::pair<size_t, uint64_t>> runs_by_line;
  if (listing) {
    auto copy = write_served(origin, *listing, kUrl);
    REQUIRE_MESSAGE(copy.ok(), copy.error().message);
    // Spliced of origin's lines or parsed: what its text parses to.
    hls_test::check_as_parsed(copy->playlist, {}, kUrl);
    out.playlist = std::move(copy->playlist);
    runs_by_line = std::move(copy->runs_by_line);
  } else {
    out.playlist = std::move(origin);
  }
  out.plan = plan_rewrite(out.playlist.tmpl, "http://origin.test");
  if (listing) mark_runs(out.plan, out.playlist.tmpl, runs_by_line);
  for (const hls::Segment& s : out.playlist.media.segments) {
    out.chunk_by_msn[s.sequence] = out.plan.slots[s.uri_slot].origin_target;
  }
  return out;
}

LiveEndPolicy live_policy() {
  LiveEndPolicy p;
  p.mode = LiveMode::automatic;
  p.end_confirm = 300s;
  return p;
}

// One channel's run tracker under its end policy, fed origin's copies in turn.
struct LiveChannel {
  LiveRunTracker tracker;
  LiveEndPolicy policy = live_policy();

  LiveChannel() = default;
  // A channel that has served `first_copy` at kStart.
  explicit LiveChannel(const std::string& first_copy) { serve(first_copy, kStart); }

  Served serve(const std::string& origin_text, std::chrono::steady_clock::time_point now,
               int64_t unix_ms = 1'700'000'000'000) {
    return ::serve(tracker, origin_text, policy, now, unix_ms);
  }
};

}  // namespace

TEST_CASE(
    "an end tag on a live source is held back (the copy stays live) until it has lasted "
    "end_confirm") {
  LiveChannel channel;
  Served first = channel.serve(window(0, 3), kStart);
  CHECK(classify(first.playlist) == SourceKind::live);

  Served ended = channel.serve(window(0, 3, true), kStart + 1s);
  CHECK_FALSE(ended.playlist.media.endlist);
  CHECK(classify(ended.playlist) == SourceKind::live);  // refreshed at live cadence
  CHECK(channel.tracker.holding_end());
  CHECK(ended.playlist.media.segments.size() == 3);
  CHECK_FALSE(channel.tracker.end_due(channel.policy, kStart + 299s));
  CHECK(channel.tracker.end_due(channel.policy, kStart + 301s));

  Served confirmed = channel.serve(window(0, 3, true), kStart + 302s);
  CHECK(confirmed.playlist.media.endlist);
  CHECK(classify(confirmed.playlist) == SourceKind::vod);
}

TEST_CASE(
    "an end tag is final at once when the operator marked the channel finished, or on a VOD "
    "channel") {
  SUBCASE("finished") {
    LiveChannel channel(window(0, 3));
    channel.policy.finished = true;
    Served ended = channel.serve(window(0, 3, true), kStart + 1s);
    CHECK(ended.playlist.media.endlist);
    CHECK_FALSE(channel.tracker.holding_end());
  }
  SUBCASE("kind vod") {
    LiveChannel channel;
    channel.policy.mode = LiveMode::vod;
    channel.serve(window(0, 3), kStart);
    CHECK(channel.serve(window(0, 3, true), kStart + 1s).playlist.media.endlist);
  }
  SUBCASE("kind auto: a source first seen with its end tag is VOD") {
    LiveRunTracker tracker;
    CHECK(serve(tracker, window(0, 3, true), live_policy(), kStart).playlist.media.endlist);
  }
  SUBCASE("kind live: held even when the first copy seen has ended") {
    LiveChannel channel;
    channel.policy.mode = LiveMode::live;
    CHECK_FALSE(channel.serve(window(0, 3, true), kStart).playlist.media.endlist);
  }
}

TEST_CASE(
    "a restart with lower numbers and reused names continues the media sequence after a "
    "discontinuity") {
  LiveChannel channel(window(0, 3));
  channel.serve(window(3, 3), kStart + 6s);        // run A: seg_00003..05 at 3..5
  channel.serve(window(3, 3, true), kStart + 8s);  // run A ends
  const int64_t restart_ms = 1'700'000'123'456;
  Served b = channel.serve(window(0, 1), kStart + 20s, restart_ms);  // run B: seg_00000 at 0
  CHECK(channel.tracker.restarts() == 1);
  const hls::MediaInfo& m = b.playlist.media;
  CHECK_FALSE(m.endlist);
  // The previous run's last two segments stay ahead (the window keeps its three segments).
  REQUIRE(m.segments.size() == 3);
  CHECK(m.media_sequence == 4);
  CHECK(m.discontinuity_sequence == 0);
  CHECK(m.segments[0].sequence == 4);
  CHECK_FALSE(m.segments[1].discontinuity);
  CHECK(m.segments[2].discontinuity);
  CHECK(m.segments[2].sequence == 6);
  // Run A's chunks keep their names; run B's reused name carries its run.
  CHECK(b.chunk_by_msn[4] == "/live/seg_00004.ts");
  CHECK(b.chunk_by_msn[5] == "/live/seg_00005.ts");
  CHECK(b.chunk_by_msn[6] == "/live/seg_00000.ts?brun=" + std::to_string(restart_ms));

  // Run B grows: the previous run slides out, the discontinuity sequence counts it.
  Served b2 = channel.serve(window(0, 2), kStart + 22s);
  CHECK(b2.playlist.media.media_sequence == 5);
  CHECK(b2.playlist.media.segments[1].discontinuity);
  Served b3 = channel.serve(window(0, 3), kStart + 24s);
  CHECK(b3.playlist.media.media_sequence == 6);
  CHECK(b3.playlist.media.discontinuity_sequence == 1);
  for (const auto& s : b3.playlist.media.segments) CHECK_FALSE(s.discontinuity);
  Served b4 = channel.serve(window(1, 3), kStart + 26s);
  CHECK(b4.playlist.media.media_sequence == 7);
  CHECK(b4.playlist.media.discontinuity_sequence == 1);
  CHECK(b4.chunk_by_msn[9] == "/live/seg_00003.ts?brun=" + std::to_string(restart_ms));
}

TEST_CASE(
    "over a sequence of copies the media sequence never goes back and a number never changes its "
    "chunk") {
  LiveChannel channel;
  std::map<uint64_t, std::string> seen;
  uint64_t last_media_sequence = 0;
  auto t = kStart;
  int64_t unix_ms = 1'700'000'000'000;
  auto follow = [&](const std::string& origin) {
    t += 2s;
    unix_ms += 2000;
    Served s = channel.serve(origin, t, unix_ms);
    CHECK(s.playlist.media.media_sequence >= last_media_sequence);
    last_media_sequence = s.playlist.media.media_sequence;
    for (const auto& [msn, chunk] : s.chunk_by_msn) {
      auto [it, inserted] = seen.emplace(msn, chunk);
      CHECK_MESSAGE(it->second == chunk, "number ", msn, " was ", it->second, ", now ", chunk);
    }
  };
  for (uint64_t i = 0; i < 6; ++i) follow(window(i, 4));
  follow(window(5, 4, true));
  follow(window(5, 4, true));
  // An encoder that wrote k segments lists the last four.
  auto after = [](uint64_t k) {
    return window(k > 4 ? k - 4 : 0, static_cast<int>(std::min<uint64_t>(4, k)));
  };
  for (uint64_t k = 1; k <= 6; ++k) follow(after(k));
  // A second restart, this one without an end tag first.
  for (uint64_t k = 1; k <= 6; ++k) follow(after(k));
  CHECK(channel.tracker.restarts() == 2);
  CHECK(seen.size() == 9 + 6 + 6);  // every segment of the three runs, numbered one after another
}

TEST_CASE("a number whose name changed is a restart even when the numbering did not go back") {
  LiveChannel channel(window(0, 3));
  std::string other = window(0, 3);
  for (size_t at = other.find("seg_"); at != std::string::npos; at = other.find("seg_", at + 1))
    other[at] = 'X';
  Served s = channel.serve(other, kStart + 2s);
  CHECK(channel.tracker.restarts() == 1);
  CHECK(s.playlist.media.segments.back().sequence == 5);
  CHECK(s.playlist.media.media_sequence >= 1);
}

TEST_CASE("the previous run's key does not apply to a new run without one") {
  LiveChannel channel;
  const std::string key = "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n";
  channel.serve(window(3, 3, false, key), kStart);
  Served b = channel.serve(window(0, 1), kStart + 2s);
  REQUIRE(b.playlist.media.keys.size() == 2);
  CHECK(b.playlist.media.keys[0].method == "AES-128");
  CHECK(b.playlist.media.keys[1].method == "NONE");
  CHECK(b.playlist.media.keys[1].line > b.playlist.media.segments[1].line);
}

TEST_CASE(
    "an encoder starting over with an empty playlist leaves the last listing in place, then "
    "continues") {
  LiveChannel channel(window(3, 3));
  Served empty = channel.serve(window(0, 0), kStart + 2s);
  CHECK(empty.playlist.media.media_sequence == 3);
  CHECK(empty.playlist.media.segments.size() == 3);
  Served b = channel.serve(window(0, 1), kStart + 4s);
  CHECK(channel.tracker.restarts() == 1);
  CHECK(b.playlist.media.segments.back().sequence == 6);
  CHECK(b.playlist.media.segments.back().discontinuity);
}

TEST_CASE(
    "a channel configured live names its first run too, so no balancer restart can link a reused "
    "name bare") {
  LiveChannel channel;
  channel.policy.mode = LiveMode::live;
  Served a = channel.serve(window(0, 2), kStart, 1'700'000'000'000);
  CHECK(a.chunk_by_msn[0] == "/live/seg_00000.ts?brun=1700000000000");
  Served later = channel.serve(window(1, 2), kStart + 2s, 1'700'000'002'000);
  CHECK(later.chunk_by_msn[1] == "/live/seg_00001.ts?brun=1700000000000");
  // A viewer's listing remembers chunks by the hash of the target with its run marker: a
  // reused name in a new run is a new chunk to it.
  std::vector<uint64_t> hashes;
  for (const SlotTarget& t : later.plan.slots) {
    if (t.kind == SlotTarget::Kind::chunk) hashes.push_back(chunk_hash(t.origin_target));
  }
  CHECK(later.plan.chunk_hashes == hashes);
  CHECK(hashes.front() == chunk_hash("/live/seg_00001.ts?brun=1700000000000"));
}

TEST_CASE(
    "a key reused by name in a new run is named by its run, so the balancer's key cache cannot "
    "answer the old one") {
  LiveChannel channel;
  const std::string key = "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n";
  channel.serve(window(3, 3, false, key), kStart);
  Served b = channel.serve(window(0, 1, false, key), kStart + 2s, 1'700'000'000'777);
  std::vector<std::string> key_targets;
  for (const SlotTarget& t : b.plan.slots) {
    if (t.kind == SlotTarget::Kind::key) key_targets.push_back(t.origin_target);
  }
  REQUIRE(key_targets.size() == 2);
  CHECK(key_targets[0] == "/live/key.bin");
  CHECK(key_targets[1] == "/live/key.bin?brun=1700000000777");
}

TEST_CASE(
    "an older copy (numbers back to the same names, no end tag) is not a restart: the listing "
    "stays") {
  LiveChannel channel(window(3, 3));
  Served older = channel.serve(window(2, 3), kStart + 1s);
  CHECK(channel.tracker.restarts() == 0);
  CHECK(older.playlist.media.media_sequence == 3);
  CHECK(older.playlist.media.segments.back().sequence == 5);
  Served next = channel.serve(window(4, 3), kStart + 2s);
  CHECK(channel.tracker.restarts() == 0);
  CHECK(next.chunk_by_msn[6] == "/live/seg_00006.ts");
  // After an end tag the same going back is the encoder starting over (a short first run
  // whose names are still listed).
  LiveChannel short_run(window(0, 3));
  short_run.serve(window(0, 3, true), kStart + 1s);
  Served restarted = short_run.serve(window(0, 1), kStart + 2s);
  CHECK(short_run.tracker.restarts() == 1);
  CHECK(restarted.playlist.media.segments.back().sequence == 3);
  CHECK(restarted.playlist.media.segments.back().discontinuity);
}

TEST_CASE(
    "an encoder restarted while its first run's names are still listed is told from an older copy "
    "by its program dates: dated anew, a new run; dated alike, the listing stays") {
  // seg_00000 starts at `first_ms`, each segment 2 s after the one before.
  const auto dated = [](uint64_t first, int count, int64_t first_ms) {
    std::string text = window(first, count);
    const std::string at = "#EXTINF:2.0,\nseg_" +
                           std::string(5 - std::to_string(first).size(), '0') +
                           std::to_string(first) + ".ts";
    text.insert(text.find(at),
                "#EXT-X-PROGRAM-DATE-TIME:" +
                    hls::format_program_date_ms(first_ms + static_cast<int64_t>(first) * 2000) +
                    "\n");
    return text;
  };
  constexpr int64_t kRunA = 1'790'000'000'000;
  // Run A from 0; 20 s later its encoder starts over at 0, names and numbers reused.
  LiveChannel restarted(dated(0, 4, kRunA));
  restarted.serve(dated(0, 6, kRunA), kStart + 1s);  // seg_00000 still listed
  Served run_b = restarted.serve(dated(0, 2, kRunA + 20'000), kStart + 2s);
  CHECK(restarted.tracker.restarts() == 1);
  CHECK(run_b.playlist.media.segments.back().sequence == 7);  // counting on: 6, then 7
  CHECK(run_b.playlist.media.segments.back().discontinuity == false);
  CHECK(std::any_of(run_b.playlist.media.segments.begin(), run_b.playlist.media.segments.end(),
                    [](const hls::Segment& seg) { return seg.discontinuity; }));
  // A second origin server of the same encoder, a copy behind: the same names, the same dates.
  LiveChannel lagging(dated(0, 4, kRunA));
  lagging.serve(dated(0, 6, kRunA), kStart + 1s);
  Served older = lagging.serve(dated(0, 5, kRunA), kStart + 2s);
  CHECK(lagging.tracker.restarts() == 0);
  CHECK(older.playlist.media.segments.back().sequence == 5);
}

namespace {

// `text` with its EXT-X-MEDIA-SEQUENCE set to `msn` (added after the first line when absent).
std::string with_media_sequence(std::string text, uint64_t msn) {
  const std::string tag = "#EXT-X-MEDIA-SEQUENCE:";
  const std::string line = tag + std::to_string(msn);
  size_t at = text.find(tag);
  if (at != std::string::npos) {
    size_t end = text.find_first_of("\r\n", at);
    return text.replace(at, end == std::string::npos ? std::string::npos : end - at, line);
  }
  size_t first_end = text.find('\n');
  if (first_end == std::string::npos) return text + "\n" + line + "\n";
  return text.insert(first_end + 1, line + "\n");
}

}  // namespace

TEST_CASE(
    "over the shared corpus: every continued copy parses, numbers never go back, a number keeps "
    "its chunk") {
  const std::vector<balancer::test::CorpusFile> corpus = balancer::test::hls_corpus_files();
  if (corpus.empty()) return;  // skipped
  size_t restarted = 0, media = 0;
  for (const balancer::test::CorpusFile& entry : corpus) {
    const std::string& text = entry.text;
    auto parsed = hls::parse_playlist(text, kUrl);
    if (!parsed.ok() || parsed->kind != hls::PlaylistKind::media ||
        parsed->media.is_delta_update() || parsed->media.type == hls::PlaylistType::vod ||
        parsed->media.segments.empty()) {
      continue;
    }
    CAPTURE(entry.path.filename().string());
    // Run A at 1000.., ended, then run B from 0 with the same names.
    std::string run_a = with_media_sequence(text, 1000);
    if (run_a.find("#EXT-X-ENDLIST") != std::string::npos) {
      run_a.erase(run_a.find("#EXT-X-ENDLIST"), 14);
    }
    const std::string ended = run_a + "\n#EXT-X-ENDLIST\n";
    const std::string run_b = with_media_sequence(run_a, 0);
    // Playlists that the edit above breaks (a junk line where the tag was) are not this test's
    // subject.
    if (!hls::parse_playlist(run_a, kUrl).ok() || !hls::parse_playlist(ended, kUrl).ok() ||
        !hls::parse_playlist(run_b, kUrl).ok()) {
      continue;
    }
    ++media;
    LiveRunTracker tracker;
    LiveEndPolicy policy = live_policy();
    policy.mode = LiveMode::live;
    std::map<uint64_t, std::string> seen;
    uint64_t last_media_sequence = 0;
    uint64_t last_listed = 0;
    auto t = kStart;
    for (const std::string* origin_text :
         std::initializer_list<const std::string*>{&run_a, &ended, &run_b, &run_b}) {
      auto origin = hls::parse_playlist(*origin_text, kUrl);
      REQUIRE(origin.ok());
      t += 2s;
      auto listing =
          tracker.next(*origin, policy, t, 1'700'000'000'000 + (t - kStart).count() / 1'000'000);
      REQUIRE(listing.has_value());
      auto copy = write_served(*origin, *listing, kUrl);
      REQUIRE_MESSAGE(copy.ok(), copy.error().message);
      const hls::Playlist& served = copy->playlist;
      hls_test::check_as_parsed(served, {}, kUrl);
      CHECK_FALSE(served.media.endlist);
      CHECK(served.media.media_sequence >= last_media_sequence);
      last_media_sequence = served.media.media_sequence;
      RewritePlan plan = plan_rewrite(served.tmpl, "http://origin.test");
      mark_runs(plan, served.tmpl, copy->runs_by_line);
      for (const hls::Segment& s : served.media.segments) {
        auto [it, inserted] = seen.emplace(s.sequence, plan.slots[s.uri_slot].origin_target);
        CHECK(it->second == plan.slots[s.uri_slot].origin_target);
      }
      if (!served.media.segments.empty()) {
        CHECK(served.media.segments.back().sequence >= last_listed);
        last_listed = served.media.segments.back().sequence;
      }
    }
    restarted += tracker.restarts();
    CHECK(tracker.restarts() == 1);
  }
  MESSAGE(media << " live media playlists of the corpus continued across a restart (" << restarted
                << " restarts)");
  CHECK(media > 0);
}

TEST_CASE(
    "LL: a restart closes the segment in progress with the parts served and a gap; the new run "
    "follows it, and no part's number and index names a part of the new run") {
  // Segments of 2 s, parts of 0.5 s; `parts` parts of segment first + count in progress.
  auto ll_window = [](uint64_t first, int count, int parts) {
    std::string out = window(first, count, false, "#EXT-X-PART-INF:PART-TARGET=0.5\n");
    for (int p = 0; p < parts; ++p) {
      out += "#EXT-X-PART:DURATION=0.5,URI=\"seg_" + std::to_string(first + count) + "." +
             std::to_string(p) + ".m4s\"" + (p == 0 ? ",INDEPENDENT=YES" : "") + "\n";
    }
    return out;
  };
  LiveChannel channel;
  channel.policy.mode = LiveMode::live;
  channel.serve(ll_window(5, 3, 1), kStart);
  Served before = channel.serve(ll_window(5, 3, 2), kStart + 1s);
  CHECK(before.playlist.media.parts.size() == 2);  // 8.0 and 8.1, in progress
  Served restarted = channel.serve(ll_window(0, 2, 1), kStart + 2s, 1'700'000'100'000);
  const hls::MediaInfo& media = restarted.playlist.media;
  // 7 (the window keeps as many segments as before), the closed 8, the new run's 9 and 10.
  REQUIRE(media.segments.size() == 4);
  const hls::Segment& closed = media.segments[1];
  CHECK(closed.sequence == 8);
  CHECK(closed.gap);
  CHECK(closed.duration == doctest::Approx(1.0));
  CHECK_FALSE(closed.discontinuity);
  CHECK(media.segments[2].discontinuity);
  CHECK(restarted.chunk_by_msn[9].find("seg_00000.ts?brun=") != std::string::npos);
  // Parts by (number, index): 8.0 and 8.1 as before, the new run's parts under 11.
  std::map<std::pair<uint64_t, size_t>, std::string> parts;
  std::map<size_t, size_t> index_in_segment;
  for (const hls::Part& part : media.parts) {
    const uint64_t msn = part.segment_index < media.segments.size()
                             ? media.segments[part.segment_index].sequence
                             : media.segments.back().sequence + 1;
    parts[{msn, index_in_segment[part.segment_index]++}] =
        restarted.plan.slots[part.uri_slot].origin_target;
  }
  CHECK(parts.at({8, 0}).starts_with("/live/seg_8.0.m4s"));
  CHECK(parts.at({8, 1}).starts_with("/live/seg_8.1.m4s"));
  CHECK(parts.at({11, 0}).starts_with("/live/seg_2.0.m4s?brun="));
  CHECK(parts.size() == 3);
}
