// Encoder restarts on a live channel (DESIGN.md "Live sources misbehave"), as
// pure logic over parsed media playlists with the time passed in.
//
// A live encoder that stops writes EXT-X-ENDLIST; restarted, it numbers its
// segments from the start again and reuses the same names. Passed through as
// is, players stop for good at the end tag, and a reused name points at bytes
// of the previous run. LiveRunTracker follows one media playlist of a live
// channel and decides what the balancer serves instead of origin's copy:
//   - an end tag is a state to confirm: it is held back (the copy stays live,
//     refreshed at live cadence) until it has lasted `end_confirm`, or the
//     operator marked the channel finished;
//   - a restart (the last media sequence number going back, or a number whose
//     URI changed) starts a new run: the served copy keeps counting where the
//     previous run stopped (MEDIA-SEQUENCE never goes back), keeps the
//     previous run's last segments in the window followed by
//     EXT-X-DISCONTINUITY and the new run, and maintains
//     EXT-X-DISCONTINUITY-SEQUENCE when the old segments slide out;
//   - every chunk (and key) of a run after the first is marked with its run id
//     (kRunParameter=<id> in its target), so a cache node, a browser cache,
//     the balancer's key cache or origin's long max-age can never answer a
//     reused name with a previous run's bytes.
// A channel with several sources (source_health.h) continues the same way when it moves to
// another source (switch_source): the next copy, from the other source, starts a new run after
// the last segment served, placed by EXT-X-PROGRAM-DATE-TIME.
// LL-HLS: the segment in progress when a source stops (its parts served, not yet complete) is
// closed with the parts served and EXT-X-GAP for the rest (at a switch, with program dates, the
// same segment in every rendition), and the new source's segment (complete or in progress) nearest
// the closed one's end follows it: a part's number and index never name another source's part, and
// at most half a segment plays twice or is skipped.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "balancer/sources/rewrite_plan.h"
#include "hls/playlist.h"
#include "hls/window.h"

namespace balancer {

// The query parameter that carries a chunk's run id (reserved in the cache
// node's key, docs/cache_node.md).
inline constexpr std::string_view kRunParameter = "brun";

// channels[].live
enum class LiveMode : uint8_t {
  automatic,  // absent: live once a copy without an end tag was seen
  live,       // true: live from the first copy (an end tag is held back at once)
  vod,        // false: origin's copies as they are (an end tag is final)
};

struct LiveEndPolicy {
  LiveMode mode = LiveMode::automatic;
  bool finished = false;                          // channels[].finished: end tags are final
  std::chrono::milliseconds end_confirm{300000};  // playlists.live_end_confirm_s
  bool operator==(const LiveEndPolicy&) const = default;
};

// One segment as the balancer served it.
struct ServedSegment {
  uint64_t msn = 0;     // served media sequence number
  uint64_t number = 0;  // served discontinuity number (EXT-X-DISCONTINUITY tags up to it included)
  bool tagged = false;  // its lines hold EXT-X-DISCONTINUITY
  // EXT-X-MAP / EXT-X-KEY lines declared before its lines (needed when it leads).
  std::string in_force;
  std::string lines;  // its tags and its URI line, as origin wrote them
  uint64_t run = 0;   // 0: the first run (no marker)
  // Where it starts and ends on the wall clock (EXT-X-PROGRAM-DATE-TIME, ms), when known.
  std::optional<int64_t> start_ms, end_ms;
  // A segment in progress whose source stopped (a switch, a restart): the parts served of it,
  // then EXT-X-GAP for the rest, so its number and its parts' keep naming what they named.
  bool closed_early = false;
};

// What to serve instead of origin's copy, decided by the tracker and written by hls/
// (write_served below).
struct ServedListing {
  // The numbers, the segments listed (origin's, or the tracker's lines of segments served
  // before), the lines restated, the end tag held back or not.
  hls::Continuation copy;
  std::vector<uint64_t> runs;  // each listed segment's run id, in order (0: the first run)
  // The parts after the last segment lead a run of their own (a switch to a source whose segment
  // in progress begins where the served ones end).
  std::optional<uint64_t> parts_run;
};

// The copy served.
struct ServedCopy {
  // Written of origin's lines alone (numbers continued, an end tag held back, segments before a
  // switch left out, reports renumbered), it is spliced and never parsed; with lines of the
  // tracker's (a previous run's segments kept ahead of the new run's, an older origin copy
  // answered with the previous listing, parts leading a switched run) its text is parsed against
  // origin's URL (hls::continued).
  hls::Playlist playlist;
  // (first line, run id), ascending: the chunk URIs from that 1-based line on belong to that run.
  std::vector<std::pair<size_t, uint64_t>> runs_by_line;
};

// `listing` (LiveRunTracker::next for `origin`) written over origin's playlist, fetched from
// `url`; the parse error of a copy that does not parse.
hls::Result<ServedCopy> write_served(const hls::Playlist& origin, const ServedListing& listing,
                                     std::string_view url, const hls::ParseOptions& options = {});

class LiveRunTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // A segment in progress: its served number and where it starts and ends so far (ms).
  struct InProgress {
    uint64_t msn = 0;
    int64_t start_ms = 0, end_ms = 0;
    bool operator==(const InProgress&) const = default;
  };

