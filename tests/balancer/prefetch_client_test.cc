// PrefetchClient against real HTTP servers on loopback standing for cache nodes, with a
// FakeClock feeding its rate limit: what it POSTs to which node (usable nodes of the
// mask only, at most 64 segments a request, the key as a bearer token), that a failed
// request is counted and never retried, and its bounds (in flight, per second, queue).
#include "balancer/caches/prefetch_client.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "support/loopback_node.h"

namespace balancer {
namespace prefetch_client_test {

using namespace std::chrono_literals;

const std::string kKey = "prefetch-key-0123456789";
const test::NodeAnswer kAccepted{202, "{}"};
const test::NodeAnswer kHold{202, "", true};

PrefetchConfig prefetch_config(size_t max_inflight = 8, double max_per_s = 1000,
                               size_t max_queue = 256) {
  PrefetchConfig config;
  config.key = kKey;
  config.max_inflight = max_inflight;
  config.max_per_s = max_per_s;
  config.max_queue = max_queue;
  config.timeout = 2000ms;
  return config;
}

uint64_t bit(size_t index) {
  return uint64_t{1} << index;
}

struct Fixture {
  core::EventLoop loop{0};
  core::FakeClock clock;
  core::MetricsRegistry metrics;
  test::LoopbackNode node{loop.base()};
  std::unique_ptr<http::HttpClient> client;
  std::set<std::string> usable{"a", "b", "c", "d"};
  std::vector<CacheConfig> caches;
  std::unique_ptr<PrefetchClient> prefetch;

  explicit Fixture(const PrefetchConfig& config) {
    auto made = http::HttpClient::create(loop.base(), {});
    REQUIRE(made.ok());
    client = std::move(*made);
    prefetch = std::make_unique<PrefetchClient>(
        loop, *client, metrics, clock,
        [this](const std::string& id) { return usable.count(id) != 0; });
    // Four nodes a, b, c, d (mask bits 0 to 3), told apart by their base paths.
    for (const char* id : {"a", "b", "c", "d"}) {
      CacheConfig cache;
      cache.id = id;
      cache.url = node.url(std::string("/") + id);
      caches.push_back(cache);
    }
    prefetch->configure(config, caches);
  }
  uint64_t requests(const std::string& result) {
    return metrics.counter("balancer_prefetch_requests_total", "", "result=\"" + result + "\"")
        .value();
  }
  uint64_t chunks() { return metrics.counter("balancer_prefetch_chunks_total", "").value(); }
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return test::run_until(loop.base(), done, limit);
  }
  // Waits until every request sent has been answered or has failed.
  void settle() {
    REQUIRE(run_until([&] { return prefetch->inflight() == 0 && prefetch->queued() == 0; }));
  }
};

// "/s007.ts"-style targets, in order.
std::vector<std::string> segments(size_t first, size_t count) {
  std::vector<std::string> out;
  for (size_t i = first; i < first + count; ++i) {
    std::string n = std::to_string(i);
    out.push_back("/s" + std::string(3 - std::min<size_t>(3, n.size()), '0') + n + ".ts");
  }
  return out;
}

std::string body_of(const std::vector<std::string>& targets) {
  return prefetch_body("demo", targets, 0, targets.size());
}

TEST_CASE("prefetch body: the node's chunk paths under /o/<origin>, as JSON strings") {
  CHECK(prefetch_body("demo", {"/live/s1.ts", "/live/s2.ts?t=1"}, 0, 2) ==
        R"({"chunks":["/o/demo/live/s1.ts","/o/demo/live/s2.ts?t=1"]})");
  CHECK(prefetch_body("demo", {"/a.ts", "/b\"c.ts", "/d.ts"}, 1, 5) ==
        R"({"chunks":["/o/demo/b\"c.ts","/o/demo/d.ts"]})");
  CHECK(prefetch_body("demo", {"/a.ts"}, 1, 1) == R"({"chunks":[]})");
}

