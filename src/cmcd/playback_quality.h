// Playback quality from the CMCD a server receives (cmcd.h): per player session (`sid`), the
// latest buffer length and bitrate it reported, and the stalls (`bs`) it reported, counted per
// place (channel and node). Bounded in count and in bytes, whatever the players send:
// - a session is kept under a 64-bit keyed hash of its id (SipHash-2-4 with a key the owner
//   draws at random), never the id's text: a 512-byte id costs what a 1-byte one does;
// - at most Limits::max_sessions sessions (the least recently heard goes first), each dropped
//   when not heard from for Limits::session_idle;
// - at most Limits::max_places places for stalls, the rest under kOtherPlace;
// - a stall counts only for a session (a report without `sid` adds none), and a session's
//   stalls at most one per Limits::stall_gap: one client replaying `bs` on every request counts
//   no more than a player that really stalls (its next request after a stall carries `bs`
//   once), and a flood of reports of one session adds one stall per gap;
// - bitrates are counted in the fixed buckets of kBitrateBucketsKbps, and latencies behind live
//   (`ltc`) in those of kLatencyBucketsMs, so the summary has the same few members however many
//   distinct numbers the players claim.
// A buffer is judged by the kind of stream the session plays, as its player says (`st`): a
// low-latency player (`st=ll`) plays within PART-HOLD-BACK of the live edge (about three part
// targets) and cannot hold 4 s; it is healthy with at least one part buffered (the shortest media
// object it asked for, `d`; Limits::healthy_buffer_low_latency_ms until it named one), a
// regular one with at least Limits::healthy_buffer_ms.
// The summary is kept up to date as reports arrive and sessions go (no pass over the sessions).
// No personal data: no address, account, URL or session id text is kept.
//
// Pure: time comes in as `now`. Not synchronised: its owner serialises the calls (one lock per
// server; a report costs one hash and one lookup).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cmcd/cmcd.h"

namespace cmcd {

// Upper bounds (kbps, inclusive) of the bitrate buckets; a bitrate above the last is counted in
// one more bucket, "over" the last.
inline constexpr std::array<int64_t, 10> kBitrateBucketsKbps = {300,  600,  1000, 1500,  2500,
                                                                4000, 6000, 8000, 12000, 20000};
inline constexpr size_t kBitrateBuckets = kBitrateBucketsKbps.size() + 1;
// The bucket of a bitrate: the index of the first bound at or above it, else the last bucket.
size_t bitrate_bucket(int64_t kbps);

// Upper bounds (ms, inclusive) of the buckets of latency behind live: 100 ms steps to 3 s, then
// coarser; a latency above the last is counted in one more bucket, "over" the last.
inline constexpr std::array<int64_t, 40> kLatencyBucketsMs = {
    100,  200,  300,  400,  500,  600,  700,   800,   900,   1000,  1100,  1200, 1300, 1400,
    1500, 1600, 1700, 1800, 1900, 2000, 2100,  2200,  2300,  2400,  2500,  2600, 2700, 2800,
    2900, 3000, 4000, 5000, 6000, 8000, 10000, 15000, 20000, 30000, 45000, 60000};
inline constexpr size_t kLatencyBuckets = kLatencyBucketsMs.size() + 1;
// The bucket of a latency: the index of the first bound at or above it, else the last bucket.
size_t latency_bucket(int64_t ms);

// The session kinds whose buffers are judged apart.
enum class StreamKind : uint8_t { regular = 0, low_latency = 1 };
inline constexpr size_t kStreamKinds = 2;

// SipHash-2-4 (Aumasson and Bernstein) of `text` under `key`: unpredictable without the key, so
// no player can make its ids collide with other sessions' or pile them into one hash bucket.
uint64_t keyed_hash(std::string_view text, const std::array<uint64_t, 2>& key);

class PlaybackQuality {
 public:
  using Time = std::chrono::steady_clock::time_point;

  struct Limits {
    size_t max_sessions = 100000;
    size_t max_places = 1024;                       // beyond: reported under kOtherPlace
    std::chrono::milliseconds session_idle{30000};  // about three playlist reloads of silence
    // A session's stalls count at most one per this long: a real stall and the playback that
    // resumes after it take longer.
    std::chrono::milliseconds stall_gap{4000};
    int64_t healthy_buffer_ms = 4000;  // a regular stream's: at or above, a healthy buffer
    // A low-latency stream's bar until its player asked for a media object (then: one part, the
    // shortest object it asked for): a third of a typical PART-HOLD-BACK of 1 s.
    int64_t healthy_buffer_low_latency_ms = 330;
    std::array<uint64_t, 2> session_key{};  // keyed_hash's key for session ids
  };

