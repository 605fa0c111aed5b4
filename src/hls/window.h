// Cutting a media playlist's oldest segments: a sliding window over a long live or EVENT
// playlist (the newest segments as a playlist of their own, so that what each viewer's copy
// costs does not grow with the hours an event has been running), and a Playlist Delta
// Update (the oldest segments replaced by EXT-X-SKIP, for a player that holds them).
//
// Pure: no I/O, no clock, no globals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hls/playlist.h"
#include "hls/result.h"

namespace hls {

// `playlist` (a parsed media playlist) keeping only its newest `max_segments` segments, as a
// server sliding its window would write it:
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
// Returned parsed, never to be parsed again: its facts are the source's for the lines kept
// (numbers, lines and URI slots renumbered; each slot's resolved URI as the source's), what
// parse_playlist() would make of its text (its warnings: the source's, of the lines kept).
// Returns `playlist` itself when it has at most `max_segments` segments.
// Errors: "not_media" (a master playlist), "delta_update" (an EXT-X-SKIP
// playlist: its window belongs to the player), "bad_window" (max_segments 0).
Result<Playlist> newest_segments(const Playlist& playlist, std::size_t max_segments);

// A Playlist Delta Update (RFC 8216bis §6.2.5.1, _HLS_skip=YES) of a full media playlist.
struct DeltaUpdate {
  Playlist playlist;        // the delta update, parsed; the source itself when nothing is skipped
  std::size_t skipped = 0;  // segments skipped (0: `playlist` is the source)
  // The source's template slots the update lists, in its own slot order.
  std::vector<std::size_t> slots;
};

// The delta update of `playlist`, a full media playlist whose EXT-X-SERVER-CONTROL says
// CAN-SKIP-UNTIL: the oldest segments whose end is more than CAN-SKIP-UNTIL seconds before
// the end of the playlist (its segments and the parts after them) are replaced by one
// EXT-X-SKIP:SKIPPED-SEGMENTS=<n> tag:
//   - EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE stay as they are (the skipped
//     segments are still the playlist's; the player has them);
//   - EXT-X-VERSION is at least 9;
//   - after EXT-X-SKIP come the EXT-X-KEY tags and the EXT-X-MAP in force for the first
//     segment not skipped, and the skipped region's EXT-X-DATERANGE tags (YES skips
//     segments only), then that segment with its EXT-X-PROGRAM-DATE-TIME (extrapolated
//     when it had none of its own);
//   - playlist-level tags are kept; the skipped segments' other lines go;
//   - every line after the last skipped segment is kept as it is.
// The skip stops before the first segment with EXT-X-DISCONTINUITY: a player that counts the
// discontinuities it reads (VHS) would misplace every later segment by one timeline. Nothing is
// skipped when no segment is that far from the end, or a segment's duration is unknown (a full
// playlist is a valid answer to _HLS_skip). Returned parsed, as
// newest_segments() returns its window.
// Errors: "not_media", "delta_update" (already one), "cannot_skip" (no CAN-SKIP-UNTIL).
Result<DeltaUpdate> delta_update(const Playlist& playlist);

// What a server continuing a live media playlist lists instead of the source's copy (the
// balancer's live restarts and source switches decide it: balancer/sources/live_restart.h).
struct Continuation {
  std::uint64_t media_sequence = 0;          // EXT-X-MEDIA-SEQUENCE
  std::uint64_t discontinuity_sequence = 0;  // EXT-X-DISCONTINUITY-SEQUENCE (written when not 0)
  // EXT-X-TARGETDURATION's value, when not the source's (longer segments carried).
  std::optional<std::uint64_t> target_duration;
  bool endlist = false;  // EXT-X-ENDLIST at the end (the source's own is never written)
  // Segments of earlier copies listed first, each its lines (its tags, then its URI line), every
  // line ending "\n"; the first one's EXT-X-MAP and EXT-X-KEY in force written before it.
  std::vector<std::string> carried;
  // The source's segments listed after them: from this index on (none when past the last).
  std::size_t first_segment = 0;
  // Lines ("\n" each) written before the first of the source's segments listed: the map and key
  // in force for it when segments before it are left out.
  std::string before_segments;
  // Lines ("\n" each) written after the segments, before the source's lines that follow its last
  // segment (a new run's discontinuity, map and key ahead of its parts).
  std::string before_trailing;
  bool trailing = true;  // the source's lines after its last segment (parts, hints, reports)
  // Added to LAST-MSN in EXT-X-RENDITION-REPORT lines after the last segment (the other
  // renditions of the channel are numbered the same way).
  std::int64_t report_msn_offset = 0;
};

// `source` (a parsed media playlist, not a delta update) as `plan` lists it:
//   - first the tags about the whole playlist (is_playlist_level, is_window_rewritten), in
//     order, EXT-X-MEDIA-SEQUENCE, EXT-X-DISCONTINUITY-SEQUENCE and (when given)
//     EXT-X-TARGETDURATION with the plan's numbers (the first two added after them when absent;
//     the discontinuity sequence only when not 0);
//   - then the carried segments, the lines before the source's segments, every other line of
//     the source from the first listed segment's on (after the segment before it) as it is,
//     with the lines before its trailing lines where those begin;
//   - EXT-X-ENDLIST (wherever the source wrote it) only at the end, and only with `endlist`.
// Lines end with "\n". Returned parsed: written of the source's lines alone (no line of the
// plan's own: see carries_own_lines; a report's LAST-MSN renumbered in place), as
// newest_segments() returns its window, never parsed; else its text parsed with `options`
// against `base_url` (the source's URL), whose error it returns.
Result<Playlist> continued(const Playlist& source, const Continuation& plan,
                           std::string_view base_url, const ParseOptions& options = {});
// Whether continued() writes lines that are not the source's (carried segments, lines before
// segments or trailing lines, a rendition report whose LAST-MSN the parser did not read as
// written or that lies in a URI), and so parses its text.
bool carries_own_lines(const Playlist& source, const Continuation& plan);

// `playlist` (a parsed media playlist, not a delta update) renumbered, as the balancer serves a
// live source whose numbering it continues after a restart, or whose end tag it holds back:
// continued() with only the numbers and the end tag planned (never parsed).
Playlist renumbered(const Playlist& playlist, std::uint64_t media_sequence,
                    std::uint64_t discontinuity_sequence, bool endlist);

// Line by line, for code that sorts a playlist's lines (the balancer's live restart keeps
// segments' lines apart from the tags about the whole playlist):
// the tag a line starts with, without '#': "EXT-X-VERSION" for "#EXT-X-VERSION:7", ""
// for URI lines, comments and blanks;
std::string_view tag_name(std::string_view line);
// whether a tag is about the whole playlist (kept as it is by a window): VERSION,
// TARGETDURATION, INDEPENDENT-SEGMENTS, START, DEFINE, SERVER-CONTROL, PART-INF,
// I-FRAMES-ONLY, ALLOW-CACHE and the EXTM3U header;
bool is_playlist_level(std::string_view tag);
// whether a window writes the tag itself: MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE and
// PLAYLIST-TYPE.
bool is_window_rewritten(std::string_view tag);

}  // namespace hls
