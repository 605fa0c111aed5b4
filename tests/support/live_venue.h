// The stack of the end-to-end playback tests: a live ffmpeg ladder written under
// dir.file("origin") and served by a test origin at /files, two real cache nodes of one site
// ("venue-a" and "venue-b", site "venue"), and a real balancer with the channel "live" on the
// ladder's master (/files/live/master.m3u8) and both nodes as its caches.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/ffmpeg_args.h"

namespace balancer::test {

// Not thread-safe; one test's own. Members in start order (destroyed in reverse).
struct LiveVenue {
  explicit LiveVenue(const std::vector<LadderRung>& rungs)
      : root(make_root(dir)),
        origin(serving_files(start_source(source, root, rungs))),
        node_a(dir.file("cache-a"), origin.base_url(), {"node_id=venue-a", "site=venue"}),
        node_b(dir.file("cache-b"), origin.base_url(), {"node_id=venue-b", "site=venue"}),
        balancer(dir, origin.base_url(),
                 channels_json({channel_json("live", "/files/live/master.m3u8")}),
                 caches_json({cache_json("venue-a", "venue", node_a.port()),
                              cache_json("venue-b", "venue", node_b.port())})) {}

  TempDir dir;
  std::string root;
  ChildProcess source;
  TestOrigin origin;
  CacheNodeProcess node_a;
  CacheNodeProcess node_b;
  BalancerProcess balancer;

 private:
  static std::string make_root(const TempDir& dir) {
    const std::string root = dir.file("origin");
    REQUIRE(std::system(("mkdir -p " + root + "/live").c_str()) == 0);
    return root;
  }
  // Starts the encoder writing into `root` (before the origin that serves it); returns `root`.
  static const std::string& start_source(ChildProcess& source, const std::string& root,
                                         const std::vector<LadderRung>& rungs) {
    REQUIRE(source.start(live_ladder_args(root, rungs)));
    return root;
  }
};

}  // namespace balancer::test
