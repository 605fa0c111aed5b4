// The cache node's storage across restarts and crashes, and its limits.
#include <doctest/doctest.h>

#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

TEST_CASE("restart: cached chunks are served from disk with no new origin request") {
  TempDir dir;
  TestOrigin origin;
  const std::vector<std::string> names = {"r1.ts", "r2.ts", "r3.ts"};
  {
    CacheNodeProcess node(dir.file("data"), origin.base_url(), {"signing.required=false"});
    for (const auto& n : names) REQUIRE(http_get(node.url("/o/demo/gen/300K/" + n)).status == 200);
    REQUIRE(node.wait_disk_settled(names.size()));
    node.stop();
  }
  CacheNodeProcess node(dir.file("data"), origin.base_url(), {"signing.required=false"});
  for (const auto& n : names) {
    auto r = http_get(node.url("/o/demo/gen/300K/" + n));
    CHECK(r.status == 200);
    CHECK(r.header("X-Cache") == std::optional<std::string>("HIT"));
    CHECK(r.body == generated_body(n, 300 * 1024));
    CHECK(r.header("ETag") == std::optional<std::string>(generated_etag(n, 300 * 1024)));
  }
  CHECK(origin.total() == 3);
}

TEST_CASE("a small chunk served from disk on a keep-alive connection does not wait for the ACK") {
  // From the disk store a reply leaves in two writes, the head and then the body by sendfile.
  // With Nagle's algorithm on, the body waited for the client's delayed ACK of the head:
  // ~40 ms a request (22 requests a second on one connection), where a hit takes well under 1.
  TempDir dir;
  TestOrigin origin;
  {
    CacheNodeProcess node(dir.file("data"), origin.base_url(), {"signing.required=false"});
    REQUIRE(http_get(node.url("/o/demo/gen/2K/small.ts")).status == 200);
    REQUIRE(node.wait_disk_settled(1));
    node.stop();
  }
  CacheNodeProcess node(dir.file("data"), origin.base_url(), {"signing.required=false"});
  const int fd = connect_loopback(node.port());
  REQUIRE(fd >= 0);
  const std::string request = "GET /o/demo/gen/2K/small.ts HTTP/1.1\r\nHost: node\r\n\r\n";
  constexpr int kRequests = 20;
  const auto started = std::chrono::steady_clock::now();
  int hits = 0;
  for (int i = 0; i < kRequests; ++i) {
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    const RawRead read =
        read_raw(fd, [](const std::string& bytes) { return split_responses(bytes).size() == 1; });
    const auto responses = split_responses(read.bytes);
    REQUIRE(responses.size() == 1);
    CHECK(responses[0].status == 200);
    CHECK(responses[0].body.size() == 2048);
    if (responses[0].has_header("X-Cache: HIT")) ++hits;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  ::close(fd);
  MESSAGE(kRequests << " hits from disk on one connection in " << ms << " ms");
  CHECK(hits == kRequests);
  CHECK(ms < kRequests * 20);
  CHECK(origin.total() == 1);
}

TEST_CASE("kill -9 during a download: after restart the chunk is fetched again and served whole") {
  TempDir dir;
  TestOrigin origin;
  const std::string target = "/o/demo/gen/1M/crash.ts?rate_kbps=2000";  // about 4 s
  auto node = std::make_unique<CacheNodeProcess>(
      dir.file("data"), origin.base_url(), std::vector<std::string>{"signing.required=false"});
  HttpResponse interrupted;
  std::thread viewer([&] { interrupted = http_get(node->url(target), {}, 20s); });
  // Kill once the node is mid-download (the origin has sent part of the body).
  REQUIRE(wait_until([&] { return node->health_number("inflight_fetches") == 1; }, 5s));
  REQUIRE(wait_until(
      [&] {
        std::string m = http_get(node->url("/metrics")).body;
        auto at = m.find("\ncache_origin_bytes_total ");
        return at != std::string::npos && std::stoll(m.substr(at + 26)) > 100000;
      },
      5s));
  node->kill_hard();
  viewer.join();
  CHECK_FALSE(interrupted.ok());
  CHECK(interrupted.body.size() < (1u << 20));

  node->start();
  auto whole = http_get(node->url(target), {}, 20s);
  CHECK(whole.status == 200);
  CHECK(whole.header("X-Cache") == std::optional<std::string>("MISS"));
  CHECK(whole.body == generated_body("crash.ts", 1 << 20));
  CHECK(origin.count("/gen/1M/crash.ts") == 2);
}

TEST_CASE("eviction: memory and disk stay within their limits; the oldest chunks go first") {
  TempDir dir;
  TestOrigin origin;
  // 1 MiB of memory and 2.5 MiB of disk, chunks of 600 KiB.
  CacheNodeProcess node(dir.file("data"), origin.base_url(),
                        {"signing.required=false", "storage.memory_mb=1", "storage.disk_mb=2.5"});
  for (int i = 0; i < 6; ++i) {
    std::string name = "ev" + std::to_string(i) + ".ts";
    REQUIRE(http_get(node.url("/o/demo/gen/600K/" + name)).status == 200);
    REQUIRE(wait_until([&] { return node.health_number("pending_writes") == 0; }, 10s));
    CHECK(node.health_number("memory_used_bytes") <= (1 << 20));
    CHECK(node.health_number("disk_used_bytes") <= static_cast<int64_t>(2.5 * (1 << 20)));
  }
  CHECK(node.health_number("disk_chunks") == 4);
  auto newest = http_get(node.url("/o/demo/gen/600K/ev5.ts"));
  CHECK(newest.header("X-Cache") == std::optional<std::string>("HIT"));
  auto oldest = http_get(node.url("/o/demo/gen/600K/ev0.ts"));
  CHECK(oldest.header("X-Cache") == std::optional<std::string>("MISS"));
  CHECK(oldest.body == generated_body("ev0.ts", 600 * 1024));
  CHECK(origin.count("/gen/600K/ev0.ts") == 2);
  CHECK(origin.count("/gen/600K/ev5.ts") == 1);
}
