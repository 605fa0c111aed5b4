// EXT-X-PROGRAM-DATE-TIME as numbers and back (a window extrapolates one: window.h), and how
// far the newest media of a live playlist reaches on the wall clock: latency behind live is the
// wall clock minus that. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hls/playlist.h"

namespace hls {

// An EXT-X-PROGRAM-DATE-TIME value, YYYY-MM-DDThh:mm:ss[.fff…](Z|+hh:mm|-hh:mm|+hhmm|-hhmm),
// in milliseconds since the epoch (fractions past a millisecond dropped); nullopt otherwise.
std::optional<int64_t> parse_program_date_ms(std::string_view text);
// The same in Unix seconds.
std::optional<double> parse_program_date(std::string_view text);
// `epoch_ms` as a program date in UTC with milliseconds ("2026-11-24T23:18:05.595Z").
std::string format_program_date_ms(int64_t epoch_ms);

// Where the newest media of `media` ends on the wall clock (Unix seconds): the last
// segment that carries a program date, plus its duration and that of every segment and
// part after it (the parts of the segment in progress included); nullopt without one.
std::optional<double> newest_media_end(const MediaInfo& media);

}  // namespace hls
