#include "balancer/sources/source_policy.h"

#include <algorithm>
#include <cmath>

#include "core/enum_names.h"

namespace balancer {

const char* to_string(SourceKind kind) {
  static constexpr const char* kKindNames[] = {"master", "live", "vod"};
  static_assert(std::size(kKindNames) == core::enum_count(SourceKind::vod));
  return core::enum_name(kind, kKindNames);
}

SourceKind classify(const hls::Playlist& playlist) {
  if (playlist.kind == hls::PlaylistKind::master) return SourceKind::master;
  if (playlist.media.endlist || playlist.media.type == hls::PlaylistType::vod)
    return SourceKind::vod;
  return SourceKind::live;
}

bool is_fresh(SourceKind kind, Millis age, const PlaylistTimings& timings) {
  switch (kind) {
    case SourceKind::master:
      return age < timings.master_ttl;
    case SourceKind::vod:
      return age < timings.vod_ttl;
    case SourceKind::live:
      return age <= timings.live_max_lag;
  }
  return false;
}

bool may_serve_stale(SourceKind kind, Millis age_of_last_good, Millis target_duration,
                     const PlaylistTimings& timings) {
  if (kind == SourceKind::master) return age_of_last_good <= timings.master_stale;
  return age_of_last_good <= std::max(target_duration, timings.media_stale);
}

Millis next_round_trip(Millis estimate, Millis sample) {
  if (sample >= estimate) return sample;
  return estimate - (estimate - sample) / 4;
}

Millis refresh_interval(Millis round_trip, const PlaylistTimings& timings) {
  // With no lag allowed every request fetches anyway: refreshing faster gains nothing.
  if (timings.live_max_lag.count() <= 0) return timings.live_refresh;
  const Millis budget = timings.live_max_lag - round_trip - kRefreshMargin;
  // Rounded up: no more than kMaxRefreshesInFlight answers are ever due at once.
  const auto n = static_cast<Millis::rep>(kMaxRefreshesInFlight);
  const Millis spread{(round_trip.count() + n - 1) / n};
  return std::min(timings.live_refresh, std::max({budget, spread, Millis(10)}));
}

bool slow_lane_fetch(Millis round_trip, bool sent_ahead, bool held_at_origin) {
  return !held_at_origin && (sent_ahead || round_trip >= kSlowRoundTrip);
}

Millis target_duration_of(const hls::Playlist& playlist) {
  if (!playlist.media.target_duration) return Millis(6000);
  uint64_t seconds = std::clamp<uint64_t>(*playlist.media.target_duration, 1, 3600);
  return Millis(seconds * 1000);
}

namespace {

// The sequence number of the first segment not yet complete (skipped ones count).
uint64_t next_sequence(const hls::MediaInfo& media) {
  if (!media.segments.empty()) return media.segments.back().sequence + 1;
  return media.media_sequence + media.skipped_segments.value_or(0);
}

// Parts listed for segment `msn` (the one in progress: msn == next_sequence), and whether
// the playlist lists any of that segment's parts at all.
uint64_t parts_listed(const hls::MediaInfo& media, uint64_t msn) {
  const uint64_t first = next_sequence(media) - media.segments.size();
  if (msn < first) return 0;
  const size_t index = static_cast<size_t>(msn - first);
  uint64_t count = 0;
  for (const auto& p : media.parts) {
    if (p.segment_index == index) ++count;
  }
  return count;
}

// Parts a segment is counted as, past the last listed part: ceil(target / PART-TARGET).
uint64_t parts_per_segment(const hls::MediaInfo& media) {
  if (!media.part_target || *media.part_target <= 0 || !media.target_duration) return 1;
  return static_cast<uint64_t>(std::clamp(
      std::ceil(static_cast<double>(*media.target_duration) / *media.part_target), 1.0, 1000.0));
}

}  // namespace

BlockingTarget normalize_blocking(const hls::MediaInfo& media, uint64_t msn,
                                  std::optional<uint64_t> part) {
  if (!part || msn >= next_sequence(media)) return {msn, part};
  // Segment `msn` is complete: its final part is known if its parts are still listed.
  const uint64_t listed = parts_listed(media, msn);
  if (listed > 0 && *part >= listed) return {msn + 1, 0};
  return {msn, part};
}

uint64_t advance_part_limit(const hls::MediaInfo& media) {
  if (media.part_target && *media.part_target > 0 && *media.part_target < 1.0) {
    return static_cast<uint64_t>(std::clamp(std::floor(3.0 / *media.part_target), 3.0, 1000.0));
  }
  return 3;
}

bool satisfies_blocking(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part) {
  if (media.endlist) return true;
  const BlockingTarget target = normalize_blocking(media, msn, part);
  const uint64_t next = next_sequence(media);
  if (target.msn < next) return true;
  if (target.msn > next || !target.part) return false;
  return *target.part < parts_listed(media, next);
}

bool directives_too_far(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part) {
  if (media.endlist) return false;
  const uint64_t next = next_sequence(media);
  // More than two past the last segment (next - 1).
  if (msn > next + 1) return true;
  if (!part) return false;
  const BlockingTarget target = normalize_blocking(media, msn, part);
  if (target.msn < next) return false;
  // The last part listed: in the segment in progress, else the last of the last segment.
  uint64_t last_msn = next, last_index = 0;
  if (const uint64_t in_progress = parts_listed(media, next); in_progress > 0) {
    last_index = in_progress - 1;
  } else if (const uint64_t of_last = parts_listed(media, next - 1); next > 0 && of_last > 0) {
    last_msn = next - 1;
    last_index = of_last - 1;
  } else {
    // No part listed at all: count from the first part of the segment in progress.
    return *target.part >
           advance_part_limit(media) + (target.msn - next) * parts_per_segment(media);
  }
  const uint64_t ahead = (target.msn - last_msn) * parts_per_segment(media) + *target.part;
  return ahead > last_index + advance_part_limit(media);
}

Millis blocking_wait_limit(Millis target_duration) {
  return 3 * std::max(target_duration, Millis(1000));
}

std::optional<BlockingTarget> next_part_to_follow(const hls::MediaInfo& media) {
  if (!media.server_control.can_block_reload || !media.part_target || *media.part_target <= 0 ||
      media.endlist) {
    return std::nullopt;
  }
  const uint64_t next = next_sequence(media);
  return BlockingTarget{next, parts_listed(media, next)};
}

}  // namespace balancer
