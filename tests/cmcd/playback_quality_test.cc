// PlaybackQuality on an injected clock: sessions kept by a keyed hash of their sid, their latest
// numbers summarised in fixed buckets and kept up to date as sessions come and go, stalls
// counted by place, sessions expiring after the idle time, and every bound holding.
#include "cmcd/playback_quality.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using cmcd::PlaybackQuality;

namespace {

cmcd::Data report(std::string sid, int64_t bl, std::optional<int64_t> br = std::nullopt,
                  bool bs = false) {
  cmcd::Data d;
  d.session_id = std::move(sid);
  d.buffer_length_ms = bl;
  d.bitrate_kbps = br;
  d.buffer_starvation = bs;
  return d;
}

const PlaybackQuality::Place kDemoA{"demo", "venue-a"};
const PlaybackQuality::Place kDemoB{"demo", "venue-b"};

}  // namespace

TEST_CASE(
    "playback quality: the latest numbers of each session, healthy buffers and the bitrate mix") {
  PlaybackQuality q(
      {.max_sessions = 100, .max_places = 8, .session_idle = 30s, .healthy_buffer_ms = 4000});
  const PlaybackQuality::Time t0{};
  CHECK(q.record(t0, kDemoA, report("s1", 8000, 3200)).new_session);
  CHECK_FALSE(q.record(t0 + 1s, kDemoA, report("s1", 12000)).new_session);  // a playlist: no br
  q.record(t0 + 1s, kDemoA, report("s2", 1500, 800));
  q.record(t0 + 2s, kDemoB, report("s3", 4000, 3200));
  const auto s = q.summary(t0 + 3s);
  CHECK(s.sessions == 3);
  CHECK(s.sessions_with_buffer == 3);
  CHECK(s.healthy_buffer == 2);                           // s1 (12000) and s3 (4000, at the bar)
  CHECK(s.bitrate_mix[cmcd::bitrate_bucket(3200)] == 2);  // up to 4,000 kbps
  CHECK(s.bitrate_mix[cmcd::bitrate_bucket(800)] == 1);   // up to 1,000 kbps
  CHECK(cmcd::bitrate_bucket(3200) == 5);
  CHECK(cmcd::bitrate_bucket(800) == 2);
  CHECK(s.stalls_total == 0);
}

TEST_CASE(
    "playback quality: a low-latency player's buffer is judged against one part, a regular "
    "one's against healthy_buffer_ms") {
  PlaybackQuality q({.healthy_buffer_ms = 4000, .healthy_buffer_low_latency_ms = 330});
  const PlaybackQuality::Time t0{};
  auto ll = [](std::string sid, int64_t bl, std::optional<int64_t> part_ms) {
    cmcd::Data d =
        report(std::move(sid), bl, part_ms ? std::optional<int64_t>(1200) : std::nullopt);
    d.stream_type = "ll";
    d.object_duration_ms = part_ms;
    return d;
  };
  // One smooth LL viewer, 0.95 s behind live with 0.6 s buffered and parts of 267 ms: healthy.
  q.record(t0, kDemoA, ll("ll-1", 600, 267));
  // A full segment asked for later (2 s) leaves its part as the bar.
  q.record(t0 + 1s, kDemoA, ll("ll-1", 600, 2000));
  // Another one down to 200 ms against parts of 267 ms: not healthy.
  q.record(t0, kDemoA, ll("ll-2", 200, 267));
  // An LL player that named no part yet is judged against healthy_buffer_low_latency_ms.
  q.record(t0, kDemoA, ll("ll-3", 400, std::nullopt));
  // A regular player with the same 600 ms: not healthy (4 s).
  q.record(t0, kDemoA, report("reg-1", 600, 3200));
  auto s = q.summary(t0 + 2s);
  const auto& low = s.by_kind[static_cast<size_t>(cmcd::StreamKind::low_latency)];
  const auto& regular = s.by_kind[static_cast<size_t>(cmcd::StreamKind::regular)];
  CHECK(low.with_buffer == 3);
  CHECK(low.healthy == 2);  // ll-1 and ll-3
  CHECK(regular.with_buffer == 1);
  CHECK(regular.healthy == 0);
  CHECK(s.sessions_with_buffer == 4);
  CHECK(s.healthy_buffer == 2);
  // A player that says it plays a regular live stream after all (st=l) is judged as one.
  cmcd::Data back = report("ll-1", 600);
  back.stream_type = "l";
  q.record(t0 + 2s, kDemoA, back);
  s = q.summary(t0 + 2s);
  CHECK(s.by_kind[static_cast<size_t>(cmcd::StreamKind::low_latency)].with_buffer == 2);
  CHECK(s.by_kind[static_cast<size_t>(cmcd::StreamKind::low_latency)].healthy == 1);
  CHECK(s.healthy_buffer == 1);
  // Expiry takes each session's share from its own kind.
  s = q.summary(t0 + 40s);
  CHECK(s.sessions_with_buffer == 0);
  CHECK(s.healthy_buffer == 0);
  CHECK(s.by_kind[0].with_buffer == 0);
  CHECK(s.by_kind[1].with_buffer == 0);
}

