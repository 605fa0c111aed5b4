#include "balancer/sources/live_restart.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/url.h"
#include "hls/program_date.h"
#include "hls/window.h"

namespace balancer {
namespace {

// Previous run's segments kept ahead of a new run at most (the window is the
// previous copy's segment count, capped).
constexpr size_t kMaxTail = 32;
constexpr std::string_view kDiscontinuityLine = "#EXT-X-DISCONTINUITY\n";
// A new source's segment in progress may begin this much before the served ones end (encoders
// on one clock cut at the same frame; their program dates round to the millisecond).
constexpr int64_t kInProgressSlackMs = 50;

// Lines as the parser numbers them (LF, CRLF or a lone CR end a line).
std::vector<std::string_view> split_lines(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos;
    while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
    lines.push_back(text.substr(pos, end - pos));
    pos = end;
    if (pos < text.size())
      pos += (text[pos] == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n') ? 2 : 1;
  }
  return lines;
}

bool is_tag(std::string_view line, std::string_view name) {
  if (!line.starts_with(name)) return false;
  return line.size() == name.size() || line[name.size()] == ':';
}

// Tags about the whole playlist: not a segment's lines (hls::continued writes them first).
bool is_playlist_tag(std::string_view line) {
  const std::string_view tag = hls::tag_name(line);
  return hls::is_playlist_level(tag) || hls::is_window_rewritten(tag) || tag == "EXT-X-ENDLIST";
}

uint64_t shifted(uint64_t value, int64_t offset) {
  int64_t v = static_cast<int64_t>(value) + offset;
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

struct Layout {
  std::vector<ServedSegment> segments;  // origin numbering; run 0
  bool trailing_parts = false;          // parts follow the last segment (a segment in progress)
  std::string in_force_at_end;          // the MAP/KEY lines in force after the last segment
  // The segment in progress: its lines (tags and parts; no hint or report), its first part's
  // URI, its parts' seconds, whether it begins a discontinuity, its program date.
  std::string trailing_lines;
  std::string first_part_uri;
  double trailing_seconds = 0;
  bool trailing_discontinuity = false;
  std::optional<int64_t> trailing_date_ms;
  uint64_t trailing_number = 0;  // its discontinuity number (origin numbering)
};

// The value of a quoted URI attribute in a tag line ("" when absent).
std::string_view quoted_uri(std::string_view line) {
  const size_t at = line.find("URI=\"");
  if (at == std::string_view::npos) return {};
  const size_t from = at + 5;
  const size_t end = line.find('"', from);
  return end == std::string_view::npos ? std::string_view{} : line.substr(from, end - from);
}

// Where each segment starts and ends on the wall clock (ms): from its own program date, else
// from where the one before ended.
void date_segments(const hls::MediaInfo& media, std::vector<ServedSegment>& segments) {
  std::optional<int64_t> next_start;
  for (size_t i = 0; i < segments.size() && i < media.segments.size(); ++i) {
    const hls::Segment& segment = media.segments[i];
    std::optional<int64_t> start = next_start;
    if (!segment.program_date_time.empty()) {
      if (auto dated = hls::parse_program_date_ms(segment.program_date_time)) start = dated;
    }
    if (segment.discontinuity && segment.program_date_time.empty()) start.reset();
    next_start.reset();
    if (start && segment.duration) {
      segments[i].start_ms = start;
      segments[i].end_ms = *start + static_cast<int64_t>(*segment.duration * 1000);
      next_start = segments[i].end_ms;
    }
  }
}

// Splits origin's copy into one block of lines per segment (with the MAP/KEY lines in force
// before it; without the tags about the whole playlist), as the tracker keeps the segments it
// serves. With `absolute_text`, every URI is written resolved (the lines view that string).
Layout lay_out(const hls::Playlist& origin, std::string* absolute_text) {
  Layout out;
  std::string_view text = origin.tmpl.source();
  if (absolute_text != nullptr) {
    *absolute_text = hls::render(origin.tmpl, [](const hls::UriSlot& slot) { return slot.uri; });
    text = *absolute_text;
  }
  std::vector<std::string_view> lines = split_lines(text);
  const hls::MediaInfo& media = origin.media;
  std::string_view map_line, key_line;
  size_t next_line = 0;  // index into lines
  uint64_t number = media.discontinuity_sequence;
  auto take = [&](size_t end, std::string& block) {
    for (; next_line < end && next_line < lines.size(); ++next_line) {
      std::string_view line = lines[next_line];
      if (is_playlist_tag(line)) continue;
      block.append(line).push_back('\n');
      if (is_tag(line, "#EXT-X-MAP")) map_line = line;
      if (is_tag(line, "#EXT-X-KEY")) key_line = line;
    }
  };
  for (const hls::Segment& segment : media.segments) {
    ServedSegment s;
    if (!map_line.empty()) s.in_force.append(map_line).push_back('\n');
    if (!key_line.empty()) s.in_force.append(key_line).push_back('\n');
    take(segment.line, s.lines);  // segment.line is 1-based: lines[line - 1] is its URI
    s.msn = segment.sequence;
    s.tagged = segment.discontinuity;
    if (segment.discontinuity) ++number;
    s.number = number;
    out.segments.push_back(std::move(s));
  }
  date_segments(media, out.segments);
  for (; next_line < lines.size(); ++next_line) {
    const std::string_view line = lines[next_line];
    if (line.empty() || is_playlist_tag(line) || is_tag(line, "#EXT-X-PRELOAD-HINT") ||
        is_tag(line, "#EXT-X-RENDITION-REPORT") || !line.starts_with('#')) {
      continue;
    }
    if (is_tag(line, "#EXT-X-PART")) {
      out.trailing_parts = true;
      if (out.first_part_uri.empty()) out.first_part_uri = quoted_uri(line);
    }
    if (is_tag(line, "#EXT-X-DISCONTINUITY")) out.trailing_discontinuity = true;
    if (is_tag(line, "#EXT-X-PROGRAM-DATE-TIME")) {
      out.trailing_date_ms = hls::parse_program_date_ms(line.substr(line.find(':') + 1));
    }
    out.trailing_lines.append(line).push_back('\n');
  }
  for (const hls::Part& part : media.parts) {
    if (part.segment_index == media.segments.size())
      out.trailing_seconds += part.duration.value_or(0);
  }
  out.trailing_number = number + (out.trailing_discontinuity ? 1 : 0);
  if (!map_line.empty()) out.in_force_at_end.append(map_line).push_back('\n');
  if (!key_line.empty()) out.in_force_at_end.append(key_line).push_back('\n');
  return out;
}

// The previous run's key must not apply to the new run's clear segments: `keep`
// segments of the previous run lead `listed`.
void clear_key_after_tail(std::vector<ServedSegment>& listed, size_t keep) {
  bool key_in_tail = false;
  for (size_t i = 0; i < keep; ++i) {
    key_in_tail = key_in_tail || listed[i].in_force.find("#EXT-X-KEY") != std::string::npos ||
                  listed[i].lines.find("#EXT-X-KEY") != std::string::npos;
  }
  std::string& block = listed[keep].lines;
  if (key_in_tail && block.find("#EXT-X-KEY") == std::string::npos) {
    size_t after_tag = block.starts_with(kDiscontinuityLine) ? kDiscontinuityLine.size() : 0;
    block.insert(after_tag, "#EXT-X-KEY:METHOD=NONE\n");
  }
}

// The map and key in force before `segment` (declared above segments left out) are written
// into its own block, unless it declares its own.
void restate_in_force(ServedSegment& segment) {
  std::string restated;
  for (std::string_view line : split_lines(segment.in_force)) {
    const bool map = is_tag(line, "#EXT-X-MAP");
    if (segment.lines.find(map ? "#EXT-X-MAP" : "#EXT-X-KEY") != std::string::npos) continue;
    restated.append(line).push_back('\n');
  }
  segment.lines.insert(0, restated);
}

}  // namespace

bool LiveRunTracker::end_due(const LiveEndPolicy& policy, TimePoint now) const {
  return holding_end_ && ended_since_ && now - *ended_since_ >= policy.end_confirm;
}

std::optional<ServedListing> LiveRunTracker::next(const hls::Playlist& origin,
                                                  const LiveEndPolicy& policy, TimePoint now,
                                                  int64_t unix_ms) {
  const hls::MediaInfo& media = origin.media;
  const bool was_holding = holding_end_;
  holding_end_ = false;
  if (origin.kind != hls::PlaylistKind::media || media.is_delta_update()) return std::nullopt;
  if (policy.finished || policy.mode == LiveMode::vod || media.type == hls::PlaylistType::vod) {
    // The operator's word (or a VOD playlist): origin's copies as they are, from a clean state.
    *this = LiveRunTracker{};
    return std::nullopt;
  }
  if (!media.endlist) seen_live_ = true;
  if (policy.mode == LiveMode::automatic && !seen_live_)
    return std::nullopt;  // VOD as far as we know

  std::string absolute_text;
  Layout layout = lay_out(origin, absolute_uris_ ? &absolute_text : nullptr);
  std::vector<ServedSegment>& segments = layout.segments;
  const OriginChange change =
      follow_origin(origin, segments, layout.trailing_parts, policy, now, unix_ms, was_holding);
  const std::optional<uint64_t>& first_origin_msn = change.first_listed;
  if (!segments.empty()) previous_target_s_ = media.target_duration.value_or(0);
  // A channel configured live names its first run too: a balancer restarted
  // between two runs then never links a name a node may hold from the run before.
  if (run_ == 0 && policy.mode == LiveMode::live && !segments.empty()) {
    run_ = static_cast<uint64_t>(std::max<int64_t>(unix_ms, 1));
  }

  number_for_run(segments);
  const Listing listing = list_segments(segments, first_origin_msn, change.older_copy);
  // The segment in progress of the copy served (`lead`: the lines the copy writes before its
  // parts), for close_in_progress() when its source stops.
  auto remember_in_progress = [&](std::string_view lead, uint64_t run) {
    in_progress_.reset();
    if (!layout.trailing_parts || layout.first_part_uri.empty() || switch_pending_) return;
    ServedSegment segment;
    segment.msn = shifted(media.media_sequence + media.segments.size(), msn_offset_);
    segment.number = shifted(layout.trailing_number, number_offset_);
    segment.tagged = layout.trailing_discontinuity || lead.starts_with(kDiscontinuityLine);
    segment.in_force = layout.in_force_at_end;
    segment.lines.append(lead).append(layout.trailing_lines);
    segment.run = run;
    segment.start_ms = layout.trailing_date_ms;
    if (!segment.start_ms && !listing.segments.empty())
      segment.start_ms = listing.segments.back().end_ms;
    if (segment.start_ms) {
      segment.end_ms = *segment.start_ms + static_cast<int64_t>(layout.trailing_seconds * 1000);
    }
    in_progress_ = std::move(segment);
    in_progress_seconds_ = layout.trailing_seconds;
    in_progress_uri_ = layout.first_part_uri;
  };
  if (run_ == 0 && !holding_end_ && listing.kept == 0) {
    remember_in_progress("", run_);
    return std::nullopt;  // nothing to change: origin's copy
  }

  if (parts_lead_ && listing.kept < listing.segments.size()) {
    parts_lead_ = false;  // its first segment is listed
  }
  ServedListing served = plan_copy(media, listing, media.segments.size() - segments.size());
  if (parts_lead_ && layout.trailing_parts) {
    // The new run's parts follow the served segments: its discontinuity, map and key first.
    served.copy.before_trailing = std::string(unmarked_boundary_ ? "" : kDiscontinuityLine);
    served.copy.before_trailing += layout.in_force_at_end;
    served.parts_run = run_;
  }
  if (served.copy.trailing) remember_in_progress(served.copy.before_trailing, run_);
  return served;
}

void LiveRunTracker::close_as_channel(const InProgress& closing) {
  ServedSegment& last = served_.back();
  if (last.closed_early && last.msn == closing.msn) {
    // Another rendition listed more of it: the same end for every rendition's choice.
    if (last.end_ms) last.end_ms = std::max(*last.end_ms, closing.end_ms);
    return;
  }
  if (closing.msn != last.msn + 1 || last.lines.size() < 2) return;
  // Another rendition listed parts of it, this one none yet: closed with none, all gap; its URI
  // line is the segment before's (never loaded).
  std::string_view before(last.lines);
  before.remove_suffix(1);
  const std::string uri(before.substr(before.rfind('\n') + 1));
  ServedSegment closed;
  closed.msn = closing.msn;
  closed.number = last.number;
  closed.in_force = last.in_force;
  closed.run = last.run;
  closed.start_ms = closing.start_ms;
  closed.end_ms = closing.end_ms;
  closed.lines = "#EXT-X-PROGRAM-DATE-TIME:" + hls::format_program_date_ms(closing.start_ms) + "\n";
  push_closed(std::move(closed), static_cast<double>(closing.end_ms - closing.start_ms) / 1000.0,
              uri);
}

void LiveRunTracker::close_in_progress() {
  if (!in_progress_) return;
  ServedSegment closed = std::move(*in_progress_);
  in_progress_.reset();
  if (served_.empty() || closed.msn != served_.back().msn + 1) return;  // not the next number
  push_closed(std::move(closed), in_progress_seconds_, in_progress_uri_);
}

void LiveRunTracker::push_closed(ServedSegment closed, double seconds, std::string_view uri) {
  char extinf[48];
  std::snprintf(extinf, sizeof extinf, "#EXTINF:%.5f,\n", seconds);
  closed.lines.append("#EXT-X-GAP\n").append(extinf).append(uri).push_back('\n');
  closed.closed_early = true;
  served_.push_back(std::move(closed));
  if (served_.size() > kMaxTail) served_.erase(served_.begin());
}

// What the copy lists: `listing`, origin's first `left_out` segments left out.
ServedListing LiveRunTracker::plan_copy(const hls::MediaInfo& media, const Listing& listing,
                                        size_t left_out) const {
  const std::vector<ServedSegment>& listed = listing.segments;
  ServedListing served;
  hls::Continuation& copy = served.copy;
  copy.media_sequence =
      listed.empty() ? shifted(media.media_sequence, msn_offset_) : listed.front().msn;
  copy.discontinuity_sequence = listed.empty()
                                    ? shifted(media.discontinuity_sequence, number_offset_)
                                    : listed.front().number - (listed.front().tagged ? 1 : 0);
  if (listing.kept > 0 && tail_target_s_ > media.target_duration.value_or(0)) {
    copy.target_duration = tail_target_s_;
  }
  copy.endlist = media.endlist && !holding_end_;
  if (listing.kept == 0) {
    // Origin's segments from the first listed on, as origin wrote them.
    copy.first_segment = left_out;
    if (!listed.empty()) copy.before_segments = listed.front().in_force;
  } else {
    // Segments served before lead (a previous run's, or the previous listing): every segment's
    // lines are the tracker's (a new run's first one with what it restates).
    copy.first_segment = media.segments.size();
    for (const ServedSegment& s : listed) copy.carried.push_back(s.lines);
    copy.carried.front().insert(0, listed.front().in_force);
  }
  // A new source that is behind: none of its parts either (they would follow the served
  // segments as if they were theirs).
  copy.trailing = !switch_pending_;
  copy.report_msn_offset = msn_offset_;
  served.runs.reserve(listed.size());
  for (const ServedSegment& s : listed) served.runs.push_back(s.run);
  return served;
}

// What origin's copy changed since the previous one, and where the served copy's segments of
// it begin: a pending switch taken (or waited for), a restart's new run started, the segments
// before a switch's first left out.
LiveRunTracker::OriginChange LiveRunTracker::follow_origin(
    const hls::Playlist& origin, std::vector<ServedSegment>& segments, bool parts_in_progress,
    const LiveEndPolicy& policy, TimePoint now, int64_t unix_ms, bool was_holding) {
  std::vector<OriginSegment> seen;
  seen.reserve(origin.media.segments.size());
  for (size_t i = 0; i < origin.media.segments.size(); ++i) {
    const hls::Segment& segment = origin.media.segments[i];
    // `segments` is origin's copy laid out, one for one, dated where origin says.
    const bool laid_out = i < segments.size() && segments[i].msn == segment.sequence;
    seen.push_back({segment.sequence, origin.tmpl.slots()[segment.uri_slot].uri,
                    laid_out ? segments[i].start_ms : std::nullopt});
  }
  if (switch_pending_ && served_.empty()) switch_pending_ = false;  // nothing served to follow
  const bool switching = switch_pending_;
  if (switching) {
    // The other source's numbers and end tags say nothing about this one's.
    origin_last_.reset();
    origin_segments_.clear();
    ended_since_.reset();
  }
  OriginChange change = compare_with_previous(seen);
  if (change.older_copy) {
    holding_end_ = was_holding;
  } else {
    remember_origin_copy(std::move(seen), origin.media.endlist, policy, now);
  }
  if (change.restarted) listed_from_.reset();
  if (switching) {
    // Behind by more than one and a half target durations: not on the shared clock.
    const int64_t far_behind_ms =
        static_cast<int64_t>(origin.media.target_duration.value_or(6)) * 1500;
    if (take_switch(segments, parts_in_progress, far_behind_ms, unix_ms)) {
      switch_pending_ = false;
    } else {
      segments.clear();  // nothing past what was served yet: that stays listed
    }
  } else if (listed_from_) {
    std::erase_if(segments, [&](const ServedSegment& s) { return s.msn < *listed_from_; });
  }
  if (!segments.empty()) change.first_listed = segments.front().msn;
  if (!switching && change.restarted && !served_.empty() && !segments.empty()) {
    ++restarts_;
    start_new_run(segments.front(), unix_ms);
  }
  return change;
}

// A restart: a number now names another URI or another moment (its program date moved: an
// encoder numbering from 0 again while its first run's names are still listed), or the
// numbering went back after an end tag or to numbers not seen under the same names. Numbers
// that went back to the same names and dates without an end tag are an older copy (a second
// origin server of the same encoder lagging behind): the previous listing stays.
LiveRunTracker::OriginChange LiveRunTracker::compare_with_previous(
    const std::vector<OriginSegment>& seen) const {
  // Copies of one encoder date a segment alike; a restarted one dates it anew.
  constexpr int64_t kRedatedMs = 500;
  OriginChange change;
  if (origin_last_ && !seen.empty()) {
    bool renamed = false, same_names = false;
    for (size_t i = 0, j = 0; i < seen.size(); ++i) {
      while (j < origin_segments_.size() && origin_segments_[j].msn < seen[i].msn) ++j;
      if (j == origin_segments_.size() || origin_segments_[j].msn != seen[i].msn) continue;
      const OriginSegment& before = origin_segments_[j];
      const bool redated = before.start_ms && seen[i].start_ms &&
                           std::abs(*before.start_ms - *seen[i].start_ms) > kRedatedMs;
      (before.uri == seen[i].uri && !redated ? same_names : renamed) = true;
    }
    const bool went_back = seen.back().msn < *origin_last_;
    change.restarted = renamed || (went_back && (ended_since_.has_value() || !same_names));
    change.older_copy = went_back && !change.restarted;
  }
  return change;
}

// Origin's copy as the previous one for the next comparison, and how long its end tag has lasted.
void LiveRunTracker::remember_origin_copy(std::vector<OriginSegment> seen, bool endlist,
                                          const LiveEndPolicy& policy, TimePoint now) {
  if (!seen.empty()) {
    origin_last_ = seen.back().msn;
    origin_segments_ = std::move(seen);
  }
  if (endlist) {
    if (!ended_since_) ended_since_ = now;
    holding_end_ = now - *ended_since_ < policy.end_confirm;
  } else {
    ended_since_.reset();
  }
}

// `first` is the new run's first segment in origin's numbering.
void LiveRunTracker::start_new_run(const ServedSegment& first, int64_t unix_ms) {
  close_in_progress();
  run_ = std::max<uint64_t>(run_ + 1, static_cast<uint64_t>(std::max<int64_t>(unix_ms, 1)));
  const ServedSegment& last = served_.back();
  msn_offset_ = static_cast<int64_t>(last.msn + 1) - static_cast<int64_t>(first.msn);
  // The new run's first segment is one discontinuity after the previous run's last one.
  number_offset_ = static_cast<int64_t>(last.number + 1) - static_cast<int64_t>(first.number);
  tail_window_ = std::min(served_.size(), kMaxTail);
  tail_.assign(served_.end() - static_cast<std::ptrdiff_t>(tail_window_), served_.end());
  boundary_ = first.msn;
  tail_target_s_ = previous_target_s_;
  unmarked_boundary_ = false;
  parts_lead_ = false;
}

bool LiveRunTracker::take_switch(std::vector<ServedSegment>& segments, bool parts_in_progress,
                                 int64_t far_behind_ms, int64_t unix_ms) {
  if (segments.empty()) return false;  // nothing to number from
  close_in_progress();
  if (channel_in_progress_ && !served_.empty()) close_as_channel(*channel_in_progress_);
  channel_in_progress_.reset();
  const ServedSegment& last = served_.back();
  const std::optional<int64_t>& served_end = last.end_ms;
  // Where the new source begins: the first of its complete segments that lies mostly after the
  // last one served, else its segment in progress (its parts) when that begins where the served
  // ones end; without program dates, its segment in progress, else its newest segment.
  size_t first = parts_in_progress ? segments.size() : segments.size() - 1;
  if (served_end && segments.back().end_ms) {
    first = segments.size() + 1;  // none yet: it is behind
    for (size_t i = 0; i < segments.size(); ++i) {
      const ServedSegment& s = segments[i];
      if (s.start_ms && s.end_ms && *s.start_ms + (*s.end_ms - *s.start_ms) / 2 > *served_end) {
        first = i;
        break;
      }
    }
    // After a segment closed early (mid-segment), the new source's segment in progress takes
    // over when it began less than half a segment before the served media ends, else its next
    // one: what plays twice or is skipped is at most half a segment (a player that never
    // catches up, VHS, stays that much further behind after a repeat).
    const int64_t slack_ms = last.closed_early && segments.back().start_ms
                                 ? (*segments.back().end_ms - *segments.back().start_ms) / 2
                                 : kInProgressSlackMs;
    if (first > segments.size() && parts_in_progress &&
        *segments.back().end_ms + slack_ms >= *served_end) {
      first = segments.size();
    }
    // Far behind (an encoder that stalled and resumed late, no longer on the shared clock):
    // waiting for it to catch up would stall every viewer that long; it goes on from its
    // newest media, as a source without program dates does.
    if (first > segments.size() && *served_end - *segments.back().end_ms > far_behind_ms) {
      first = parts_in_progress ? segments.size() : segments.size() - 1;
    }
    if (first > segments.size()) return false;
  }
  ++switches_;
  if (first == segments.size()) {
    // Its segment in progress is the new run's first: numbered after its last complete one.
    ServedSegment next;
    next.msn = segments.back().msn + 1;
    next.number = segments.back().number;
    segments.clear();
    listed_from_ = next.msn;
    start_new_run(next, unix_ms);
    parts_lead_ = true;
  } else {
    segments.erase(segments.begin(), segments.begin() + static_cast<std::ptrdiff_t>(first));
    listed_from_ = segments.front().msn;
    start_new_run(segments.front(), unix_ms);
  }
  if (seamless_switch_) {
    // The same timestamps on both sides: one discontinuity number, no tag between them.
    number_offset_ -= 1;
    unmarked_boundary_ = true;
  }
  return true;
}

// Served numbering for this run.
void LiveRunTracker::number_for_run(std::vector<ServedSegment>& segments) const {
  for (ServedSegment& s : segments) {
    s.msn = shifted(s.msn, msn_offset_);
    s.number = shifted(s.number, number_offset_);
    s.run = run_;
  }
}

LiveRunTracker::Listing LiveRunTracker::list_segments(std::vector<ServedSegment>& segments,
                                                      std::optional<uint64_t> first_origin_msn,
                                                      bool older_copy) {
  Listing listing;
  std::vector<ServedSegment>& listed = listing.segments;
  size_t& keep = listing.kept;
  if ((segments.empty() || older_copy) && !served_.empty()) {
    // Origin lists nothing (an encoder starting over) or an older copy: keep listing what was
    // listed.
    listed = served_;
    keep = listed.size();
    return listing;
  }
  keep = tail_to_keep(first_origin_msn, segments.size());
  const bool marker_needed =
      keep > 0 && !segments.empty() && !segments.front().tagged && !unmarked_boundary_;
  listed.assign(tail_.end() - static_cast<std::ptrdiff_t>(keep), tail_.end());
  for (ServedSegment& s : segments) listed.push_back(std::move(s));
  // The new run's first segment after a kept tail declares the map and key it is played with.
  if (keep > 0 && keep < listed.size()) restate_in_force(listed[keep]);
  if (marker_needed) {
    ServedSegment& boundary = listed[keep];
    boundary.tagged = true;
    boundary.lines.insert(0, kDiscontinuityLine);
  }
  if (keep > 0 && keep < listed.size()) clear_key_after_tail(listed, keep);
  // What this copy lists, for the next restart.
  served_.assign(listed.end() - static_cast<std::ptrdiff_t>(std::min(listed.size(), kMaxTail)),
                 listed.end());
  return listing;
}

// The previous run stays ahead while the new run's first segment is listed and the window has
// room.
size_t LiveRunTracker::tail_to_keep(std::optional<uint64_t> first_origin_msn, size_t new_segments) {
  size_t keep = 0;
  if (!tail_.empty()) {
    if (first_origin_msn == boundary_ && new_segments < tail_window_) {
      keep = std::min(tail_.size(), tail_window_ - new_segments);
    }
    if (keep == 0) tail_.clear();  // once out of the window, for good
  }
  return keep;
}

namespace {

// (first line, run id) of `copy`, written as `listing` planned.
std::vector<std::pair<size_t, uint64_t>> runs_by_line(const hls::Playlist& copy,
                                                      const ServedListing& listing) {
  std::vector<std::pair<size_t, uint64_t>> runs;
  auto run_from = [&runs](size_t line, uint64_t run) {
    if (runs.empty() || runs.back().second != run) runs.emplace_back(line, run);
  };
  // A segment's lines begin after the segment before it (the first's after the playlist tags,
  // which name no chunk or key).
  const std::vector<hls::Segment>& segments = copy.media.segments;
  for (size_t i = 0; i < listing.runs.size() && i < segments.size(); ++i)
    run_from(i == 0 ? 1 : segments[i - 1].line + 1, listing.runs[i]);
  if (listing.parts_run)
    run_from(segments.empty() ? 1 : segments.back().line + 1, *listing.parts_run);
  return runs;
}

}  // namespace

hls::Result<ServedCopy> write_served(const hls::Playlist& origin, const ServedListing& listing,
                                     std::string_view url, const hls::ParseOptions& options) {
  auto written = hls::continued(origin, listing.copy, url, options);
  if (!written.ok()) return written.error();
  ServedCopy served;
  served.playlist = std::move(written).value();
  served.runs_by_line = runs_by_line(served.playlist, listing);
  return served;
}

void mark_runs(RewritePlan& plan, const hls::Template& tmpl,
               const std::vector<std::pair<size_t, uint64_t>>& runs_by_line) {
  if (runs_by_line.empty()) return;
  size_t r = 0;
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    SlotTarget& target = plan.slots[i];
    const size_t line = tmpl.slots()[i].line;
    while (r + 1 < runs_by_line.size() && runs_by_line[r + 1].first <= line) ++r;
    const bool named =
        target.kind == SlotTarget::Kind::chunk || target.kind == SlotTarget::Kind::key;
    if (!named || line < runs_by_line.front().first) continue;
    const uint64_t run = runs_by_line[r].second;
    if (run == 0) continue;
    target.run = std::string(kRunParameter) + "=" + std::to_string(run);
    core::append_query(target.origin_target, target.run);
  }
  hash_chunks(plan);  // the chunks' targets changed: so did what a listing remembers them by
}

}  // namespace balancer
