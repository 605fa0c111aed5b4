#include "balancer/source_policy.h"

#include <algorithm>
#include <cmath>

namespace balancer {

const char* to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::master:
      return "master";
    case SourceKind::live:
      return "live";
    case SourceKind::vod:
      return "vod";
  }
  return "live";
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
}  // namespace

bool satisfies_blocking(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part) {
  uint64_t next = next_sequence(media);
  if (msn < next) return true;
  if (msn > next || !part) return false;
  uint64_t parts_of_next = 0;
  for (const auto& p : media.parts) {
    if (p.segment_index == media.segments.size()) ++parts_of_next;
  }
  return *part < parts_of_next;
}

bool directives_too_far(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part) {
  if (msn > next_sequence(media) + 2) return true;
  if (!part) return false;
  uint64_t limit = 64;
  if (media.part_target && *media.part_target > 0 && media.target_duration) {
    double per_segment =
        std::ceil(static_cast<double>(*media.target_duration) / *media.part_target);
    limit = static_cast<uint64_t>(std::clamp(3 * per_segment, 3.0, 1000.0));
  }
  return *part >= limit;
}

}  // namespace balancer
