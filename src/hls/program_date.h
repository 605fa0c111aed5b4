// EXT-X-PROGRAM-DATE-TIME as numbers, and how far the newest media of a live playlist reaches
// on the wall clock: latency behind live is the wall clock minus that. Pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "hls/playlist.h"

namespace hls {

// An ISO 8601 date-time as EXT-X-PROGRAM-DATE-TIME writes it ("2026-11-24T23:18:05.595Z",
// "…+01:00", "…-0530", fractions of any length), in Unix seconds; nullopt when malformed.
std::optional<double> parse_program_date(std::string_view text);

// Where the newest media of `media` ends on the wall clock (Unix seconds): the last
// segment that carries a program date, plus its duration and that of every segment and
// part after it (the parts of the segment in progress included); nullopt without one.
std::optional<double> newest_media_end(const MediaInfo& media);

}  // namespace hls
