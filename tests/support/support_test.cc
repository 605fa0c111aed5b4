// Checks the test fixtures themselves: test_origin's URL language, ChildProcess,
// TempDir, the HTTP client helpers and the herd.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "support/generated_body.h"
#include "support/herd.h"
#include "support/http_client.h"
#include "support/origin_fixture.h"
#include "support/process.h"

using namespace std::chrono_literals;
namespace bt = balancer::test;

namespace {

double ms(std::chrono::microseconds us) {
  return static_cast<double>(us.count()) / 1000.0;
}

}  // namespace

TEST_CASE("generated bodies depend only on name and offset") {
  const std::string long_body = bt::generated_body("chunk1.ts", 10'000);
  CHECK(long_body.size() == 10'000);
  CHECK(bt::generated_body("chunk1.ts", 777) == long_body.substr(0, 777));
  CHECK(bt::generated_body("chunk2.ts", 777) != long_body.substr(0, 777));
  std::string slice;
  bt::append_generated_slice("chunk1.ts", 4093, 1000, slice);
  CHECK(slice == long_body.substr(4093, 1000));
  CHECK(bt::body_hash(long_body) == bt::body_hash(bt::generated_body("chunk1.ts", 10'000)));

  bt::BodyHasher split;
  split.update(std::string_view(long_body).substr(0, 3));
  split.update(std::string_view(long_body).substr(3, 5000));
  split.update(std::string_view(long_body).substr(5003));
  CHECK(split.finish() == bt::body_hash(long_body));
  CHECK(split.size() == long_body.size());
}

TEST_CASE("parse_size accepts bytes and K/M/G suffixes") {
  CHECK(bt::parse_size("1048576") == size_t{1048576});
  CHECK(bt::parse_size("1M") == size_t{1} << 20);
  CHECK(bt::parse_size("2k") == size_t{2048});
  CHECK(bt::parse_size("0") == size_t{0});
  CHECK_FALSE(bt::parse_size(""));
  CHECK_FALSE(bt::parse_size("M"));
  CHECK_FALSE(bt::parse_size("1.5M"));
  CHECK_FALSE(bt::parse_size("99999G"));
}

TEST_CASE("the listening line is parsed with extra keys in any order") {
  CHECK(bt::parse_listening_port(R"({"event":"listening","port":8080})") == 8080);
  CHECK(bt::parse_listening_port(R"({"event": "listening", "service":"cache_node", "port": 41})") ==
        41);
  CHECK(bt::parse_listening_port(R"({"port":1234,"service":"balancer","event":"listening"})") ==
        1234);
  CHECK_FALSE(bt::parse_listening_port(R"({"event":"started","port":1})"));
  CHECK_FALSE(bt::parse_listening_port("listening on port 80"));
  CHECK_FALSE(bt::parse_listening_port(R"({"event":"listening","port":0})"));
}

TEST_CASE("percentiles use the nearest rank") {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  const auto p = bt::percentiles(v);
  CHECK(p.count == 100);
  CHECK(p.p50 == 50);
  CHECK(p.p95 == 95);
  CHECK(p.p99 == 99);
  CHECK(p.max == 100);
  CHECK(bt::percentiles({}).count == 0);
  CHECK(bt::percentiles({7}).p50 == 7);
}

TEST_CASE("ChildProcess reads stdout lines, reports exit codes and captures stderr") {
  bt::ChildProcess child;
  std::string error;
  REQUIRE(child.start({"sh", "-c", "echo one; echo \"$GREETING\"; echo oops >&2; exit 3"},
                      {{"GREETING", "hello"}}, {}, &error));
  CHECK(child.wait_for_line([](std::string_view l) { return l == "hello"; }, bt::deadline_in(5s)) ==
        std::string("hello"));
  CHECK(child.wait_exit(bt::deadline_in(5s)) == 3);
  CHECK(child.stdout_lines() == std::vector<std::string>{"one", "hello"});
  CHECK(child.stderr_text() == "oops\n");
  CHECK_FALSE(child.running());
}

TEST_CASE("ChildProcess start fails cleanly for a missing program and honours working_dir") {
  bt::ChildProcess missing;
  std::string error;
  CHECK_FALSE(missing.start({"/nonexistent/program"}, {}, {}, &error));
  CHECK(error.find("No such file") != std::string::npos);

  bt::TempDir dir;
  bt::ChildProcess pwd;
  REQUIRE(pwd.start({"pwd", "-P"}, {}, dir.path()));
  const auto line = pwd.wait_for_line([](std::string_view) { return true; }, bt::deadline_in(5s));
  REQUIRE(line);
  CHECK(std::filesystem::equivalent(*line, dir.path()));
}

TEST_CASE("ChildProcess destructor kills a child that is still running") {
  pid_t pid = -1;
  {
    bt::ChildProcess sleeper;
    REQUIRE(sleeper.start({"sleep", "30"}));
    pid = sleeper.pid();
    CHECK(sleeper.running());
  }
  // Reaped by the destructor: the pid no longer names our child.
  CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("TempDir is created and removed recursively") {
  std::string path;
  {
    bt::TempDir dir("support-test");
    path = dir.path();
    std::filesystem::create_directories(dir.file("a/b"));
    std::ofstream(dir.file("a/b/c.txt")) << "x";
    CHECK(std::filesystem::exists(dir.file("a/b/c.txt")));
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("test_origin /gen serves the generated body with cache headers, HEAD too") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/gen/1M/live/chunk1.ts"));
  REQUIRE(r.ok());
  CHECK(r.status == 200);
  CHECK(r.body == bt::generated_body("live/chunk1.ts", 1 << 20));
  CHECK(r.header("content-length") == "1048576");
  CHECK(r.header("Content-Type") == "video/mp2t");
  CHECK(r.header("ETag") == bt::generated_etag("live/chunk1.ts", 1 << 20));
  CHECK(r.header("Last-Modified"));
  CHECK(r.header("Cache-Control"));

  const auto head = bt::http_request("HEAD", origin.url("/gen/2K/index.m3u8"));
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == "2048");
  CHECK(head.header("Content-Type") == "application/vnd.apple.mpegurl");

  CHECK(bt::http_get(origin.url("/gen/10/init.mp4")).header("Content-Type") == "video/mp4");
  CHECK(bt::http_get(origin.url("/gen/16/k.key")).header("Content-Type") ==
        "application/octet-stream");

  const auto not_modified =
      bt::http_get(origin.url("/gen/1M/live/chunk1.ts"), {{"If-None-Match", *r.header("ETag")}});
  CHECK(not_modified.status == 304);
  CHECK(bt::http_get(origin.url("/missing/chunk.ts")).status == 404);
  CHECK(bt::http_get(origin.url("/gen/xyz/a.ts")).status == 400);
}

TEST_CASE("test_origin counts requests per path with and without query and resets") {
  bt::TestOrigin origin;
  REQUIRE(bt::http_get(origin.url("/gen/1K/a.ts")).status == 200);
  REQUIRE(bt::http_get(origin.url("/gen/1K/a.ts?x=1")).status == 200);
  REQUIRE(bt::http_get(origin.url("/missing/b.ts")).status == 404);
  REQUIRE(bt::http_get(origin.url("/__stats")).status == 200);  // control paths are not counted
  CHECK(origin.count("/gen/1K/a.ts") == 2);
  CHECK(origin.count("/gen/1K/a.ts?x=1") == 1);
  CHECK(origin.count("/missing/b.ts") == 1);
  CHECK(origin.count("/gen/1K/never.ts") == 0);
  CHECK(origin.total() == 3);
  CHECK(origin.stats_json().find("\"/gen/1K/a.ts?x=1\":1") != std::string::npos);
  REQUIRE(origin.reset());
  CHECK(origin.total() == 0);
  CHECK(origin.count("/gen/1K/a.ts") == 0);
}

TEST_CASE("test_origin delay_ms holds the status line back") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/gen/4K/d.ts?delay_ms=300"));
  REQUIRE(r.ok());
  CHECK(r.status == 200);
  CHECK(ms(r.first_byte) >= 300);
  CHECK(ms(r.first_byte) < 3000);
  CHECK(r.body == bt::generated_body("d.ts", 4096));

  bt::TestOriginOptions slow_options;
  slow_options.delay_ms = 200;  // --delay-ms applies to every /gen request
  bt::TestOrigin slow(slow_options);
  const auto d = bt::http_get(slow.url("/gen/1K/e.ts"));
  CHECK(ms(d.first_byte) >= 200);
}

TEST_CASE("test_origin rate_kbps streams the body at about that rate") {
  bt::TestOrigin origin;
  // 1 MiB at 8000 kbit/s = 1 MB/s: about 1.05 s, bytes flowing from the start.
  const auto r = bt::http_get(origin.url("/gen/1M/r.ts?rate_kbps=8000"));
  REQUIRE(r.ok());
  CHECK(r.body == bt::generated_body("r.ts", 1 << 20));
  CHECK(ms(r.total) >= 800);
  CHECK(ms(r.total) < 5000);
  CHECK(ms(r.first_body_byte) >= 0);
  CHECK(ms(r.first_body_byte) < ms(r.total) / 4);
}

TEST_CASE("test_origin status= answers with that status") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/gen/1M/s.ts?status=503"));
  CHECK(r.status == 503);
  CHECK_FALSE(r.body.empty());
  CHECK(r.body.size() < 100);
  CHECK(bt::http_get(origin.url("/gen/1M/s.ts?status=abc")).status == 400);
}

TEST_CASE("test_origin reset_after sends the full Content-Length then drops the connection") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/gen/1M/x.ts?reset_after=1000"));
  CHECK_FALSE(r.ok());
  CHECK(r.status == 200);
  CHECK(r.header("Content-Length") == "1048576");
  CHECK(r.body.size() <= 1000);
  CHECK(r.body == bt::generated_body("x.ts", r.body.size()));

  const auto rst = bt::http_get(origin.url("/gen/64K/y.ts?reset_after=10&rst=1"));
  CHECK_FALSE(rst.ok());
  CHECK(rst.body.size() <= 10);
}

TEST_CASE("test_origin hang=1 never answers and in_flight drops when the client leaves") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/gen/1K/h.ts?hang=1"), {}, 300ms);
  CHECK_FALSE(r.ok());
  CHECK(r.status == 0);
  CHECK(origin.count("/gen/1K/h.ts") == 1);
  CHECK(origin.max_in_flight() == 1);
  CHECK(bt::wait_until([&] { return origin.in_flight() == 0; }, 3s));
}

TEST_CASE("test_origin /files serves from --root, refuses traversal, m3u8 is fresh for a second") {
  bt::TempDir root;
  std::filesystem::create_directories(root.file("live"));
  std::ofstream(root.file("live/index.m3u8")) << "#EXTM3U\n";
  std::ofstream(root.file("live/seg1.ts")) << "segment";
  bt::TempDir outside;
  std::ofstream(outside.file("secret.txt")) << "secret";
  std::filesystem::create_symlink(outside.file("secret.txt"), root.file("live/link.txt"));
  bt::TestOriginOptions options;
  options.root = root.path();
  bt::TestOrigin origin(options);

  const auto playlist = bt::http_get(origin.url("/files/live/index.m3u8"));
  CHECK(playlist.status == 200);
  CHECK(playlist.body == "#EXTM3U\n");
  CHECK(playlist.header("Cache-Control") == "max-age=1");
  CHECK(playlist.header("Content-Type") == "application/vnd.apple.mpegurl");

  // Files are read at request time: a rewritten playlist is served at once.
  std::ofstream(root.file("live/index.m3u8")) << "#EXTM3U\n#EXT-X-VERSION:3\n";
  CHECK(bt::http_get(origin.url("/files/live/index.m3u8")).body == "#EXTM3U\n#EXT-X-VERSION:3\n");

  CHECK(bt::http_get(origin.url("/files/live/seg1.ts")).body == "segment");
  CHECK(bt::http_get(origin.url("/files/live/none.ts")).status == 404);
  CHECK(bt::http_get(origin.url("/files/live")).status == 404);

  bt::HttpRequest traversal;
  traversal.url = origin.url(
      "/files/../" + std::filesystem::path(outside.path()).filename().string() + "/secret.txt");
  traversal.path_as_is = true;
  CHECK(bt::http_request(traversal).status == 403);
  CHECK(bt::http_get(origin.url("/files/live/%2e%2e/%2e%2e/etc/passwd")).status == 403);
  CHECK(bt::http_get(origin.url("/files/live/link.txt")).status == 403);
  CHECK(bt::http_get(origin.url("/files/live/seg1.ts?status=500")).status == 500);
}

TEST_CASE(
    "test_origin caching headers: cc, expires, age, etag=0, lm=0; conditional requests counted; "
    "outage") {
  bt::TestOrigin origin;
  const auto custom = bt::http_get(
      origin.url("/gen/1K/c.ts?cc=" + bt::url_encode("no-cache, max-age=5") + "&expires=30&age=7"));
  CHECK(custom.header("Cache-Control") == "no-cache, max-age=5");
  CHECK(custom.header("Age") == "7");
  CHECK(custom.header("Expires").has_value());
  const auto bare = bt::http_get(origin.url("/gen/1K/c.ts?cc=&etag=0&lm=0"));
  CHECK(bare.status == 200);
  CHECK_FALSE(bare.header("Cache-Control").has_value());
  CHECK_FALSE(bare.header("ETag").has_value());
  CHECK_FALSE(bare.header("Last-Modified").has_value());
  CHECK(bt::http_get(origin.url("/gen/1K/c.ts?expires=x")).status == 400);

  const auto plain = bt::http_get(origin.url("/gen/1K/v.ts"));
  const std::string etag = plain.header("ETag").value_or("");
  const std::string last_modified = plain.header("Last-Modified").value_or("");
  const auto by_etag = bt::http_get(origin.url("/gen/1K/v.ts"), {{"If-None-Match", etag}});
  CHECK(by_etag.status == 304);
  CHECK(by_etag.header("Cache-Control") == "public, max-age=86400");
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts"), {{"If-Modified-Since", last_modified}}).status ==
        304);
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts"), {{"If-None-Match", "\"other\""}}).status == 200);
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts"),
                     {{"If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"}})
            .status == 200);
  // Without an ETag, If-None-Match never matches.
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts?etag=0"), {{"If-None-Match", etag}}).status == 200);
  CHECK(origin.count("/gen/1K/v.ts") == 6);
  CHECK(origin.conditional("/gen/1K/v.ts") == 5);
  CHECK(origin.not_modified("/gen/1K/v.ts") == 2);

  REQUIRE(origin.outage(503));
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts")).status == 503);
  REQUIRE(origin.outage(0));
  CHECK(bt::http_get(origin.url("/gen/1K/v.ts")).status == 200);
  CHECK(bt::http_request("POST", origin.url("/__outage?status=42")).status == 400);
}

