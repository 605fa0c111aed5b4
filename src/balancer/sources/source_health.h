// Whether one of a channel's sources is fit to serve, and which source the channel plays from,
// as pure functions of what the fetches of its playlists brought and of the time passed in
// (DESIGN.md "Sources fail, the channel does not"). A source fails for any of SourceFault's
// reasons; the balancer moves every rendition of the channel to the next healthy source in the
// order of preference, and back to a preferred one only after it has been healthy for a while.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hls/playlist.h"

namespace balancer {

// channels[].failover.
struct FailoverPolicy {
  // No new segment for this many target durations: the source stalled.
  double stall_target_durations = 1.5;
  // A low-latency playlist: no new part for this many part targets, if that comes sooner.
  double stall_part_targets = 4;
  // A preferred source is taken back after it has been healthy this long ("failback": "auto").
  std::chrono::milliseconds failback_after{30000};
  bool failback = true;  // false ("manual"): only the operator moves a channel back
  // The sources' timestamps are the same (epoch-locked encoders): a switch adds no
  // discontinuity ("identical_timestamps").
  bool identical_timestamps = false;
  bool operator==(const FailoverPolicy&) const = default;
};

// Why a source is not fit to serve. Names are the `reason` label of the switch metrics.
enum class SourceFault : uint8_t {
  none,
  unreachable,      // connection refused or reset
  timeout,          // no answer within playlists.fetch_timeout_ms
  origin_error,     // 5xx or another status that is not a playlist
  missing,          // 404: the source has no such rendition (renditions match by name)
  bad_playlist,     // malformed or too large
  stalled,          // no new segment (or part) within the policy's bound, answering or not
  went_back,        // its media sequence went back (the encoder restarted)
  skipped,          // its media sequence skipped segments (a gap)
  ended,            // EXT-X-ENDLIST on a live channel
  chunk_errors,     // the cache nodes' fetches of its chunks fail (OriginChunkHealth)
  operator_choice,  // not a fault: the operator moved the channel (a switch's reason)
  failback,         // not a fault: back to a preferred source (a switch's reason)
};
const char* to_string(SourceFault fault);

// What one answer of a source's media playlist showed, in that source's own numbers.
struct PlaylistFacts {
  bool has_segments = false;
  uint64_t first_msn = 0;
  uint64_t last_msn = 0;      // of the last complete segment
  size_t trailing_parts = 0;  // parts listed after the last complete segment
  bool endlist = false;
  std::chrono::milliseconds target_duration{0};
  std::chrono::milliseconds part_target{0};  // 0: not a low-latency playlist
};
PlaylistFacts facts_of(const hls::MediaInfo& media);

// The health of one media playlist of one source, from its fetches. Owned by the source
// cache's thread (the fetch loop); pure: time comes in.
class SourceHealth {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Watched from `since`: a source that never answers stalls counted from then.
  explicit SourceHealth(TimePoint since) : progress_at_(since), healthy_since_(since) {}

  // A playlist answer (new or unchanged). After a pause in the watch (idle_after(): nobody
  // played the channel, so nothing was fetched) it starts the timeline again: a source is not
  // judged by what happened while the balancer was not looking.
  void landed(const PlaylistFacts& facts, const FailoverPolicy& policy, TimePoint now);
  // A fetch that brought no playlist (two in a row make the fault).
  void failed(SourceFault fault, TimePoint now);

  // The fault in force at `now`: none while healthy, and while the watch is paused. `asking`: a
  // fetch of this playlist is in flight. A playlist stalls when it does not move for the bound
  // while the source is asked (a request in flight: a frozen origin holds it; or answers that
  // keep coming, the same playlist each time): a watch that stopped asking between two
  // scenes (nobody plays that rendition now) says nothing of its source.
  SourceFault fault(const FailoverPolicy& policy, TimePoint now, bool asking = false) const;
  // No answer nor failure for this long is a pause in the watch, not a source's silence: longer
  // than a fetch may take (a frozen source fails by timeout within playlists.fetch_timeout_ms)
  // and than three target durations (the refresh cadence of the longest segments).
  std::chrono::milliseconds idle_after() const;
  // A playlist landed since the watch began (the source's timeline is known).
  bool known() const { return last_.has_value(); }
  // Since when it has had no fault (the watch's start, or the answer that ended the last one);
  // meaningful while fault() is none.
  TimePoint healthy_since() const { return healthy_since_; }
  // The newest facts (known() only).
  const PlaylistFacts& last() const { return *last_; }

