// What the real cache_node keeps of an origin's answer, against a real test origin:
// a 404 is remembered only as long as the origin's own cache headers allow (never
// with no-store: the object may be published a moment later), a Vary: * response
// is never reused, two Expires lines mean already expired, a list-valued Age
// counts its first member; a hinted part's 404 (its link names the part target) is
// remembered one part target at most.
#include <doctest/doctest.h>

#include <thread>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

std::optional<std::string> x_cache(const HttpResponse& r) {
  return r.header("X-Cache");
}

// Asks the node for `object` twice, each answer's status REQUIREd to be `status`; returns how
// many requests for it reached the origin by then.
int64_t origin_requests_after_two_asks(const NodeOnOrigin& s, const NodeOnOrigin::Object& object,
                                       long status) {
  REQUIRE(http_get(object.url).status == status);
  REQUIRE(http_get(object.url).status == status);
  return s.origin.count(object.path);
}

}  // namespace

TEST_CASE("a 404 with no-store is not remembered: the next request asks the origin again") {
  NodeOnOrigin s({"signing.required=false"});
  const auto [path, url] = s.object("/gen/1K/part7.m4s", "?status=404&cc=no-store");
  for (int i = 1; i <= 3; ++i) {
    CAPTURE(i);
    HttpResponse r = http_get(url);
    CHECK(r.status == 404);
    CHECK(s.origin.count(path) == i);
  }
}

TEST_CASE("a 404's own lifetime bounds how long it is remembered; without one the configured TTL") {
  NodeOnOrigin s({"signing.required=false", "negative_ttl_ms=60000"});
  // max-age=0, an Expires already past, private: not reusable.
  const std::pair<const char*, const char*> unreusable[] = {
      {"/gen/1K/zero.ts", "?status=404&cc=max-age%3D0"},
      {"/gen/1K/past.ts", "?status=404&cc=&expires=-5"},
      {"/gen/1K/private.ts", "?status=410&cc=private"}};
  for (const auto& [path, query] : unreusable) {
    CAPTURE(query);
    CHECK(origin_requests_after_two_asks(s, s.object(path, query), 404) == 2);
  }
  // No cache headers: the configured 60 s; the second request is the node's answer.
  const std::string plain = "/gen/1K/plain.ts";
  REQUIRE(http_get(s.node.url("/o/demo" + plain + "?status=404")).status == 404);
  HttpResponse again = http_get(s.node.url("/o/demo" + plain + "?status=404"));
  CHECK(again.status == 404);
  CHECK(x_cache(again) == std::optional<std::string>("HIT"));
  CHECK(s.origin.count(plain) == 1);
  // max-age=1 under a 60 s TTL: remembered, then asked again once the second has passed.
  const auto short_lived = s.object("/gen/1K/short.ts", "?status=404&cc=max-age%3D1");
  CHECK(origin_requests_after_two_asks(s, short_lived, 404) == 1);
  REQUIRE(wait_until(
      [&] {
        return http_get(short_lived.url).status == 404 && s.origin.count(short_lived.path) == 2;
      },
      5s, 100ms));
}

TEST_CASE("a hinted part's 404 is remembered for at most its part target, other 404s for the TTL") {
  NodeOnOrigin s({"signing.required=false", "negative_ttl_ms=60000"});
  // A part or preload hint link (the balancer marks it with its PART-TARGET, bpt): a player may
  // ask for a hinted part a moment before it exists and asks again at once.
  const auto [part, part_url] = s.object("/gen/1K/seg9.2.m4s", "?status=404&bpt=200");
  REQUIRE(http_get(part_url).status == 404);
  REQUIRE(s.origin.count(part) == 1);
  REQUIRE(wait_until([&] { return http_get(part_url).status == 404 && s.origin.count(part) == 2; },
                     2s, 20ms));
  // The same 404 without a part target: the configured 60 s (the node answers meanwhile).
  const auto [chunk, chunk_url] = s.object("/gen/1K/seg9.ts", "?status=404");
  REQUIRE(http_get(chunk_url).status == 404);
  for (int i = 0; i < 10; ++i) CHECK(http_get(chunk_url).status == 404);
  CHECK(s.origin.count(chunk) == 1);
}

