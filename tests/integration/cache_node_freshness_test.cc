// Origin freshness on the real cache_node against a real test origin: a copy is
// served while fresh, revalidated with one conditional request when stale (304
// keeps the body and restarts Age, 200 replaces it), no-store is never served
// from the cache, responses without freshness information get defaults by kind,
// and a failing origin gets the stale copy only within the stale-if-error bound.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/herd.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// The value of one series in a /metrics text; -1 when absent.
double metric(const std::string& text, const std::string& series) {
  const std::string needle = "\n" + series + " ";
  size_t at = text.find(needle);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + needle.size()));
}

double node_metric(const CacheNodeProcess& node, const std::string& series) {
  return metric("\n" + http_get(node.url("/metrics")).body, series);
}

// Waits until `elapsed` has passed since `since`: expiry of a small max-age.
void wait_past(std::chrono::steady_clock::time_point since, std::chrono::milliseconds elapsed) {
  REQUIRE(wait_until([&] { return std::chrono::steady_clock::now() - since >= elapsed; },
                     elapsed + 5s, 20ms));
}

std::optional<std::string> x_cache(const HttpResponse& r) {
  return r.header("X-Cache");
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Fetches each URL once (a 200 REQUIREd), so that the node stores the copies; returns when.
std::chrono::steady_clock::time_point store_copies(std::initializer_list<std::string> urls) {
  for (const auto& url : urls) REQUIRE(http_get(url).status == 200);
  return std::chrono::steady_clock::now();
}

// The origin of these tests takes 400 ms for every answer: a stale copy served at once did
// not wait for it, and a viewer who waited for the revalidation took most of it.
void check_stale_at_once(const HttpResponse& r) {
  CHECK(x_cache(r) == std::optional<std::string>("STALE"));
  CHECK(r.total < 300ms);
}
void check_waited_for_revalidation(const HttpResponse& r) {
  CHECK(x_cache(r) == std::optional<std::string>("REVALIDATED"));
  CHECK(r.total >= 350ms);
}

// Viewers wait for a revalidation (no refresh grace): the tests of what a revalidation does.
const std::vector<std::string> kWaitForRevalidation = {"signing.required=false",
                                                       "cache.refresh_grace_ms=0"};

}  // namespace

TEST_CASE(
    "max-age: a hit while fresh; when stale one conditional request, a 304 keeps the body and "
    "restarts Age") {
  NodeOnOrigin s(kWaitForRevalidation);
  const auto [path, url] = s.object("/gen/2K/live.m3u8", "?cc=max-age%3D3");
  const std::string body = generated_body("live.m3u8", 2048);

  auto miss = http_get(url);
  REQUIRE(miss.status == 200);
  CHECK(x_cache(miss) == std::optional<std::string>("MISS"));
  CHECK(miss.header("Cache-Control") == std::optional<std::string>("max-age=3"));
  CHECK(miss.body == body);
  // Fresh: hits, whose Age counts the seconds since the origin sent it.
  HttpResponse aged;
  REQUIRE(wait_until(
      [&] {
        aged = http_get(url);
        return x_cache(aged) == std::optional<std::string>("HIT") &&
               aged.header("Age") == std::optional<std::string>("1");
      },
      5s, 50ms));
  CHECK(s.origin.count(path) == 1);
  CHECK(s.origin.conditional(path) == 0);

  // Stale: the next request asks the origin with the stored ETag; 304; same body, Age 0.
  HttpResponse revalidated;
  REQUIRE(wait_until(
      [&] {
        revalidated = http_get(url);
        return x_cache(revalidated) != std::optional<std::string>("HIT");
      },
      6s, 50ms));
  CHECK(x_cache(revalidated) == std::optional<std::string>("REVALIDATED"));
  CHECK(revalidated.status == 200);
  CHECK(revalidated.body == body);
  CHECK(revalidated.header("Age") == std::optional<std::string>("0"));
  CHECK(revalidated.header("Cache-Control") == std::optional<std::string>("max-age=3"));
  CHECK(revalidated.header("ETag") == miss.header("ETag"));
  CHECK(s.origin.count(path) == 2);
  CHECK(s.origin.conditional(path) == 1);
  CHECK(s.origin.not_modified(path) == 1);
  // Fresh again for max-age: hits, no origin request.
  CHECK(x_cache(http_get(url)) == std::optional<std::string>("HIT"));
  CHECK(s.origin.count(path) == 2);
  const std::string metrics = "\n" + http_get(s.node.url("/metrics")).body;
  CHECK(metric(metrics, "cache_revalidations_total{result=\"not_modified\"}") == 1);
  CHECK(metric(metrics, "cache_revalidations_total{result=\"modified\"}") == 0);
  CHECK(metric(metrics, "cache_requests_total{result=\"stale\"}") == 1);
  // A conditional request of the viewer itself is still answered by the node.
  auto conditional = http_get(url, {{"If-None-Match", miss.header("ETag").value_or("")}});
  CHECK(conditional.status == 304);
}