TEST_CASE("playback quality: each session's latest latency behind live, in fixed buckets") {
  PlaybackQuality q({.session_idle = 30s});
  const PlaybackQuality::Time t0{};
  auto at = [](std::string sid, int64_t ltc) {
    cmcd::Data d;
    d.session_id = std::move(sid);
    d.live_latency_ms = ltc;
    return d;
  };
  CHECK(cmcd::latency_bucket(950) == 9);    // up to 1,000 ms
  CHECK(cmcd::latency_bucket(1000) == 9);   // a bound is inclusive
  CHECK(cmcd::latency_bucket(7500) == 33);  // up to 8,000 ms
  CHECK(cmcd::latency_bucket(90000) == cmcd::kLatencyBuckets - 1);
  q.record(t0, kDemoA, at("a", 950));
  q.record(t0, kDemoA, at("b", 7500));
  q.record(t0 + 1s, kDemoA, at("a", 1150));      // the latest counts, once
  q.record(t0 + 1s, kDemoA, report("c", 3000));  // no latency reported
  auto s = q.summary(t0 + 2s);
  CHECK(s.sessions_with_latency == 2);
  CHECK(s.latency_mix[cmcd::latency_bucket(1150)] == 1);
  CHECK(s.latency_mix[cmcd::latency_bucket(7500)] == 1);
  CHECK(s.latency_mix[cmcd::latency_bucket(950)] == 0);
  s = q.summary(t0 + 30s);  // b expired (heard at t0), a not yet
  CHECK(s.sessions_with_latency == 1);
  CHECK(s.latency_mix[cmcd::latency_bucket(1150)] == 1);
}

TEST_CASE("playback quality: stalls are counted by place, for sessions only") {
  PlaybackQuality q({});
  const PlaybackQuality::Time t0{};
  CHECK(q.record(t0, kDemoA, report("s1", 0, 3200, true)).stall);
  CHECK(q.record(t0, kDemoB, report("s3", 0, std::nullopt, true)).stall);
  // A report without a session id is nobody's stall: it counts nothing.
  CHECK_FALSE(q.record(t0, kDemoB, report("", 0, std::nullopt, true)).stall);
  CHECK_FALSE(q.record(t0, kDemoB, report("s2", 5000)).stall);
  q.record(t0 + 5s, kDemoA, report("s1", 0, 3200, true));  // a second stall, later
  const auto s = q.summary(t0 + 5s);
  CHECK(s.stalls_total == 3);
  CHECK(q.stalls().at(kDemoA) == 2);
  CHECK(q.stalls().at(kDemoB) == 1);
  CHECK(s.sessions == 3);  // the report without an id kept no session
}