TEST_CASE("test_origin exits cleanly on SIGTERM") {
  bt::TestOrigin origin;
  origin.process().terminate();
  CHECK(origin.process().wait_exit(bt::deadline_in(5s)) == 0);
}

TEST_CASE("herd of 50 clients gets 50 identical bodies, origin counts 50 requests") {
  bt::TestOrigin origin;
  bt::HerdOptions options;
  options.url = origin.url("/gen/256K/herd.ts");
  options.clients = 50;
  options.expect_size = 256 * 1024;
  options.expect_hash = bt::body_hash(bt::generated_body("herd.ts", 256 * 1024));
  const auto result = bt::run_herd(options);
  CHECK(result.setup_error.empty());
  CHECK(result.ok_count() == 50);
  const auto hashes = result.hash_counts();
  REQUIRE(hashes.size() == 1);
  CHECK(hashes.begin()->first == bt::body_hash(bt::generated_body("herd.ts", 256 * 1024)));
  CHECK(hashes.begin()->second == 50);
  CHECK(result.first_byte_ms().count == 50);
  CHECK(result.first_byte_ms().max <= result.total_ms().max);
  CHECK(origin.count("/gen/256K/herd.ts") == 50);
  CHECK(origin.max_in_flight() >= 1);
  const std::string json = result.summary_json(options.url);
  CHECK(json.find("\"ok\":50") != std::string::npos);
  CHECK(json.find("\"distinct_hashes\":1") != std::string::npos);
}

