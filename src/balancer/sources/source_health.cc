#include "balancer/sources/source_health.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "core/enum_names.h"

namespace balancer {
namespace {

using Millis = std::chrono::milliseconds;

// A playlist whose target duration is not known yet is given the spec's common one.
constexpr Millis kAssumedTargetDuration{6000};
// Failed fetches in a row that make a fault: one refused connection can be a restart of a
// listener; two, a quarter second apart (playlists.error_hold_ms), are a dead source.
constexpr int kFailuresForFault = 2;
// The least pause in a watch: above playlists.fetch_timeout_ms's default (3 s) with room for
// the error hold and a refresh.
constexpr Millis kWatchPause{10000};

Millis times(Millis d, double factor) {
  return Millis(static_cast<int64_t>(std::llround(static_cast<double>(d.count()) * factor)));
}

}  // namespace

const char* to_string(SourceFault fault) {
  static constexpr const char* kNames[] = {
      "none",      "unreachable", "timeout", "origin_error", "missing",  "bad_playlist", "stalled",
      "went_back", "skipped",     "ended",   "chunk_errors", "operator", "failback"};
  static_assert(std::size(kNames) == core::enum_count(SourceFault::failback));
  return core::enum_name(fault, kNames);
}

PlaylistFacts facts_of(const hls::MediaInfo& media) {
  PlaylistFacts facts;
  facts.has_segments = !media.segments.empty();
  if (facts.has_segments) {
    facts.first_msn = media.segments.front().sequence;
    facts.last_msn = media.segments.back().sequence;
  }
  for (const hls::Part& part : media.parts) {
    if (part.segment_index == media.segments.size()) ++facts.trailing_parts;
  }
  facts.endlist = media.endlist;
  facts.target_duration = Millis(static_cast<int64_t>(media.target_duration.value_or(0)) * 1000);
  if (media.part_target && *media.part_target > 0)
    facts.part_target = Millis(static_cast<int64_t>(std::llround(*media.part_target * 1000)));
  return facts;
}

void SourceHealth::landed(const PlaylistFacts& facts, const FailoverPolicy& policy, TimePoint now) {
  if (last_event_ && now - *last_event_ > idle_after()) {
    // The watch resumes: the timeline starts again here, and so does the healthy spell.
    last_.reset();
    seen_ = SourceFault::none;
    failures_in_row_ = 0;
    healthy_since_ = now;
  }
  last_event_ = now;
  const bool was_faulty = fault(policy, now) != SourceFault::none;
  take(facts, now);
  if (was_faulty && fault(policy, now) == SourceFault::none) healthy_since_ = now;
}

std::chrono::milliseconds SourceHealth::idle_after() const {
  const Millis target =
      last_ && last_->target_duration.count() > 0 ? last_->target_duration : kAssumedTargetDuration;
  return std::max(kWatchPause, times(target, 3));
}

void SourceHealth::take(const PlaylistFacts& facts, TimePoint now) {
  failures_in_row_ = 0;
  if (seen_ == SourceFault::unreachable || seen_ == SourceFault::timeout ||
      seen_ == SourceFault::origin_error || seen_ == SourceFault::missing ||
      seen_ == SourceFault::bad_playlist) {
    seen_ = SourceFault::none;  // answering again; whether it moves is the stall rule's
  }
  if (facts.endlist) {
    seen_ = SourceFault::ended;
  } else if (seen_ == SourceFault::ended) {
    seen_ = SourceFault::none;
  }
  if (!last_) {
    last_ = facts;
    progress_at_ = now;
    return;
  }
  const PlaylistFacts& before = *last_;
  if (facts.has_segments && before.has_segments) {
    if (facts.last_msn < before.last_msn) {
      seen_ = SourceFault::went_back;
      progress_at_ = now;  // a new timeline: its progress counts from here
    } else if (facts.first_msn > before.last_msn + 1) {
      seen_ = SourceFault::skipped;
      progress_at_ = now;
    } else if (facts.last_msn > before.last_msn || (facts.last_msn == before.last_msn &&
                                                    facts.trailing_parts > before.trailing_parts)) {
      progress_at_ = now;
      // Normal progress after a restart or a gap: the source is on a timeline again.
      if (seen_ == SourceFault::went_back || seen_ == SourceFault::skipped)
        seen_ = SourceFault::none;
    }
  } else if (facts.has_segments != before.has_segments ||
             facts.trailing_parts > before.trailing_parts) {
    progress_at_ = now;
  }
  last_ = facts;
}

void SourceHealth::failed(SourceFault fault, TimePoint now) {
  if (last_event_ && now - *last_event_ > idle_after()) failures_in_row_ = 0;
  last_event_ = now;
  if (++failures_in_row_ >= kFailuresForFault) seen_ = fault;
}

SourceFault SourceHealth::fault(const FailoverPolicy& policy, TimePoint now, bool asking) const {
  if (last_event_ && now - *last_event_ > idle_after()) return SourceFault::none;  // paused
  if (seen_ != SourceFault::none) return seen_;
  Millis target =
      last_ && last_->target_duration.count() > 0 ? last_->target_duration : kAssumedTargetDuration;
  Millis bound = times(target, policy.stall_target_durations);
  if (last_ && last_->part_target.count() > 0)
    bound = std::min(bound, times(last_->part_target, policy.stall_part_targets));
  // Seen in the browser run: a rendition nobody played any more, watched on both sources until
  // a moment apart, read as the first source's stall 3 s on and moved the channel.
  const bool asked = asking || (last_event_ && now - *last_event_ <= bound);
  if (asked && now - progress_at_ > bound) return SourceFault::stalled;
  return SourceFault::none;
}

void OriginChunkHealth::reported(const std::string& origin, uint64_t answered, uint64_t failed,
                                 TimePoint now) {
  if (answered == 0 && failed == 0) return;
  Origin& state = origins_[origin];
  if (answered > 0) {
    // A poll's counts come without their order: an origin that answers any is not in a fault
    // a switch would mend (some of its chunks fail, or one node's path to it does).
    if (failing(origin, now)) state.fault_ended = now;
    state.failed_since_answer = 0;
    state.faulted = false;
    return;
  }
  state.failed_since_answer += failed;
  state.last_failure = now;
  if (state.failed_since_answer >= kFailuresForFault) state.faulted = true;
}

bool OriginChunkHealth::failing(const std::string& origin, TimePoint now) const {
  auto found = origins_.find(origin);
  return found != origins_.end() && found->second.faulted &&
         now - found->second.last_failure <= kChunkFaultHold;
}

std::optional<OriginChunkHealth::TimePoint> OriginChunkHealth::fault_ended(
    const std::string& origin, TimePoint now) const {
  auto found = origins_.find(origin);
  if (found == origins_.end()) return std::nullopt;
  const Origin& state = found->second;
  if (state.faulted) return std::min(state.last_failure + kChunkFaultHold, now);
  return state.fault_ended;
}

std::optional<SourceSwitch> choose_source(const std::vector<SourceState>& sources, size_t active,
                                          const FailoverPolicy& policy, SourceHealth::TimePoint now,
                                          std::optional<size_t> forced) {
  if (forced && *forced < sources.size() && *forced != active)
    return SourceSwitch{*forced, SourceFault::operator_choice};
  auto healthy = [&](size_t i) {
    return sources[i].known && sources[i].fault == SourceFault::none;
  };
  if (active >= sources.size()) return std::nullopt;
  if (sources[active].fault != SourceFault::none) {
    for (size_t i = 0; i < sources.size(); ++i) {
      if (i != active && healthy(i)) return SourceSwitch{i, sources[active].fault};
    }
    return std::nullopt;  // nowhere better: stay (its last copy is served while it may be)
  }
  // A source the operator chose stays while it is healthy: no failback from it.
  if (forced || !policy.failback) return std::nullopt;
  for (size_t i = 0; i < active; ++i) {
    if (healthy(i) && now - sources[i].healthy_since >= policy.failback_after)
      return SourceSwitch{i, SourceFault::failback};
  }
  return std::nullopt;
}

namespace {
// "/a/b/master.m3u8?x" → "/a/b/".
std::string_view directory_of(std::string_view target) {
  target = target.substr(0, target.find('?'));
  return target.substr(0, target.rfind('/') + 1);
}
}  // namespace

std::optional<std::vector<std::string>> matched_targets(const std::vector<std::string>& sources,
                                                        std::string_view target) {
  std::vector<std::string> out;
  out.reserve(sources.size());
  for (const std::string& source : sources) {
    if (source != target) continue;
    for (const std::string& each : sources) out.push_back(each);
    return out;
  }
  for (const std::string& source : sources) {
    const std::string_view directory = directory_of(source);
    if (directory.empty() || !target.starts_with(directory)) continue;
    const std::string_view name = target.substr(directory.size());
    for (const std::string& each : sources)
      out.push_back(std::string(directory_of(each)) + std::string(name));
    return out;
  }
  return std::nullopt;
}

}  // namespace balancer