TEST_CASE("playback quality: one session's stalls count at most one per stall gap") {
  PlaybackQuality q({.stall_gap = 4s});
  const PlaybackQuality::Time t0{};
  // 1,000 reports of a stall from one session within a second: one stall.
  int counted = 0;
  for (int i = 0; i < 1000; ++i)
    counted += q.record(t0 + std::chrono::milliseconds(i), kDemoA, report("s", 0, 800, true)).stall;
  CHECK(counted == 1);
  CHECK_FALSE(q.record(t0 + 3999ms, kDemoA, report("s", 0, 800, true)).stall);
  CHECK(q.record(t0 + 4s, kDemoA, report("s", 0, 800, true)).stall);
  // Another session is not held back by it.
  CHECK(q.record(t0 + 4s, kDemoA, report("t", 0, 800, true)).stall);
  CHECK(q.summary(t0 + 4s).stalls_total == 3);
}

TEST_CASE(
    "playback quality: a session not heard from for the idle time is gone; one heard again stays") {
  PlaybackQuality q({.session_idle = 30s});
  const PlaybackQuality::Time t0{};
  q.record(t0, kDemoA, report("quiet", 5000));
  q.record(t0, kDemoA, report("active", 5000));
  q.record(t0 + 20s, kDemoA, report("active", 6000));
  CHECK(q.summary(t0 + 29s).sessions == 2);
  CHECK(q.summary(t0 + 31s).sessions == 1);
  CHECK(q.summary(t0 + 49s).sessions == 1);
  CHECK(q.summary(t0 + 51s).sessions == 0);
}

TEST_CASE("playback quality: bounded sessions (the least recently heard goes) and bounded places") {
  PlaybackQuality q({.max_sessions = 3, .max_places = 2, .session_idle = 60s});
  const PlaybackQuality::Time t0{};
  for (int i = 0; i < 3; ++i)
    q.record(t0 + std::chrono::seconds(i), kDemoA, report("s" + std::to_string(i), 5000));
  q.record(t0 + 3s, kDemoA, report("s0", 5000));  // s0 heard again: s1 is now the oldest
  q.record(t0 + 4s, kDemoA, report("s3", 5000));
  CHECK(q.sessions() == 3);
  CHECK(q.record(t0 + 5s, kDemoA, report("s1", 5000)).new_session);  // s1 was the one dropped
  CHECK_FALSE(q.record(t0 + 5s, kDemoA, report("s0", 5000)).new_session);

  for (int i = 0; i < 10; ++i)
    q.record(t0 + 6s, {"ch" + std::to_string(i), "n"}, report("c" + std::to_string(i), 0, 0, true));
  const auto s = q.summary(t0 + 6s);
  CHECK(q.stalls().size() == 3);  // two places, then everything else under "other"
  CHECK(q.stalls().at({"other", "other"}) == 8);
  CHECK(s.stalls_total == 10);
}

TEST_CASE("playback quality: session ids are hashed with SipHash-2-4 (the reference vectors)") {
  // The reference implementation's key 00 01 .. 0f and messages 00 01 .. (len - 1).
  const std::array<uint64_t, 2> key = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  std::string message;
  CHECK(cmcd::keyed_hash(message, key) == 0x726fdb47dd0e0e31ULL);
  for (int i = 0; i < 15; ++i) message.push_back(static_cast<char>(i));
  CHECK(cmcd::keyed_hash(message, key) == 0xa129ca6149be45e5ULL);
  // Another key, another hash: no player can aim at a bucket without it.
  CHECK(cmcd::keyed_hash(message, {1, 2}) != cmcd::keyed_hash(message, key));
}