  // What to serve for origin's media playlist `origin` (write_served writes it); nullopt:
  // origin's as it is. `unix_ms` names a new run.
  std::optional<ServedListing> next(const hls::Playlist& origin, const LiveEndPolicy& policy,
                                    TimePoint now, int64_t unix_ms);

  // The copies from now on come from another source of the channel: the next one starts a new
  // run after the last segment served, at the first of its segments that lies mostly after the
  // served ones' end by EXT-X-PROGRAM-DATE-TIME when both carry it, else at its newest segment;
  // none of its segments before that one is ever listed. Until it has such a segment (it is
  // behind), the copy lists what was served; one more than one and a half target durations
  // behind is not on the shared clock, and goes on from its newest segment at once. With `seamless`
  // (the operator declares the sources' timestamps identical), no discontinuity is marked between
  // the two.
  //
  // `channel_in_progress`: the segment in progress that the channel's renditions close at this
  // switch (in_progress() of the rendition that listed the most of it), so that each rendition
  // closes the same number, to the same end, and numbers the new source's segments the same way,
  // even one whose last copy listed no part of it yet.
  void switch_source(bool seamless = false,
                     std::optional<InProgress> channel_in_progress = std::nullopt) {
    switch_pending_ = true;
    seamless_switch_ = seamless;
    channel_in_progress_ = channel_in_progress;
  }
  // The segment in progress of the last copy served (parts of it listed), if any.
  std::optional<InProgress> in_progress() const {
    if (!in_progress_ || !in_progress_->start_ms || !in_progress_->end_ms) return std::nullopt;
    return InProgress{in_progress_->msn, *in_progress_->start_ms, *in_progress_->end_ms};
  }
  // The segments' lines the tracker keeps (listed again ahead of later copies) are written with
  // every URI absolute (a channel with several sources: a kept segment's relative URI would
  // resolve against the other source's URL).
  void set_absolute_uris(bool absolute) { absolute_uris_ = absolute; }
  uint64_t switches() const { return switches_; }

  // Would next() answer differently for the same origin copy now (a held end tag is due)?
  bool end_due(const LiveEndPolicy& policy, TimePoint now) const;
  bool holding_end() const { return holding_end_; }
  uint64_t restarts() const { return restarts_; }
  uint64_t run() const { return run_; }
  // Served media sequence numbers are origin's (no restart has shifted them).
  bool origin_numbering() const { return msn_offset_ == 0; }

