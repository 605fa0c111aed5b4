// HTTP semantics, signatures, bad input, operator endpoints and reload of the
// real cache_node.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// Sends raw bytes on a fresh connection and returns what comes back (bounded).
std::string raw_exchange(int port, const std::string& bytes) {
  return exchange_raw(port, bytes,
                      [](const std::string& out) {
                        return out.find("\r\n\r\n") != std::string::npos &&
                               out.find("}}") != std::string::npos;
                      })
      .bytes;
}

}  // namespace

TEST_CASE("hits: Range, HEAD, ETag/Last-Modified and conditional requests") {
  NodeOnOrigin s({"signing.required=false"});
  const std::string url = s.node.url("/o/demo/gen/100K/sem.ts");
  const std::string body = generated_body("sem.ts", 100 * 1024);
  auto miss = http_get(url);
  REQUIRE(miss.status == 200);
  CHECK(miss.header("X-Cache") == std::optional<std::string>("MISS"));
  CHECK(miss.header("Content-Type") == std::optional<std::string>("video/mp2t"));
  CHECK(miss.header("Content-Length") == std::optional<std::string>("102400"));
  std::string etag = miss.header("ETag").value_or("");
  std::string last_modified = miss.header("Last-Modified").value_or("");
  CHECK(etag == generated_etag("sem.ts", 100 * 1024));
  CHECK_FALSE(last_modified.empty());

  auto hit = http_get(url);
  CHECK(hit.header("X-Cache") == std::optional<std::string>("HIT"));
  CHECK(hit.header("Age").has_value());
  CHECK(hit.body == body);

  auto range = http_get(url, {{"Range", "bytes=100-199"}});
  CHECK(range.status == 206);
  CHECK(range.header("Content-Range") == std::optional<std::string>("bytes 100-199/102400"));
  CHECK(range.body == body.substr(100, 100));
  auto suffix = http_get(url, {{"Range", "bytes=-10"}});
  CHECK(suffix.status == 206);
  CHECK(suffix.body == body.substr(body.size() - 10));
  auto beyond = http_get(url, {{"Range", "bytes=200000-"}});
  CHECK(beyond.status == 416);
  CHECK(beyond.header("Content-Range") == std::optional<std::string>("bytes */102400"));
  CHECK(is_json_error(beyond, "range_not_satisfiable"));
  auto stale_if_range = http_get(url, {{"Range", "bytes=0-9"}, {"If-Range", "\"other\""}});
  CHECK(stale_if_range.status == 200);
  CHECK(stale_if_range.body.size() == body.size());

  auto head = http_request("HEAD", url);
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == std::optional<std::string>("102400"));

  CHECK(http_get(url, {{"If-None-Match", etag}}).status == 304);
  CHECK(http_get(url, {{"If-None-Match", "\"nope\""}}).status == 200);
  CHECK(http_get(url, {{"If-Modified-Since", last_modified}}).status == 304);
  CHECK(s.origin.count("/gen/100K/sem.ts") == 1);
}

TEST_CASE("misses: a Range on an object being fetched is served from the bytes as they arrive") {
  NodeOnOrigin s({"signing.required=false"});
  // 1 MiB at 1 Mbit/s: the whole object takes about 8 s to arrive.
  const std::string url = s.node.url("/o/demo/gen/1M/growing.m4s?rate_kbps=1000");
  const std::string body = generated_body("growing.m4s", 1 << 20);
  // The request that starts the fetch asks for the first bytes (an LL-HLS byte-range part).
  auto first = http_get(url, {{"Range", "bytes=0-9999"}});
  CHECK(first.status == 206);
  CHECK(first.header("Content-Range") == std::optional<std::string>("bytes 0-9999/1048576"));
  CHECK(first.body == body.substr(0, 10000));
  CHECK(first.total < 3s);
  // A request joining the fetch in progress, for bytes not yet arrived: sent once they are.
  auto joined = http_get(url, {{"Range", "bytes=150000-159999"}});
  CHECK(joined.status == 206);
  CHECK(joined.body == body.substr(150000, 10000));
  CHECK(joined.total < 4s);
  // Outside the object: 416 at once, with its length.
  auto beyond = http_get(url, {{"Range", "bytes=2000000-"}});
  CHECK(beyond.status == 416);
  CHECK(beyond.header("Content-Range") == std::optional<std::string>("bytes */1048576"));
  CHECK(s.origin.count("/gen/1M/growing.m4s") == 1);
}

