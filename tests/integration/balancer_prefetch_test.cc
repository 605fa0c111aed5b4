// Live prefetch through the real balancer and cache node: each refresh of a live
// media playlist that reveals new segments makes the balancer ask the node its
// viewers were sent to (POST /prefetch with the prefetch key), so the first
// viewer of each new segment finds it stored; origin still sees one request per
// segment. With the channel's prefetch off, the first viewer is a miss.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <thread>

#include "support/venue_stack.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kPrefetchKey = "prefetch-key-integration-0001";
constexpr int kWindow = 6;
// The demo's segment length. With 1 s segments a first viewer three segments behind asked for a
// segment about 2 s after its refresh revealed it, and beside the browser suite on two cores one
// prefetch in 12 came later than that.
constexpr int kTargetSeconds = 2;

std::string segment_body(uint64_t n) {
  return std::string(32 << 10, static_cast<char>('a' + n % 26));
}

struct LiveStack : VenueStack {
  explicit LiveStack(bool prefetch) {
    for (uint64_t n = 1; n <= kWindow; ++n)
      write_file(dir.file("root/live/seg" + std::to_string(n) + ".ts"), segment_body(n));
    write_file(dir.file("root/live/index.m3u8"), live_playlist(1, kWindow, kTargetSeconds));
    std::string channel =
        "{\"id\":\"live\",\"origin\":\"demo\",\"source\":\"/live/index.m3u8\",\"free\":true" +
        std::string(prefetch ? "" : ",\"prefetch\":false") + "}";
    start(channels_json({channel}), {"prefetch.key=\"" + kPrefetchKey + "\""},
          {"prefetch.keys=[\"" + kPrefetchKey + "\"]"});
  }
  // The encoder: one more segment, written before the playlist that names it.
  void advance(uint64_t newest) {
    write_file(dir.file("root/live/seg" + std::to_string(newest) + ".ts"), segment_body(newest));
    write_file(dir.file("root/live/index.m3u8"),
               live_playlist(newest - kWindow + 1, kWindow, kTargetSeconds));
  }
};

// A player three segments behind the live edge (the HLS rule for where playback
// starts): it reloads the playlist every half target duration and asks for each
// segment once it is three from the end. Returns X-Cache of the first request
// of every segment it asked for, by segment URI.
struct Player {
  std::map<std::string, std::string> first_x_cache;
  std::map<std::string, std::string> bodies;
  void reload(const BalancerProcess& balancer) {
    auto playlist = balancer.get("/hls/live/live/index.m3u8?viewer=player1&cache=venue-a");
    if (playlist.status != 200) return;
    auto uris = uri_lines(playlist.body);
    for (size_t i = 0; i + 3 <= uris.size(); ++i) {
      const std::string name = uris[i].substr(
          uris[i].rfind('/') + 1, uris[i].find('?', uris[i].rfind('/')) - uris[i].rfind('/') - 1);
      if (first_x_cache.count(name)) continue;
      auto segment = http_get(uris[i]);
      first_x_cache[name] =
          segment.header("X-Cache").value_or("status " + std::to_string(segment.status));
      bodies[name] = segment.body;
    }
  }
};

}  // namespace

TEST_CASE(
    "prefetch: >= 95 % of new live segments are a hit for their first viewer; origin sees each "
    "once") {
  LiveStack s(true);
  Player player;
  player.reload(*s.balancer);  // the node this channel's viewers use is known from here on
  constexpr uint64_t kNewSegments = 14;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t step = 1; step <= kNewSegments + 1; ++step) {
    if (step <= kNewSegments) s.advance(kWindow + step);
    // The encoder's pace (one segment per target duration), not a synchronisation:
    // the player reloads twice per segment, as players do.
    const auto next = start + std::chrono::seconds(kTargetSeconds * step);
    while (std::chrono::steady_clock::now() < next) {
      player.reload(*s.balancer);
      std::this_thread::sleep_for(std::chrono::milliseconds(500 * kTargetSeconds));
    }
  }
  int new_segments = 0, hits = 0;
  for (const auto& [name, x_cache] : player.first_x_cache) {
    const uint64_t n = std::stoull(name.substr(3));
    if (n <= kWindow) continue;  // in the first playlist: no refresh revealed it
    ++new_segments;
    hits += x_cache == "HIT" ? 1 : 0;
    if (x_cache != "HIT") MESSAGE(name << ": " << x_cache);
    INFO(name << ": " << x_cache);
    CHECK(player.bodies[name] == segment_body(n));
    CHECK(s.origin->count("/files/live/" + name) == 1);
  }
  MESSAGE("first-viewer hits: " << hits << " of " << new_segments << " new segments");
  CHECK(new_segments >= 10);  // the player stays three segments behind the newest
  CHECK(hits * 100 >= new_segments * 95);
  CHECK(s.balancer->metric("balancer_prefetch_chunks_total") >= new_segments);
  CHECK(s.balancer->metric("balancer_prefetch_requests_total{result=\"failed\"}") == 0);
  const std::string node_metrics = http_get(s.node->url("/metrics")).body;
  CHECK(metric_value(node_metrics, "cache_prefetch_first_viewers_total{result=\"hit\"}")
            .value_or(0) == hits);
}

TEST_CASE(
    "prefetch: a channel with prefetch off sends nothing, and the first viewer of a new segment is "
    "a miss") {
  LiveStack s(false);
  Player player;
  player.reload(*s.balancer);
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t step = 1; step <= 6; ++step) {
    if (step <= 5) s.advance(kWindow + step);
    const auto next = start + std::chrono::seconds(kTargetSeconds * step);
    while (std::chrono::steady_clock::now() < next) {
      player.reload(*s.balancer);
      std::this_thread::sleep_for(std::chrono::milliseconds(500 * kTargetSeconds));
    }
  }
  int new_segments = 0;
  for (const auto& [name, x_cache] : player.first_x_cache) {
    if (std::stoull(name.substr(3)) <= kWindow) continue;
    ++new_segments;
    CHECK(x_cache == "MISS");
  }
  CHECK(new_segments >= 2);
  CHECK(s.balancer->metric("balancer_prefetch_requests_total{result=\"sent\"}") == 0);
}