TEST_CASE("prefetch: each usable node of the mask gets one POST <node>/prefetch with the key") {
  Fixture f(prefetch_config());
  f.node.answer(test::LoopbackNode::always(kAccepted));
  f.usable.erase("d");
  const std::vector<std::string> targets{"/live/s1.ts", "/live/s2.ts?t=1"};
  f.prefetch->offer("demo", targets, bit(0) | bit(2) | bit(3));  // a, c and d; not b
  f.settle();

  REQUIRE(f.node.seen().size() == 2);
  std::multiset<std::string> paths;
  for (const test::SeenRequest& r : f.node.seen()) {
    paths.insert(r.path);
    CHECK(r.method == "POST");
    CHECK(r.authorization == "Bearer " + kKey);
    CHECK(r.content_type == "application/json");
    CHECK(r.body == R"({"chunks":["/o/demo/live/s1.ts","/o/demo/live/s2.ts?t=1"]})");
  }
  CHECK(paths == std::multiset<std::string>{"/a/prefetch", "/c/prefetch"});
  CHECK(f.requests("sent") == 2);
  CHECK(f.requests("ok") == 2);
  CHECK(f.requests("failed") == 0);
  CHECK(f.chunks() == 4);  // two segments, named to two nodes

  // A node that is no longer usable is not asked; nothing at all is sent for no segment.
  f.usable.erase("a");
  f.prefetch->offer("demo", targets, bit(0));
  f.prefetch->offer("demo", {}, bit(2));
  CHECK(f.prefetch->queued() == 0);
  CHECK(f.prefetch->inflight() == 0);
  CHECK(f.requests("sent") == 2);
}

TEST_CASE("prefetch: more than 64 segments go in requests of at most 64, in order, each once") {
  Fixture f(prefetch_config());
  f.node.answer(test::LoopbackNode::always(kAccepted));
  const std::vector<std::string> targets = segments(0, 130);
  f.prefetch->offer("demo", targets, bit(1));
  f.settle();
  REQUIRE(f.node.seen().size() == 3);
  std::vector<std::string> bodies;
  for (const test::SeenRequest& r : f.node.seen()) {
    CHECK(r.path == "/b/prefetch");
    bodies.push_back(r.body);
  }
  std::sort(bodies.begin(), bodies.end());  // "/s000" < "/s064" < "/s128"
  CHECK(bodies[0] == body_of(segments(0, 64)));
  CHECK(bodies[1] == body_of(segments(64, 64)));
  CHECK(bodies[2] == body_of(segments(128, 2)));
  CHECK(f.chunks() == 130);
  CHECK(f.requests("ok") == 3);
}

TEST_CASE("prefetch: without a key nothing is sent, and removing the key drops what waits") {
  PrefetchConfig no_key = prefetch_config(1);
  no_key.key.clear();
  Fixture f(no_key);
  f.prefetch->offer("demo", segments(0, 3), bit(0));
  CHECK(f.prefetch->queued() == 0);
  CHECK(f.prefetch->inflight() == 0);
  CHECK(f.requests("sent") == 0);

  f.node.answer(test::LoopbackNode::always(kHold));
  f.prefetch->configure(prefetch_config(1), f.caches);
  for (size_t i = 0; i < 3; ++i) f.prefetch->offer("demo", segments(i, 1), bit(0));
  CHECK(f.prefetch->inflight() == 1);
  CHECK(f.prefetch->queued() == 2);
  REQUIRE(f.run_until([&] { return f.node.held() == 1; }));
  f.prefetch->configure(no_key, f.caches);
  CHECK(f.prefetch->queued() == 0);
  // The request in flight ends as usual; nothing follows it.
  REQUIRE(f.node.release_oldest(202));
  REQUIRE(f.run_until([&] { return f.requests("ok") == 1; }));
  CHECK(f.prefetch->inflight() == 0);
  CHECK(f.requests("sent") == 1);
  CHECK(f.node.seen().size() == 1);
}

TEST_CASE(
    "prefetch: a failed request (error status, 200 for 202, timeout, node gone) is counted and "
    "never retried") {
  PrefetchConfig config = prefetch_config();
  config.timeout = 300ms;
  Fixture f(config);
  auto offer_and_settle = [&](const std::string& segment) {
    f.prefetch->offer("demo", {segment}, bit(0));
    f.settle();
  };
  f.node.answer(test::LoopbackNode::scripted({{500, "{}"}, {200, "{}"}, kHold}));
  offer_and_settle("/s1.ts");
  CHECK(f.requests("failed") == 1);
  offer_and_settle("/s2.ts");  // the node's contract is 202 Accepted
  CHECK(f.requests("failed") == 2);
  offer_and_settle("/s3.ts");  // held past the request timeout
  CHECK(f.requests("failed") == 3);
  CHECK(f.node.seen().size() == 3);
  f.node.close();
  offer_and_settle("/s4.ts");
  CHECK(f.requests("failed") == 4);
  CHECK(f.requests("sent") == 4);
  CHECK(f.requests("ok") == 0);
  CHECK(f.node.seen().size() == 3);
}

