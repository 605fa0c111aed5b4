// CORS on every viewer-facing answer (DESIGN.md, "Browsers"): a web player on
// another origin can read chunks, ranges, 304s, errors and /ping from a real
// cache node, and playlists, keys, the API's JSON and errors from a real
// balancer; OPTIONS preflights for Range, Authorization and Content-Type are
// answered; an origin list echoes allowed origins only; operator endpoints
// carry no CORS header.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kWebOrigin = "http://player.example:8000";
const std::string kExpose = "Content-Length, Content-Range, Age, X-Cache, Retry-After";

// The answer is readable by a page on kWebOrigin with the default policy ("*").
void check_open(const HttpResponse& r, long status) {
  INFO(r.status, " ", r.body, " ", r.error, " after ", r.total.count() / 1000, " ms");
  CHECK(r.status == status);
  CHECK(r.header_values("Access-Control-Allow-Origin") == std::vector<std::string>{"*"});
  CHECK(r.header("Access-Control-Expose-Headers") == kExpose);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

HttpResponse from_page(const std::string& url, HttpHeaders headers = {},
                       const std::string& method = "GET", const std::string& body = "") {
  headers.emplace_back("Origin", kWebOrigin);
  return http_request(method, url, headers, body);
}

HttpResponse preflight(const std::string& url, const std::string& method,
                       const std::string& headers, const std::string& origin = kWebOrigin) {
  return http_request("OPTIONS", url,
                      {{"Origin", origin},
                       {"Access-Control-Request-Method", method},
                       {"Access-Control-Request-Headers", headers}});
}

void check_preflight(const HttpResponse& r, const std::string& method, const std::string& header) {
  INFO(r.status, " ", r.body, " ", r.error, " after ", r.total.count() / 1000, " ms");
  CHECK(r.status == 204);
  CHECK(r.header("Access-Control-Allow-Origin") == "*");
  CHECK(r.header("Access-Control-Allow-Methods").value_or("").find(method) != std::string::npos);
  CHECK(r.header("Access-Control-Allow-Headers").value_or("").find(header) != std::string::npos);
  CHECK(r.header("Access-Control-Max-Age") == "600");
  CHECK(r.body.empty());
}

}  // namespace

TEST_CASE(
    "cache node: chunks, ranges, 304s, errors, /ping and /health carry CORS; preflights answered") {
  NodeOnOrigin s;
  const std::string url = s.node.signed_url("/o/demo/gen/64K/cors.ts");

  auto miss = from_page(url);
  check_open(miss, 200);
  CHECK(miss.header("X-Cache") == "MISS");
  check_open(from_page(url), 200);  // a hit
  check_open(from_page(url, {{"Range", "bytes=10-19"}}), 206);
  check_open(from_page(url, {{"Range", "bytes=999999-"}}), 416);
  check_open(from_page(url, {{"If-None-Match", miss.header("ETag").value_or("")}}), 304);
  check_open(from_page(url, {}, "HEAD"), 200);
  check_open(from_page(s.node.url("/o/demo/gen/64K/cors.ts")), 403);   // unsigned
  check_open(from_page(s.node.signed_url("/o/nowhere/seg.ts")), 404);  // unknown origin id
  check_open(from_page(s.node.url("/no/such/path")), 404);
  check_open(from_page(url, {}, "POST", "x"), 405);
  check_open(from_page(s.node.url("/ping")), 200);
  check_open(from_page(s.node.url("/health")),
             200);  // the operator's dashboard reads it in a browser
  // Without an Origin header (ffmpeg, the app) the answer is the same.
  CHECK(http_get(url).header("Access-Control-Allow-Origin") == "*");

  check_preflight(preflight(url, "GET", "range"), "GET", "Range");
  check_preflight(preflight(s.node.url("/ping"), "GET", ""), "GET", "Range");
  // Players sending CMCD as headers (Media3's default; hls.js with useHeaders).
  for (const char* cmcd : {"CMCD-Object", "CMCD-Request", "CMCD-Session", "CMCD-Status"})
    check_preflight(preflight(url, "GET", "cmcd-request,cmcd-session"), "GET", cmcd);
  // The Prometheus scrape is not for web pages.
  CHECK_FALSE(from_page(s.node.url("/metrics")).header("Access-Control-Allow-Origin").has_value());
}

TEST_CASE("cache node: an origin list echoes allowed origins only, with Vary: Origin") {
  NodeOnOrigin s({"cors.allow_origins=[\"https://app.example\",\"" + kWebOrigin + "\"]"});
  const std::string url = s.node.signed_url("/o/demo/gen/4K/list.ts");
  auto allowed = from_page(url);
  CHECK(allowed.status == 200);
  CHECK(allowed.header("Access-Control-Allow-Origin") == kWebOrigin);
  CHECK(allowed.header("Vary") == "Origin");
  auto other = http_get(url, {{"Origin", "http://evil.example"}});
  CHECK(other.status == 200);
  CHECK_FALSE(other.header("Access-Control-Allow-Origin").has_value());
  CHECK(other.header("Vary") == "Origin");
  auto denied_preflight = preflight(url, "GET", "range", "http://evil.example");
  CHECK(denied_preflight.status == 204);
  CHECK_FALSE(denied_preflight.header("Access-Control-Allow-Origin").has_value());
  CHECK_FALSE(denied_preflight.header("Access-Control-Allow-Methods").has_value());
}

TEST_CASE("cache node: a bad cors.allow_origins is refused at start, naming the key") {
  TempDir dir;
  ChildProcess p;
  std::string error;
  REQUIRE(p.start({binary_path("cache_node"), "--config",
                   std::string(BALANCER_SOURCE_DIR) + "/conf/cache_node.json", "--check-config",
                   "--set", "cors.allow_origins=[\"http://a.example/path\"]"},
                  {}, {}, &error));
  auto code = p.wait_exit(deadline_in(10s));
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  CHECK(p.stderr_text().find("cors.allow_origins") != std::string::npos);
}

