// kill -9 of the balancer while viewers load it with playlist requests, then a restart on
// the same config and port. Chunk links already handed out keep working through the
// outage (the cache node checks their signature alone), and playlists come back within a
// bounded time after the restart.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"
#include "support/generated_body.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kSegments = 6;
constexpr size_t kSegmentBytes = 256 * 1024;

std::string segment_name(int i) {
  return "bk" + std::to_string(i) + ".ts";
}

// A live media playlist (no ENDLIST) whose chunks are test_origin's generated bodies.
std::string source_playlist() {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n";
  for (int i = 0; i < kSegments; ++i) {
    out += "#EXTINF:2.0,\n/gen/256K/" + segment_name(i) + "\n";
  }
  return out;
}

struct Sample {
  Clock::time_point at;
  long status;
  bool ok;  // playlists: 200 with every chunk on the cache node; chunks: 200 with the right bytes
};

// Samples appended by the load threads.
class Log {
 public:
  void add(Sample s) {
    std::lock_guard lock(mutex_);
    samples_.push_back(s);
  }
  std::vector<Sample> snapshot() const {
    std::lock_guard lock(mutex_);
    return samples_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Sample> samples_;
};

// Joins the load threads however the test case ends.
struct Threads {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  ~Threads() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

}  // namespace

TEST_CASE(
    "kill -9 of the balancer under load: handed-out chunk links keep working, playlists return "
    "after restart") {
  TempDir dir;
  const std::string root = dir.file("origin");
  write_file(root + "/live/index.m3u8", source_playlist());
  TestOrigin origin(serving_files(root));
  // The chunk viewers below fetch back to back: lift the egress mark that would make the
  // node "overloaded" and send playlists to origin.
  CacheNodeProcess node(dir.file("cache"), origin.base_url(),
                        {"node_id=venue-a", "site=venue", "overload.max_egress_mbps=100000"});
  BalancerProcess balancer(dir, origin.base_url(),
                           channels_json({channel_json("live", "/files/live/index.m3u8")}),
                           caches_json({cache_json("venue-a", "venue", node.port())}),
                           // The node is busy serving the chunk viewers: a slow health answer
                           // must not count as down (that would send playlists to origin).
                           {"limits.max_anonymous_per_address=1000", "health.interval_ms=250",
                            "health.timeout_ms=250", "health.down_after=4"});
  REQUIRE(balancer.wait_cache_usable("venue-a", true, 10s));

  const std::string node_host = "http://127.0.0.1:" + std::to_string(node.port()) + "/";
  auto all_on_node = [&](const std::string& body) {
    const auto uris = uri_lines(body);
    if (uris.size() != kSegments) return false;
    for (const auto& u : uris) {
      if (u.rfind(node_host, 0) != 0) return false;
    }
    return true;
  };
  // The links a viewer got before the crash.
  const HttpResponse first =
      balancer.get("/hls/live/files/live/index.m3u8?cache=venue-a&viewer=early");
  REQUIRE(first.status == 200);
  REQUIRE(all_on_node(first.body));
  const std::vector<std::string> links = uri_lines(first.body);
  std::vector<std::string> expected;
  for (int i = 0; i < kSegments; ++i)
    expected.push_back(generated_body(segment_name(i), kSegmentBytes));

  // The restart keeps the port: the load threads use this base throughout.
  const std::string balancer_base = balancer.url("");
  Log playlists, chunks;
  Threads load;
  const auto test_deadline = Clock::now() + 60s;
  for (int t = 0; t < 3; ++t) {
    load.threads.emplace_back([&, t] {
      // At most 20,000 requests or until the test's deadline, paced by 10 ms.
      for (int i = 0; i < 20000 && !load.stop && Clock::now() < test_deadline; ++i) {
        const std::string target = "/hls/live/files/live/index.m3u8?cache=venue-a&viewer=v" +
                                   std::to_string(t * 100 + i % 50);
        const HttpResponse r = http_get(balancer_base + target, {}, 1s);
        playlists.add({Clock::now(), r.status, r.status == 200 && all_on_node(r.body)});
        std::this_thread::sleep_for(10ms);  // pacing, not synchronisation
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    load.threads.emplace_back([&, t] {
      for (int i = 0; i < 20000 && !load.stop && Clock::now() < test_deadline; ++i) {
        const size_t k = static_cast<size_t>(i + t) % links.size();
        const HttpResponse r = http_get(links[k], {}, 2s);
        chunks.add({Clock::now(), r.status, r.status == 200 && r.body == expected[k]});
        std::this_thread::sleep_for(5ms);  // pacing, not synchronisation
      }
    });
  }
  auto count = [](const Log& log, Clock::time_point from, Clock::time_point to, bool ok) {
    size_t n = 0;
    for (const auto& s : log.snapshot()) n += s.at >= from && s.at < to && s.ok == ok ? 1 : 0;
    return n;
  };
  const auto started = Clock::now();
  REQUIRE(wait_until([&] { return count(playlists, started, Clock::now(), true) >= 30; }, 10s));

  // Requests cut by the kill complete during kill_hard(): the outage starts before it.
  const auto killed = Clock::now();
  balancer.kill_hard();
  // The outage lasts until the chunk viewers have made 50 requests and at least 2 s passed.
  REQUIRE(wait_until(
      [&] {
        return Clock::now() - killed >= 2s && count(chunks, killed, Clock::now(), true) >= 50;
      },
      15s));
  const auto restarted = Clock::now();
  balancer.start();
  REQUIRE(balancer.url("") == balancer_base);
  const double listening_s = seconds_since(restarted);
  // A playlist answered 200 by the new process (whichever host its links use).
  auto first_200_after = [&](Clock::time_point after) -> std::optional<Clock::time_point> {
    for (const auto& s : playlists.snapshot()) {
      if (s.at >= after && s.status == 200) return s.at;
    }
    return std::nullopt;
  };
  CHECK(wait_until([&] { return first_200_after(restarted).has_value(); }, 10s));
  const auto back = first_200_after(restarted).value_or(Clock::now());
  CHECK(wait_until(
      [&] {
        for (const auto& s : playlists.snapshot()) {
          if (s.at >= back && s.ok) return true;
        }
        return false;
      },
      10s));
  auto first_on_node = restarted;
  for (const auto& s : playlists.snapshot()) {
    if (s.at >= restarted && s.ok) {
      first_on_node = s.at;
      break;
    }
  }
  // Another second of load on the restarted balancer.
  const auto settle_from = Clock::now();
  REQUIRE(wait_until([&] { return count(playlists, settle_from, Clock::now(), true) >= 30; }, 10s));
  load.stop = true;
  for (auto& t : load.threads) t.join();
  load.threads.clear();
  const auto end = Clock::now();

  const size_t chunk_ok_before = count(chunks, started, killed, true);
  const size_t chunk_ok_outage = count(chunks, killed, back, true);
  const size_t chunk_bad = count(chunks, started, end, false);
  const size_t pl_ok_before = count(playlists, started, killed, true);
  const size_t pl_bad_before = count(playlists, started, killed, false);
  const size_t pl_failed_outage = count(playlists, killed, back, false);
  size_t pl_not_200_after = 0;
  size_t pl_origin_links_after = 0;
  std::map<long, size_t>
      pl_statuses_after;  // what the answers that were not 200 were (0: no answer)
  for (const auto& s : playlists.snapshot()) {
    if (s.at < back) continue;
    if (s.status != 200) {
      ++pl_not_200_after;
      ++pl_statuses_after[s.status];
    }
    if (s.status == 200 && !s.ok) ++pl_origin_links_after;
  }
  const double outage_s = std::chrono::duration<double>(back - killed).count();
  const double restart_to_200_s = std::chrono::duration<double>(back - restarted).count();
  const double restart_to_node_s = std::chrono::duration<double>(first_on_node - restarted).count();
  MESSAGE("chunk GETs with links handed out before the kill: "
          << chunk_ok_before << " ok before, " << chunk_ok_outage << " ok during the " << outage_s
          << " s without a balancer, " << chunk_bad << " failed or wrong in the whole run");
  MESSAGE("playlists: " << pl_ok_before << " ok before the kill (" << pl_bad_before << " not), "
                        << pl_failed_outage
                        << " refused during the outage; restart: listening after " << listening_s
                        << " s, first 200 after " << restart_to_200_s
                        << " s, links on the cache node again after " << restart_to_node_s
                        << " s; after that " << pl_not_200_after << " not 200 and "
                        << pl_origin_links_after << " with origin links");
  CHECK(pl_bad_before == 0);
  CHECK(chunk_bad == 0);
  CHECK(chunk_ok_outage >= 50);
  CHECK(restart_to_200_s < 5);
  CHECK(restart_to_node_s < 5);
  for (const auto& [status, n] : pl_statuses_after)
    MESSAGE("after the restart, status " << status << ": " << n);
  CHECK(pl_not_200_after == 0);
  // The cache node never noticed.
  CHECK(json_integer(node.health(), "active_connections").value_or(-1) >= 0);
  CHECK(node.process().running());
  CHECK(origin.count("/gen/256K/" + segment_name(0)) == 1);
  balancer.stop();
}