TEST_CASE("prefetch: at most max_inflight requests at once; the rest go as answers come") {
  Fixture f(prefetch_config(2));
  f.node.answer(test::LoopbackNode::always(kHold));
  for (size_t i = 0; i < 5; ++i) f.prefetch->offer("demo", segments(i, 1), bit(0));
  CHECK(f.prefetch->inflight() == 2);
  CHECK(f.prefetch->queued() == 3);
  REQUIRE(f.run_until([&] { return f.node.held() == 2; }));

  REQUIRE(f.node.release_oldest(202));
  REQUIRE(f.run_until([&] { return f.node.seen().size() == 3 && f.node.held() == 2; }));
  CHECK(f.prefetch->inflight() == 2);
  CHECK(f.prefetch->queued() == 2);

  REQUIRE(f.run_until([&] {
    f.node.release_oldest(202);
    return f.requests("ok") == 5;
  }));
  CHECK(f.node.max_held() == 2);
  CHECK(f.node.seen().size() == 5);
  CHECK(f.prefetch->inflight() == 0);
}

TEST_CASE("prefetch: over max_queue the oldest waiting request is dropped") {
  Fixture f(prefetch_config(1, 1000, 3));
  f.node.answer(test::LoopbackNode::always(kHold));
  for (size_t i = 1; i <= 6; ++i) f.prefetch->offer("demo", segments(i, 1), bit(0));
  // s001 went at once; s002 to s006 met a queue of 3: s002 and s003 were dropped.
  CHECK(f.prefetch->inflight() == 1);
  CHECK(f.prefetch->queued() == 3);
  CHECK(f.requests("dropped") == 2);
  REQUIRE(f.run_until([&] { return f.node.held() == 1; }));
  std::vector<std::string> order;
  REQUIRE(f.run_until([&] {
    if (f.node.held() == 1) {
      order.push_back(f.node.seen().back().body);
      f.node.release_oldest(202);
    }
    return f.requests("ok") == 4;
  }));
  CHECK(order == std::vector<std::string>{body_of(segments(1, 1)), body_of(segments(4, 1)),
                                          body_of(segments(5, 1)), body_of(segments(6, 1))});
}

TEST_CASE(
    "prefetch: at most max_per_s requests a second on the injected clock, bursts of max_per_s") {
  Fixture f(prefetch_config(100, 20, 100));
  f.node.answer(test::LoopbackNode::always(kAccepted));
  for (size_t i = 0; i < 25; ++i) f.prefetch->offer("demo", segments(i, 1), bit(0));
  CHECK(f.requests("sent") == 20);  // a full bucket at first
  CHECK(f.prefetch->queued() == 5);
  REQUIRE(f.run_until([&] { return f.requests("ok") == 20; }));
  CHECK(f.prefetch->queued() == 5);  // real time passed, the injected clock did not

  // 110 ms on the clock earn 2.2 requests; the client's timer comes back to send them.
  f.clock.advance(110ms);
  REQUIRE(f.run_until([&] { return f.prefetch->queued() < 5; }));
  CHECK(f.prefetch->queued() == 3);
  CHECK(f.requests("sent") == 22);

  // A long quiet spell earns no more than one bucket (20): 3 go now, 17 of 25 more.
  f.clock.advance(10s);
  REQUIRE(f.run_until([&] { return f.prefetch->queued() == 0; }));
  for (size_t i = 0; i < 25; ++i) f.prefetch->offer("demo", segments(100 + i, 1), bit(0));
  CHECK(f.prefetch->queued() == 8);
  CHECK(f.requests("sent") == 42);
  CHECK(f.requests("dropped") == 0);
}

}  // namespace prefetch_client_test
}  // namespace balancer
