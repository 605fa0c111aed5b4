// 5,000 idle connections to a cache node: a normal request is still answered at once, and the
// server's idle timeout closes the idle ones by itself.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "support/cache_node_fixture.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kIdle = 5000;

// Open file descriptors of a process (its sockets included), -1 when unreadable.
int open_fds(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

// True once the peer closed `fd` (a read returns 0 or an error).
bool closed_by_peer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

}  // namespace

TEST_CASE(
    "5,000 idle connections: a normal request answers at once; the idle timeout closes them") {
  rlimit files{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &files) == 0);
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < kIdle + 1000) {
    MESSAGE("skipped: the open-files hard limit (" << files.rlim_max << ") is below "
                                                   << kIdle + 1000);
    return;
  }
  files.rlim_cur = files.rlim_max == RLIM_INFINITY ? kIdle * 2 : files.rlim_max;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &files) == 0);  // inherited by the node started below

  TempDir dir;
  TestOrigin origin;
  CacheNodeProcess node(
      dir.file("data"), origin.base_url(),
      // Every connection here comes from 127.0.0.1: the per-address limit (512) is lifted.
      {"signing.required=false", "overload.max_connections=20000", "server.io_timeout_s=3",
       "server.max_connections_per_address=0", "server.max_connections=20000"});
  REQUIRE(http_get(node.url("/o/demo/gen/2K/warm.ts")).status == 200);
  const pid_t pid = node.process().pid();
  const int before = open_fds(pid);

  std::vector<int> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    int fd = connect_loopback(node.port());
    REQUIRE_MESSAGE(fd >= 0, "connection " << i << " failed");
    idle.push_back(fd);
  }
  // The node has accepted them all when its own descriptors include them.
  REQUIRE(wait_until([&] { return open_fds(pid) >= kIdle; }, 10s));

  const auto start = std::chrono::steady_clock::now();
  HttpResponse hit = http_get(node.url("/o/demo/gen/2K/warm.ts"), {}, 5s);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  CHECK(hit.status == 200);
  CHECK(hit.header("X-Cache") == std::optional<std::string>("HIT"));
  MESSAGE("with " << kIdle << " idle connections open, a 2 KiB hit took " << ms << " ms");
  CHECK(ms < 1000);

  // Idle connections are closed by the server's own timeout (server.io_timeout_s = 3).
  const auto timed = std::chrono::steady_clock::now();
  size_t closed = 0;
  CHECK(wait_until(
      [&] {
        closed = 0;
        for (int fd : idle) closed += closed_by_peer(fd) ? 1 : 0;
        return closed == idle.size();
      },
      20s, 100ms));
  MESSAGE(closed << " of " << kIdle << " idle connections closed by the node after "
                 << std::chrono::duration<double>(std::chrono::steady_clock::now() - timed).count()
                 << " s");
  for (int fd : idle) close(fd);
  CHECK(open_fds(pid) < kIdle / 10);
  MESSAGE("node descriptors: " << before << " before the idle connections, " << open_fds(pid)
                               << " after");
}
