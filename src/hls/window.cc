#include "hls/window.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "hls/playlist_parser.h"
#include "hls/playlist_splice.h"
#include "hls/program_date.h"

namespace hls {

std::string_view tag_name(std::string_view line) {
  std::string_view text = parser_internal::trim_blanks(line);
  if (!text.starts_with("#EXT")) return {};
  text.remove_prefix(1);
  return text.substr(0, text.find(':'));
}

bool is_playlist_level(std::string_view tag) {
  static constexpr std::string_view kTags[] = {"EXTM3U",
                                               "EXT-X-VERSION",
                                               "EXT-X-TARGETDURATION",
                                               "EXT-X-INDEPENDENT-SEGMENTS",
                                               "EXT-X-START",
                                               "EXT-X-DEFINE",
                                               "EXT-X-SERVER-CONTROL",
                                               "EXT-X-PART-INF",
                                               "EXT-X-I-FRAMES-ONLY",
                                               "EXT-X-ALLOW-CACHE"};
  for (std::string_view t : kTags) {
    if (t == tag) return true;
  }
  return false;
}

bool is_window_rewritten(std::string_view tag) {
  return tag == "EXT-X-MEDIA-SEQUENCE" || tag == "EXT-X-DISCONTINUITY-SEQUENCE" ||
         tag == "EXT-X-PLAYLIST-TYPE";
}

namespace {

using parser_internal::kBom;
using parser_internal::trim_blanks;

// The program date-time of segment `first` extrapolated from the last earlier
// segment that had one; nullopt when there is none or it does not parse.
std::optional<std::string> program_date_time_of(const MediaInfo& media, size_t first) {
  for (size_t j = first; j-- > 0;) {
    if (media.segments[j].program_date_time.empty()) continue;
    auto at = parse_program_date_ms(media.segments[j].program_date_time);
    if (!at) return std::nullopt;
    double seconds = 0;
    for (size_t i = j; i < first; ++i) seconds += media.segments[i].duration.value_or(0);
    return format_program_date_ms(*at + static_cast<int64_t>(std::llround(seconds * 1000)));
  }
  return std::nullopt;
}

// Lines of a cut region (lines 1..`cut_line`) that stay for segment `first`, the first one
// after it: the keys in force (one per KEYFORMAT; METHOD=NONE ends them all) and its EXT-X-MAP.
std::unordered_set<size_t> lines_in_force(const Playlist& playlist, size_t first, size_t cut_line) {
  const MediaInfo& media = playlist.media;
  std::unordered_set<size_t> kept_lines;
  std::map<std::string, size_t> keys;
  for (const Key& key : media.keys) {
    if (key.session || key.line > cut_line) continue;
    if (key.method == "NONE") {
      keys.clear();
    } else {
      keys[key.keyformat.empty() ? std::string("identity") : key.keyformat] = key.line;
    }
  }
  for (const auto& [format, line] : keys) kept_lines.insert(line);
  const Segment& kept = media.segments[first];
  if (kept.map_slot && playlist.tmpl.slots()[*kept.map_slot].line <= cut_line) {
    kept_lines.insert(playlist.tmpl.slots()[*kept.map_slot].line);
  }
  return kept_lines;
}

// Calls `visit(number, line, with_ending)` for each line of `source` (numbered from 1, a BOM
// skipped; `line` without its ending, `with_ending` with it).
template <typename Visit>
void for_each_line(std::string_view source, Visit visit) {
  size_t pos = source.starts_with(kBom) ? kBom.size() : 0;
  size_t number = 0;
  while (pos < source.size()) {
    size_t end = pos;
    while (end < source.size() && source[end] != '\n' && source[end] != '\r') ++end;
    size_t next = end;
    if (next < source.size())
      next +=
          (source[next] == '\r' && next + 1 < source.size() && source[next + 1] == '\n') ? 2 : 1;
    visit(++number, source.substr(pos, end - pos), source.substr(pos, next - pos));
    pos = next;
  }
}

}  // namespace

Result<Playlist> newest_segments(const Playlist& playlist, size_t max_segments) {
  if (playlist.kind != PlaylistKind::media)
    return Issue{"not_media", "a master playlist has no segments to drop", 0};
  if (max_segments == 0) return Issue{"bad_window", "a window keeps at least one segment", 0};
  const MediaInfo& media = playlist.media;
  if (media.segments.size() <= max_segments) return playlist;
  if (media.is_delta_update()) {
    return Issue{"delta_update", "a delta update (EXT-X-SKIP) cannot be cut to a window", 0};
  }
  const size_t first = media.segments.size() - max_segments;  // index of the first kept segment
  const size_t cut_line = media.segments[first - 1].line;     // last line of the dropped segments

  uint64_t discontinuity_sequence = media.discontinuity_sequence;
  for (size_t i = 0; i < first; ++i)
    discontinuity_sequence += media.segments[i].discontinuity ? 1 : 0;

  const std::unordered_set<size_t> kept_lines = lines_in_force(playlist, first, cut_line);
  std::optional<std::string> date_time;
  if (media.segments[first].program_date_time.empty())
    date_time = program_date_time_of(media, first);

  splice_internal::LineSplice out(playlist);
  bool header_written = false;
  bool date_written = !date_time;
  for_each_line(playlist.tmpl.source(), [&](size_t number, std::string_view line,
                                            std::string_view with_ending) {
    const std::string_view tag = tag_name(line);
    if (number > cut_line) {
      if (!date_written) {
        out.add("#EXT-X-PROGRAM-DATE-TIME:" + *date_time);
        date_written = true;
      }
      if (!is_window_rewritten(tag)) out.keep(number, line, with_ending.substr(line.size()));
    } else if (tag == "EXTM3U" && !header_written) {
      header_written = true;
      out.add("#EXTM3U");
      out.add("#EXT-X-MEDIA-SEQUENCE:" + std::to_string(media.segments[first].sequence));
      out.add("#EXT-X-DISCONTINUITY-SEQUENCE:" + std::to_string(discontinuity_sequence));
    } else if ((is_playlist_level(tag) && tag != "EXTM3U") || kept_lines.count(number) != 0) {
      out.keep(number, line, "\n");
    }
  });
  Playlist window = out.finish();
  window.media.media_sequence = media.segments[first].sequence;
  window.media.discontinuity_sequence = discontinuity_sequence;
  window.media.type = PlaylistType::unspecified;
  if (date_time) window.media.segments.front().program_date_time = *date_time;
  return window;
}

namespace {

// The segments of `media` that a delta update skips: those ending more than CAN-SKIP-UNTIL
// before the end of the playlist (its segments and the parts after them); 0 when a duration is
// unknown.
size_t segments_to_skip(const MediaInfo& media) {
  std::vector<double> ends;
  double end = 0;
  for (const Segment& segment : media.segments) {
    if (!segment.duration) return 0;
    ends.push_back(end += *segment.duration);
  }
  for (const Part& part : media.parts) {
    if (part.segment_index == media.segments.size()) end += part.duration.value_or(0);
  }
  size_t skipped = 0;
  while (skipped < ends.size() && end - ends[skipped] > *media.server_control.can_skip_until)
    ++skipped;
  // Never a discontinuity: a player numbering its timelines from EXT-X-DISCONTINUITY-SEQUENCE and
  // the EXT-X-DISCONTINUITY tags it reads (VHS's m3u8-parser) would put every segment after a
  // skipped one on the timeline before, and take the update that moves the skip past it for a
  // change of timeline (a new timestamp offset and the map again: Chromium drops parts then).
  for (size_t i = 0; i < skipped; ++i) {
    if (media.segments[i].discontinuity) return i;
  }
  return skipped;
}

}  // namespace

Result<DeltaUpdate> delta_update(const Playlist& playlist) {
  if (playlist.kind != PlaylistKind::media)
    return Issue{"not_media", "a master playlist has no segments to skip", 0};
  const MediaInfo& media = playlist.media;
  if (media.is_delta_update())
    return Issue{"delta_update", "a delta update (EXT-X-SKIP) cannot be skipped again", 0};
  if (!media.server_control.can_skip_until) {
    return Issue{"cannot_skip", "the playlist does not offer delta updates (CAN-SKIP-UNTIL)", 0};
  }
  const size_t skipped = segments_to_skip(media);
  if (skipped == 0 || skipped == media.segments.size()) {
    DeltaUpdate whole{playlist, 0, {}};
    for (size_t i = 0; i < playlist.tmpl.slots().size(); ++i) whole.slots.push_back(i);
    return whole;
  }
  const size_t cut_line = media.segments[skipped - 1].line;  // last line of the skipped segments
  const std::unordered_set<size_t> kept_lines = lines_in_force(playlist, skipped, cut_line);
  std::optional<std::string> date_time;
  if (media.segments[skipped].program_date_time.empty())
    date_time = program_date_time_of(media, skipped);
  const uint64_t version = std::max<uint64_t>(playlist.version.value_or(1), 9);

  DeltaUpdate delta;
  delta.skipped = skipped;
  for (size_t i = 0; i < playlist.tmpl.slots().size(); ++i) {
    const UriSlot& slot = playlist.tmpl.slots()[i];
    if (slot.line > cut_line || kept_lines.count(slot.line) != 0 || slot.tag == "EXT-X-DATERANGE") {
      delta.slots.push_back(i);
    }
  }
  splice_internal::LineSplice out(playlist);
  // The skipped region's lines that stay, written after EXT-X-SKIP.
  std::vector<std::pair<size_t, std::string_view>> after_skip;
  bool header_written = false;
  bool skip_written = false;
  for_each_line(playlist.tmpl.source(), [&](size_t number, std::string_view line,
                                            std::string_view with_ending) {
    const std::string_view tag = tag_name(line);
    if (number > cut_line) {
      if (!skip_written) {
        skip_written = true;
        out.add("#EXT-X-SKIP:SKIPPED-SEGMENTS=" + std::to_string(skipped));
        for (const auto& [kept_number, kept_line] : after_skip)
          out.keep(kept_number, kept_line, "\n");
        if (date_time) out.add("#EXT-X-PROGRAM-DATE-TIME:" + *date_time);
      }
      out.keep(number, line, with_ending.substr(line.size()));
    } else if (tag == "EXTM3U" && !header_written) {
      header_written = true;
      out.add("#EXTM3U");
      if (!playlist.version) out.add("#EXT-X-VERSION:9");
    } else if (tag == "EXT-X-VERSION") {
      out.add("#EXT-X-VERSION:" + std::to_string(version));
    } else if ((is_playlist_level(tag) && tag != "EXTM3U") || is_window_rewritten(tag)) {
      out.keep(number, line, "\n");
    } else if (kept_lines.count(number) != 0 || tag == "EXT-X-DATERANGE") {
      after_skip.emplace_back(number, line);
    }
  });
  delta.playlist = out.finish();
  delta.playlist.version = version;
  delta.playlist.media.skipped_segments = skipped;
  if (date_time) delta.playlist.media.segments.front().program_date_time = *date_time;
  return delta;
}

namespace {

// `line` (as written, blanks included) is the tag `name` ("#EXT-X-...").
bool written_as(std::string_view line, std::string_view name) {
  return line.starts_with(name) && (line.size() == name.size() || line[name.size()] == ':');
}

// The tags a continued copy writes first: about the whole playlist, or its end.
bool heads_copy(std::string_view line) {
  const std::string_view tag = tag_name(line);
  return is_playlist_level(tag) || is_window_rewritten(tag) || tag == "EXT-X-ENDLIST";
}

uint64_t shifted(uint64_t value, int64_t offset) {
  const int64_t v = static_cast<int64_t>(value) + offset;
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

// LAST-MSN's digits in an EXT-X-RENDITION-REPORT line (`length` bytes from `at`), their value
// and the value moved by an offset.
struct NumberEdit {
  size_t at = 0;
  size_t length = 0;
  uint64_t original = 0;
  uint64_t value = 0;
};

std::optional<NumberEdit> last_msn_edit(std::string_view line, int64_t offset) {
  const size_t found = line.find("LAST-MSN=");
  if (found == std::string_view::npos) return std::nullopt;
  NumberEdit edit;
  edit.at = found + 9;
  size_t end = edit.at;
  while (end < line.size() && line[end] >= '0' && line[end] <= '9') ++end;
  edit.length = end - edit.at;
  const auto [ptr, error] =
      std::from_chars(line.data() + edit.at, line.data() + end, edit.original);
  if (edit.length == 0 || error != std::errc()) return std::nullopt;
  edit.value = shifted(edit.original, offset);
  return edit;
}

// Whether the splice can write `edit` of source line `number` (a report): the digits are the
// LAST-MSN the parser read there, outside the line's URIs.
bool splices_report(const Playlist& source, size_t number, std::string_view line,
                    const NumberEdit& edit) {
  const bool attribute = edit.at > 9 && (line[edit.at - 10] == ':' || line[edit.at - 10] == ',');
  const std::vector<RenditionReport>& reports = source.media.rendition_reports;
  auto report = std::find_if(reports.begin(), reports.end(),
                             [&](const RenditionReport& r) { return r.line == number; });
  if (!attribute || report == reports.end() || report->last_msn != edit.original) return false;
  for (const UriSlot& slot : source.tmpl.slots()) {
    if (slot.line != number) continue;
    const size_t offset = static_cast<size_t>(slot.original.data() - line.data());
    if (offset < edit.at + edit.length && offset + slot.original.size() > edit.at) return false;
  }
  return true;
}

// Where continued() writes: a splice of the source's lines (own lines may not carry URIs or
// facts; reports renumbered are set in the facts after), or text to parse.
struct SpliceSink {
  splice_internal::LineSplice& splice;
  std::vector<std::pair<size_t, uint64_t>> last_msn_by_line{};  // reports renumbered (new line)
  void keep(size_t number, std::string_view line) { splice.keep(number, line, "\n"); }
  void keep_edited(size_t number, std::string_view line, const NumberEdit& edit) {
    const size_t written =
        splice.keep_edited(number, line, edit.at, edit.length, std::to_string(edit.value), "\n");
    last_msn_by_line.emplace_back(written, edit.value);
  }
  void add(std::string_view line) { splice.add(line); }
  void add_lines([[maybe_unused]] std::string_view lines) { assert(lines.empty()); }
};
struct TextSink {
  std::string text;
  void keep(size_t, std::string_view line) { add(line); }
  void keep_edited(size_t, std::string_view line, const NumberEdit& edit) {
    text.append(line.substr(0, edit.at)).append(std::to_string(edit.value));
    text.append(line.substr(edit.at + edit.length)).push_back('\n');
  }
  void add(std::string_view line) { text.append(line).push_back('\n'); }
  void add_lines(std::string_view lines) { text.append(lines); }
};

// The tags about the whole playlist, in order, with the plan's numbers; returns their lines
// (the end tag's included), ascending, for the lines that follow to skip.
template <typename Sink>
std::vector<size_t> write_head(const Playlist& source, const Continuation& plan, Sink& out) {
  std::vector<size_t> head_lines;
  const std::string msn_line = "#EXT-X-MEDIA-SEQUENCE:" + std::to_string(plan.media_sequence);
  const std::string number_line =
      "#EXT-X-DISCONTINUITY-SEQUENCE:" + std::to_string(plan.discontinuity_sequence);
  bool wrote_msn = false;
  bool wrote_number = false;
  for_each_line(source.tmpl.source(), [&](size_t number, std::string_view line, std::string_view) {
    if (!heads_copy(line)) return;
    head_lines.push_back(number);
    if (written_as(line, "#EXT-X-ENDLIST")) return;
    if (written_as(line, "#EXT-X-MEDIA-SEQUENCE")) {
      out.add(msn_line);
      wrote_msn = true;
    } else if (written_as(line, "#EXT-X-DISCONTINUITY-SEQUENCE")) {
      out.add(number_line);
      wrote_number = true;
    } else if (written_as(line, "#EXT-X-TARGETDURATION") && plan.target_duration) {
      out.add("#EXT-X-TARGETDURATION:" + std::to_string(*plan.target_duration));
    } else {
      out.keep(number, line);
    }
  });
  if (!wrote_msn) out.add(msn_line);
  if (!wrote_number && plan.discontinuity_sequence > 0) out.add(number_line);
  return head_lines;
}

// The source's line after which its segments' lines end (0: it has none).
size_t last_segment_line(const MediaInfo& media) {
  return media.segments.empty() ? 0 : media.segments.back().line;
}

template <typename Sink>
void write_continued(const Playlist& source, const Continuation& plan, Sink& out) {
  const std::vector<size_t> head_lines = write_head(source, plan, out);
  size_t next_head = 0;
  const MediaInfo& media = source.media;
  const size_t segments_end = last_segment_line(media);
  // The source's lines from this one on are listed (those before belong to segments left out).
  size_t first_line = 0;
  if (plan.first_segment >= media.segments.size()) {
    first_line = segments_end + 1;
  } else if (plan.first_segment > 0) {
    first_line = media.segments[plan.first_segment - 1].line + 1;
  }
  for (const std::string& segment : plan.carried) out.add_lines(segment);
  if (plan.first_segment < media.segments.size()) out.add_lines(plan.before_segments);
  bool trailing_begun = false;
  for_each_line(source.tmpl.source(), [&](size_t number, std::string_view line, std::string_view) {
    if (next_head < head_lines.size() && head_lines[next_head] == number) {
      ++next_head;
      return;
    }
    if (number < first_line) return;
    if (number <= segments_end) return out.keep(number, line);
    if (!trailing_begun) out.add_lines(plan.before_trailing);
    trailing_begun = true;
    if (!plan.trailing) return;
    if (plan.report_msn_offset != 0 && written_as(line, "#EXT-X-RENDITION-REPORT")) {
      if (auto edit = last_msn_edit(line, plan.report_msn_offset))
        return out.keep_edited(number, line, *edit);
    }
    out.keep(number, line);
  });
  if (!trailing_begun) out.add_lines(plan.before_trailing);
  if (plan.endlist) out.add("#EXT-X-ENDLIST");
}

// The source's lines alone, spliced: its facts carried over, the plan's numbers set.
Playlist spliced(const Playlist& source, const Continuation& plan) {
  splice_internal::LineSplice splice(source);
  SpliceSink sink{splice};
  write_continued(source, plan, sink);
  Playlist copy = splice.finish();
  for (RenditionReport& report : copy.media.rendition_reports) {
    for (const auto& [line, last_msn] : sink.last_msn_by_line) {
      if (report.line == line) report.last_msn = last_msn;
    }
  }
  copy.media.media_sequence = plan.media_sequence;
  copy.media.discontinuity_sequence = plan.discontinuity_sequence;
  if (plan.target_duration) copy.media.target_duration = plan.target_duration;
  copy.media.endlist = plan.endlist;
  for (size_t i = 0; i < copy.media.segments.size(); ++i)
    copy.media.segments[i].sequence = plan.media_sequence + i;
  return copy;
}

}  // namespace

bool carries_own_lines(const Playlist& source, const Continuation& plan) {
  const MediaInfo& media = source.media;
  if (!plan.carried.empty() || !plan.before_trailing.empty()) return true;
  if (!plan.before_segments.empty() && plan.first_segment < media.segments.size()) return true;
  if (plan.report_msn_offset == 0 || !plan.trailing) return false;
  // A report the writer renumbers (as written, after the last segment) where the splice cannot.
  const size_t segments_end = last_segment_line(media);
  bool own_report = false;
  for_each_line(source.tmpl.source(), [&](size_t number, std::string_view line, std::string_view) {
    if (own_report || number <= segments_end || !written_as(line, "#EXT-X-RENDITION-REPORT"))
      return;
    auto edit = last_msn_edit(line, plan.report_msn_offset);
    own_report = edit && !splices_report(source, number, line, *edit);
  });
  return own_report;
}

Result<Playlist> continued(const Playlist& source, const Continuation& plan,
                           std::string_view base_url, const ParseOptions& options) {
  if (!carries_own_lines(source, plan)) return spliced(source, plan);
  TextSink sink;
  write_continued(source, plan, sink);
  return parse_playlist(sink.text, base_url, options);
}

Playlist renumbered(const Playlist& playlist, uint64_t media_sequence,
                    uint64_t discontinuity_sequence, bool endlist) {
  Continuation plan;
  plan.media_sequence = media_sequence;
  plan.discontinuity_sequence = discontinuity_sequence;
  plan.endlist = endlist;
  return spliced(playlist, plan);
}

}  // namespace hls
