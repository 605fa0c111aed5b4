// A flood of idle connections from many networks leaves a way in, on a real balancer (the cache
// node runs the same HttpServer): server.max_connections filled by idle connections from many
// addresses, a viewer admitted before keeps being served on its kept-alive connection, new
// viewers are served within a second (an idle connection of the largest networks is closed to
// make room), and /health and /metrics answer. Before, every new connection got 503 for as long
// as the flood held its connections.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/fault_support.h"
#include "support/process.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kNewViewers = 10;

// The flood's size: by default 600 idle connections (12 from each of 127.0.1.1 … 127.0.1.50)
// against a table of 500. The scale is measured with BALANCER_FLOOD_TABLE=15750
// BALANCER_FLOOD_ADDRESSES=250 BALANCER_FLOOD_PER_ADDRESS=64 (16,000 connections; docs/testing.md).
const int kTable = env_count("BALANCER_FLOOD_TABLE", 500, 19000);  // server.max_connections
const int kFloodAddresses = env_count("BALANCER_FLOOD_ADDRESSES", 50, 250);
const int kPerFloodAddress = env_count("BALANCER_FLOOD_PER_ADDRESS", 12, 200);

// One request on the kept-alive connection `fd`; its status, 0 when none came (or closed).
int ask_on(int fd, const std::string& target) {
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: balancer\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return 0;
  const RawRead read =
      read_raw(fd, [](const std::string& bytes) { return !split_responses(bytes).empty(); });
  const auto responses = split_responses(read.bytes);
  return responses.empty() ? 0 : responses[0].status;
}

}  // namespace

TEST_CASE(
    "max_connections filled by idle connections from many addresses: an admitted viewer keeps "
    "being served, new viewers within 1 s, /health and /metrics answer") {
  // The flood and the server's table: the balancer's own limit is the test's (inherited).
  if (!raise_descriptor_limit(static_cast<size_t>(kFloodAddresses * kPerFloodAddress) + 256)) {
    MESSAGE("skipped: the open-file limit is below what the flood needs");
    return;
  }
  if (!servers_sanitizer().empty()) {
    // What it measures is timing (each new viewer within 1 s, the flood closed within 10 s) on
    // a table shared by the loops: under AddressSanitizer beside the ThreadSanitizer pass the
    // flood was not all closed within 10 s. The first pass runs it on the release build.
    MESSAGE("skipped under a sanitizer: a timing test");
    return;
  }
  TempDir dir;
  TestOrigin origin(live_files(dir));
  BalancerProcess balancer(
      dir, origin.url("/files"), channels_json({channel_json("demo", "/live/index.m3u8")}),
      caches_json({}),
      {"server.max_connections=" + std::to_string(kTable), "limits.max_anonymous_per_address=0"});
  const int port = balancer.port();
  const std::string playlist = "/hls/demo/live/index.m3u8?viewer=";

  // A viewer admitted before the flood, on a kept-alive connection from an address of its own.
  const int viewer = connect_loopback_from("127.0.0.201", port);
  REQUIRE(viewer >= 0);
  REQUIRE(ask_on(viewer, playlist + "early") == 200);

  // The flood: idle connections that never send a byte, more than the table holds.
  Sockets flood;
  for (int a = 1; a <= kFloodAddresses; ++a) {
    const std::string source = "127.0.1." + std::to_string(a);
    for (int i = 0; i < kPerFloodAddress; ++i) {
      const int fd = connect_loopback_from(source.c_str(), port);
      REQUIRE(fd >= 0);
      flood.fds.push_back(fd);
    }
  }
  // The table is full once the server has taken them all: past the total, as many as it has
  // no room for are closed (refused before, idle ones closed to make room now).
  const size_t over = flood.fds.size() - (kTable - 1);
  REQUIRE(wait_until([&] { return count_closed_by_peer(flood.fds) >= over; }, 10s, 20ms));
  CHECK(balancer.metric("http_connections_open") >= kTable - 1);

  // The viewer admitted before is still served on its connection (the flood's networks hold
  // more connections: theirs are closed first).
  for (int i = 0; i < 5; ++i) CHECK(ask_on(viewer, playlist + "early") == 200);
  close(viewer);

  // New viewers, each on a fresh connection: served, each within a second.
  double slowest_ms = 0;
  int served = 0;
  for (int i = 0; i < kNewViewers; ++i) {
    HttpRequest request;
    request.url = balancer.url(playlist + "new" + std::to_string(i));
    request.source_address = "127.0.0." + std::to_string(100 + i);
    request.timeout = 5s;
    const auto asked = Clock::now();
    const HttpResponse r = http_request(request);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - asked).count();
    slowest_ms = std::max(slowest_ms, ms);
    if (r.status == 200) ++served;
    CHECK_MESSAGE(r.status == 200, "new viewer " << i << ": " << r.status << " " << r.body);
  }
  CHECK(served == kNewViewers);
  CHECK(slowest_ms < 1000);
  // The operator's paths answer.
  CHECK(balancer.get("/health").status == 200);
  const std::string metrics = balancer.metrics();
  CHECK(metric_value(metrics, "http_connections_evicted_total").value_or(0) >=
        kFloodAddresses * kPerFloodAddress - kTable);
  MESSAGE(flood.fds.size() << " idle connections from " << kFloodAddresses
                           << " addresses against server.max_connections " << kTable << ": "
                           << served << " of " << kNewViewers << " new viewers served, slowest in "
                           << slowest_ms << " ms; "
                           << metric_value(metrics, "http_connections_evicted_total").value_or(0)
                           << " idle connections closed to make room");
}