TEST_CASE("misses: Range and HEAD requests joining a download are answered") {
  NodeOnOrigin s({"signing.required=false"});
  auto range = http_get(s.node.url("/o/demo/gen/64K/rm.ts"), {{"Range", "bytes=10-19"}});
  CHECK(range.status == 206);
  CHECK(range.body == generated_body("rm.ts", 64 * 1024).substr(10, 10));
  auto head = http_request("HEAD", s.node.url("/o/demo/gen/32K/hm.ts"));
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == std::optional<std::string>("32768"));
  CHECK(s.origin.count("/gen/64K/rm.ts") == 1);
}

TEST_CASE(
    "signatures: missing, expired, tampered and unknown-key URLs are refused; the previous key "
    "works") {
  NodeOnOrigin s;  // signing required (example config)
  const std::string target = "/o/demo/gen/8K/signed.ts";
  auto missing = http_get(s.node.url(target));
  CHECK(missing.status == 403);
  CHECK(is_json_error(missing, "signature_missing"));
  auto expired = http_get(s.node.signed_url(target, -30));
  CHECK(expired.status == 403);
  CHECK(is_json_error(expired, "signature_expired"));
  std::string good = s.node.signed_url(target, 60);
  std::string tampered = good;
  tampered.replace(tampered.find("signed.ts"), 9, "signex.ts");
  CHECK(is_json_error(http_get(tampered), "signature_invalid"));
  std::string forged =
      good.substr(0, good.find("bsig=") + 5) + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  CHECK(is_json_error(http_get(forged), "signature_invalid"));
  CHECK(is_json_error(http_get(s.node.signed_url(target, 60, "some-other-key-0123456789")),
                      "signature_invalid"));
  CHECK(s.origin.total() == 0);  // nothing unsigned ever reached the origin
  CHECK(http_get(s.node.signed_url(target, 60, kPreviousKey)).status == 200);
  CHECK(http_get(good).status == 200);
  CHECK(s.origin.count("/gen/8K/signed.ts") == 1);
}

