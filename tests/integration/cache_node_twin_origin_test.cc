// Twin origins at the cache node (origins.<id>.twin): two origins that hold the same chunks
// under the same paths (the packagers of epoch-locked encoders). A chunk whose fetch fails on
// one origin (killed, 503, frozen) is fetched from its twin, so the segments a playlist listed
// before the balancer moved the channel to the other source still load.
#include <doctest/doctest.h>

#include <signal.h>

#include "support/cache_node_fixture.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

struct Twins {
  explicit Twins(bool twinned = true) : node(dir.file("data"), a.base_url(), overrides(twinned)) {}
  ~Twins() {
    if (a.process().pid() > 0) ::kill(a.process().pid(), SIGCONT);
  }
  std::vector<std::string> overrides(bool twinned) const {
    std::vector<std::string> out{"origins.backup.url=" + b.base_url()};
    if (twinned)
      out.insert(out.end(), {"origins.demo.twin=\"backup\"", "origins.backup.twin=\"demo\""});
    return out;
  }
  double fallbacks() const {
    return metric_value(node.metrics(), "cache_twin_fallbacks_total").value_or(0);
  }

  TempDir dir;
  TestOrigin a, b;
  CacheNodeProcess node;
};

}  // namespace

TEST_CASE("an origin with a twin: a chunk its origin cannot give comes from the twin") {
  Twins s;
  auto first = http_get(s.node.signed_url("/o/demo/gen/10K/one.ts"));
  REQUIRE(first.status == 200);
  CHECK(s.a.count("/gen/10K/one.ts") == 1);
  CHECK(s.b.count("/gen/10K/one.ts") == 0);  // a healthy origin is asked alone

  std::string fault;
  SUBCASE("503") {
    fault = "503";
    REQUIRE(s.a.outage(503));
  }
  SUBCASE("killed") {
    fault = "killed";
    s.a.process().kill();
  }
  SUBCASE("frozen (SIGSTOP): no head within the twin's wait") {
    fault = "frozen";
    ::kill(s.a.process().pid(), SIGSTOP);
  }
  const auto asked = std::chrono::steady_clock::now();
  auto second = http_get(s.node.signed_url("/o/demo/gen/10K/two.ts"), {}, 10s);
  const double took_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  MESSAGE(fault << ": served from the twin in " << took_s << " s");
  REQUIRE(second.status == 200);
  CHECK(second.body == http_get(s.b.url("/gen/10K/two.ts")).body);
  CHECK(s.b.count("/gen/10K/two.ts") == 2);  // the node's fetch and the check just above
  CHECK(s.fallbacks() == 1);
  CHECK(took_s < (fault == "frozen" ? 2.5 : 1.0));  // kTwinHeadWait: 1 s
  // Stored once: the next viewer is a hit.
  REQUIRE(http_get(s.node.signed_url("/o/demo/gen/10K/two.ts")).status == 200);
  CHECK(s.b.count("/gen/10K/two.ts") == 2);
}

TEST_CASE("without a twin, an origin's 503 is the viewer's; a twin never answers for a 404") {
  SUBCASE("no twin") {
    Twins s(false);
    REQUIRE(s.a.outage(503));
    CHECK(http_get(s.node.signed_url("/o/demo/gen/10K/three.ts")).status == 503);
    CHECK(s.b.count("/gen/10K/three.ts") == 0);
  }
  SUBCASE("a 404 is the origin's answer") {
    Twins s;
    CHECK(http_get(s.node.signed_url("/o/demo/missing/four.ts")).status == 404);
    CHECK(s.b.count("/missing/four.ts") == 0);
    CHECK(s.fallbacks() == 0);
  }
}
