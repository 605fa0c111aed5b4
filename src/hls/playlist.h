// HLS playlist parsing (RFC 8216 and draft-pantos-hls-rfc8216bis): the facts the
// balancer needs plus a Template (rewrite.h) to render per-viewer copies.
//
// Pure: no I/O, no clock, no globals. parse_playlist() may be called from any
// thread; the returned Playlist is a value owned by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hls/result.h"
#include "hls/rewrite.h"

namespace hls {

enum class PlaylistKind : std::uint8_t { master, media };
enum class PlaylistType : std::uint8_t { unspecified, vod, event };

struct Resolution {
  std::uint64_t width = 0;
  std::uint64_t height = 0;
  bool operator==(const Resolution&) const = default;
};

// EXT-X-BYTERANGE / BYTERANGE="<length>[@<offset>]" as written (offset not inferred).
struct ByteRange {
  std::uint64_t length = 0;
  std::optional<std::uint64_t> offset;
  bool operator==(const ByteRange&) const = default;
};

// EXT-X-STREAM-INF (+ its URI line), EXT-X-I-FRAME-STREAM-INF, EXT-X-IMAGE-STREAM-INF.
// Missing or malformed numeric attributes are nullopt (with a warning).
struct Variant {
  enum class Kind : std::uint8_t { stream, iframe, image };
  Kind kind = Kind::stream;
  std::optional<std::uint64_t> bandwidth;
  std::optional<std::uint64_t> average_bandwidth;
  std::optional<Resolution> resolution;
  std::optional<double> frame_rate;
  std::string codecs;                                    // empty when absent
  std::string audio, video, subtitles, closed_captions;  // group ids, empty when absent
  std::optional<std::size_t> uri_slot;  // index in Template::slots(); nullopt if no URI
  std::size_t line = 0;
  bool operator==(const Variant&) const = default;
};

// EXT-X-MEDIA.
struct Rendition {
  std::string type;  // AUDIO, VIDEO, SUBTITLES, CLOSED-CAPTIONS
  std::string group_id, name, language;
  bool is_default = false;
  bool autoselect = false;
  std::optional<std::size_t> uri_slot;
  std::size_t line = 0;
  bool operator==(const Rendition&) const = default;
};

// EXT-X-KEY or EXT-X-SESSION-KEY.
struct Key {
  bool session = false;  // EXT-X-SESSION-KEY
  std::string method;    // NONE, AES-128, SAMPLE-AES, ...
  std::string keyformat;
  std::optional<std::size_t> uri_slot;  // nullopt for METHOD=NONE
  std::size_t line = 0;
  bool operator==(const Key&) const = default;
};

struct Segment {
  std::uint64_t sequence = 0;      // media sequence number (includes EXT-X-SKIP'ed ones)
  std::optional<double> duration;  // EXTINF seconds; nullopt for a URI line without EXTINF
  std::size_t uri_slot = 0;
  std::optional<ByteRange> byte_range;
  bool discontinuity = false;
  bool gap = false;
  std::string program_date_time;        // EXT-X-PROGRAM-DATE-TIME value as written, or empty
  std::optional<std::size_t> map_slot;  // the EXT-X-MAP in force, if any
  std::size_t line = 0;                 // line of the URI
  bool operator==(const Segment&) const = default;
};

// EXT-X-PART. Parts listed before a segment's URI line belong to that segment;
// parts after the last segment belong to the one being produced
// (segment_index == segments.size()).
struct Part {
  std::size_t segment_index = 0;
  std::optional<double> duration;
  std::size_t uri_slot = 0;
  bool independent = false;
  bool gap = false;
  std::optional<ByteRange> byte_range;
  std::size_t line = 0;
  bool operator==(const Part&) const = default;
};

struct PreloadHint {
  std::string type;  // PART, MAP (others kept, with a warning)
  std::optional<std::size_t> uri_slot;
  std::optional<std::uint64_t> byterange_start;
  std::optional<std::uint64_t> byterange_length;
  std::size_t line = 0;
  bool operator==(const PreloadHint&) const = default;
};

struct RenditionReport {
  std::optional<std::size_t> uri_slot;
  std::optional<std::uint64_t> last_msn;
  std::optional<std::uint64_t> last_part;
  std::size_t line = 0;
  bool operator==(const RenditionReport&) const = default;
};

// EXT-X-SERVER-CONTROL.
struct ServerControl {
  bool can_block_reload = false;
  std::optional<double> can_skip_until;
  bool can_skip_dateranges = false;
  std::optional<double> hold_back;
  std::optional<double> part_hold_back;
  bool operator==(const ServerControl&) const = default;
};

struct MasterInfo {
  std::vector<Variant> variants;  // in source order, all kinds
  std::vector<Rendition> renditions;
  std::vector<Key> session_keys;
  bool operator==(const MasterInfo&) const = default;
};

struct MediaInfo {
  std::optional<std::uint64_t> target_duration;  // seconds; nullopt when absent
  std::uint64_t media_sequence = 0;
  std::uint64_t discontinuity_sequence = 0;
  bool endlist = false;
  PlaylistType type = PlaylistType::unspecified;
  bool iframes_only = false;
  std::optional<double> part_target;  // EXT-X-PART-INF PART-TARGET
  ServerControl server_control;
  std::optional<std::uint64_t> skipped_segments;  // EXT-X-SKIP SKIPPED-SEGMENTS
  std::vector<Segment> segments;
  std::vector<Part> parts;
  std::vector<PreloadHint> preload_hints;
  std::vector<RenditionReport> rendition_reports;
  std::vector<Key> keys;       // EXT-X-KEY and (tolerated) EXT-X-SESSION-KEY, in order
  std::size_t dateranges = 0;  // EXT-X-DATERANGE tags (kept as they are)