TEST_CASE("playback quality: bitrates fall in fixed buckets, whatever a player claims") {
  CHECK(cmcd::bitrate_bucket(-5) == 0);
  CHECK(cmcd::bitrate_bucket(300) == 0);
  CHECK(cmcd::bitrate_bucket(301) == 1);
  CHECK(cmcd::bitrate_bucket(20000) == cmcd::kBitrateBucketsKbps.size() - 1);
  CHECK(cmcd::bitrate_bucket(20001) == cmcd::kBitrateBuckets - 1);
  CHECK(cmcd::bitrate_bucket(INT64_MAX) == cmcd::kBitrateBuckets - 1);

  // 8,000 sessions, each claiming its own bitrate: the summary has the same 11 buckets.
  PlaybackQuality q({.session_idle = 60s});
  const PlaybackQuality::Time t0{};
  for (int i = 0; i < 8000; ++i)
    q.record(t0, kDemoA, report("s" + std::to_string(i), 5000, 100 + i * 3));
  const auto s = q.summary(t0);
  size_t counted = 0;
  for (size_t n : s.bitrate_mix) counted += n;
  CHECK(counted == 8000);
  CHECK(s.bitrate_mix.back() == 1366);  // 100 + 3 i over 20,000 from i = 6,634 on
}

TEST_CASE("playback quality: a session costs the same bytes whatever the length of its id") {
  PlaybackQuality q({.max_sessions = 1000, .session_idle = 60s});
  const PlaybackQuality::Time t0{};
  for (int i = 0; i < 1000; ++i)
    q.record(t0, kDemoA, report(std::string(512, 'x') + std::to_string(i), 1));
  CHECK(q.sessions() == 1000);
  CHECK(q.memory_bytes() == 1000 * PlaybackQuality::kBytesPerSession);
  // Past the bound, the oldest goes: count and bytes stay where they are.
  q.record(t0, kDemoA, report(std::string(512, 'y'), 1));
  CHECK(q.memory_bytes() == 1000 * PlaybackQuality::kBytesPerSession);
}

TEST_CASE(
    "playback quality: the running totals equal a count from scratch through reports, "
    "evictions and expiry") {
  PlaybackQuality q({.max_sessions = 50, .session_idle = 10s, .healthy_buffer_ms = 4000});
  const PlaybackQuality::Time t0{};
  // What each session said last, to count from scratch (seeded, so every run is the same).
  std::map<std::string, std::pair<int64_t, std::optional<int64_t>>> latest;
  std::map<std::string, PlaybackQuality::Time> heard;
  uint64_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return seed >> 33;
  };
  for (int step = 0; step < 3000; ++step) {
    const auto now = t0 + std::chrono::milliseconds(step * 20);
    const std::string sid = "s" + std::to_string(next() % 80);
    const int64_t bl = static_cast<int64_t>(next() % 9000);
    std::optional<int64_t> br;
    if (next() % 3 != 0) br = static_cast<int64_t>(next() % 25000);
    // From scratch: the sessions heard within the idle time, at most the 50 most recent.
    auto kept = [&] {
      std::vector<std::pair<PlaybackQuality::Time, std::string>> alive;
      for (const auto& [id, at] : heard)
        if (now - at < 10s) alive.push_back({at, id});
      std::sort(alive.rbegin(), alive.rend());
      if (alive.size() > 50) alive.resize(50);
      return alive;
    };
    const auto before = kept();
    const bool known = std::any_of(before.begin(), before.end(),
                                   [&](const auto& entry) { return entry.second == sid; });
    CHECK(q.record(now, kDemoA, report(sid, bl, br)).new_session == !known);
    auto& l = latest[sid];
    if (!known) l = {bl, std::nullopt};  // dropped (silent or evicted), then new
    l.first = bl;
    if (br) l.second = br;
    heard[sid] = now;
    if (step % 97 != 0) continue;
    const auto s = q.summary(now);
    const auto alive = kept();
    std::array<size_t, cmcd::kBitrateBuckets> mix{};
    size_t healthy = 0;
    for (const auto& [at, id] : alive) {
      healthy += latest[id].first >= 4000 ? 1 : 0;
      if (latest[id].second) ++mix[cmcd::bitrate_bucket(*latest[id].second)];
    }
    INFO("step ", step);
    CHECK(s.sessions == alive.size());
    CHECK(s.sessions_with_buffer == alive.size());
    CHECK(s.healthy_buffer == healthy);
    CHECK(s.bitrate_mix == mix);
  }
}
