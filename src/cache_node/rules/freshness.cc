#include "cache_node/rules/freshness.h"

#include <algorithm>
#include <array>

#include "cache_node/rules/http_semantics.h"
#include "cache_node/rules/targeted_cache_control.h"

namespace cache_node {
namespace {

constexpr int64_t kMaxDelta = int64_t{1} << 31;  // RFC 9111 §1.2.2: larger values count as 2^31

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// delta-seconds (RFC 9111 §1.2.2): digits only, capped at 2^31; nullopt if not digits.
std::optional<int64_t> parse_delta_seconds(std::string_view v) {
  if (v.empty()) return std::nullopt;
  int64_t out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    out = std::min(kMaxDelta, out * 10 + (c - '0'));
  }
  return out;
}

// A directive's argument without quotes ("5" → 5); a quoted string keeps its
// inside (escapes are not needed for the numbers and names we read).
std::string_view unquote(std::string_view v) {
  v = trim_ows(v);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

void set_first(std::optional<int64_t>& slot, std::optional<std::string_view> arg) {
  if (slot || !arg) return;
  slot = parse_delta_seconds(unquote(*arg));
}

// RFC 9111 §5.1: the first member of a list-valued Age; an invalid value is ignored (0).
int64_t age_seconds(std::optional<std::string_view> age) {
  if (!age) return 0;
  return parse_delta_seconds(trim_ows(age->substr(0, age->find(',')))).value_or(0);
}

// The lifetime the response states itself (s-maxage, max-age, Expires − Date), if any.
// `targeted`: the directives are CDN-Cache-Control's, and Expires does not count (RFC 9213 §2.1).
std::optional<int64_t> explicit_lifetime_s(const CacheDirectives& d, bool targeted,
                                           const UpstreamFreshness& response, int64_t received_ms) {
  if (d.s_maxage) return *d.s_maxage;
  if (d.max_age) return *d.max_age;
  if (targeted || !response.expires) return std::nullopt;
  // An invalid Expires ("0", "-1", garbage, two lines) means already expired (RFC 9111 §5.3).
  std::optional<int64_t> expires = parse_http_date(*response.expires);
  std::optional<int64_t> date = response.date ? parse_http_date(*response.date) : std::nullopt;
  int64_t date_s = date.value_or(received_ms / 1000);
  return expires ? std::clamp<int64_t>(*expires - date_s, 0, kMaxDelta) : 0;
}

}  // namespace

ObjectKind classify_object(std::string_view path, std::string_view content_type) {
  path = path.substr(0, path.find('?'));
  std::string_view name =
      path.substr(path.rfind('/') == std::string_view::npos ? 0 : path.rfind('/') + 1);
  auto dot = name.rfind('.');
  std::string_view ext = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
  std::string_view type = trim_ows(content_type.substr(0, content_type.find(';')));

  if (iequals(ext, "m3u8") || iequals(ext, "m3u") || iends_with(type, "mpegurl"))
    return ObjectKind::playlist;
  static constexpr std::array<std::string_view, 16> kMedia = {
      "ts",  "m4s",  "mp4",  "m4v",  "m4a",  "aac", "ac3",    "ec3",
      "mp3", "cmfv", "cmfa", "cmft", "fmp4", "vtt", "webvtt", "mpd"};
  for (std::string_view m : kMedia) {
    if (iequals(ext, m)) return m == "mpd" ? ObjectKind::playlist : ObjectKind::segment;
  }
  if (istarts_with(type, "video/") || istarts_with(type, "audio/") || iequals(type, "text/vtt") ||
      iequals(type, "application/mp4")) {
    return ObjectKind::segment;
  }
  if (iequals(type, "application/dash+xml")) return ObjectKind::playlist;
  return ObjectKind::other;
}

CacheDirectives parse_cache_control(std::string_view header) {
  CacheDirectives d;
  size_t i = 0;
  while (i < header.size()) {
    // One directive: up to the next comma outside a quoted string.
    size_t end = i;
    bool quoted = false;
    for (; end < header.size(); ++end) {
      char c = header[end];
      if (quoted && c == '\\') {
        ++end;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        break;
      }
    }
    std::string_view item = trim_ows(header.substr(i, std::min(end, header.size()) - i));
    i = end + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view name = trim_ows(item.substr(0, eq));
    std::optional<std::string_view> arg;
    if (eq != std::string_view::npos) arg = trim_ows(item.substr(eq + 1));
    if (iequals(name, "max-age")) {
      set_first(d.max_age, arg);
    } else if (iequals(name, "s-maxage")) {
      set_first(d.s_maxage, arg);
    } else if (iequals(name, "stale-if-error")) {
      set_first(d.stale_if_error, arg);
    } else if (iequals(name, "stale-while-revalidate")) {
      set_first(d.stale_while_revalidate, arg);
    } else if (iequals(name, "no-store")) {
      d.no_store = true;
    } else if (iequals(name, "no-cache")) {
      d.no_cache = true;
    } else if (iequals(name, "private")) {
      d.is_private = true;
    } else if (iequals(name, "must-revalidate") || iequals(name, "proxy-revalidate")) {
      d.must_revalidate = true;
    } else if (iequals(name, "immutable")) {
      d.immutable = true;
    }
  }
  return d;
}

EffectiveDirectives effective_directives(const UpstreamFreshness& response) {
  if (response.cdn_cache_control) {
    if (auto targeted = parse_targeted_cache_control(*response.cdn_cache_control))
      return {*targeted, true};
  }
  return {parse_cache_control(response.cache_control), false};
}

Freshness compute_freshness(const UpstreamFreshness& response, ObjectKind kind, int64_t received_ms,
                            const FreshnessDefaults& defaults) {
  const auto [d, targeted] = effective_directives(response);
  Freshness f;
  f.storable = !d.no_store && !d.is_private;

  f.vouched_ms = received_ms - age_seconds(response.age) * 1000;

  int64_t lifetime_s = 0;
  if (std::optional<int64_t> stated = explicit_lifetime_s(d, targeted, response, received_ms)) {
    lifetime_s = *stated;
  } else if (d.immutable) {
    lifetime_s = defaults.segment_s;
  } else {
    switch (kind) {
      case ObjectKind::segment:
        lifetime_s = defaults.segment_s;
        break;
      case ObjectKind::playlist:
        lifetime_s = defaults.playlist_s;
        break;
      case ObjectKind::other:
        lifetime_s = defaults.other_s;
        break;
    }
  }
  f.fresh_until_ms = d.no_cache ? f.vouched_ms : f.vouched_ms + lifetime_s * 1000;

  // s-maxage carries proxy-revalidate for a shared cache (RFC 9111 §5.2.2.10).
  const bool stale_forbidden = d.no_cache || d.must_revalidate || d.s_maxage.has_value();
  int64_t window_s = stale_forbidden ? 0 : defaults.max_stale_if_error_s;
  if (d.stale_if_error) window_s = std::min(window_s, *d.stale_if_error);
  f.stale_until_ms = f.fresh_until_ms + std::max<int64_t>(0, window_s) * 1000;

  int64_t grace_ms =
      d.stale_while_revalidate
          ? std::min(*d.stale_while_revalidate, defaults.max_stale_while_revalidate_s) * 1000
          : defaults.refresh_grace_ms;
  if (stale_forbidden) grace_ms = 0;
  // The configured grace is for a copy that was fresh a moment ago: one stale on arrival (an
  // Age past its lifetime, an invalid Expires) waits for its refresh, unless the origin said
  // stale-while-revalidate.
  if (!d.stale_while_revalidate && f.fresh_until_ms <= received_ms) grace_ms = 0;
  if (kind == ObjectKind::playlist) grace_ms = std::min(grace_ms, kPlaylistRefreshGraceMs);
  f.refresh_grace_until_ms = f.fresh_until_ms + std::max<int64_t>(0, grace_ms);
  return f;
}

int64_t negative_lifetime_ms(const UpstreamFreshness& response, int64_t received_ms,
                             int64_t cap_ms) {
  const auto [d, targeted] = effective_directives(response);
  if (d.no_store || d.no_cache || d.is_private) return 0;
  std::optional<int64_t> stated_s = explicit_lifetime_s(d, targeted, response, received_ms);
  if (!stated_s) return std::max<int64_t>(0, cap_ms);
  const int64_t left_ms = *stated_s * 1000 - age_seconds(response.age) * 1000;
  return std::clamp<int64_t>(left_ms, 0, std::max<int64_t>(0, cap_ms));
}

}  // namespace cache_node
