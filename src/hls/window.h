// A sliding window over a long live or EVENT media playlist: the newest segments
// as a playlist of their own, so that what each viewer's copy costs does not grow
// with the hours an event has been running.
//
// Pure: no I/O, no clock, no globals.
#pragma once

#include <cstddef>
#include <string>

#include "hls/playlist.h"
#include "hls/result.h"

namespace hls {

// The text of `playlist` (a parsed media playlist) keeping only its newest
// `max_segments` segments, as a server sliding its window would write it:
//   - EXT-X-MEDIA-SEQUENCE is the first kept segment's number;
//   - EXT-X-DISCONTINUITY-SEQUENCE is advanced by the EXT-X-DISCONTINUITY tags of
//     the dropped segments;
//   - the EXT-X-KEY tags and the EXT-X-MAP in force for the first kept segment
//     are kept, and it gets its EXT-X-PROGRAM-DATE-TIME (extrapolated from the
//     last earlier one, in UTC, when it had none of its own);
//   - EXT-X-PLAYLIST-TYPE is dropped (an EVENT playlist may not lose segments; a
//     window slides);
//   - playlist-level tags (VERSION, TARGETDURATION, INDEPENDENT-SEGMENTS, START,
//     DEFINE, SERVER-CONTROL, PART-INF, I-FRAMES-ONLY) are kept; the dropped
//     segments' lines (URIs, EXTINF, BYTERANGE, DISCONTINUITY, GAP, BITRATE,
//     PART, DATERANGE, unknown tags, comments) go;
//   - every line after the last dropped segment is kept as it is.
// Lines written by this function end with "\n"; kept lines keep their endings.
// Returns the source unchanged when it has at most `max_segments` segments.
// Errors: "not_media" (a master playlist), "delta_update" (an EXT-X-SKIP
// playlist: its window belongs to the player), "bad_window" (max_segments 0).
Result<std::string> newest_segments(const Playlist& playlist, std::size_t max_segments);

}  // namespace hls
