#include "hls/window.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "hls/playlist_parser.h"
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

Result<std::string> newest_segments(const Playlist& playlist, size_t max_segments) {
  if (playlist.kind != PlaylistKind::media)
    return Issue{"not_media", "a master playlist has no segments to drop", 0};
  if (max_segments == 0) return Issue{"bad_window", "a window keeps at least one segment", 0};
  const MediaInfo& media = playlist.media;
  const std::string_view source = playlist.tmpl.source();
  if (media.segments.size() <= max_segments) return std::string(source);
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

  std::string out;
  out.reserve(source.size() / (media.segments.size() / max_segments + 1) + 256);
  bool header_written = false;
  for_each_line(source, [&](size_t number, std::string_view line, std::string_view with_ending) {
    const std::string_view tag = tag_name(line);
    if (number > cut_line) {
      if (date_time) {
        out.append("#EXT-X-PROGRAM-DATE-TIME:").append(*date_time).append("\n");
        date_time.reset();
      }
      if (!is_window_rewritten(tag)) out.append(with_ending);
    } else if (tag == "EXTM3U" && !header_written) {
      header_written = true;
      out.append("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:")
          .append(std::to_string(media.segments[first].sequence));
      out.append("\n#EXT-X-DISCONTINUITY-SEQUENCE:")
          .append(std::to_string(discontinuity_sequence))
          .append("\n");
    } else if ((is_playlist_level(tag) && tag != "EXTM3U") || kept_lines.count(number) != 0) {
      out.append(line).append("\n");
    }
  });
  return out;
}

Result<DeltaUpdate> delta_update(const Playlist& playlist) {
  if (playlist.kind != PlaylistKind::media)
    return Issue{"not_media", "a master playlist has no segments to skip", 0};
  const MediaInfo& media = playlist.media;
  if (media.is_delta_update())
    return Issue{"delta_update", "a delta update (EXT-X-SKIP) cannot be skipped again", 0};
  if (!media.server_control.can_skip_until) {
    return Issue{"cannot_skip", "the playlist does not offer delta updates (CAN-SKIP-UNTIL)", 0};
  }
  const std::string_view source = playlist.tmpl.source();
  DeltaUpdate whole;
  whole.text = std::string(source);
  for (size_t i = 0; i < playlist.tmpl.slots().size(); ++i) whole.slots.push_back(i);
  // Where each segment ends, counted from the start; the playlist ends after the parts of
  // the segment being written.
  std::vector<double> ends;
  double end = 0;
  for (const Segment& segment : media.segments) {
    if (!segment.duration) return whole;
    ends.push_back(end += *segment.duration);
  }
  for (const Part& part : media.parts) {
    if (part.segment_index == media.segments.size()) end += part.duration.value_or(0);
  }
  size_t skipped = 0;
  while (skipped < ends.size() && end - ends[skipped] > *media.server_control.can_skip_until)
    ++skipped;
  if (skipped == 0 || skipped == media.segments.size()) return whole;

  const size_t cut_line = media.segments[skipped - 1].line;  // last line of the skipped segments
  const std::unordered_set<size_t> kept_lines = lines_in_force(playlist, skipped, cut_line);
  std::optional<std::string> date_time;
  if (media.segments[skipped].program_date_time.empty())
    date_time = program_date_time_of(media, skipped);
  const bool version_written = playlist.version.has_value();

  DeltaUpdate delta;
  delta.skipped = skipped;
  for (size_t i = 0; i < playlist.tmpl.slots().size(); ++i) {
    const UriSlot& slot = playlist.tmpl.slots()[i];
    if (slot.line > cut_line || kept_lines.count(slot.line) != 0 || slot.tag == "EXT-X-DATERANGE") {
      delta.slots.push_back(i);
    }
  }
  std::string& out = delta.text;
  std::string after_skip;  // the skipped region's lines that stay, written after EXT-X-SKIP
  out.reserve(source.size() / 2 + 256);
  bool header_written = false;
  bool skip_written = false;
  for_each_line(source, [&](size_t number, std::string_view line, std::string_view with_ending) {
    const std::string_view tag = tag_name(line);
    if (number > cut_line) {
      if (!skip_written) {
        skip_written = true;
        out.append("#EXT-X-SKIP:SKIPPED-SEGMENTS=").append(std::to_string(skipped)).append("\n");
        out.append(after_skip);
        if (date_time) out.append("#EXT-X-PROGRAM-DATE-TIME:").append(*date_time).append("\n");
      }
      out.append(with_ending);
    } else if (tag == "EXTM3U" && !header_written) {
      header_written = true;
      out.append("#EXTM3U\n");
      if (!version_written) out.append("#EXT-X-VERSION:9\n");
    } else if (tag == "EXT-X-VERSION") {
      out.append("#EXT-X-VERSION:")
          .append(std::to_string(std::max<uint64_t>(playlist.version.value_or(1), 9)));
      out.append("\n");
    } else if ((is_playlist_level(tag) && tag != "EXTM3U") || is_window_rewritten(tag)) {
      out.append(line).append("\n");
    } else if (kept_lines.count(number) != 0 || tag == "EXT-X-DATERANGE") {
      after_skip.append(line).append("\n");
    }
  });
  return delta;
}

}  // namespace hls