TEST_CASE(
    "a herd on a stale object costs the origin one conditional request, whatever the number of "
    "loops") {
  NodeOnOrigin s(kWaitForRevalidation);
  // The origin takes 500 ms to answer, so the whole herd arrives while the revalidation runs.
  const auto [path, url] = s.object("/gen/64K/herd.m3u8", "?cc=max-age%3D1&delay_ms=500");
  REQUIRE(http_get(url).status == 200);
  wait_past(std::chrono::steady_clock::now(), 1200ms);

  HerdOptions options;
  options.url = url;
  options.clients = 100;
  options.expect_size = 64 * 1024;
  options.expect_hash = body_hash(generated_body("herd.m3u8", 64 * 1024));
  HerdResult herd = run_herd(options);
  REQUIRE(herd.setup_error.empty());
  CHECK(herd.ok_count() == 100);
  CHECK(s.origin.count(path) == 2);  // the miss, then one revalidation
  CHECK(s.origin.conditional(path) == 1);
  CHECK(s.origin.not_modified(path) == 1);
  const std::string metrics = "\n" + http_get(s.node.url("/metrics")).body;
  CHECK(metric(metrics, "cache_requests_total{result=\"stale\"}") == 1);
  CHECK(metric(metrics, "cache_requests_total{result=\"coalesced\"}") +
            metric(metrics, "cache_requests_total{result=\"hit\"}") ==
        99);
  CHECK(metric(metrics, "cache_revalidations_total{result=\"not_modified\"}") == 1);
  CHECK(metric(metrics, "cache_origin_fetches_total") == 2);
}

TEST_CASE(
    "no-store and private: the concurrent herd shares one fetch, a later request goes to the "
    "origin again") {
  NodeOnOrigin s({"signing.required=false"});
  int n = 0;
  for (const std::string cc : {"no-store", "private, max-age=600"}) {
    CAPTURE(cc);
    const std::string path = "/gen/8K/secret" + std::to_string(++n) + ".ts";
    const std::string url = s.node.url("/o/demo" + path + "?cc=" + url_encode(cc) + "&hold=1");
    HerdOptions options;
    options.url = url;
    options.clients = 20;
    options.expect_size = 8 * 1024;
    HerdResult herd = run_herd_on_held_origin(options, s.origin, herd_joined(s.node, 20));
    CHECK(herd.ok_count() == 20);
    CHECK(s.origin.count(path) == 1);
    const HttpResponse later = http_get_on_held_origin(url, s.origin);
    CHECK(later.status == 200);
    CHECK(x_cache(later) == std::optional<std::string>("MISS"));
    CHECK(later.header("Cache-Control") == std::optional<std::string>(cc));
    CHECK(later.body == generated_body("secret" + std::to_string(n) + ".ts", 8 * 1024));
    CHECK(s.origin.count(path) == 2);
  }
  CHECK(s.node.health_number("disk_chunks") == 0);
  CHECK(s.node.health_number("pending_writes") == 0);
}

TEST_CASE(
    "without freshness headers: a media segment stays a hit, a playlist is revalidated after its "
    "short default") {
  NodeOnOrigin s(kWaitForRevalidation);
  // cc= (empty): the origin sends no Cache-Control and no Expires.
  const std::string segment = s.node.url("/o/demo/gen/4K/plain.ts?cc=");
  const std::string playlist = s.node.url("/o/demo/gen/1K/plain.m3u8?cc=");
  auto first = http_get(segment);
  REQUIRE(first.status == 200);
  CHECK_FALSE(first.header("Cache-Control").has_value());
  REQUIRE(http_get(playlist).status == 200);
  wait_past(std::chrono::steady_clock::now(), 1200ms);  // past the playlist default (1 s)

  auto segment_later = http_get(segment);
  CHECK(x_cache(segment_later) == std::optional<std::string>("HIT"));
  CHECK(segment_later.body == generated_body("plain.ts", 4096));
  CHECK(s.origin.count("/gen/4K/plain.ts") == 1);
  auto playlist_later = http_get(playlist);
  CHECK(x_cache(playlist_later) == std::optional<std::string>("REVALIDATED"));
  CHECK(s.origin.conditional("/gen/1K/plain.m3u8") == 1);
}