TEST_CASE("herd reports errors and statuses per client") {
  bt::TestOrigin origin;
  bt::HerdOptions options;
  options.url = origin.url("/gen/1K/bad.ts?status=502");
  options.clients = 5;
  const auto result = bt::run_herd(options);
  CHECK(result.ok_count() == 0);
  CHECK(result.error_count() == 5);
  CHECK(result.status_counts().at(502) == 5);

  options.url = origin.url("/gen/1K/short.ts");
  options.expect_size = 2048;
  CHECK(bt::run_herd(options).error_count() == 5);
}

TEST_CASE("test_origin /x/<params>/ puts behaviour in the path; the query overrides it") {
  bt::TestOrigin origin;
  const auto r = bt::http_get(origin.url("/x/delay_ms=200,status=503/gen/1K/p.ts"));
  CHECK(r.status == 503);
  CHECK(ms(r.first_byte) >= 200);
  const auto ok = bt::http_get(origin.url("/x/delay_ms=60000/gen/1K/p.ts?delay_ms=0"), {}, 5s);
  CHECK(ok.status == 200);
  CHECK(ok.body == bt::generated_body("p.ts", 1024));
  CHECK(origin.count("/x/delay_ms=200,status=503/gen/1K/p.ts") == 1);
  CHECK(bt::http_get(origin.url("/x/rate_kbps=oops/gen/1K/p.ts")).status == 400);
}

TEST_CASE("generated_target finds /gen/<size>/<name> behind any prefix") {
  const auto t =
      bt::generated_target("http://127.0.0.1:81/o/demo/x/rate_kbps=1/gen/1M/live/a.ts?q=1");
  REQUIRE(t);
  CHECK(t->first == size_t{1} << 20);
  CHECK(t->second == "live/a.ts");
  CHECK_FALSE(bt::generated_target("http://127.0.0.1/files/a.ts"));
  CHECK_FALSE(bt::generated_target("/gen/1M/"));
}
