// Freshness of stored responses as pure functions, time passed in (a FakeClock's
// reading): Cache-Control directives and their precedence, Expires − Date, the
// upstream's Age, defaults by kind, stale-if-error bounds, and HTTP dates.
#include <doctest/doctest.h>

#include "cache_node/rules/freshness.h"
#include "cache_node/rules/http_semantics.h"
#include "core/clock.h"

using namespace cache_node;

namespace {

const FreshnessDefaults kDefaults{/*segment_s=*/86400, /*playlist_s=*/1, /*other_s=*/60,
                                  /*max_stale_if_error_s=*/30};

// What an upstream answer says of its freshness.
UpstreamFreshness upstream(std::string_view cache_control,
                           std::optional<std::string_view> expires = std::nullopt,
                           std::optional<std::string_view> date = std::nullopt,
                           std::optional<std::string_view> age = std::nullopt) {
  UpstreamFreshness r;
  r.cache_control = cache_control;
  r.expires = expires;
  r.date = date;
  r.age = age;
  return r;
}

Freshness of(std::string_view cache_control, ObjectKind kind, int64_t now_ms,
             std::optional<std::string_view> expires = std::nullopt,
             std::optional<std::string_view> date = std::nullopt,
             std::optional<std::string_view> age = std::nullopt) {
  return compute_freshness(upstream(cache_control, expires, date, age), kind, now_ms, kDefaults);
}

// Lifetime in seconds as the node will apply it.
int64_t lifetime_s(const Freshness& f) {
  return (f.fresh_until_ms - f.vouched_ms) / 1000;
}

}  // namespace

TEST_CASE("cache-control: each directive is read, names case-insensitive, values may be quoted") {
  CacheDirectives d = parse_cache_control(
      "Public, MAX-AGE=10, s-maxage=\"20\", no-cache, no-store, private, must-revalidate, "
      "immutable, stale-if-error=5");
  CHECK(d.max_age == 10);
  CHECK(d.s_maxage == 20);
  CHECK(d.stale_if_error == 5);
  CHECK(d.no_cache);
  CHECK(d.no_store);
  CHECK(d.is_private);
  CHECK(d.must_revalidate);
  CHECK(d.immutable);
  CHECK(parse_cache_control("proxy-revalidate").must_revalidate);
  CacheDirectives none = parse_cache_control("public, no-transform, x-unknown=\"a, b\"");
  CHECK_FALSE(none.max_age.has_value());
  CHECK_FALSE(none.no_cache);
  // A comma inside a quoted argument does not split directives.
  CHECK(parse_cache_control("no-cache=\"Set-Cookie, X-A\", max-age=7").max_age == 7);
  CHECK(parse_cache_control("private=\"X\"").is_private);
}

TEST_CASE(
    "cache-control: bad values are ignored, the first good one counts, huge values cap at 2^31") {
  CHECK_FALSE(parse_cache_control("max-age=abc").max_age.has_value());
  CHECK_FALSE(parse_cache_control("max-age=-1").max_age.has_value());
  CHECK_FALSE(parse_cache_control("max-age=").max_age.has_value());
  CHECK_FALSE(parse_cache_control("max-age").max_age.has_value());
  CHECK_FALSE(parse_cache_control("max-age=1.5").max_age.has_value());
  CHECK(parse_cache_control("max-age=abc, max-age=9").max_age == 9);
  CHECK(parse_cache_control("max-age=3, max-age=9").max_age == 3);
  CHECK(parse_cache_control(" max-age = 4 ,,").max_age == 4);
  CHECK(parse_cache_control("max-age=99999999999999999999999").max_age == (int64_t{1} << 31));
}

TEST_CASE("freshness: s-maxage over max-age over Expires − Date over the default") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  const std::string date = format_http_date(now / 1000);
  const std::string in_100s = format_http_date(now / 1000 + 100);
  CHECK(lifetime_s(of("max-age=5, s-maxage=7", ObjectKind::segment, now, in_100s, date)) == 7);
  CHECK(lifetime_s(of("max-age=5", ObjectKind::segment, now, in_100s, date)) == 5);
  CHECK(lifetime_s(of("", ObjectKind::segment, now, in_100s, date)) == 100);
  CHECK(lifetime_s(of("public", ObjectKind::segment, now)) == 86400);
  // A bad max-age falls through to Expires.
  CHECK(lifetime_s(of("max-age=x", ObjectKind::playlist, now, in_100s, date)) == 100);
  // max-age=0: stale at once.
  Freshness zero = of("max-age=0", ObjectKind::segment, now);
  CHECK(zero.fresh_until_ms == now);
  CHECK(zero.storable);
}