TEST_CASE(
    "a changed object: the conditional request gets a 200 and the new body replaces the stored "
    "one") {
  TempDir dir;
  mkdir(dir.file("root").c_str(), 0750);
  write_text(dir.file("root/index.m3u8"), "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n");
  TestOrigin origin(serving_files(dir.file("root")));
  CacheNodeProcess node(dir.file("data"), origin.base_url(), {"signing.required=false"});
  // no-cache: stored, but revalidated before every reuse.
  const std::string path = "/files/index.m3u8";
  const std::string url = node.url("/o/demo" + path + "?cc=no-cache");
  auto first = http_get(url);
  REQUIRE(first.status == 200);
  CHECK(first.header("Cache-Control") == std::optional<std::string>("no-cache"));
  auto same = http_get(url);
  CHECK(x_cache(same) == std::optional<std::string>("REVALIDATED"));
  CHECK(same.body == first.body);
  CHECK(origin.not_modified(path) == 1);

  write_text(dir.file("root/index.m3u8"),
             "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:2,\nseg2.ts\n");
  auto changed = http_get(url);
  CHECK(changed.status == 200);
  CHECK(x_cache(changed) == std::optional<std::string>("MISS"));
  CHECK(changed.body == "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:2,\nseg2.ts\n");
  CHECK(changed.header("ETag") != first.header("ETag"));
  auto after = http_get(url);
  CHECK(x_cache(after) == std::optional<std::string>("REVALIDATED"));
  CHECK(after.body == changed.body);
  CHECK(node_metric(node, "cache_revalidations_total{result=\"modified\"}") == 1);
  CHECK(node_metric(node, "cache_revalidations_total{result=\"not_modified\"}") == 2);
  CHECK(origin.count(path) == 4);
}

TEST_CASE(
    "origin failing while revalidating: the stale copy answers within the bound, unless the origin "
    "forbade it") {
  NodeOnOrigin s(
      {"signing.required=false", "cache.refresh_grace_ms=0", "cache.max_stale_if_error_s=2"});
  const std::string lenient = s.node.url("/o/demo/gen/2K/lenient.m3u8?cc=max-age%3D1");
  const std::string strict =
      s.node.url("/o/demo/gen/2K/strict.m3u8?cc=" + url_encode("max-age=1, must-revalidate"));
  const auto stored = store_copies({lenient, strict});
  REQUIRE(s.origin.outage(503));
  wait_past(stored, 1200ms);

  auto stale = http_get(lenient);
  CHECK(stale.status == 200);
  CHECK(x_cache(stale) == std::optional<std::string>("STALE"));
  CHECK(stale.body == generated_body("lenient.m3u8", 2048));
  CHECK(std::stoi(stale.header("Age").value_or("0")) >= 1);
  // The origin's 503 reaches the viewer as it is.
  auto refused = http_get(strict);
  CHECK(refused.status == 503);
  CHECK(is_json_error(refused, "origin_unavailable"));
  CHECK(node_metric(s.node, "cache_revalidations_total{result=\"error\"}") == 2);

  // Past 1 s fresh + 2 s stale-if-error: the usual error.
  HttpResponse late;
  REQUIRE(wait_until(
      [&] {
        late = http_get(lenient);
        return late.status != 200;
      },
      8s, 100ms));
  CHECK(late.status == 503);
  CHECK(is_json_error(late, "origin_unavailable"));

  // The copy was kept: once the origin is back, a 304 revalidates it.
  REQUIRE(s.origin.outage(0));
  auto back = http_get(lenient);
  CHECK(back.status == 200);
  CHECK(x_cache(back) == std::optional<std::string>("REVALIDATED"));
  CHECK(back.header("Age") == std::optional<std::string>("0"));
}

