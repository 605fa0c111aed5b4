// The budget for playlist replies not yet read (playlists.max_unsent_bytes) is shared fairly, on
// a real balancer: 240 clients from 40 addresses ask for a 3 MB copy of a long playlist and never
// read it, and a viewer of another channel from another address is served on at least 99 % of
// its polls meanwhile. The non-readers' addresses are refused as they grow, the largest first.
// Before, the non-readers spent the whole budget and the other viewer got 503
// reply_backlog_full on every poll.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/fault_support.h"
#include "support/json_error.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kNonReaderAddresses = 40;      // 127.0.3.1 … 127.0.3.40
constexpr int kPerNonReaderAddress = 6;      // 240 in all
constexpr size_t kUnsentBudget = 64u << 20;  // playlists.max_unsent_bytes, scaled down
// 50,000 one-second segments: a copy of about 3 MB with links to origin, more than the kernel's
// socket buffers take from a client with a 4 KiB receive buffer.
constexpr int kBigSegments = 50000;

}  // namespace

TEST_CASE(
    "240 clients from 40 addresses that never read their copies leave another channel's viewer "
    "served on 99 % of its polls") {
  TempDir dir;
  write_file(dir.file("root/big/index.m3u8"), long_playlist(kBigSegments));
  write_file(dir.file("root/small/index.m3u8"), live_playlist(100, 5));
  TestOrigin origin(serving_files(dir.file("root")));
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("big", "/big/index.m3u8"),
                                          channel_json("small", "/small/index.m3u8")}),
                           caches_json({}),
                           {"playlists.max_segments=100000", "playlists.max_bytes=8388608",
                            "playlists.max_unsent_bytes=" + std::to_string(kUnsentBudget),
                            "limits.max_anonymous_per_address=0", "server.io_timeout_s=60"});
  const int port = balancer.port();
  const auto warm = http_get(balancer.url("/hls/big/big/index.m3u8?viewer=warm"), {}, 30s);
  REQUIRE(warm.status == 200);
  REQUIRE(warm.body.size() > (2u << 20));
  REQUIRE(wait_until([&] { return balancer.metric("balancer_playlist_unsent_bytes") == 0; }, 10s,
                     20ms));

  // The other channel's viewer, from an address of its own; each poll a fresh request.
  int polls = 0;
  int served = 0;
  std::string refusal;
  auto poll = [&] {
    HttpRequest request;
    request.url = balancer.url("/hls/small/small/index.m3u8?viewer=other");
    request.source_address = "127.0.0.2";
    request.timeout = 10s;
    const HttpResponse r = http_request(request);
    ++polls;
    if (r.status == 200) {
      ++served;
    } else if (refusal.empty()) {
      refusal = std::to_string(r.status) + " " + r.body;
    }
  };

  // The non-readers ask, address after address, one round at a time (they grow together); the
  // viewer polls between every few.
  const double requests_before = balancer.metric("balancer_requests_total{kind=\"playlist\"}");
  Sockets stuck;
  for (int round = 0; round < kPerNonReaderAddress; ++round) {
    for (int a = 1; a <= kNonReaderAddresses; ++a) {
      const std::string source = "127.0.3." + std::to_string(a);
      const int fd = connect_local(port, 4096, source.c_str());
      REQUIRE(fd >= 0);
      stuck.fds.push_back(fd);
      REQUIRE(send_all(fd, "GET /hls/big/big/index.m3u8?viewer=stuck" +
                               std::to_string(stuck.fds.size()) +
                               " HTTP/1.1\r\nHost: balancer\r\n\r\n"));
      if (stuck.fds.size() % 8 == 0) poll();
    }
  }
  // Every non-reader answered (a copy it does not read, or a refusal), none read.
  REQUIRE(wait_until(
      [&] {
        return balancer.metric("balancer_requests_total{kind=\"playlist\"}") >=
                   requests_before + kNonReaderAddresses * kPerNonReaderAddress + polls &&
               balancer.metric("balancer_active_requests") <= 1;
      },
      60s, 20ms));
  const double unsent = balancer.metric("balancer_playlist_unsent_bytes");
  // While they hold their copies, the viewer keeps polling.
  for (int i = 0; i < 70; ++i) poll();
  const double refused = balancer.metric("balancer_errors_total{code=\"reply_backlog_full\"}");

  CHECK_MESSAGE(served * 100 >= polls * 99,
                served << " of " << polls << " polls served; first refusal: " << refusal);
  // The non-readers did hold copies, within the budget, and were refused past their share.
  CHECK(unsent >= static_cast<double>(warm.body.size()));
  CHECK(unsent <= static_cast<double>(kUnsentBudget));
  CHECK(refused > 0);
  MESSAGE(stuck.fds.size() << " non-readers from " << kNonReaderAddresses << " addresses, "
                           << warm.body.size() << "-byte copies, budget " << (kUnsentBudget >> 20)
                           << " MiB: they held " << static_cast<int64_t>(unsent) / 1024 << " KiB, "
                           << refused << " refused; another channel's viewer served on " << served
                           << " of " << polls << " polls");
}
