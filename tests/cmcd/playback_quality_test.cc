// PlaybackQuality on an injected clock: sessions kept by sid, their latest numbers summarised,
// stalls counted by place, sessions expiring after the idle time, and every bound holding.
#include "cmcd/playback_quality.h"

#include <doctest/doctest.h>

#include <string>

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
  CHECK(s.healthy_buffer == 2);  // s1 (12000) and s3 (4000, at the bar)
  CHECK(s.bitrate_mix.at(3200) == 2);
  CHECK(s.bitrate_mix.at(800) == 1);
  CHECK(s.stalls_total == 0);
}

TEST_CASE("playback quality: stalls are counted by place, with or without a session id") {
  PlaybackQuality q({});
  const PlaybackQuality::Time t0{};
  CHECK(q.record(t0, kDemoA, report("s1", 0, 3200, true)).stall);
  q.record(t0, kDemoA, report("s1", 0, 3200, true));
  q.record(t0, kDemoB, report("", 0, std::nullopt, true));
  CHECK_FALSE(q.record(t0, kDemoB, report("s2", 5000)).stall);
  const auto s = q.summary(t0);
  CHECK(s.stalls_total == 3);
  CHECK(s.stalls.at(kDemoA) == 2);
  CHECK(s.stalls.at(kDemoB) == 1);
  CHECK(s.sessions == 2);  // the report without an id kept no session
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
    q.record(t0, {"ch" + std::to_string(i), "n"}, report("", 0, std::nullopt, true));
  const auto s = q.summary(t0 + 6s);
  CHECK(s.stalls.size() == 3);  // two places, then everything else under "other"
  CHECK(s.stalls.at({"other", "other"}) == 8);
  CHECK(s.stalls_total == 10);
}
