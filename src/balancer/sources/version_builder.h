// Origin's answer → the version the balancer serves, as a pure function of its inputs: origin's
// body, the moment it came (passed in), and what the copy served before (CopyLineage). On one
// parsed playlist it applies, in order:
//   - the channel's target latency in the hold-backs (hls/hold_back.h);
//   - the live run's continuation: an end tag held back, a restart numbered on from the
//     previous run (live_restart.h), each run's chunks marked with its id;
//   - playlists.max_master_entries (refused) and playlists.max_segments (a live or EVENT
//     playlist cut to a window of its newest segments, hls/window.h; a VOD one refused);
//   - the rewrite plan (where each URI slot leads) and the first-listed stamps of its chunks,
//     shared by the ordinary copy of a playlist and its directive copies.
// It also builds a version's delta update (_HLS_skip=YES), and names the chunks a version lists
// that the one before did not (prefetch).
//
// Pure: no I/O, no clock, no globals; what it would log or count it says in BuildNotes. A
// builder (its serial numbers and stamps) belongs to one SourceCache: the fetch loop only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/sources/live_restart.h"
#include "balancer/sources/source_health.h"
#include "balancer/sources/source_policy.h"
#include "balancer/sources/source_version.h"
#include "core/result.h"
#include "hls/playlist.h"

namespace balancer {

// What one copy of a source carries from each version to the next (one per cache entry).
struct CopyLineage {
  LiveRunTracker runs;         // live channels: end tags held back, restarts continued
  LiveEndPolicy applied_live;  // the policy the latest version was built under
  // Origin's bytes behind the latest version when the balancer serves a copy of its own (a
  // continued or held live copy, a window, the channel's hold-backs); empty when the version
  // is origin's copy itself.
  std::string origin_body;
  // The version numbers segments and parts as origin does (no restart continued with new
  // numbers, no window): a viewer's _HLS_msn/_HLS_part then names origin's part.
  bool origin_numbering = true;
  // The delta update built of the version numbered `delta_of_serial`, once asked for.
  std::shared_ptr<const SourceVersion> delta;
  uint64_t delta_of_serial = 0;

  // Origin's bytes behind `version` (its own source when the copy is origin's).
  std::string_view origin_bytes(const SourceVersion* version) const;
};

// What origin was asked, and what it said.
struct OriginAnswer {
  std::string_view body;
  std::string url;          // the URL fetched (base of relative URIs)
  std::string origin_base;  // the origin's base URL, no trailing slash (rewrite plan)
  // Stamps of first listing are shared under this key (the ordinary copy's).
  std::string playlist_key;
  LiveEndPolicy live;           // the channel's, now
  double target_latency_s = 0;  // the channel's hold-backs (0: origin's)
  bool directive_copy = false;  // an LL-HLS directive copy: passed through as origin wrote it
  // A channel with several sources: the node's name for this answer's origin, and the other
  // sources' origins (chunks of a source switched from stay listed on theirs). Empty: one source.
  std::string origin_id;
  std::vector<OtherOrigin> other_origins;
  // `body` as parse() read it already (moved from by the build), or null. Used only when the
  // build reads `body` as it is (no target latency rewrites its hold-backs).
  hls::Playlist* parsed = nullptr;
};

// The moment origin's answer is built at: the monotonic time (end tags held) and the wall
// clock (run ids, first-listed stamps).
struct BuildMoment {
  TimePoint now{};
  int64_t unix_ms = 0;
};

// What a build did that the cache logs and counts.
struct BuildNotes {
  bool restarted = false;    // a new live run started (CopyLineage::runs.run() names it)
  bool end_held = false;     // an end tag is held back from now on
  size_t windowed_from = 0;  // segments origin listed, when cut to a window; 0: not cut
  bool delta_built = false;
  // A media playlist's facts as origin wrote it (before any continuation): its source's health.
  std::optional<PlaylistFacts> origin_facts;
  std::vector<std::string> warnings;  // log lines (origin's fault; rate-limited by the caller)
};

// A version and what the copy's follow asks for next.
struct BuiltVersion {
  std::shared_ptr<const SourceVersion> version;
  // Low-latency playlists of an origin that can block: the blocking reload, in origin's
  // numbers, that brings the version after this one (next_part_to_follow).
  std::optional<BlockingTarget> follow_next;
};

class VersionBuilder {
 public:
  explicit VersionBuilder(const PlaylistTimings& timings) { set_limits(timings); }
  // playlists.max_bytes, max_segments, max_master_entries.
  void set_limits(const PlaylistTimings& timings);