TEST_CASE(
    "through a parent: the child revalidates against the parent, and origin still sees one "
    "revalidation") {
  TempDir dir;
  TestOrigin origin;
  CacheNodeProcess parent(dir.file("parent"), origin.base_url(),
                          {"node_id=parent", "signing.required=false", "cache.refresh_grace_ms=0"});
  CacheNodeProcess child(dir.file("child"), origin.base_url(),
                         {"node_id=child", "signing.required=false", "cache.refresh_grace_ms=0",
                          "parent=" + parent.url("")});
  const std::string path = "/gen/2K/tier.m3u8";
  const std::string url = child.url("/o/demo" + path + "?cc=max-age%3D1");
  auto first = http_get(url);
  REQUIRE(first.status == 200);
  wait_past(std::chrono::steady_clock::now(), 1200ms);
  auto again = http_get(url);
  CHECK(again.status == 200);
  CHECK(x_cache(again) == std::optional<std::string>("REVALIDATED"));
  CHECK(again.body == first.body);
  CHECK(origin.count(path) == 2);
  CHECK(origin.not_modified(path) == 1);
  CHECK(node_metric(parent, "cache_revalidations_total{result=\"not_modified\"}") == 1);
  CHECK(node_metric(child, "cache_revalidations_total{result=\"not_modified\"}") == 1);
}

TEST_CASE(
    "stale-while-revalidate: viewers get the stale copy at once while one background fetch "
    "refreshes it") {
  NodeOnOrigin s(kWaitForRevalidation);
  // The origin takes 400 ms for every answer; the copy is fresh for 1 s, then 10 s of grace.
  const auto [path, url] = s.object(
      "/gen/2K/swr.ts", "?delay_ms=400&cc=" + url_encode("max-age=1, stale-while-revalidate=10"));
  const auto [strict_path, strict] = s.object("/gen/2K/strict.ts", "?delay_ms=400&cc=max-age%3D1");
  wait_past(store_copies({url, strict}), 1200ms);

  auto stale = http_get(url);
  CHECK(stale.status == 200);
  CHECK(stale.body == generated_body("swr.ts", 2048));
  check_stale_at_once(stale);
  // Others asking meanwhile get it at once too; the origin is asked once.
  auto again = http_get(url);
  CHECK(again.total < 300ms);
  REQUIRE(
      wait_until([&] { return s.origin.count(path) + s.origin.conditional(path) >= 2; }, 3s, 20ms));
  REQUIRE(wait_until([&] { return x_cache(http_get(url)) == std::optional<std::string>("HIT"); },
                     3s, 50ms));
  CHECK(s.origin.count(path) == 2);
  CHECK(node_metric(s.node, "cache_requests_total{result=\"stale_while_revalidate\"}") >= 2);

  // Without the directive (and no configured grace) a viewer waits for the revalidation.
  auto waited = http_get(strict);
  CHECK(waited.status == 200);
  check_waited_for_revalidation(waited);
}

TEST_CASE(
    "by default a copy that expired a moment ago answers while it is refreshed; one expired longer "
    "ago waits") {
  NodeOnOrigin s({"signing.required=false"});
  // The origin says max-age=1 and nothing more, and takes 400 ms for every answer.
  const auto [moment_path, moment] = s.object("/gen/2K/moment.ts", "?delay_ms=400&cc=max-age%3D1");
  const std::string long_ago = s.node.url("/o/demo/gen/2K/long-ago.ts?delay_ms=400&cc=max-age%3D1");
  const auto stored = store_copies({long_ago, moment});
  // 1.1 s after it was stored: 0.1 s past its lifetime.
  wait_past(stored, 1100ms);
  check_stale_at_once(http_get(moment));
  REQUIRE(wait_until(
      [&] { return s.origin.count(moment_path) + s.origin.conditional(moment_path) >= 2; }, 3s,
      20ms));
  // 2.2 s after: more than the half-second default grace past its lifetime.
  wait_past(stored, 2200ms);
  check_waited_for_revalidation(http_get(long_ago));
}

TEST_CASE(
    "cache.refresh_grace_ms: a grace for copies whose origin says nothing, half a second at most "
    "for playlists") {
  NodeOnOrigin s({"signing.required=false", "cache.refresh_grace_ms=5000"});
  const std::string segment = s.node.url("/o/demo/gen/2K/grace.ts?delay_ms=400&cc=max-age%3D1");
  const std::string playlist = s.node.url("/o/demo/gen/2K/grace.m3u8?delay_ms=400&cc=max-age%3D1");
  wait_past(store_copies({segment, playlist}), 2000ms);
  check_stale_at_once(http_get(segment));
  // A playlist 1 s past its lifetime is past the 0.5 s bound: the viewer waits for the refresh.
  auto waited = http_get(playlist);
  CHECK(x_cache(waited) == std::optional<std::string>("REVALIDATED"));
}