TEST_CASE(
    "freshness: Expires counts from the origin's Date, not the receipt time; past or invalid is "
    "expired") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  // The origin's clock is 1000 s behind ours: its 60 s lifetime still holds.
  const std::string origin_date = format_http_date(now / 1000 - 1000);
  const std::string origin_expires = format_http_date(now / 1000 - 940);
  CHECK(lifetime_s(of("", ObjectKind::other, now, origin_expires, origin_date)) == 60);
  // No Date: the receipt time stands in.
  CHECK(lifetime_s(of("", ObjectKind::other, now, format_http_date(now / 1000 + 30))) == 30);
  // In the past, "0" or garbage: already expired (RFC 9111 §5.3), not the default.
  CHECK(lifetime_s(of("", ObjectKind::segment, now, format_http_date(now / 1000 - 5))) == 0);
  CHECK(lifetime_s(of("", ObjectKind::segment, now, "0")) == 0);
  CHECK(lifetime_s(of("", ObjectKind::segment, now, "tomorrow")) == 0);
  // A bad Date is ignored (receipt time).
  CHECK(lifetime_s(
            of("", ObjectKind::other, now, format_http_date(now / 1000 + 30), "yesterday")) == 30);
}

TEST_CASE("freshness: the upstream's Age moves the vouched time back; a bad Age is ignored") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  Freshness f = of("max-age=60", ObjectKind::segment, now, std::nullopt, std::nullopt, "20");
  CHECK(f.vouched_ms == now - 20'000);
  CHECK(f.fresh_until_ms == now + 40'000);
  CHECK(of("max-age=60", ObjectKind::segment, now, std::nullopt, std::nullopt, "-3").vouched_ms ==
        now);
  CHECK(of("max-age=60", ObjectKind::segment, now, std::nullopt, std::nullopt, "soon").vouched_ms ==
        now);
  // Older than its lifetime: stale on arrival.
  CHECK(
      of("max-age=10", ObjectKind::segment, now, std::nullopt, std::nullopt, "30").fresh_until_ms <
      now);
}

TEST_CASE(
    "freshness: no-store and private are not stored; no-cache is stored but always revalidated") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  CHECK_FALSE(of("no-store", ObjectKind::segment, now).storable);
  CHECK_FALSE(of("private, max-age=600", ObjectKind::segment, now).storable);
  CHECK_FALSE(of("public, No-Store", ObjectKind::playlist, now).storable);
  Freshness no_cache = of("no-cache, max-age=600", ObjectKind::segment, now);
  CHECK(no_cache.storable);
  CHECK(no_cache.fresh_until_ms == now);  // now < fresh_until is false: revalidate before reuse
  CHECK(no_cache.stale_until_ms == now);  // and never served stale
}

TEST_CASE("freshness: immutable keeps its lifetime; without one it gets the long segment default") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  CHECK(lifetime_s(of("max-age=30, immutable", ObjectKind::playlist, now)) == 30);
  CHECK(lifetime_s(of("immutable", ObjectKind::other, now)) == 86400);
  CHECK(of("immutable, no-cache", ObjectKind::segment, now).fresh_until_ms ==
        now);  // no-cache wins
}

TEST_CASE("freshness: defaults by kind when the upstream says nothing") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  CHECK(lifetime_s(of("", ObjectKind::segment, now)) == 86400);
  CHECK(lifetime_s(of("", ObjectKind::playlist, now)) == 1);
  CHECK(lifetime_s(of("", ObjectKind::other, now)) == 60);
  FreshnessDefaults zero{0, 0, 0, 0};
  CHECK(compute_freshness({}, ObjectKind::segment, now, zero).fresh_until_ms == now);
}

