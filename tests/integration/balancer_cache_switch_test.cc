// Cache choice with real cache nodes: moving a viewer between caches and origin
// changes only hosts; a killed node is detected by health polling and its viewers
// move to the sibling, then to origin, and back when it returns; coverage
// networks and the caches list reload on SIGHUP.
#include <doctest/doctest.h>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// A chunk link without host and signature: "/o/demo/live/seg3.ts" or "/files/live/seg3.ts"
// reduced to the segment name, so links through any host compare equal.
std::string chunk_name(const std::string& link) {
  std::string path = target_of(link);
  path = path.substr(0, path.find('?'));
  return path.substr(path.rfind('/') + 1);
}

std::string host_of(const std::string& link) {
  return link.substr(0, link.size() - target_of(link).size());
}

struct Stack {
  Stack() {
    write_file(dir.file("root/live/index.m3u8"), live_playlist(3, 4));
    for (int i = 3; i < 7; ++i)
      write_file(dir.file("root/live/seg" + std::to_string(i) + ".ts"),
                 "chunk-" + std::to_string(i));
    origin = std::make_unique<TestOrigin>(serving_files(dir.file("root")));
    a = std::make_unique<CacheNodeProcess>(dir.file("cache-a"), origin->url("/files"));
    b = std::make_unique<CacheNodeProcess>(dir.file("cache-b"), origin->url("/files"),
                                           std::vector<std::string>{"node_id=venue-b"});
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"), channels_json({channel_json("demo", "/live/index.m3u8")}),
        caches_json({cache_json("venue-a", "venue", a->port()),
                     cache_json("venue-b", "venue", b->port())}));
    REQUIRE(balancer->wait_cache_usable("venue-a", true, 10s));
    REQUIRE(balancer->wait_cache_usable("venue-b", true, 10s));
  }
  std::string host(const CacheNodeProcess& node) const {
    return "http://127.0.0.1:" + std::to_string(node.port());
  }
  std::vector<std::string> chunks(const std::string& cache,
                                  const std::string& viewer = "walker") const {
    auto r = balancer->get("/hls/demo/live/index.m3u8?viewer=" + viewer +
                           (cache.empty() ? "" : "&cache=" + cache));
    REQUIRE(r.status == 200);
    return uri_lines(r.body);
  }
  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<CacheNodeProcess> a, b;
  std::unique_ptr<BalancerProcess> balancer;
};

}  // namespace

TEST_CASE("walking out of the venue and back (cache → none → cache) changes only the chunk hosts") {
  Stack s;
  auto in_venue = s.chunks("venue-a");
  auto outside = s.chunks("");
  auto back = s.chunks("venue-a");
  auto sibling = s.chunks("venue-b");
  REQUIRE(in_venue.size() == 4);
  REQUIRE(outside.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(host_of(in_venue[i]) == s.host(*s.a));
    CHECK(host_of(outside[i]) == s.origin->base_url());  // no cache id, not covered: origin
    CHECK(host_of(back[i]) == s.host(*s.a));
    CHECK(host_of(sibling[i]) == s.host(*s.b));
    CHECK(chunk_name(in_venue[i]) == "seg" + std::to_string(3 + i) + ".ts");
    CHECK(chunk_name(outside[i]) == chunk_name(in_venue[i]));
    CHECK(chunk_name(back[i]) == chunk_name(in_venue[i]));
    CHECK(chunk_name(sibling[i]) == chunk_name(in_venue[i]));
  }
  // Every link works and serves the same bytes.
  CHECK(http_get(in_venue[1]).body == "chunk-4");
  CHECK(http_get(outside[1]).body == "chunk-4");
  CHECK(http_get(sibling[1]).body == "chunk-4");
  auto metrics = s.balancer->metrics();
  CHECK(metric_value(metrics, "balancer_cache_choice_total{reason=\"requested\"}") == 3);
  CHECK(metric_value(metrics, "balancer_cache_choice_total{reason=\"origin\"}") == 1);
  CHECK(metric_value(metrics, "balancer_viewers_by_cache{cache=\"venue-b\"}") ==
        1);  // the walker's latest
}

TEST_CASE(
    "a killed cache node: viewers move to the sibling, then to origin, and back when it returns") {
  Stack s;
  CHECK(host_of(s.chunks("venue-a")[0]) == s.host(*s.a));
  const int port_a = s.a->port();
  s.a->kill_hard();
  auto killed = Clock::now();
  REQUIRE(s.balancer->wait_cache_usable("venue-a", false, 5s));
  double detect_ms = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
  MESSAGE("cache kill detected after " << detect_ms << " ms (interval 200 ms: refused at once)");
  CHECK(detect_ms < 1500);
  auto moved = s.chunks("venue-a");
  CHECK(host_of(moved[0]) == s.host(*s.b));  // same site
  CHECK(http_get(moved[0]).body == "chunk-3");

  s.b->kill_hard();
  REQUIRE(s.balancer->wait_cache_usable("venue-b", false, 5s));
  auto origin_links = s.chunks("venue-a");
  CHECK(host_of(origin_links[0]) == s.origin->base_url());
  CHECK(http_get(origin_links[0]).body == "chunk-3");

  // The node comes back on its address: after up_after good polls, viewers return.
  s.a = std::make_unique<CacheNodeProcess>(
      s.dir.file("cache-a"), s.origin->url("/files"),
      std::vector<std::string>{"listen.port=" + std::to_string(port_a)});
  REQUIRE(s.balancer->wait_cache_usable("venue-a", true, 5s));
  // The walker's listed chunks keep their usable host (origin; stable segment hosts) until they
  // leave the live window; newly listed chunks, and other viewers, are back on venue-a.
  CHECK(host_of(s.chunks("venue-a")[0]) == s.origin->base_url());
  auto returned = s.chunks("venue-a", "newcomer");
  CHECK(host_of(returned[0]) == s.host(*s.a));
  CHECK(http_get(returned[0]).body == "chunk-3");
}

TEST_CASE("coverage networks place viewers without a cache id; the caches list reloads on SIGHUP") {
  Stack s;
  CHECK(host_of(s.chunks("")[0]) == s.origin->base_url());
  // The test viewer comes from 127.0.0.1: cover it with venue-b.
  s.balancer->write_caches(
      caches_json({cache_json("venue-a", "venue", s.a->port(), "[\"10.0.0.0/8\"]"),
                   cache_json("venue-b", "venue", s.b->port(), "[\"127.0.0.0/8\",\"::1/128\"]")}));
  REQUIRE(s.balancer->reload("ok"));
  REQUIRE(s.balancer->wait_cache_usable("venue-b", true, 5s));
  // (Other viewers than the first one: its listed chunks keep their host, origin.)
  CHECK(host_of(s.chunks("", "covered")[0]) == s.host(*s.b));
  CHECK(host_of(s.chunks("no-such-cache", "covered2")[0]) == s.host(*s.b));
  // A node removed from the list is no longer used, even when asked for.
  s.balancer->write_caches(caches_json({cache_json("venue-b", "venue", s.b->port())}));
  REQUIRE(s.balancer->reload("ok"));
  CHECK(host_of(s.chunks("venue-a")[0]) == s.origin->base_url());
  CHECK(s.balancer->health().find("venue-a") == std::string::npos);
}