TEST_CASE(
    "cache.keep_warm_s: a polled playlist stays fresh through a break in its viewers' requests, "
    "and is let go a window after the last one") {
  NodeOnOrigin s({"signing.required=false", "cache.keep_warm_s=3"});
  const auto [path, url] = s.object("/gen/2K/warm.m3u8", "?delay_ms=400&cc=max-age%3D1");
  const auto fetches = [&, &path = path] { return s.origin.count(path); };  // conditional too
  // Polled: read again once its lifetime is over, so a viewer's request starts its refresh.
  const auto stored = store_copies({url});
  const double first_fetch = fetches();
  wait_past(stored, 1100ms);
  check_stale_at_once(http_get(url));
  CHECK(s.node.metric("cache_keep_warm_objects") == 1);
  // The break: nobody asks, the node refreshes it as it expires (the origin takes 400 ms).
  // Origin sees the viewer's refresh (which may reach it late) and two of the node's own.
  REQUIRE(wait_until(
      [&] {
        return fetches() >= first_fetch + 3 &&
               s.node.metric("cache_keep_warm_refreshes_total") >= 2;
      },
      6s, 20ms));
  // The first viewer after the break finds a fresh copy, or one being refreshed within its
  // grace: no wait for the origin. (Without keep-warm the copy is over a second past its
  // lifetime, past the grace: REVALIDATED after a 400 ms wait.)
  const double before_viewer = fetches();
  const HttpResponse after_break = http_get(url);
  const std::string answered = x_cache(after_break).value_or("none");
  CHECK_MESSAGE((answered == "HIT" || answered == "STALE"), answered);
  CHECK(after_break.total < 300ms);
  CHECK(fetches() <= before_viewer + 1);  // at most a keep-warm refresh that came due
  // Nobody reads it any more: let go 3 s after that last read, and the origin hears no more.
  REQUIRE(wait_until([&] { return s.node.metric("cache_keep_warm_objects") == 0; }, 10s, 50ms));
  const double let_go = fetches();
  wait_past(std::chrono::steady_clock::now(), 2500ms);
  CHECK(fetches() == let_go);
}

TEST_CASE(
    "CDN-Cache-Control: the node keeps what the origin tells edges, relays it, and ignores one "
    "that is not a valid dictionary") {
  NodeOnOrigin s({"signing.required=false"});
  const auto ask = [&](const std::string& name, const std::string& cc, const std::string& cdn) {
    return s.object("/gen/4K/" + name,
                    "?cc=" + url_encode(cc) + "&hdr=" + url_encode("CDN-Cache-Control:" + cdn));
  };
  // Browsers revalidate at once; the node keeps it an hour.
  const auto [edge_path, edge_url] = ask("edge-hour.m3u8", "max-age=0", "max-age=3600");
  REQUIRE(http_get(edge_url).status == 200);
  const HttpResponse hit = http_get(edge_url);
  CHECK(x_cache(hit) == std::optional<std::string>("HIT"));
  CHECK(hit.header("Cache-Control") == std::optional<std::string>("max-age=0"));
  CHECK(hit.header("CDN-Cache-Control") == std::optional<std::string>("max-age=3600"));
  CHECK(s.origin.count(edge_path) == 1);
  CHECK(s.origin.conditional(edge_path) == 0);
  // Browsers may keep it an hour; the node must not store it.
  const auto [kept_path, kept_url] = ask("edge-nostore.ts", "max-age=3600", "no-store");
  REQUIRE(http_get(kept_url).status == 200);
  const HttpResponse again = http_get(kept_url);
  CHECK(x_cache(again) == std::optional<std::string>("MISS"));
  CHECK(s.origin.count(kept_path) == 2);
  // Not a Structured Field (a space before '='): Cache-Control's no-store decides.
  const auto [bad_path, bad_url] = ask("edge-invalid.ts", "no-store", "max-age =3600");
  REQUIRE(http_get(bad_url).status == 200);
  CHECK(x_cache(http_get(bad_url)) == std::optional<std::string>("MISS"));
  CHECK(s.origin.count(bad_path) == 2);
}
