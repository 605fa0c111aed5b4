#include "hls/window.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_set>

#include "hls/playlist_parser.h"
#include "hls/program_date.h"

namespace hls {
namespace {

using parser_internal::kBom;
using parser_internal::trim_blanks;

// "EXT-X-VERSION" for "#EXT-X-VERSION:7"; "" for URI lines, comments and blanks.
std::string_view tag_name(std::string_view line) {
  std::string_view text = trim_blanks(line);
  if (!text.starts_with("#EXT")) return {};
  text.remove_prefix(1);
  return text.substr(0, text.find(':'));
}

bool is_playlist_level(std::string_view tag) {
  static constexpr std::string_view kTags[] = {
      "EXTM3U",           "EXT-X-VERSION",        "EXT-X-TARGETDURATION", "EXT-X-INDEPENDENT-SEGMENTS",
      "EXT-X-START",      "EXT-X-DEFINE",         "EXT-X-SERVER-CONTROL", "EXT-X-PART-INF",
      "EXT-X-I-FRAMES-ONLY", "EXT-X-ALLOW-CACHE"};
  for (std::string_view t : kTags) {
    if (t == tag) return true;
  }
  return false;
}

// The tags the window writes itself.
bool is_rewritten(std::string_view tag) {
  return tag == "EXT-X-MEDIA-SEQUENCE" || tag == "EXT-X-DISCONTINUITY-SEQUENCE" || tag == "EXT-X-PLAYLIST-TYPE";
}

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

}  // namespace

Result<std::string> newest_segments(const Playlist& playlist, size_t max_segments) {
  if (playlist.kind != PlaylistKind::media) return Issue{"not_media", "a master playlist has no segments to drop", 0};
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
  for (size_t i = 0; i < first; ++i) discontinuity_sequence += media.segments[i].discontinuity ? 1 : 0;

  // Lines of the dropped region that stay: the keys in force (one per KEYFORMAT; METHOD=NONE
  // ends them all) and the EXT-X-MAP of the first kept segment.
  std::unordered_set<size_t> kept_lines;
  {
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
  }
  std::optional<std::string> date_time;
  if (media.segments[first].program_date_time.empty()) date_time = program_date_time_of(media, first);

  std::string out;
  out.reserve(source.size() / (media.segments.size() / max_segments + 1) + 256);
  size_t pos = source.starts_with(kBom) ? kBom.size() : 0;
  size_t number = 0;
  bool header_written = false;
  while (pos < source.size()) {
    size_t end = pos;
    while (end < source.size() && source[end] != '\n' && source[end] != '\r') ++end;
    size_t next = end;
    if (next < source.size()) next += (source[next] == '\r' && next + 1 < source.size() && source[next + 1] == '\n') ? 2 : 1;
    ++number;
    const std::string_view line = source.substr(pos, end - pos);
    const std::string_view tag = tag_name(line);
    if (number > cut_line) {
      if (date_time) {
        out.append("#EXT-X-PROGRAM-DATE-TIME:").append(*date_time).append("\n");
        date_time.reset();
      }
      if (!is_rewritten(tag)) out.append(source.substr(pos, next - pos));
    } else if (tag == "EXTM3U" && !header_written) {
      header_written = true;
      out.append("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:").append(std::to_string(media.segments[first].sequence));
      out.append("\n#EXT-X-DISCONTINUITY-SEQUENCE:").append(std::to_string(discontinuity_sequence)).append("\n");
    } else if ((is_playlist_level(tag) && tag != "EXTM3U") || kept_lines.count(number) != 0) {
      out.append(line).append("\n");
    }
    pos = next;
  }
  return out;
}

}  // namespace hls
