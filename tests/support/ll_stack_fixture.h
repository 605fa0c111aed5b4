// A Low-Latency HLS stack of real processes for tests: CMAF material that ffmpeg makes
// (4 s, parts of about 0.25 s), ll_origin publishing it, one cache node (venue-a) and the
// balancer serving it as channel "ll" (/master.m3u8). Construct it after checking
// have_ffmpeg(). One thread at a time.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/ll_origin_fixture.h"

namespace balancer::test {

struct LlRendition {
  std::string name;  // the rendition's folder at the origin: /<name>/index.m3u8
  int kbps = 300;
};

// The two renditions most tests play: "low" (300 kb/s) and "high" (900 kb/s).
inline std::vector<LlRendition> low_and_high() {
  return {{"low", 300}, {"high", 900}};
}

// Tests may bind the parts by name: `auto& [dir, origin, node, balancer] = stack;`.
class LlStack {
 public:
  // Ready once the balancer counts the node usable and the origin has begun segment
  // `ready_msn` (every earlier one published whole). The origin lists `window` segments (0:
  // ll_origin's default, longer than CAN-SKIP-UNTIL so that delta updates skip).
  // `kind`: the channel's "kind" in channels.json ("" leaves it out: automatic).
  LlStack(const std::vector<LlRendition>& renditions, int64_t ready_msn,
          std::vector<std::string> balancer_overrides = {}, int window = 0,
          std::vector<std::string> node_overrides = {}, const std::string& kind = "")
      : origin(origin_options(dir, renditions, window)),
        node(dir.file("cache-a"), origin.url(""), std::move(node_overrides)),
        balancer(dir, origin.url(""), channels_json({channel(kind)}),
                 caches_json({cache_json("venue-a", "venue", node.port())}),
                 std::move(balancer_overrides)) {
    REQUIRE(balancer.wait_cache_usable("venue-a", true, std::chrono::seconds(10)));
    // About a segment a second: a deadline with room for a slow start.
    REQUIRE(wait_until([&] { return origin.next_msn() >= ready_msn; },
                       std::chrono::seconds(5 + 2 * ready_msn), std::chrono::milliseconds(20)));
  }

  TempDir dir;
  LlOrigin origin;
  CacheNodeProcess node;
  BalancerProcess balancer;

 private:
  static std::string channel(const std::string& kind) {
    std::string json = channel_json("ll", "/master.m3u8");
    if (!kind.empty()) json.insert(json.size() - 1, ",\"kind\":\"" + kind + "\"");
    return json;
  }
  static LlOriginOptions origin_options(const TempDir& dir,
                                        const std::vector<LlRendition>& renditions, int window) {
    LlOriginOptions options;
    options.window = window;
    for (const LlRendition& r : renditions) {
      const std::string material = dir.file(r.name + ".mp4");
      std::string error;
      REQUIRE_MESSAGE(make_cmaf_material(material, 4, r.kbps, &error), error);
      options.renditions.emplace_back(r.name, material);
    }
    return options;
  }
};

}  // namespace balancer::test
