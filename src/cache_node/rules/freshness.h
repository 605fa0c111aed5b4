// Freshness of stored responses (a shared cache's subset of RFC 9111), as pure
// functions with the time passed in: the upstream's Cache-Control, Expires, Date
// and Age become, once per response, a few deadlines in Unix milliseconds. Serving
// a hit then costs one comparison of a deadline with the clock; nothing is parsed
// per request. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace cache_node {

// What an object is, for the lifetime it gets when the upstream says nothing.
enum class ObjectKind { segment, playlist, other };

// By the path's extension (a query is ignored), else by the content type:
// .m3u8/.m3u (or a DASH .mpd) or an mpegurl (dash+xml) type is a playlist; media
// (.ts, .m4s, .mp4, .aac, ..., video/*, audio/*, text/vtt) a segment; anything
// else other. A playlist by either wins, so a live playlist never gets a
// segment's lifetime.
ObjectKind classify_object(std::string_view path, std::string_view content_type);

// The grace when the origin says nothing: a copy that expired a moment ago answers while
// its refresh runs, so a hot object no longer makes its viewers wait for the origin once
// per lifetime; one that expired longer ago waits. RFC 9111 §4.2.4 would have none (0 in
// the config); Varnish's default grace is 10 s.
inline constexpr int64_t kDefaultRefreshGraceMs = 500;

// Lifetimes for responses without freshness information, and the bound on
// serving a stale copy when the upstream fails (seconds).
struct FreshnessDefaults {
  int64_t segment_s = 86400;
  int64_t playlist_s = 1;
  int64_t other_s = 60;
  int64_t max_stale_if_error_s = 60;
  // While a stale copy is refreshed, viewers get it at once (one background fetch
  // refreshes it) for this long past its lifetime: the origin's stale-while-revalidate=N
  // (RFC 5861) up to max_stale_while_revalidate_s, else refresh_grace_ms; never with
  // no-cache, must-revalidate or s-maxage; for playlists at most kPlaylistRefreshGraceMs.
  int64_t max_stale_while_revalidate_s = 60;
  int64_t refresh_grace_ms = kDefaultRefreshGraceMs;
};

// A live playlist is never served more than this past its lifetime while it is refreshed.
inline constexpr int64_t kPlaylistRefreshGraceMs = 500;

// The response directives a shared cache acts on (RFC 9111 §5.2.2, RFC 5861).
// A directive with a bad value (max-age=abc, max-age=-1) counts as absent; of
// repeated ones, the first with a good value counts. Names are case-insensitive;
// values may be quoted. no-cache="f" and private="f" (qualified) count as the
// plain directives. Unknown directives are ignored.
struct CacheDirectives {
  std::optional<int64_t> max_age;                 // seconds, capped at 2^31
  std::optional<int64_t> s_maxage;                // seconds, capped at 2^31
  std::optional<int64_t> stale_if_error;          // seconds, capped at 2^31
  std::optional<int64_t> stale_while_revalidate;  // seconds, capped at 2^31
  bool no_store = false;
  bool no_cache = false;
  bool is_private = false;
  bool must_revalidate = false;  // also set by proxy-revalidate
  bool immutable = false;
};
CacheDirectives parse_cache_control(std::string_view header);

// The upstream response's header values, as received (absent = nullopt).
// A field sent on several lines comes joined with ", " (join_field_lines below).
struct UpstreamFreshness {
  std::string_view cache_control;  // every Cache-Control line, joined with ", "
  // Every CDN-Cache-Control line (RFC 9213), joined with ", ": when valid and not empty
  // (targeted_cache_control.h) its directives decide, and Cache-Control and Expires are ignored.
  std::optional<std::string_view> cdn_cache_control;
  // Every Expires line: more than one is invalid (its date has a comma, so the
  // joined value parses as no date) and means already expired (RFC 9111 §5.3).
  std::optional<std::string_view> expires;
  std::optional<std::string_view> date;
  // Every Age line: of a list the first member counts; an invalid value is
  // ignored (RFC 9111 §5.1).
  std::optional<std::string_view> age;
};

struct Freshness {
  // false for no-store or private: the waiters of the fetch that got it are
  // served, nothing is kept.
  bool storable = true;
  // When the upstream vouched for the copy (receipt time minus its Age): the
  // node's Age header counts from here.
  int64_t vouched_ms = 0;
  // Fresh while now < fresh_until_ms; equal to vouched_ms for no-cache (or a
  // zero lifetime): revalidated before every reuse.
  int64_t fresh_until_ms = 0;
  // Stale, it may still answer for an upstream that fails while revalidating
  // while now < stale_until_ms (== fresh_until_ms when not allowed: no-cache,
  // must-revalidate, proxy-revalidate, s-maxage, stale-if-error=0).
  int64_t stale_until_ms = 0;
  // Stale, it answers at once while one background fetch refreshes it while
  // now < refresh_grace_until_ms (== fresh_until_ms when not allowed).
  int64_t refresh_grace_until_ms = 0;
};

// The directives that decide for the node: CDN-Cache-Control's when it is valid and not empty
// (`targeted` set: Expires does not count either), else Cache-Control's.
struct EffectiveDirectives {
  CacheDirectives directives;
  bool targeted = false;
};
EffectiveDirectives effective_directives(const UpstreamFreshness& response);

// Directives as effective_directives() says (CDN-Cache-Control first, RFC 9213).
// Lifetime: s-maxage, else max-age, else Expires − Date (Date absent or invalid:
// the receipt time; an invalid Expires such as "0" is in the past), else the
// default for `kind` (immutable without a lifetime: the segment default). The
// stale-if-error window is the origin's stale-if-error=N if given, never more
// than defaults.max_stale_if_error_s.
Freshness compute_freshness(const UpstreamFreshness& response, ObjectKind kind, int64_t received_ms,
                            const FreshnessDefaults& defaults);

// How long an upstream 404/410 may answer for the object, in milliseconds: 0 (not
// remembered) for no-store, no-cache, private or an explicit lifetime that is over
// (max-age=0, an Expires in the past); an explicit lifetime (s-maxage, max-age,
// Expires − Date, less the Age) capped at `cap_ms`; else `cap_ms`, the configured
// negative TTL. A 404 that the origin marks as not reusable is never reused: the
// object may be published a moment later (a segment or an LL-HLS part asked for early).
int64_t negative_lifetime_ms(const UpstreamFreshness& response, int64_t received_ms,
                             int64_t cap_ms);

}  // namespace cache_node
