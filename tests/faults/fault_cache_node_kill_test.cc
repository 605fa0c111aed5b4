// kill -9 of a cache node at several moments of a chunk's life: early, midway and late in
// the origin transfer, and right after the body completed (the disk write may be running).
// After a restart on the same data directory the node must never serve a truncated or
// corrupt chunk: either it has the whole chunk on disk, or it fetches it again.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

int64_t origin_bytes(const CacheNodeProcess& node) {
  std::string m = http_get(node.url("/metrics")).body;
  auto at = m.find("\ncache_origin_bytes_total ");
  return at == std::string::npos ? -1 : std::stoll(m.substr(at + 26));
}

}  // namespace

TEST_CASE(
    "kill -9 early, midway, late in the download and after it: the chunk is whole after restart") {
  constexpr size_t kSize = 1 << 20;
  // percent of the body the origin has sent when the node is killed; 100 = after the viewer
  // got the whole body (the disk write runs on a worker and may not have finished).
  for (int percent : {10, 50, 90, 100}) {
    CAPTURE(percent);
    TempDir dir;
    TestOrigin origin;
    const std::string name = "k" + std::to_string(percent) + ".ts";
    const std::string target = "/o/demo/gen/1M/" + name + "?rate_kbps=4000";  // about 2 s
    auto node = std::make_unique<CacheNodeProcess>(
        dir.file("data"), origin.base_url(), std::vector<std::string>{"signing.required=false"});
    HttpResponse first;
    std::thread viewer([&] { first = http_get(node->url(target), {}, 20s); });
    if (percent < 100) {
      const int64_t at_least = static_cast<int64_t>(kSize) * percent / 100;
      REQUIRE(wait_until([&] { return origin_bytes(*node) >= at_least; }, 10s, 2ms));
      node->kill_hard();
      viewer.join();
      CHECK(first.body.size() < kSize);  // the viewer saw a cut, never a short "complete" body
    } else {
      viewer.join();
      REQUIRE(first.status == 200);
      CHECK(first.body == generated_body(name, kSize));
      node->kill_hard();
    }
    const auto restarted = std::chrono::steady_clock::now();
    node->start();
    auto again = http_get(node->url(target), {}, 20s);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - restarted)
            .count();
    CHECK(again.status == 200);
    CHECK(again.body == generated_body(name, kSize));
    const int64_t fetches = origin.count("/gen/1M/" + name);
    MESSAGE("killed at " << percent << "%: after restart " << again.header("X-Cache").value_or("?")
                         << ", " << fetches << " origin fetch(es), whole chunk in " << ms << " ms");
    // Killed mid-transfer: fetched again. After the body: at most one more fetch (the disk
    // write may not have been committed), never a partial file served.
    if (percent < 100) {
      CHECK(fetches == 2);
      CHECK(again.header("X-Cache") == std::optional<std::string>("MISS"));
    } else {
      CHECK(fetches <= 2);
    }
    // A second restart finds a consistent index: the chunk is a hit now.
    node->stop();
    node->start();
    auto third = http_get(node->url(target), {}, 20s);
    CHECK(third.status == 200);
    CHECK(third.body == generated_body(name, kSize));
    CHECK(origin.count("/gen/1M/" + name) == fetches);
  }
}
