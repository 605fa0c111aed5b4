// POST /prefetch on a real cache node: authenticated by the prefetch key; a named
// chunk is fetched before any viewer asks, and its first viewer is a hit; a
// prefetch joins a viewer's fetch in progress (never a second origin request);
// the node's bounds refuse what is over them.
#include <doctest/doctest.h>

#include <thread>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kPrefetchKey = "prefetch-key-integration-0001";

HttpResponse prefetch(const CacheNodeProcess& node, const std::string& body,
                      const std::string& key = kPrefetchKey) {
  return http_request("POST", node.url("/prefetch"),
                      {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}},
                      body);
}

int64_t metric(const CacheNodeProcess& node, const std::string& series) {
  std::string text = http_get(node.url("/metrics")).body;
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + series.size() + 2, nullptr, 10);
}

}  // namespace

TEST_CASE("prefetch: a prefetched chunk is a hit for its first viewer, fetched from origin once") {
  NodeOnOrigin s({"prefetch.keys=[\"" + kPrefetchKey + "\"]"});
  auto r = prefetch(
      s.node,
      R"({"chunks":["/o/demo/gen/64K/p1.ts","/o/demo/gen/64K/p2.ts","/o/nope/x.ts","/o/demo/../x"]})");
  CHECK(r.status == 202);
  CHECK(r.body == "{\"started\":2,\"joined\":0,\"present\":0,\"refused\":0,\"invalid\":2}\n");
  REQUIRE(wait_until(
      [&] { return metric(s.node, "cache_prefetch_completed_total{result=\"stored\"}") == 2; },
      10s));
  auto viewer = http_get(s.node.signed_url("/o/demo/gen/64K/p1.ts"));
  CHECK(viewer.status == 200);
  CHECK(viewer.header("X-Cache") == std::optional<std::string>("HIT"));
  CHECK(viewer.body == generated_body("p1.ts", 64 << 10));
  auto second = http_get(s.node.signed_url("/o/demo/gen/64K/p1.ts"));
  CHECK(second.header("X-Cache") == std::optional<std::string>("HIT"));
  CHECK(s.origin.count("/gen/64K/p1.ts") == 1);
  CHECK(metric(s.node, "cache_prefetch_first_viewers_total{result=\"hit\"}") ==
        1);  // the second viewer is not counted
  // Named again once stored: nothing to do.
  auto again = prefetch(s.node, R"({"chunks":["/o/demo/gen/64K/p1.ts"]})");
  CHECK(again.body.find("\"present\":1") != std::string::npos);
  CHECK(s.origin.count("/gen/64K/p1.ts") == 1);
}

TEST_CASE("prefetch: joins a viewer's fetch in progress, never a second origin request") {
  NodeOnOrigin s({"prefetch.keys=[\"" + kPrefetchKey + "\"]"});
  const std::string target = "/o/demo/gen/64K/held.ts?hold=1";
  HttpResponse viewer;
  std::thread get([&] { viewer = http_get(s.node.signed_url(target)); });
  const bool held = wait_until([&] { return s.origin.held() == 1; }, 10s, 10ms);
  auto r = prefetch(s.node, R"({"chunks":["/o/demo/gen/64K/held.ts?hold=1"]})");
  s.origin.release();
  get.join();
  CHECK(held);
  CHECK(r.body.find("\"joined\":1") != std::string::npos);
  CHECK(viewer.status == 200);
  CHECK(s.origin.count("/gen/64K/held.ts") == 1);
}

TEST_CASE(
    "prefetch: a wrong or missing key is refused with 401 and fetches nothing; bad bodies are "
    "400") {
  NodeOnOrigin s({"prefetch.keys=[\"" + kPrefetchKey + "\"]"});
  auto wrong =
      prefetch(s.node, R"({"chunks":["/o/demo/gen/4K/k.ts"]})", "prefetch-key-integration-0002");
  CHECK(wrong.status == 401);
  CHECK(is_json_error(wrong, "unauthorized"));
  auto none =
      http_request("POST", s.node.url("/prefetch"), {}, R"({"chunks":["/o/demo/gen/4K/k.ts"]})");
  CHECK(none.status == 401);
  CHECK(s.origin.count("/gen/4K/k.ts") == 0);
  auto bad = prefetch(s.node, R"({"chunks":"/o/demo/gen/4K/k.ts"})");
  CHECK(bad.status == 400);
  CHECK(is_json_error(bad, "bad_request"));
  auto get = http_get(s.node.url("/prefetch"));
  CHECK(get.status == 405);
}

TEST_CASE("prefetch: over prefetch.max_per_s the node refuses the rest, counted") {
  NodeOnOrigin s({"prefetch.keys=[\"" + kPrefetchKey + "\"]", "prefetch.max_per_s=2"});
  auto r = prefetch(
      s.node, R"({"chunks":["/o/demo/gen/4K/r1.ts","/o/demo/gen/4K/r2.ts","/o/demo/gen/4K/r3.ts",
                                      "/o/demo/gen/4K/r4.ts"]})");
  CHECK(r.status == 202);
  CHECK(r.body.find("\"started\":2") != std::string::npos);
  CHECK(r.body.find("\"refused\":2") != std::string::npos);
  CHECK(metric(s.node, "cache_prefetches_total{result=\"refused\"}") == 2);
}