  bool is_delta_update() const { return skipped_segments.has_value(); }
  bool operator==(const MediaInfo&) const = default;
};

struct Playlist {
  PlaylistKind kind = PlaylistKind::media;
  std::optional<std::uint64_t> version;
  bool independent_segments = false;
  MasterInfo master;  // filled when kind == master
  MediaInfo media;    // filled when kind == media
  // Variables defined by EXT-X-DEFINE (NAME/VALUE, IMPORT, QUERYPARAM), in order.
  // Pass a master playlist's list as ParseOptions::imported_variables when parsing
  // its media playlists.
  std::vector<std::pair<std::string, std::string>> variables;
  // Deviations that were tolerated (code, message, line), in line order.
  std::vector<Issue> warnings;
  Template tmpl;
};

struct ParseOptions {
  // Larger input is rejected with "too_large".
  std::size_t max_bytes = 4 * 1024 * 1024;
  // Variables a media playlist may EXT-X-DEFINE:IMPORT (from its master playlist).
  std::vector<std::pair<std::string, std::string>> imported_variables;
  // More URIs than this is rejected with "too_large" (memory per URI is bounded).
  std::size_t max_uris = 200000;
  // At most this many warnings are kept; the rest are dropped.
  std::size_t max_warnings = 64;
};

// Parses `source`, fetched from the absolute URL `base_url` (used to resolve
// relative URIs and for EXT-X-DEFINE:QUERYPARAM). Copies `source` once into the
// returned Template. "too_large" is also returned when variable substitution
// would insert more than max_bytes in total, or there are more than max_uris URIs.
// Messages are ASCII. On failure returns an Issue whose code is one of:
//   too_large, bad_base_url, empty_playlist, missing_header, duplicate_header,
//   mixed_playlist, bad_attribute_list, bad_uri, undefined_variable,
//   duplicate_variable, bad_extinf, bad_target_duration, bad_media_sequence,
//   bad_discontinuity_sequence, bad_skip
// and whose message names the line. Never throws except std::bad_alloc.
Result<Playlist> parse_playlist(std::string_view source, std::string_view base_url,
                                const ParseOptions& options = {});

}  // namespace hls