TEST_CASE(
    "a hinted part whose origin holds the request without a head: 504 origin_timeout after "
    "three part targets, nothing remembered; a chunk without a part target waits") {
  NodeOnOrigin s({"signing.required=false"});
  // An origin that stopped publishing parts but holds requests open (a stalled encoder behind
  // a blocking origin): the players' hinted-part requests must not wait for as long as it does.
  const auto [part, part_url] = s.object("/gen/1K/seg9.3.m4s", "?hold=1&bpt=200");
  const auto asked = std::chrono::steady_clock::now();
  const HttpResponse r = http_get(part_url);
  const double waited_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked).count();
  MESSAGE("a held part answered after " << waited_ms << " ms (part target 200 ms)");
  check_json_error(r, 504, "origin_timeout");
  CHECK(waited_ms >= 550);  // three part targets, less the timer's slack
  CHECK(waited_ms < 1500);  // not the upstream timeout (seconds)
  CHECK(metric_value(http_get(s.node.url("/metrics")).body, "cache_part_head_timeouts_total") == 1);
  // Nothing remembered: the next ask goes to origin again.
  check_json_error(http_get(part_url), 504, "origin_timeout");
  CHECK(s.origin.count(part) == 2);
  REQUIRE(s.origin.release() >= 0);
  // The same hold on a chunk with no part target is not cut at three part targets.
  const auto [chunk, chunk_url] = s.object("/gen/1K/seg9.ts", "?hold=1");
  std::thread release([&] {
    wait_until([&] { return s.origin.held() >= 1; }, 5s, 10ms);
    std::this_thread::sleep_for(800ms);  // longer than three part targets of 200 ms
    s.origin.release();
  });
  CHECK(http_get(chunk_url).status == 200);
  release.join();
  CHECK(metric_value(http_get(s.node.url("/metrics")).body, "cache_part_head_timeouts_total") == 2);
}

TEST_CASE("Vary: * is served but never reused") {
  NodeOnOrigin s({"signing.required=false"});
  const auto [path, url] = s.object("/gen/2K/any.ts", "?cc=max-age%3D600&hdr=Vary%3A%2A");
  for (int i = 1; i <= 2; ++i) {
    HttpResponse r = http_get(url);
    REQUIRE(r.status == 200);
    CHECK(r.body.size() == 2048);
    CHECK(x_cache(r) == std::optional<std::string>("MISS"));
  }
  CHECK(s.origin.count(path) == 2);
}

TEST_CASE(
    "two Expires lines are invalid: the copy is stale at once; a list-valued Age counts its first "
    "member") {
  NodeOnOrigin s({"signing.required=false"});
  // cc= sends no Cache-Control, so Expires decides; the origin adds a second Expires line.
  const auto twice =
      s.object("/gen/2K/twice.ts",
               "?cc=&expires=600&hdr=Expires%3AThu%2C%2001%20Jan%202099%2000%3A00%3A00%20GMT");
  CHECK(origin_requests_after_two_asks(s, twice, 200) == 2);
  // Age "7200, 0" under max-age=3600: already stale on arrival.
  const auto [aged, aged_url] =
      s.object("/gen/2K/aged.ts", "?cc=max-age%3D3600&hdr=Age%3A7200%2C%200");
  REQUIRE(http_get(aged_url).status == 200);
  HttpResponse second = http_get(aged_url);
  REQUIRE(second.status == 200);
  CHECK(x_cache(second) != std::optional<std::string>("HIT"));
  CHECK(s.origin.count(aged) == 2);
}

