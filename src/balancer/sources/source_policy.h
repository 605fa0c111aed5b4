// How long a fetched source playlist may be served, as pure functions of its
// kind, its age and the configured timings (docs/balancer.md "Freshness").
// Ages are measured from the moment the fetch that produced or revalidated the
// copy was *sent*, so the time origin took to answer counts against freshness.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "hls/playlist.h"

namespace balancer {

using Millis = std::chrono::milliseconds;

enum class SourceKind : uint8_t { master, live, vod };
const char* to_string(SourceKind kind);

// Master → master; media with EXT-X-ENDLIST or PLAYLIST-TYPE:VOD → vod; else live.
SourceKind classify(const hls::Playlist& playlist);

struct PlaylistTimings {
  Millis master_ttl{5000};   // playlists.master_ttl_ms
  Millis vod_ttl{300000};    // playlists.vod_ttl_s
  Millis live_max_lag{500};  // playlists.live_max_lag_ms: never serve a live copy older
  Millis live_refresh{250};  // playlists.live_refresh_ms: background refresh period
  Millis live_idle{10000};   // playlists.live_idle_s: stop refreshing with no viewer for
  Millis live_end_confirm{
      300000};  // playlists.live_end_confirm_s: a live channel's end tag is held back for
  Millis master_stale{30000};  // playlists.master_stale_s: last good master on origin failure
  Millis media_stale{60000};  // playlists.media_stale_s: last good media playlist on origin failure
  Millis fetch_timeout{3000};      // playlists.fetch_timeout_ms
  Millis blocking_timeout{15000};  // playlists.blocking_timeout_ms (LL-HLS blocking reloads)
  Millis error_hold{250};          // playlists.error_hold_ms: a failure answers for this long
  Millis evict_after{60000};       // playlists.evict_after_s: forget copies nobody asked for
  size_t max_bytes = 4 << 20;      // playlists.max_bytes
  size_t max_entries = 10000;      // playlists.max_entries
  size_t max_directive_entries =
      256;  // playlists.max_directive_entries: LL-HLS reloads kept per playlist
  // playlists.max_segments: a live or EVENT playlist with more is served as a window of its
  // newest segments; a VOD playlist with more is refused (a viewer's copy costs per segment).
  size_t max_segments = 6000;
  // playlists.max_master_entries: a multivariant playlist with more variants and renditions
  // (together) is refused: a viewer's copy costs per entry, once per steering pathway.
  size_t max_master_entries = 500;
  // playlists.max_unsent_bytes: playlist replies handed to connections but not yet written to
  // their sockets, in all (clients that do not read); above, new playlist replies get 503.
  size_t max_unsent_bytes = 256u << 20;
  // playlists.max_unsent_bytes_per_address: of those, what one client address may hold (shared
  // over the loops; at most max_unsent_bytes); above, its new playlist replies get 429.
  size_t max_unsent_bytes_per_address = 16u << 20;
  // playlists.max_blocking_per_viewer: blocking reloads (_HLS_msn) one viewer may have waiting
  // on one loop; beyond, 429.
  size_t max_blocking_per_viewer = 64;
};

// May a copy of `kind`, last fetched or revalidated `age` ago, be served as fresh?
bool is_fresh(SourceKind kind, Millis age, const PlaylistTimings& timings);

// After a failed refresh: may the last good copy still be served? Live and VOD
// copies for media_stale (at least one target duration) after their last good
// fetch, masters for master_stale. A player keeps reloading a live playlist that
// does not move and resumes when origin returns; a 502 instead makes players
// such as ffmpeg give up after a few reloads.
bool may_serve_stale(SourceKind kind, Millis age_of_last_good, Millis target_duration,
                     const PlaylistTimings& timings);

// Refresh ahead (docs/balancer.md "Freshness strategy"). A copy is vouched for as of its
// fetch's send time, so an answer lands already one origin round trip old: a live copy stays
// within live_max_lag only if the next answer lands before the copy in hand crosses it.
// Background refreshes of one copy may therefore overlap, up to this many at once.
inline constexpr size_t kMaxRefreshesInFlight = 3;
// Room left for a refresh's timer firing late and its answer waiting on a busy loop (tens of
// milliseconds at thousands of connections, more on a starved machine).
inline constexpr Millis kRefreshMargin{100};

// The copy's origin round trip after one more answer took `sample`: up at once to a longer
// one (a slower origin is believed at the first sign), a quarter of the way down to a shorter
// one (a calm spell between spikes is not).
Millis next_round_trip(Millis estimate, Millis sample);

// How long after the latest fetch of a live copy was sent the next background refresh is sent:
// live_refresh, or less when an answer `round_trip` long would otherwise land after the copy
// in hand is live_max_lag old (send + round_trip + kRefreshMargin <= latest send +
// live_max_lag), but never less than round_trip / kMaxRefreshesInFlight (refreshes spread
// evenly over a round trip when the origin is too slow to keep within the margin).
Millis refresh_interval(Millis round_trip, const PlaylistTimings& timings);

// The fetch loop's connections to an origin are shared by every playlist on it (HTTP/1.1: at
// most max_host_connections at once, the rest queued). A playlist whose origin round trip is at
// least kSlowRoundTrip, or a refresh sent ahead beside another of the same copy, goes in the
// client's slow lane, whose share of the connections is bounded (balancer_fetchers.cc): however
// many slow playlists share an origin, a fast one's refresh finds a connection at once.
// Follows and blocking reloads, which origin holds for a part by design, stay in the regular
// lane (their wait is the low-latency path).
inline constexpr Millis kSlowRoundTrip{300};
bool slow_lane_fetch(Millis round_trip, bool sent_ahead, bool held_at_origin);

// The target duration of a media playlist (1 s floor; 6 s when absent).
Millis target_duration_of(const hls::Playlist& playlist);

// Blocking playlist reloads (RFC 8216bis §6.2.5.2) against one media playlist, as pure rules.
// "The last segment" is the last complete one (with EXTINF); "the last part", the last
// EXT-X-PART listed.

// The part a reload asks for: an _HLS_part past the final part of a complete segment M
// means part 0 of segment M+1 (§6.2.5.2). A segment whose parts are no longer listed
// keeps the request as it is (it is complete: answered at once).
struct BlockingTarget {
  uint64_t msn = 0;
  std::optional<uint64_t> part;
  bool operator==(const BlockingTarget&) const = default;
};
BlockingTarget normalize_blocking(const hls::MediaInfo& media, uint64_t msn,
                                  std::optional<uint64_t> part);

// The Advance Part Limit: 3 / PART-TARGET when PART-TARGET is under a second, else 3.
uint64_t advance_part_limit(const hls::MediaInfo& media);

// Does this media playlist already answer a blocking reload for (msn, part)? True when it
// holds segment `msn` completely, or (with a part) that part (after normalize_blocking), or
// when it has EXT-X-ENDLIST (the directives are then ignored).
bool satisfies_blocking(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part);

// Is a blocking reload so far ahead that the spec says reject it (400)? An msn more than two
// past the last segment's, or a part more than the Advance Part Limit past the last part
// (later segments counted as ceil(target duration / PART-TARGET) parts each). Never with
// EXT-X-ENDLIST.
bool directives_too_far(const hls::MediaInfo& media, uint64_t msn, std::optional<uint64_t> part);

// How long a blocked reload may wait before it is answered 503 (§6.2.5.2: three target
// durations).
Millis blocking_wait_limit(Millis target_duration);

// The blocking reload that brings the next version of a low-latency playlist: the part after
// the last one listed (the first of the segment in progress when none of it is listed yet).
// None unless the origin can block (CAN-BLOCK-RELOAD=YES) and the playlist has parts
// (PART-TARGET) and no EXT-X-ENDLIST: such a playlist is refreshed by period instead.
std::optional<BlockingTarget> next_part_to_follow(const hls::MediaInfo& media);

}  // namespace balancer