TEST_CASE(
    "balancer: playlists, keys, API JSON and errors carry CORS; preflights answered; operator "
    "paths none") {
  TempDir dir;
  const std::string master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlo/index.m3u8\n";
  write_file(dir.file("root/live/master.m3u8"), master);
  write_file(dir.file("root/live/lo/index.m3u8"),
             live_playlist(1, 3, 2, "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n"));
  write_file(dir.file("root/live/lo/key.bin"), "0123456789abcdef");
  TestOrigin origin(serving_files(dir.file("root")));
  BalancerProcess b(dir, origin.url("/files"),
                    channels_json({channel_json("demo", "/live/master.m3u8")}), caches_json({}));

  check_open(from_page(b.url("/hls/demo/live/master.m3u8?viewer=v1")), 200);
  auto media = from_page(b.url("/hls/demo/live/lo/index.m3u8?viewer=v1"));
  check_open(media, 200);
  auto key_at = media.body.find("URI=\"");
  REQUIRE(key_at != std::string::npos);
  std::string key_uri =
      media.body.substr(key_at + 5, media.body.find('"', key_at + 5) - key_at - 5);
  auto key = from_page(b.url(target_of(key_uri)));
  check_open(key, 200);
  CHECK(key.body == "0123456789abcdef");
  check_open(from_page(b.url("/hls/nope/master.m3u8?viewer=v1")), 404);
  check_open(from_page(b.url("/hls/demo/live/master.m3u8")), 401);  // no credentials
  check_open(from_page(b.url("/hls/demo/live/master.m3u8?viewer=v1"), {}, "POST", "x"), 405);
  check_open(from_page(b.url("/api/v1/products")), 200);
  check_open(from_page(b.url("/api/v1/channels")), 401);
  check_open(from_page(b.url("/api/v1/auth/login"), {{"Content-Type", "application/json"}}, "POST",
                       R"({"login":"nobody","password":"wrong-password"})"),
             401);
  check_open(from_page(b.url("/api/v1/access?channel=demo&viewer=v2")), 200);
  check_open(from_page(b.url("/api/v1/nothing-here")), 404);
  check_open(from_page(b.url("/nothing-here")), 404);

  check_preflight(preflight(b.url("/api/v1/auth/login"), "POST", "content-type"), "POST",
                  "Content-Type");
  check_preflight(preflight(b.url("/api/v1/channels"), "GET", "authorization"), "GET",
                  "Authorization");
  check_preflight(preflight(b.url("/hls/demo/live/master.m3u8?viewer=v1"), "GET", ""), "GET",
                  "Range");
  check_preflight(preflight(b.url("/hls/demo/live/master.m3u8?viewer=v1"), "GET", "cmcd-request"),
                  "GET", "CMCD-Request");

  for (const char* path :
       {"/metrics", "/health", "/admin/status", "/access_queue_switch?state=off"}) {
    INFO(path);
    auto r = from_page(b.url(path));
    CHECK(r.status == 200);
    CHECK_FALSE(r.header("Access-Control-Allow-Origin").has_value());
    CHECK_FALSE(
        preflight(b.url(path), "GET", "").header("Access-Control-Allow-Origin").has_value());
  }
}

TEST_CASE("balancer: /favicon.ico leads to the pages' icon, which both pages link") {
  TempDir dir;
  write_file(dir.file("root/live/index.m3u8"), live_playlist(1, 3, 2));
  TestOrigin origin(serving_files(dir.file("root")));
  BalancerProcess b(dir, origin.url("/files"),
                    channels_json({channel_json("demo", "/live/index.m3u8")}), caches_json({}));
  const HttpResponse moved = http_get(b.url("/favicon.ico"));
  CHECK(moved.status == 301);
  CHECK(moved.header("Location") == "/player/favicon.svg");
  const HttpResponse icon = http_get(b.url("/player/favicon.svg"));
  CHECK(icon.status == 200);
  CHECK(icon.header("Content-Type") == "image/svg+xml");
  CHECK(icon.body.find("<svg") == 0);
  for (const char* page : {"/player/", "/admin/"}) {
    INFO(page);
    const HttpResponse r = http_get(b.url(page));
    REQUIRE(r.status == 200);
    CHECK(r.body.find("rel=\"icon\"") != std::string::npos);
  }
}

TEST_CASE("balancer: cors.allow_origins reloads on SIGHUP") {
  TempDir dir;
  write_file(dir.file("root/live/master.m3u8"),
             "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlo/index.m3u8\n");
  TestOrigin origin(serving_files(dir.file("root")));
  const std::string main = dir.file("balancer.json");
  std::string text = read_file(std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json");
  write_file(main, text);
  BalancerProcess b(dir, origin.url("/files"),
                    channels_json({channel_json("demo", "/live/master.m3u8")}), caches_json({}),
                    {"web.dir="}, main);  // the copy's ../web does not exist
  const std::string url = b.url("/api/v1/products");
  CHECK(from_page(url).header("Access-Control-Allow-Origin") == "*");
  auto brace = text.rfind('}');
  REQUIRE(brace != std::string::npos);
  write_file(main,
             text.substr(0, brace) + ",\"cors\":{\"allow_origins\":[\"https://app.example\"]}}\n");
  REQUIRE(b.reload("ok"));
  CHECK_FALSE(from_page(url).header("Access-Control-Allow-Origin").has_value());
  CHECK(http_get(url, {{"Origin", "https://app.example"}}).header("Access-Control-Allow-Origin") ==
        "https://app.example");
}