TEST_CASE(
    "end-to-end headers are kept with the copy: on the miss, on hits, after a restart; the "
    "origin's Date too") {
  NodeOnOrigin s({"signing.required=false"});
  const auto [path, url] =
      s.object("/gen/2K/live.m3u8",
               "?cc=max-age%3D600&hdr=Content-Encoding%3Agzip&hdr=Content-Language%3Aen&hdr=Vary%"
               "3AAccept-Encoding"
               "&hdr=Link%3A%3Cpart1.m4s%3E%3B%20rel%3Dpreload&hdr=Set-Cookie%3Aviewer%3D1"
               "&hdr=Access-Control-Allow-Origin%3Ahttps%3A%2F%2Fevil.example");
  auto check_headers = [](const HttpResponse& r) {
    CHECK(r.status == 200);
    CHECK(r.header("Content-Encoding") == std::optional<std::string>("gzip"));
    CHECK(r.header("Content-Language") == std::optional<std::string>("en"));
    CHECK(r.header("Vary") == std::optional<std::string>("Accept-Encoding"));
    CHECK(r.header("Link") == std::optional<std::string>("<part1.m4s>; rel=preload"));
    CHECK_FALSE(r.header("Set-Cookie").has_value());  // one viewer's, never shared
    // The node's own CORS answer, not the origin's.
    CHECK(r.header("Access-Control-Allow-Origin") !=
          std::optional<std::string>("https://evil.example"));
  };
  HttpResponse miss = http_get(url);
  check_headers(miss);
  CHECK(x_cache(miss) == std::optional<std::string>("MISS"));
  const std::optional<std::string> origin_date = miss.header("Date");
  REQUIRE(origin_date.has_value());
  // A hit two seconds later still carries the origin's Date, and an Age that says how old it is.
  HttpResponse hit;
  REQUIRE(wait_until(
      [&] {
        hit = http_get(url);
        return hit.header("Age") == std::optional<std::string>("2");
      },
      6s, 100ms));
  check_headers(hit);
  CHECK(x_cache(hit) == std::optional<std::string>("HIT"));
  CHECK(hit.header("Date") == origin_date);
  // From disk after a restart.
  s.node.stop();
  s.node.start();
  HttpResponse after_restart = http_get(url);
  check_headers(after_restart);
  CHECK(x_cache(after_restart) == std::optional<std::string>("HIT"));
  CHECK(after_restart.header("Date") == origin_date);
  CHECK(s.origin.count(path) == 1);
}

TEST_CASE(
    "an origin that sends a hundred headers: the copy keeps a bounded number, the rest are "
    "counted") {
  NodeOnOrigin s({"signing.required=false"});
  std::string query = "?cc=max-age%3D600";
  for (int i = 0; i < 100; ++i)
    query += "&hdr=X-Flood-" + std::to_string(i) + "%3A" + std::string(40, 'v');
  const std::string url = s.node.url("/o/demo/gen/2K/flood.ts" + query);
  HttpResponse miss = http_get(url);
  REQUIRE(miss.status == 200);
  CHECK(miss.body.size() == 2048);
  int kept = 0;
  for (int i = 0; i < 100; ++i)
    kept += miss.header("X-Flood-" + std::to_string(i)).has_value() ? 1 : 0;
  CHECK(kept > 0);
  CHECK(kept <= 24);
  HttpResponse hit = http_get(url);
  CHECK(x_cache(hit) == std::optional<std::string>("HIT"));
  const std::string metrics = http_get(s.node.url("/metrics")).body;
  CHECK(metrics.find("cache_dropped_headers_total " + std::to_string(100 - kept)) !=
        std::string::npos);
}

