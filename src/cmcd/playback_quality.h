// Playback quality from the CMCD a server receives (cmcd.h): per player session (`sid`), the
// latest buffer length, bitrate and throughput it reported, and the stalls (`bs`) it reported,
// counted per place (channel and node). Bounded (at most Limits::max_sessions sessions and
// Limits::max_places places; the least recently heard session goes first) and expiring (a session
// not heard from for Limits::session_idle is dropped). No personal data: a session is the random
// id its player chose, with numbers; no address, account or URL is kept.
//
// Pure: time comes in as `now`. Not synchronised: its owner serialises the calls (one lock per
// server; a report costs one hash lookup).
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cmcd/cmcd.h"

namespace cmcd {

class PlaybackQuality {
 public:
  using Time = std::chrono::steady_clock::time_point;

  struct Limits {
    size_t max_sessions = 100000;
    size_t max_places = 1024;                       // beyond: reported under kOtherPlace
    std::chrono::milliseconds session_idle{30000};  // about three playlist reloads of silence
    int64_t healthy_buffer_ms = 4000;               // at or above: a healthy buffer
  };

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

  // One request's CMCD at `now`. Without a `sid` the stall still counts but no session is kept.
  Recorded record(Time now, const Place& where, const Data& data);

  // Drops the sessions not heard from since `now - session_idle`.
  void expire(Time now);

  struct Summary {
    size_t sessions = 0;                    // reporting within session_idle
    size_t sessions_with_buffer = 0;        // of those, with a buffer length
    size_t healthy_buffer = 0;              // of those, at or above healthy_buffer_ms
    std::map<int64_t, size_t> bitrate_mix;  // latest bitrate (kbps) → sessions
    std::map<Place, uint64_t> stalls;       // reported since start, by place
    uint64_t stalls_total = 0;
  };
  // After expire(now).
  Summary summary(Time now);

  size_t sessions() const { return sessions_.size(); }
  const Limits& limits() const { return limits_; }

 private:
  struct Session {
    Time last_heard;
    std::optional<int64_t> buffer_ms;
    std::optional<int64_t> bitrate_kbps;
    std::optional<int64_t> throughput_kbps;
    std::list<std::string>::iterator in_order;  // its place in heard_order_
  };

  const Place& bounded(const Place& where);

  Limits limits_;
  std::unordered_map<std::string, Session> sessions_;
  std::list<std::string> heard_order_;  // least recently heard first
  std::map<Place, uint64_t> stalls_;
  uint64_t stalls_total_ = 0;
  Place other_{std::string(kOtherPlace), std::string(kOtherPlace)};
};

}  // namespace cmcd