  // The version to serve for origin's `answer` at `at`, continuing `lineage` (updated).
  // Errors: bad_source_playlist (malformed, or its window is), source_too_many_segments,
  // source_too_many_variants.
  core::Result<BuiltVersion> build(CopyLineage& lineage, const OriginAnswer& answer, BuildMoment at,
                                   BuildNotes& notes);

  // The delta update of `full` (fetched from `url`), memoised in `lineage` once per version;
  // `full` itself when nothing can be skipped or the update does not build.
  std::shared_ptr<const SourceVersion> delta_of(CopyLineage& lineage,
                                                const std::shared_ptr<const SourceVersion>& full,
                                                const std::string& url, BuildNotes& notes);

  // The first-listed stamps of a playlist nobody serves any more are forgotten.
  void forget(const std::string& playlist_key) { first_listed_.erase(playlist_key); }

  // Playlists parsed so far (origin's bodies and the builder's own copies of them).
  uint64_t parses() const { return parses_; }
  // One parse with the builder's limits, counted (an answer read before it is built hands it
  // on in OriginAnswer::parsed).
  hls::Result<hls::Playlist> parse(std::string_view text, const std::string& url);

 private:
  // Origin's `playlist` through the lineage's LiveRunTracker; the runs by line when its own
  // copy replaced `playlist`.
  std::optional<std::vector<std::pair<size_t, uint64_t>>> continue_live_run(
      CopyLineage& lineage, hls::Playlist& playlist, const OriginAnswer& answer, BuildMoment at,
      BuildNotes& notes);
  // playlists.max_segments: a longer live or EVENT playlist becomes a window of its newest
  // segments (the playlist it replaced goes to `replaced`); a longer VOD playlist or delta
  // update is refused (the error).
  std::optional<core::Error> limit_segments(SourceVersion& version, const std::string& url,
                                            std::optional<hls::Playlist>& replaced,
                                            BuildNotes& notes);
  std::optional<core::Error> limit_master_entries(const SourceVersion& version,
                                                  const std::string& url, BuildNotes& notes) const;
  // The facts of a media playlist, its rewrite plan and its first-listed stamps.
  void describe(SourceVersion& version, const OriginAnswer& answer,
                const std::vector<std::pair<size_t, uint64_t>>& runs_by_line, BuildMoment at);
  // Fills version.plan.chunk_first_listed from (and into) first_listed_[playlist_key].
  void stamp_first_listed(const std::string& playlist_key, SourceVersion& version, int64_t unix_s);

  size_t max_bytes_ = 0;
  size_t max_segments_ = 0;
  size_t max_master_entries_ = 0;
  uint64_t next_serial_ = 1;
  uint64_t parses_ = 0;
  // Per ordinary copy's key: when each chunk, by chunk hash, was first listed (unix seconds).
  std::unordered_map<std::string, std::unordered_map<uint64_t, int64_t>> first_listed_;
};

// The chunks `current` lists that `previous` did not (segments and maps, and the whole parts
// its preload hints name; parts once listed were hinted before): their targets on origin.
std::vector<std::string> new_chunk_targets(const SourceVersion& previous,
                                           const SourceVersion& current);

}  // namespace balancer