TEST_CASE(
    "freshness: a stale copy may answer for a failing upstream only within the bound, and only "
    "when allowed") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  Freshness f = of("max-age=10", ObjectKind::segment, now);
  CHECK(f.stale_until_ms == f.fresh_until_ms + 30'000);  // the configured bound
  CHECK(of("max-age=10, stale-if-error=5", ObjectKind::segment, now).stale_until_ms ==
        now + 15'000);
  CHECK(of("max-age=10, stale-if-error=500", ObjectKind::segment, now).stale_until_ms ==
        now + 40'000);  // capped
  CHECK(of("max-age=10, stale-if-error=0", ObjectKind::segment, now).stale_until_ms ==
        now + 10'000);
  for (const char* forbids : {"max-age=10, must-revalidate", "max-age=10, proxy-revalidate",
                              "s-maxage=10", "max-age=10, no-cache"}) {
    Freshness strict = of(forbids, ObjectKind::segment, now);
    CHECK_MESSAGE(strict.stale_until_ms == strict.fresh_until_ms, forbids);
  }
}

TEST_CASE("freshness: deadlines move with the injected clock") {
  core::FakeClock clock;
  Freshness f = of("max-age=1", ObjectKind::playlist, clock.unix_now_ms());
  CHECK(clock.unix_now_ms() < f.fresh_until_ms);
  clock.advance(std::chrono::milliseconds(999));
  CHECK(clock.unix_now_ms() < f.fresh_until_ms);
  clock.advance(std::chrono::milliseconds(1));
  CHECK_FALSE(clock.unix_now_ms() < f.fresh_until_ms);
}

TEST_CASE("object kind: by extension (query ignored), else by content type; playlist wins") {
  CHECK(classify_object("demo/live/seg_00001.ts", "") == ObjectKind::segment);
  CHECK(classify_object("demo/v/init.MP4?x=1", "") == ObjectKind::segment);
  for (const char* ext : {"m4s", "aac", "m4a", "vtt", "cmfv", "mp3"}) {
    CHECK_MESSAGE(classify_object(std::string("demo/a.") + ext, "") == ObjectKind::segment, ext);
  }
  CHECK(classify_object("demo/live/index.m3u8?cc=1", "video/mp2t") == ObjectKind::playlist);
  CHECK(classify_object("demo/live/index", "application/vnd.apple.mpegurl") ==
        ObjectKind::playlist);
  CHECK(classify_object("demo/live/index", "audio/x-mpegURL; charset=utf-8") ==
        ObjectKind::playlist);
  CHECK(classify_object("demo/live/chunk", "video/MP2T") == ObjectKind::segment);
  CHECK(classify_object("demo/live/chunk", "audio/aac") == ObjectKind::segment);
  CHECK(classify_object("demo/live/seg.ts", "application/vnd.apple.mpegurl") ==
        ObjectKind::playlist);
  CHECK(classify_object("demo/logo.png", "image/png") == ObjectKind::other);
  CHECK(classify_object("demo/dir.ts/file", "") ==
        ObjectKind::other);  // the extension of the last segment
  CHECK(classify_object("demo/a?b.ts", "") == ObjectKind::other);  // not of the query
}

TEST_CASE("http dates: IMF-fixdate and the two obsolete forms") {
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777);
  CHECK_FALSE(parse_http_date("0").has_value());
  CHECK_FALSE(parse_http_date("").has_value());
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing").has_value());
}

TEST_CASE("http dates: exactly the RFC 9110 grammars, nothing looser") {
  // Each of these was accepted by a strptime reading and gave a date the origin never wrote.
  CHECK_FALSE(parse_http_date("Sun,  06 Nov 1994 08:49:37 GMT").has_value());  // two spaces
  CHECK_FALSE(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT").has_value());    // one-digit day
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 8:49:37 GMT").has_value());    // one-digit hour
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC").has_value());
  CHECK_FALSE(
      parse_http_date("Sun, 06 nov 1994 08:49:37 GMT").has_value());  // names are case-sensitive
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 94 08:49:37 GMT").has_value());
  CHECK_FALSE(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT").has_value());
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 24:49:37 GMT").has_value());
  CHECK_FALSE(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT").has_value());
  CHECK_FALSE(
      parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT").has_value());
  CHECK_FALSE(parse_http_date("Sunday, 6-Nov-94 08:49:37 GMT").has_value());
  CHECK_FALSE(parse_http_date("Sun Nov 6 08:49:37 1994").has_value());  // asctime pads with a space
  CHECK(parse_http_date("Sun Nov 16 08:49:37 1994") == 784111777 + 10 * 86400);
  // Surrounding white space is the field's, not the date's.
  CHECK(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT ") == 784111777);
  // RFC 850's two-digit year: 1970–2069.
  CHECK(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT") == 0);
  CHECK(parse_http_date("Sunday, 01-Jan-34 00:00:00 GMT") == 2019686400);
}

TEST_CASE("freshness: two Expires lines are invalid, so already expired") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  const std::string later = format_http_date(now / 1000 + 600);
  CHECK(lifetime_s(of("", ObjectKind::segment, now, later)) == 600);
  // Joined as the node joins a field sent on several lines.
  const std::string twice = later + ", " + later;
  CHECK(lifetime_s(of("", ObjectKind::segment, now, twice)) == 0);
  CHECK(lifetime_s(of("", ObjectKind::segment, now, "Sun,  06 Nov 2094 08:49:37 GMT")) == 0);
}

TEST_CASE("freshness: of a list-valued Age the first member counts (RFC 9111 §5.1)") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  CHECK(of("max-age=3600", ObjectKind::segment, now, std::nullopt, std::nullopt, "7200, 0")
            .fresh_until_ms < now);
  CHECK(of("max-age=3600", ObjectKind::segment, now, std::nullopt, std::nullopt, " 20 ,0")
            .vouched_ms == now - 20'000);
  CHECK(of("max-age=3600", ObjectKind::segment, now, std::nullopt, std::nullopt, "x, 20")
            .vouched_ms == now);
}

TEST_CASE("negative answers: remembered only as long as the origin's own headers allow") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  auto negative = [&](std::string_view cache_control,
                      std::optional<std::string_view> expires = std::nullopt,
                      std::optional<std::string_view> age = std::nullopt) {
    return negative_lifetime_ms(upstream(cache_control, expires, std::nullopt, age), now, 2000);
  };
  CHECK(negative("") == 2000);  // nothing said: the configured TTL
  CHECK(negative("no-store") == 0);
  CHECK(negative("no-cache") == 0);
  CHECK(negative("private") == 0);
  CHECK(negative("max-age=0") == 0);
  CHECK(negative("max-age=1") == 1000);
  CHECK(negative("max-age=60") == 2000);  // capped by the configured TTL
  CHECK(negative("max-age=60, s-maxage=0") == 0);
  CHECK(negative("max-age=5", std::nullopt, "4") == 1000);
  CHECK(negative("max-age=5", std::nullopt, "9") == 0);
  const std::string past = format_http_date(now / 1000 - 10);
  CHECK(negative("", past) == 0);
  CHECK(negative("", "0") == 0);
  CHECK(negative("", format_http_date(now / 1000 + 1)) == 1000);
}

TEST_CASE("Vary: * is never reused; other Vary values are") {
  for (const char* vary : {"*", "Accept-Encoding, *", " * "}) {
    CHECK_MESSAGE(varies_on_everything(vary), vary);
  }
  for (const char* vary : {"", "Accept-Encoding", "X-*"}) {
    CHECK_FALSE_MESSAGE(varies_on_everything(vary), vary);
  }
}

TEST_CASE(
    "kept headers: end-to-end fields are kept; hop-by-hop, computed, cookies and CORS are not") {
  for (const char* kept :
       {"Content-Encoding", "content-language", "Vary", "Link", "Content-Disposition", "X-Custom",
        "Content-Location", "Server-Timing"}) {
    CAPTURE(kept);
    CHECK(kept_response_header(kept, ""));
  }
  for (const char* not_kept : {"Connection",
                               "keep-alive",
                               "Transfer-Encoding",
                               "TE",
                               "Trailer",
                               "Upgrade",
                               "Proxy-Authenticate",
                               "Content-Length",
                               "Content-Range",
                               "Date",
                               "Age",
                               "ETag",
                               "Last-Modified",
                               "Cache-Control",
                               "Expires",
                               "Content-Type",
                               "Set-Cookie",
                               "Access-Control-Allow-Origin",
                               "access-control-expose-headers",
                               "X-Cache",
                               ""}) {
    CAPTURE(not_kept);
    CHECK_FALSE(kept_response_header(not_kept, ""));
  }
  // A field the Connection header names is this hop's only.
  CHECK_FALSE(kept_response_header("X-Hop", "close, x-hop"));
  CHECK(kept_response_header("X-Hop", "close"));
}

TEST_CASE("a 304 updates the stored headers but those of the stored body and its validator") {
  for (const char* fixed :
       {"Content-Encoding", "content-md5", "Content-Length", "Content-Range", "ETag"}) {
    CAPTURE(fixed);
    CHECK_FALSE(updated_by_304(fixed));
  }
  for (const char* updated :
       {"Content-Type", "Cache-Control", "Expires", "Link", "X-Custom", "Content-Location"}) {
    CAPTURE(updated);
    CHECK(updated_by_304(updated));
  }
}

TEST_CASE(
    "stale-while-revalidate: the origin's window up to the cap, else the configured grace; none "
    "when forbidden") {
  core::FakeClock clock;
  const int64_t now = clock.unix_now_ms();
  FreshnessDefaults defaults = kDefaults;
  defaults.max_stale_while_revalidate_s = 30;
  defaults.refresh_grace_ms = 0;
  auto grace_ms = [&](std::string_view cc, ObjectKind kind = ObjectKind::segment) {
    UpstreamFreshness r;
    r.cache_control = cc;
    const Freshness f = compute_freshness(r, kind, now, defaults);
    return f.refresh_grace_until_ms - f.fresh_until_ms;
  };
  CHECK(grace_ms("max-age=10") == 0);
  CHECK(grace_ms("max-age=10, stale-while-revalidate=5") == 5000);
  CHECK(grace_ms("max-age=10, stale-while-revalidate=500") == 30'000);  // capped
  CHECK(grace_ms("max-age=10, stale-while-revalidate=5, must-revalidate") == 0);
  CHECK(grace_ms("max-age=10, stale-while-revalidate=5, no-cache") == 0);
  CHECK(grace_ms("s-maxage=10, stale-while-revalidate=5") == 0);
  // A live playlist is never more than half a second past its lifetime.
  CHECK(grace_ms("max-age=1, stale-while-revalidate=5", ObjectKind::playlist) ==
        kPlaylistRefreshGraceMs);
  defaults.refresh_grace_ms = 2000;
  CHECK(grace_ms("max-age=10") == 2000);
  CHECK(grace_ms("max-age=1", ObjectKind::playlist) == 500);
  // Stale on arrival: no configured grace (the origin's own stale-while-revalidate still counts).
  UpstreamFreshness aged;
  aged.cache_control = "max-age=10";
  aged.age = "20";
  Freshness f = compute_freshness(aged, ObjectKind::segment, now, defaults);
  CHECK(f.refresh_grace_until_ms == f.fresh_until_ms);
  aged.cache_control = "max-age=10, stale-while-revalidate=30";
  f = compute_freshness(aged, ObjectKind::segment, now, defaults);
  CHECK(f.refresh_grace_until_ms - f.fresh_until_ms == 30'000);
  CHECK(parse_cache_control("stale-while-revalidate=\"7\"").stale_while_revalidate == 7);
}

namespace {

// An answer with a CDN-Cache-Control field beside its Cache-Control (and Expires, Date).
Freshness targeted(std::string_view cdn, std::string_view cache_control, int64_t now_ms,
                   std::optional<std::string_view> expires = std::nullopt,
                   std::optional<std::string_view> date = std::nullopt,
                   std::optional<std::string_view> age = std::nullopt) {
  UpstreamFreshness r = upstream(cache_control, expires, date, age);
  r.cdn_cache_control = cdn;
  return compute_freshness(r, ObjectKind::other, now_ms, kDefaults);
}

}  // namespace

TEST_CASE("freshness: CDN-Cache-Control decides for the node over Cache-Control and Expires") {
  const int64_t now = 1'700'000'000'000;
  // The edges' own lifetime, longer or shorter than the browsers'.
  CHECK(lifetime_s(targeted("max-age=3600", "max-age=1", now)) == 3600);
  CHECK(lifetime_s(targeted("max-age=1", "max-age=3600", now)) == 1);
  CHECK(lifetime_s(targeted("max-age=99999999999", "", now)) == int64_t{1} << 31);
  CHECK(lifetime_s(targeted("foobar, max-age=3600", "", now)) == 3600);
  // Expires counts no more once the targeted field is used: neither a past one nor an invalid
  // one shortens it, nor does a future one lengthen max-age=0.
  const char* date = "Tue, 14 Nov 2023 22:13:20 GMT";
  CHECK(lifetime_s(targeted("max-age=3600", "", now, "Tue, 14 Nov 2023 19:26:40 GMT", date)) ==
        3600);
  CHECK(lifetime_s(targeted("max-age=3600", "", now, "0", date)) == 3600);
  CHECK(lifetime_s(targeted("max-age=0", "", now, "Wed, 15 Nov 2023 01:00:00 GMT", date)) == 0);
  // Without a lifetime of its own: the default, not the browsers' max-age or Expires.
  CHECK(lifetime_s(targeted("must-revalidate", "max-age=5", now)) == kDefaults.other_s);
  // Its Age still counts: max-age=3600 with Age 7200 is stale on arrival.
  const Freshness aged = targeted("max-age=3600", "", now, std::nullopt, std::nullopt, "7200");
  CHECK(aged.fresh_until_ms < now);
  // Storing: no-store and private there win over a Cache-Control lifetime, and a lifetime there
  // wins over Cache-Control: no-store.
  CHECK_FALSE(targeted("no-store", "max-age=10000", now).storable);
  CHECK_FALSE(targeted("private", "max-age=10000", now).storable);
  CHECK_FALSE(targeted("private=\"x-user\"", "max-age=10000", now).storable);
  const Freshness no_cache = targeted("no-cache", "max-age=10000", now);
  CHECK(no_cache.storable);
  CHECK(no_cache.fresh_until_ms == no_cache.vouched_ms);
  const Freshness kept = targeted("max-age=10000", "no-store", now);
  CHECK(kept.storable);
  CHECK(lifetime_s(kept) == 10000);
  // Stale rules follow the targeted directives too.
  const Freshness revalidate = targeted("max-age=10, must-revalidate", "max-age=10", now);
  CHECK(revalidate.stale_until_ms == revalidate.fresh_until_ms);
  CHECK(revalidate.refresh_grace_until_ms == revalidate.fresh_until_ms);
  const Freshness swr = targeted("max-age=10, stale-while-revalidate=20", "", now);
  CHECK(swr.refresh_grace_until_ms == swr.fresh_until_ms + 20'000);
}

TEST_CASE("freshness: a CDN-Cache-Control that is not a valid dictionary leaves Cache-Control") {
  const int64_t now = 1'700'000'000'000;
  // Not RFC 8941: a space around '=', an unknown character, upper case, a trailing comma; and
  // values of the wrong type (a String max-age, a number no-store); empty.
  for (const char* invalid :
       {"max-age =100", "max-age= 100", "max-age=10000, &&&&&", "MaX-aGe=3600", "max-age=3600,",
        "max-age=\"10000\"", "no-store=3", "max-age=-5", "max-age=1.5", "", "   ", "max-age"}) {
    CAPTURE(invalid);
    const Freshness f = targeted(invalid, "no-store", now);
    CHECK_FALSE(f.storable);  // Cache-Control: no-store decides
    CHECK(lifetime_s(targeted(invalid, "max-age=1", now)) == 1);
  }
  // Valid dictionaries with parameters, inner lists, tokens, byte sequences and booleans.
  for (const char* valid :
       {"max-age=60;a=1", "x=(1 2 \"three\");p, max-age=60", "x=tok/en:1, max-age=60",
        "x=:aGVsbG8=:, max-age=60", "no-store=?0, max-age=60", "max-age=5, max-age=60",
        "max-age=60 ,\tx"}) {
    CAPTURE(valid);
    const Freshness f = targeted(valid, "no-store", now);
    CHECK(f.storable);
    CHECK(lifetime_s(f) == 60);
  }
}

TEST_CASE("freshness: a 404's CDN-Cache-Control decides how long it is remembered") {
  const int64_t now = 1'700'000'000'000;
  UpstreamFreshness r = upstream("no-store");
  r.cdn_cache_control = "max-age=1";
  CHECK(negative_lifetime_ms(r, now, 2000) == 1000);
  r = upstream("max-age=10");
  r.cdn_cache_control = "no-cache";
  CHECK(negative_lifetime_ms(r, now, 2000) == 0);
  r.cdn_cache_control = "max-age =1";  // invalid: Cache-Control's max-age=10, capped
  CHECK(negative_lifetime_ms(r, now, 2000) == 2000);
}