  // What one kept session costs at most, in bytes, hash table and recency list together
  // (measured with glibc's allocator: 96 to 109 bytes a session from 1,000 to 150,000 sessions,
  // ids of 512 bytes; it was 1.5 KB with the id's text kept); sessions() times this is what
  // memory_bytes() reports.
  static constexpr size_t kBytesPerSession = 112;

  // Where a report was made: the channel and the cache node, as the server names them (configured
  // names, or names the caller has bounded).
  struct Place {
    std::string channel;
    std::string node;
    auto operator<=>(const Place&) const = default;
  };
  static constexpr std::string_view kOtherPlace = "other";

  // What one report changed.
  struct Recorded {
    bool stall = false;        // it reported a buffer starvation
    bool new_session = false;  // its sid was not known
  };

  explicit PlaybackQuality(Limits limits) : limits_(limits) {}

  // One request's CMCD at `now`. Without a `sid` nothing is kept or counted.
  Recorded record(Time now, const Place& where, const Data& data);

  // Drops the sessions not heard from since `now - session_idle`.
  void expire(Time now);

  struct Buffers {
    size_t with_buffer = 0;  // sessions with a buffer length
    size_t healthy = 0;      // of those, at or above their kind's bar
  };
  struct Summary {
    size_t sessions = 0;                                // reporting within session_idle
    size_t sessions_with_buffer = 0;                    // of those, with a buffer length
    size_t healthy_buffer = 0;                          // of those, at or above their kind's bar
    std::array<Buffers, kStreamKinds> by_kind{};        // the same by StreamKind
    std::array<size_t, kBitrateBuckets> bitrate_mix{};  // sessions by their latest bitrate's bucket
    std::array<size_t, kLatencyBuckets> latency_mix{};  // sessions by their latest ltc's bucket
    size_t sessions_with_latency = 0;                   // the sum of latency_mix
    uint64_t stalls_total = 0;                          // reported since start
  };
  // After expire(now). Costs no pass over the sessions.
  Summary summary(Time now);

  // Stalls reported since start, by place (at most max_places + 1 places).
  const std::map<Place, uint64_t>& stalls() const { return stalls_; }

  size_t sessions() const { return sessions_.size(); }
  size_t memory_bytes() const { return sessions_.size() * kBytesPerSession; }
  const Limits& limits() const { return limits_; }

 private:
  static constexpr uint8_t kNoBitrate = 0xff;
  static constexpr uint8_t kNoLatency = 0xff;
  struct Session {
    Time last_heard;
    int64_t buffer_ms = -1;        // -1: none reported
    uint8_t bitrate = kNoBitrate;  // its bucket, or kNoBitrate
    bool stalled = false;          // a stall of it was counted, at last_stall
    StreamKind kind = StreamKind::regular;
    uint8_t latency = kNoLatency;  // its latest ltc's bucket, or kNoLatency
    uint16_t part_ms = 0;          // the shortest media object it asked for (0: none yet)
    Time last_stall;
    std::list<uint64_t>::iterator in_order;  // its place in heard_order_
  };

  const Place& bounded(const Place& where);
  // The buffer at or above which `s` is healthy, by its kind.
  int64_t healthy_bar_ms(const Session& s) const;
  // Adds a session's share to the running totals, or takes it away.
  void count(const Session& s, bool adding);
  void drop(std::unordered_map<uint64_t, Session>::iterator it);

  Limits limits_;
  std::unordered_map<uint64_t, Session> sessions_;
  std::list<uint64_t> heard_order_;  // least recently heard first
  std::array<Buffers, kStreamKinds> buffers_{};
  std::array<size_t, kBitrateBuckets> bitrate_mix_{};
  std::array<size_t, kLatencyBuckets> latency_mix_{};
  std::map<Place, uint64_t> stalls_;
  uint64_t stalls_total_ = 0;
  Place other_{std::string(kOtherPlace), std::string(kOtherPlace)};
};

}  // namespace cmcd
