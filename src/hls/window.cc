#include "hls/window.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_set>

#include "hls/playlist_parser.h"

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

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
}

std::optional<unsigned> digits(std::string_view s, size_t at, size_t n) {
  if (at + n > s.size()) return std::nullopt;
  unsigned v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return v;
}

// Milliseconds since the epoch of an EXT-X-PROGRAM-DATE-TIME value
// (YYYY-MM-DDThh:mm:ss[.fff...](Z|+hh:mm|-hh:mm|+hhmm|-hhmm)); nullopt otherwise.
std::optional<int64_t> parse_date_time(std::string_view s) {
  auto year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  auto hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || *month < 1 || *month > 12 || *day < 1 ||
      *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  size_t at = 19;
  int64_t millis = 0;
  if (at < s.size() && s[at] == '.') {
    ++at;
    int64_t scale = 100;
    const size_t first = at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      millis += scale * (s[at] - '0');
      scale /= 10;
      ++at;
    }
    if (at == first) return std::nullopt;
  }
  int64_t offset_minutes = 0;
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    const int sign = s[at] == '-' ? -1 : 1;
    auto oh = digits(s, at + 1, 2);
    const bool colon = at + 3 < s.size() && s[at + 3] == ':';
    auto om = digits(s, at + (colon ? 4 : 3), 2);
    if (!oh || !om) return std::nullopt;
    offset_minutes = sign * static_cast<int64_t>(*oh * 60 + *om);
    at += colon ? 6 : 5;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  const int64_t days = days_from_civil(*year, *month, *day);
  const int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_minutes * 60;
  return seconds * 1000 + millis;
}

std::string format_date_time(int64_t epoch_ms) {
  const int64_t days = epoch_ms >= 0 ? epoch_ms / 86400000 : -((-epoch_ms + 86399999) / 86400000);
  const auto ms_of_day = static_cast<uint32_t>(epoch_ms - days * 86400000);  // [0, 86400000)
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char out[64];
  std::snprintf(out, sizeof out, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", static_cast<long long>(y), m % 100u,
                d % 100u, ms_of_day / 3600000 % 100u, ms_of_day / 60000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
  return out;
}

// The program date-time of segment `first` extrapolated from the last earlier
// segment that had one; nullopt when there is none or it does not parse.
std::optional<std::string> program_date_time_of(const MediaInfo& media, size_t first) {
  for (size_t j = first; j-- > 0;) {
    if (media.segments[j].program_date_time.empty()) continue;
    auto at = parse_date_time(media.segments[j].program_date_time);
    if (!at) return std::nullopt;
    double seconds = 0;
    for (size_t i = j; i < first; ++i) seconds += media.segments[i].duration.value_or(0);
    return format_date_time(*at + static_cast<int64_t>(std::llround(seconds * 1000)));
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
