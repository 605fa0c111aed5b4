#include "hls/program_date.h"

#include <cstdint>
#include <cstdio>

namespace hls {
namespace {

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

}  // namespace

std::optional<int64_t> parse_program_date_ms(std::string_view s) {
  auto year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  auto hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || *month < 1 || *month > 12 ||
      *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
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
  const int64_t seconds =
      days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_minutes * 60;
  return seconds * 1000 + millis;
}

std::string format_program_date_ms(int64_t epoch_ms) {
  const int64_t days = epoch_ms >= 0 ? epoch_ms / 86400000 : -((-epoch_ms + 86399999) / 86400000);
  const auto ms_of_day = static_cast<uint32_t>(epoch_ms - days * 86400000);  // [0, 86400000)
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char out[64];
  std::snprintf(out, sizeof out, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", static_cast<long long>(y),
                m % 100u, d % 100u, ms_of_day / 3600000 % 100u, ms_of_day / 60000 % 60,
                ms_of_day / 1000 % 60, ms_of_day % 1000);
  return out;
}

std::optional<double> parse_program_date(std::string_view text) {
  const std::optional<int64_t> ms = parse_program_date_ms(text);
  if (!ms) return std::nullopt;
  return static_cast<double>(*ms) / 1000;
}

std::optional<double> newest_media_end(const MediaInfo& media) {
  std::optional<double> end;
  for (size_t i = 0; i < media.segments.size(); ++i) {
    const Segment& segment = media.segments[i];
    if (!segment.program_date_time.empty()) {
      if (auto date = parse_program_date(segment.program_date_time)) end = *date;
    }
    if (end) *end += segment.duration.value_or(0);
  }
  if (!end) return std::nullopt;
  for (const Part& part : media.parts) {
    if (part.segment_index == media.segments.size()) *end += part.duration.value_or(0);
  }
  return end;
}

}  // namespace hls