 private:
  void take(const PlaylistFacts& facts, TimePoint now);

  std::optional<PlaylistFacts> last_;
  TimePoint progress_at_;  // when a new segment or part was last seen (or the watch began)
  SourceFault seen_ = SourceFault::none;  // from the latest answers (cleared by normal progress)
  int failures_in_row_ = 0;
  TimePoint healthy_since_;
  std::optional<TimePoint> last_event_;  // the newest answer or failure
};

// What the cache nodes' own chunk fetches say of each origin, as the balancer's polls of the
// nodes bring them (each poll: the fetches a node's origin answered and failed since the last).
// A source whose chunks fail while its playlists move (a storage or packager fault behind a
// healthy playlist) stalls every viewer at the end of its buffer, and only the nodes see it.
// An origin fails when at least two fetches failed since the last it answered, the newest
// within kChunkFaultHold; a 404 or another 4xx says nothing (a viewer may ask for any name).
// Fetch loop; pure: time comes in.
class OriginChunkHealth {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // How long a fault outlives its newest failure: once the channel left the source, no node
  // fetches its chunks, so nothing else would end it; failback then waits its own time.
  static constexpr std::chrono::milliseconds kChunkFaultHold{10000};

  void reported(const std::string& origin, uint64_t answered, uint64_t failed, TimePoint now);
  bool failing(const std::string& origin, TimePoint now) const;
  // When its last fault ended (for the failback's healthy spell); nullopt: it never failed.
  std::optional<TimePoint> fault_ended(const std::string& origin, TimePoint now) const;

 private:
  struct Origin {
    uint64_t failed_since_answer = 0;
    TimePoint last_failure{};
    bool faulted = false;                  // a fault was reached since the last answer
    std::optional<TimePoint> fault_ended;  // an answer ended the last fault then
  };
  std::map<std::string, Origin, std::less<>> origins_;
};

// Renditions match by name: a playlist's path relative to its source's directory is the same
// on every source ("/a/live/master.m3u8" and "/b/master.m3u8": "/a/live/720p/index.m3u8" is
// "/b/720p/index.m3u8"), and the sources' own playlists are one another's. `sources`: each
// source's playlist target, in order; the result: `target` on each, in the same order; nullopt
// when `target` lies under no source's directory (it is then only the preferred source's).
std::optional<std::vector<std::string>> matched_targets(const std::vector<std::string>& sources,
                                                        std::string_view target);

// One source of a channel as the switch sees it: the worst of its renditions.
struct SourceState {
  SourceFault fault = SourceFault::none;
  bool known = false;
  SourceHealth::TimePoint healthy_since{};
};

struct SourceSwitch {
  size_t to = 0;
  SourceFault reason = SourceFault::none;  // the fault of the source left, or why it moved
};

// Which source a channel should move to now, if any. In order: to the operator's `forced`
// source, healthy or not; away from a failing active source (the forced one too: a choice must
// not keep viewers on a dead source) to the first healthy one in order of preference (a source
// is healthy when its timeline is known and it has no fault); unless a source is forced, back
// to a preferred source that has been healthy for policy.failback_after (policy.failback).
// None: stay.
std::optional<SourceSwitch> choose_source(const std::vector<SourceState>& sources, size_t active,
                                          const FailoverPolicy& policy, SourceHealth::TimePoint now,
                                          std::optional<size_t> forced = std::nullopt);

}  // namespace balancer