TEST_CASE(
    "a redirect on a configured origin is followed once per chunk; elsewhere, or in a loop, it is "
    "relayed") {
  NodeOnOrigin s({"signing.required=false"});
  // A packager failover: the chunk moved to another path of the same origin.
  const std::string moved = "/o/demo/gen/2K/old.ts?status=302&hdr=Location%3A%2Fgen%2F2K%2Fnew.ts";
  HttpResponse first = http_get(s.node.url(moved));
  REQUIRE(first.status == 200);
  CHECK(first.body == generated_body("new.ts", 2048));
  HttpResponse again = http_get(s.node.url(moved));
  CHECK(again.status == 200);
  CHECK(x_cache(again) == std::optional<std::string>("HIT"));
  CHECK(s.origin.count("/gen/2K/old.ts") == 1);
  CHECK(s.origin.count("/gen/2K/new.ts") == 1);

  // Off the configured origins: not followed (only configured origins are fetched) but relayed
  // as the origin sent it, for the player to follow; never stored.
  const std::string off_url =
      s.node.url("/o/demo/gen/2K/off.ts?status=301&hdr=Location%3Ahttp%3A%2F%2Fcdn.example%2Fx.ts");
  HttpResponse off = http_get(off_url);
  CHECK(off.status == 301);
  CHECK(off.header("Location") == std::optional<std::string>("http://cdn.example/x.ts"));
  CHECK(http_get(off_url).status == 301);
  CHECK(s.origin.count("/gen/2K/off.ts") == 2);

  // A redirect to itself (an empty reference is the URL itself): followed five times, then relayed.
  HttpResponse loop = http_get(s.node.url("/o/demo/gen/2K/loop.ts?status=307&hdr=Location%3A"));
  CHECK(loop.status == 307);
  CHECK(s.origin.count("/gen/2K/loop.ts") == 6);
}

TEST_CASE(
    "origin refusals reach the viewer as they are: 403, and 429/503 with Retry-After; none is "
    "remembered") {
  NodeOnOrigin s({"signing.required=false"});
  HttpResponse forbidden = http_get(s.node.url("/o/demo/gen/1K/f.ts?status=403"));
  CHECK(forbidden.status == 403);
  CHECK(forbidden.body.find("\"origin_forbidden\"") != std::string::npos);

  const std::string busy_url = s.node.url("/o/demo/gen/1K/b.ts?status=503&hdr=Retry-After%3A7");
  HttpResponse busy = http_get(busy_url);
  CHECK(busy.status == 503);
  CHECK(busy.header("Retry-After") == std::optional<std::string>("7"));
  CHECK(busy.body.find("\"origin_unavailable\"") != std::string::npos);
  CHECK(http_get(busy_url).status == 503);
  CHECK(s.origin.count("/gen/1K/b.ts") == 2);

  HttpResponse limited = http_get(s.node.url("/o/demo/gen/1K/l.ts?status=429"));
  CHECK(limited.status == 429);
  CHECK(limited.header("Retry-After") == std::optional<std::string>("1"));

  CHECK(http_get(s.node.url("/o/demo/gen/1K/t.ts?status=504")).status == 504);
  // Any other origin error is still the node's 502.
  CHECK(http_get(s.node.url("/o/demo/gen/1K/e.ts?status=500")).status == 502);
}

TEST_CASE("other 2xx answers reach the viewer as the origin sent them and are never stored") {
  NodeOnOrigin s({"signing.required=false"});
  const std::string url =
      s.node.url("/o/demo/gen/1K/n.ts?status=203&cc=max-age%3D600&hdr=X-Kept%3Ayes");
  HttpResponse first = http_get(url);
  CHECK(first.status == 203);
  CHECK(first.body == "test_origin: status 203\n");
  CHECK(first.header("X-Kept") == std::optional<std::string>("yes"));
  CHECK(http_get(url).status == 203);
  CHECK(s.origin.count("/gen/1K/n.ts") == 2);
  HttpResponse empty = http_get(s.node.url("/o/demo/gen/1K/e.ts?status=204"));
  CHECK(empty.status == 204);
  CHECK(empty.body.empty());
}
