// A cache node whose connection table is nearly full cannot take viewers, however few requests
// it serves: its /health says it is overloaded once its client connections reach
// overload.connection_table_percent (90 %) of server.max_connections, and the balancer sends new
// viewers to a sibling within one health poll, and back to the node within one poll after the
// connections close. Real cache nodes, balancer and test origin; the table is filled with idle
// connections, as a flood of them fills it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kMaxConnections = 50;  // server.max_connections of the node filled
constexpr int kFull = 45;            // 90 % of it: the node says it is overloaded from here

// Idle client connections (nothing sent), closed with the holder.
struct IdleConnections {
  std::vector<int> fds;
  ~IdleConnections() { close_all(); }
  void open(int port, int count) {
    for (int i = 0; i < count; ++i) {
      const int fd = connect_loopback(port);
      REQUIRE(fd >= 0);
      fds.push_back(fd);
    }
  }
  void close_all() {
    for (int fd : fds) close(fd);
    fds.clear();
  }
};

// The node's own word: "overloaded": true or false in its /health, or nullopt when it did not
// answer 200.
std::optional<bool> node_overloaded(const CacheNodeProcess& node) {
  const HttpResponse h = node.get("/health", 2s);
  if (h.status != 200) return std::nullopt;
  if (h.body.find(R"("overloaded":true)") != std::string::npos) return true;
  if (h.body.find(R"("overloaded":false)") != std::string::npos) return false;
  return std::nullopt;
}

// Waits until the node says `overloaded`; the moment it first did, or nullopt after 10 s.
std::optional<Clock::time_point> wait_node_says(const CacheNodeProcess& node, bool overloaded) {
  std::optional<Clock::time_point> at;
  wait_until(
      [&] {
        if (node_overloaded(node) == overloaded) at = Clock::now();
        return at.has_value();
      },
      10s, 20ms);
  return at;
}

const std::vector<std::string> kSmallTable = {
    "server.max_connections=" + std::to_string(kMaxConnections),
    "server.max_connections_per_address=0"};

}  // namespace

TEST_CASE(
    "/health says overloaded from 90 % of server.max_connections, with the table's figures, and "
    "ok once it drains") {
  NodeOnOrigin n(kSmallTable);
  const std::string before = n.node.health();
  CHECK(json_integer(before, "connections_max") == kMaxConnections);
  CHECK(json_integer(before, "connections_open").value_or(0) >= 1);  // this request's own
  CHECK(before.find(R"("overloaded":false)") != std::string::npos);
  CHECK(before.find(R"("status":"ok")") != std::string::npos);

  // Idle connections ask for nothing: no request is in progress, only the table fills.
  IdleConnections idle;
  idle.open(n.node.port(), kFull);
  REQUIRE(wait_node_says(n.node, true).has_value());
  const std::string full = n.node.health();
  CHECK(full.find(R"("status":"overloaded")") != std::string::npos);
  CHECK(json_integer(full, "connections_open").value_or(0) >= kFull);
  CHECK(json_integer(full, "active_connections").value_or(99) <= 2);  // requests: the probes'

  idle.close_all();
  CHECK(wait_node_says(n.node, false).has_value());

  // The share is the operator's: at 100 % the same connections leave the node ok.
  NodeOnOrigin relaxed({"server.max_connections=" + std::to_string(kMaxConnections),
                        "server.max_connections_per_address=0",
                        "overload.connection_table_percent=100"});
  IdleConnections more;
  more.open(relaxed.node.port(), kFull);
  CHECK(wait_until([&] { return json_integer(relaxed.node.health(), "connections_open") > kFull; },
                   10s, 20ms));
  CHECK(node_overloaded(relaxed.node) == false);
}

TEST_CASE(
    "a node with a nearly full connection table leaves the balancer's choice within one health "
    "poll, and returns within one poll after its connections close") {
  // The default poll: every second, 800 ms to answer.
  constexpr auto kInterval = 1000ms;
  constexpr auto kTimeout = 800ms;
  TempDir dir;
  TestOrigin origin(live_files(dir));
  CacheNodeProcess a(dir.file("cache-a"), origin.url("/files"), kSmallTable);
  CacheNodeProcess b(dir.file("cache-b"), origin.url("/files"), {"node_id=venue-b"});
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/index.m3u8")}),
                           caches_json({cache_json("venue-a", "venue", a.port()),
                                        cache_json("venue-b", "venue", b.port())}),
                           {"health.interval_ms=" + std::to_string(kInterval.count()),
                            "health.timeout_ms=" + std::to_string(kTimeout.count()),
                            "limits.max_anonymous_per_address=0"});
  REQUIRE(balancer.wait_cache_usable("venue-a", true, 10s));
  REQUIRE(balancer.wait_cache_usable("venue-b", true, 10s));
  // Where a new viewer who pinged venue-a fastest is sent.
  int viewers = 0;
  auto choice_for_new_viewer = [&] {
    const HttpResponse r = balancer.get("/hls/demo/live/index.m3u8?cache=venue-a&viewer=new" +
                                        std::to_string(viewers++));
    return r.status == 200 ? r.header("X-Cache-Choice").value_or("")
                           : "status " + std::to_string(r.status);
  };
  REQUIRE(choice_for_new_viewer() == "venue-a");

  // Fill venue-a's table past 90 % with idle connections: the balancer's poll and watch are
  // counted there already, the request asking for the count is not left in. One more than 90 %
  // of the table, in case an earlier connection of this test's was still counted then.
  const double open_now = a.metric("http_connections_open");
  REQUIRE(open_now >= 1);
  IdleConnections idle;
  idle.open(a.port(), kFull + 1 - static_cast<int>(open_now - 1));
  const auto filled = Clock::now();
  std::string moved_to;
  REQUIRE_MESSAGE(wait_until(
                      [&] {
                        moved_to = choice_for_new_viewer();
                        return moved_to != "venue-a";
                      },
                      10s, 20ms),
                  "new viewers still sent to venue-a 10 s after its table filled: " << a.health());
  const auto left_after = Clock::now() - filled;
  CHECK(moved_to == "venue-b");  // the sibling of its site, not origin
  CHECK(node_overloaded(a) == true);
  CHECK(balancer.wait_cache_usable("venue-a", false, 1s));
  // A poll due within one interval, answered within its timeout.
  CHECK(left_after <= kInterval + kTimeout);
  // New viewers keep going to the sibling while the table stays full.
  for (int i = 0; i < 5; ++i) CHECK(choice_for_new_viewer() == "venue-b");

  idle.close_all();
  const auto drained = Clock::now();
  REQUIRE(wait_until([&] { return choice_for_new_viewer() == "venue-a"; }, 10s, 20ms));
  const auto back_after = Clock::now() - drained;
  CHECK(back_after <= kInterval + kTimeout);
  CHECK(node_overloaded(a) == false);
  CHECK(balancer.wait_cache_usable("venue-a", true, 1s));
  MESSAGE("health poll every "
          << kInterval.count() << " ms: the balancer's choice left venue-a "
          << std::chrono::duration_cast<std::chrono::milliseconds>(left_after).count()
          << " ms after its table filled (" << kFull + 1 << " of " << kMaxConnections
          << " connections), came back "
          << std::chrono::duration_cast<std::chrono::milliseconds>(back_after).count()
          << " ms after they closed");
}