TEST_CASE(
    "bad input: each hostile request gets its status and JSON error; nothing reaches the origin") {
  NodeOnOrigin s({"signing.required=false"});
  check_json_refusals(
      {
          {"/o/demo/../../etc/passwd", 400, "bad_request"},
          {"/o/demo/a/%2e%2e/%2e%2e/secret", 400, "bad_request"},
          {"/o/demo/a%zz.ts", 400, "bad_request"},
          {"/o/demo/a%00.ts", 400, "bad_request"},
          {"/o/demo//evil.example/x.ts", 400, "bad_request"},
          {"/o/demo/http://evil.example/x.ts", 400, "bad_request"},
          {"/o/demo/a%5c..%5cb.ts", 400, "bad_request"},
          {"/o/elsewhere/x.ts", 404, "unknown_origin"},
          {"/o/demo", 400, "bad_request"},
          {"/nothing/here", 404, "not_found"},
      },
      [&](const std::string& target) {
        HttpRequest request;
        request.url = s.node.url(target);
        request.path_as_is = true;
        return http_request(request);
      });
  auto big_header =
      http_get(s.node.url("/o/demo/gen/1K/a.ts"), {{"X-Junk", std::string(20000, 'j')}});
  CHECK(big_header.status == 431);
  CHECK(is_json_error(big_header, "headers_too_large"));
  // Far over the limit, the head is refused before its end has arrived: the same JSON error.
  auto huge_header =
      http_get(s.node.url("/o/demo/gen/1K/a.ts"), {{"X-Junk", std::string(60000, 'j')}});
  CHECK(huge_header.status == 431);
  CHECK(is_json_error(huge_header, "headers_too_large"));
  auto long_target = http_get(s.node.url("/o/demo/gen/1K/" + std::string(17000, 'a')));
  CHECK(long_target.status == 414);
  auto post = http_request("POST", s.node.url("/o/demo/gen/1K/a.ts"), {}, "x");
  CHECK(post.status == 405);
  CHECK(is_json_error(post, "method_not_allowed"));
  // An absolute-form target (a proxy request) is read as its path (RFC 9112 section 3.2.2),
  // never proxied: /x.ts is no resource here, and evil.example is never asked.
  std::string proxy = raw_exchange(
      s.node.port(), "GET http://evil.example/x.ts HTTP/1.1\r\nHost: evil.example\r\n\r\n");
  CHECK(proxy.rfind("HTTP/1.1 404", 0) == 0);
  // Garbage instead of HTTP: the connection is dropped or refused, the node lives on.
  raw_exchange(s.node.port(), std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  CHECK(s.origin.total() == 0);
  CHECK(http_get(s.node.url("/health")).status == 200);
  CHECK(http_get(s.node.url("/o/demo/gen/1K/a.ts")).status == 200);
}

TEST_CASE("operator endpoints: /ping, /health with the overloaded flag, /metrics") {
  NodeOnOrigin s(
      {"signing.required=false", "node_id=venue-x", "site=arena", "overload.max_connections=2"});
  auto ping = http_get(s.node.url("/ping"));
  CHECK(ping.status == 200);
  CHECK(ping.body == "{\"id\":\"venue-x\",\"site\":\"arena\"}\n");
  CHECK(ping.header("Cache-Control") == std::optional<std::string>("no-store"));
  CHECK(ping.header("Access-Control-Allow-Origin") == std::optional<std::string>("*"));
  // The ping's connection counts until its loop has seen it close (with two loops, possibly
  // after this next request arrives on the other one).
  HttpResponse health;
  CHECK(wait_until(
      [&] {
        health = http_get(s.node.url("/health"));
        return health.body.find("\"overloaded\":false") != std::string::npos;
      },
      5s));
  CHECK(health.body.find("\"status\":\"ok\"") != std::string::npos);
  // Two slow downloads in progress reach max_connections: the node says it is overloaded.
  HttpResponse a, b;
  std::thread ta(
      [&] { a = http_get(s.node.url("/o/demo/gen/256K/o1.ts?rate_kbps=1000"), {}, 10s); });
  std::thread tb(
      [&] { b = http_get(s.node.url("/o/demo/gen/256K/o2.ts?rate_kbps=1000"), {}, 10s); });
  CHECK(wait_until(
      [&] {
        return http_get(s.node.url("/health")).body.find("\"overloaded\":true") !=
               std::string::npos;
      },
      5s));
  ta.join();
  tb.join();
  CHECK(a.status == 200);
  CHECK(wait_until(
      [&] {
        return http_get(s.node.url("/health")).body.find("\"overloaded\":false") !=
               std::string::npos;
      },
      5s));
  auto metrics = http_get(s.node.url("/metrics"));
  CHECK(metrics.header("Content-Type").value_or("").find("text/plain") == 0);
  for (std::string name : {"cache_requests_total{result=\"miss\"} 2",
                           "cache_origin_fetches_total 2", "cache_origin_bytes_total 524288",
                           "cache_bytes_served_total", "http_request_duration_seconds_bucket",
                           "cache_storage_bytes{tier=\"disk\"}", "cache_errors_total"}) {
    CAPTURE(name);
    CHECK(metrics.body.find(name) != std::string::npos);
  }
}

TEST_CASE("config: SIGHUP reloads origins; a broken file is rejected and the node keeps serving") {
  TempDir dir;
  TestOrigin origin;
  std::string conf = dir.file("node.json");
  auto write_conf = [&](const std::string& origins_json) {
    std::ofstream(conf)
        << "{\"node_id\":\"n\",\"data_dir\":\"" << dir.file("data")
        << "\",\"listen\":{\"port\":0},\"signing\":{\"required\":false},\"origins\":"
        << origins_json << "}";
  };
  write_conf("{\"demo\":{\"url\":\"" + origin.base_url() + "\"}}");
  ChildProcess node;
  REQUIRE(node.start(
      {binary_path("cache_node"), "--config", conf, threads_args()[0], threads_args()[1]}));
  int port = node.wait_for_listening_port(deadline_in(10s));
  REQUIRE(port > 0);
  CHECK(http_get(local_url(port, "/o/other/gen/1K/r.ts")).status == 404);
  write_conf("{\"demo\":{\"url\":\"" + origin.base_url() + "\"},\"other\":{\"url\":\"" +
             origin.base_url() + "\"}}");
  kill(node.pid(), SIGHUP);
  CHECK(wait_until([&] { return http_get(local_url(port, "/o/other/gen/1K/r.ts")).status == 200; },
                   5s, 50ms));
  auto reloads = [&](const std::string& result) {
    std::string body = http_get(local_url(port, "/metrics")).body;
    std::string name = "cache_node_config_reloads_total{result=\"" + result + "\"} ";
    auto at = body.find(name);
    return at == std::string::npos ? -1 : std::atoi(body.c_str() + at + name.size());
  };
  CHECK(reloads("ok") == 1);
  CHECK(reloads("rejected") == 0);
  std::ofstream(conf) << "{ this is not json";
  kill(node.pid(), SIGHUP);
  CHECK(wait_until([&] { return node.stderr_text().find("reload rejected") != std::string::npos; },
                   5s));
  CHECK(http_get(local_url(port, "/o/other/gen/1K/r.ts")).status == 200);
  CHECK(reloads("rejected") == 1);
  // A log level that does not exist is refused on reload as --check-config refuses it.
  write_conf("{\"demo\":{\"url\":\"" + origin.base_url() + "\"}},\"log\":{\"level\":\"loud\"}");
  kill(node.pid(), SIGHUP);
  CHECK(wait_until([&] { return reloads("rejected") == 2; }, 5s, 50ms));
  CHECK(node.stderr_text().find("log.level") != std::string::npos);
  CHECK(http_get(local_url(port, "/o/other/gen/1K/r.ts")).status ==
        200);  // old config still in force
  node.terminate();
  CHECK(node.wait_exit(deadline_in(10s)) == std::optional<int>(0));
}

TEST_CASE("config: bad files and overrides are refused at start, naming the file and the key") {
  ChildProcess check;
  REQUIRE(check.start({binary_path("cache_node"), "--config",
                       std::string(BALANCER_SOURCE_DIR) + "/conf/cache_node.json", "--check-config",
                       "--set", "storage.disk_mb=-5", "--set", "colour=blue"}));
  CHECK(check.wait_exit(deadline_in(10s)) == std::optional<int>(2));
  std::string err = check.stderr_text();
  CHECK(err.find("conf/cache_node.json: key 'storage.disk_mb'") != std::string::npos);
  CHECK(err.find("key 'colour': unknown key") != std::string::npos);
  ChildProcess ok;
  REQUIRE(ok.start({binary_path("cache_node"), "--config",
                    std::string(BALANCER_SOURCE_DIR) + "/conf/cache_node.json", "--check-config"}));
  CHECK(ok.wait_exit(deadline_in(10s)) == std::optional<int>(0));
}
