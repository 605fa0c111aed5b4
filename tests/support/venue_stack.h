// The stack of the balancer's end-to-end tests: a test origin serving the files under
// dir.file("root") at /files, one real cache node ("venue-a", site "venue") in front of it,
// and a real balancer whose channels read from that origin and whose one cache is the node.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"

namespace balancer::test {

// A test's fixture derives from it, writes the origin's files in its constructor and then calls
// start(). Not thread-safe; one test's own.
struct VenueStack {
  // Starts origin, node and balancer (`channels`: the text of channels.json; the overrides:
  // each server's --set pairs) and returns once the balancer counts the node usable.
  void start(const std::string& channels, std::vector<std::string> balancer_overrides = {},
             std::vector<std::string> node_overrides = {}) {
    origin = std::make_unique<TestOrigin>(serving_files(dir.file("root")));
    node = std::make_unique<CacheNodeProcess>(dir.file("cache-a"), origin->url("/files"),
                                              std::move(node_overrides));
    balancer = std::make_unique<BalancerProcess>(
        dir, origin->url("/files"), channels,
        caches_json({cache_json("venue-a", "venue", node->port())}), std::move(balancer_overrides));
    REQUIRE(balancer->wait_cache_usable("venue-a", true, std::chrono::seconds(10)));
  }

  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<CacheNodeProcess> node;
  std::unique_ptr<BalancerProcess> balancer;
};

}  // namespace balancer::test