 private:
  struct OriginChange {
    bool restarted = false;   // a new run started at origin
    bool older_copy = false;  // a copy older than the previous one (another origin server)
    std::optional<uint64_t> first_listed;  // origin's number of the first segment served of it
  };
  struct Listing {
    std::vector<ServedSegment> segments;  // what the served copy lists, in order
    size_t kept = 0;                      // leading segments from a previous run
  };
  // Steps of next(), in order.
  OriginChange follow_origin(const hls::Playlist& origin, std::vector<ServedSegment>& segments,
                             bool parts_in_progress, const LiveEndPolicy& policy, TimePoint now,
                             int64_t unix_ms, bool was_holding);
  // One segment of an origin copy: its number, URI and start on the wall clock, when dated.
  struct OriginSegment {
    uint64_t msn = 0;
    std::string uri;
    std::optional<int64_t> start_ms;
  };
  OriginChange compare_with_previous(const std::vector<OriginSegment>& seen) const;
  void remember_origin_copy(std::vector<OriginSegment> seen, bool endlist,
                            const LiveEndPolicy& policy, TimePoint now);
  void start_new_run(const ServedSegment& first, int64_t unix_ms);
  // The segment in progress of the last copy served, if any, closed early onto served_.
  void close_in_progress();
  // The channel's segment in progress at a switch (switch_source), closed as the rendition
  // that listed the most of it closes it.
  void close_as_channel(const InProgress& closing);
  // `closed` (its tags and parts) as a segment closed early: EXT-X-GAP, EXTINF, `uri`.
  void push_closed(ServedSegment closed, double seconds, std::string_view uri);
  // A pending switch: the new source's segments from where the served ones end (the rest
  // erased), its run started; false while it has none past them yet.
  bool take_switch(std::vector<ServedSegment>& segments, bool parts_in_progress,
                   int64_t far_behind_ms, int64_t unix_ms);
  void number_for_run(std::vector<ServedSegment>& segments) const;
  // `first_origin_msn`: the first of `segments` in origin's numbering, if any.
  Listing list_segments(std::vector<ServedSegment>& segments,
                        std::optional<uint64_t> first_origin_msn, bool older_copy);
  size_t tail_to_keep(std::optional<uint64_t> first_origin_msn, size_t new_segments);
  ServedListing plan_copy(const hls::MediaInfo& media, const Listing& listing,
                          size_t left_out) const;

  bool seen_live_ = false;
  std::optional<TimePoint> ended_since_;
  bool holding_end_ = false;
  // Origin's previous copy: its last sequence number and each segment's URI and date.
  std::optional<uint64_t> origin_last_;
  std::vector<OriginSegment> origin_segments_;
  // The current run: served = origin + offset (numbers and discontinuity numbers).
  uint64_t run_ = 0;
  uint64_t restarts_ = 0;
  int64_t msn_offset_ = 0;
  int64_t number_offset_ = 0;
  // The previous run's last served segments, kept ahead of the new run while
  // the new run's first segment is listed and the window has room.
  std::vector<ServedSegment> tail_;
  size_t tail_window_ = 0;
  uint64_t boundary_ = 0;              // origin sequence number of the new run's first segment
  uint64_t tail_target_s_ = 0;         // the previous run's EXT-X-TARGETDURATION
  uint64_t previous_target_s_ = 0;     // origin's previous copy's EXT-X-TARGETDURATION
  std::vector<ServedSegment> served_;  // what the last copy listed (the next restart's tail)
  bool absolute_uris_ = false;
  bool switch_pending_ = false;
  bool seamless_switch_ = false;
  bool unmarked_boundary_ = false;  // the current run follows the tail with no discontinuity
  // The current run began with the parts of a segment in progress, not yet listed complete: its
  // parts follow the tail, with the run's discontinuity, map and key written before them.
  bool parts_lead_ = false;
  uint64_t switches_ = 0;
  // After a switch: origin sequence numbers of the new source below this are never listed.
  std::optional<uint64_t> listed_from_;
  // The segment in progress of the last copy served (its parts listed after the segments), as
  // close_in_progress() lists it once its source stops; its lines lack the gap and URI line.
  std::optional<ServedSegment> in_progress_;
  std::string in_progress_uri_;     // its first part's URI, the closed segment's URI line
  double in_progress_seconds_ = 0;  // its parts' seconds
  std::optional<InProgress> channel_in_progress_;  // switch_source()'s, until the switch
};

// Appends "<kRunParameter>=<run>" to the target of every chunk and key slot of
// a run after the first (by the slot's line), so links to cache nodes, to origin
// and to the balancer's key path (whose key cache is keyed by target) name the run.
void mark_runs(RewritePlan& plan, const hls::Template& tmpl,
               const std::vector<std::pair<size_t, uint64_t>>& runs_by_line);

}  // namespace balancer
