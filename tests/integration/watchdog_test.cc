// A hang becomes a death (server.watchdog_s, core/watchdog.h): a real cache node or balancer
// whose event loop blocks (the test build's BALANCER_TEST_HANG hook) ends itself within the
// bound with one log line naming the loop, as a supervisor needs to restart it; without a hang
// it keeps serving past the bound and drains cleanly; under systemd's protocol (NOTIFY_SOCKET,
// WATCHDOG_USEC) it says READY=1 once serving and pings WATCHDOG=1 only while every loop turns.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/http_client.h"
#include "support/notify_socket.h"
#include "support/process.h"

using namespace std::chrono_literals;
using namespace balancer::test;

namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

// One of the servers with `settings` (--set) on top of its example config, the test's loops,
// and `env`; REQUIREs that it listens. Returns its port.
int start_server(ChildProcess& child, const std::string& binary,
                 const std::vector<std::string>& settings, const Env& env) {
  std::vector<std::string> argv = {binary_path(binary), "--config",
                                   std::string(BALANCER_SOURCE_DIR) + "/conf/" + binary + ".json"};
  for (const auto& s : settings) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  for (auto& a : threads_args()) argv.push_back(a);
  std::string error;
  REQUIRE_MESSAGE(child.start(argv, env, {}, &error), error);
  const int port = child.wait_for_listening_port(deadline_in(10s));
  REQUIRE_MESSAGE(port > 0, child.stderr_text());
  return port;
}

std::vector<std::string> cache_node_settings(const TempDir& dir, int watchdog_s) {
  return {"listen.port=0",
          "listen.tls.port=0",
          "data_dir=" + dir.file("node"),
          "origins.demo.url=http://127.0.0.1:9/",
          "signing.keys=[\"watchdog-test-key-0001\"]",
          "server.access_log=false",
          "server.watchdog_s=" + std::to_string(watchdog_s)};
}

// Waits until the child's stderr holds `text`; the moment it was seen, or nullopt at the
// deadline.
std::optional<Clock::time_point> wait_stderr(ChildProcess& child, const std::string& text,
                                             std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return child.stderr_text().find(text) != std::string::npos; }, timeout,
                  5ms)) {
    return std::nullopt;
  }
  return Clock::now();
}

// The hang injected on loop `loop` ends the process within `bound_s` + a margin: exit by
// SIGABRT (134) and the watchdog's line naming `loop_name`. Returns the seconds from the hook's
// line to the exit.
double expect_death(ChildProcess& child, const std::string& loop, const std::string& loop_name,
                    int bound_s) {
  auto hung = wait_stderr(child, "test hook: loop " + loop + " hangs", 10s);
  REQUIRE_MESSAGE(hung, child.stderr_text());
  const auto exit_code = child.wait_exit(*hung + std::chrono::seconds(bound_s) + 3s);
  const double took = std::chrono::duration<double>(Clock::now() - *hung).count();
  INFO(child.stderr_text());
  REQUIRE_MESSAGE(exit_code.has_value(), "still running " << took << " s into the hang");
  CHECK(*exit_code == 134);
  CHECK(child.stderr_text().find("watchdog: event loop " + loop_name + " stuck for ") !=
        std::string::npos);
  CHECK(took >= bound_s - 0.3);
  return took;
}

}  // namespace

TEST_CASE("watchdog: a cache node whose serving loop hangs ends itself within the bound") {
  TempDir dir("watchdog-test");
  ChildProcess node;
  // The last serving loop: loop-0 with one loop, loop-1 with two (the other one keeps turning).
  const std::string loop = std::to_string(test_threads() - 1);
  start_server(node, "cache_node", cache_node_settings(dir, 2),
               {{"BALANCER_TEST_HANG", loop + ",300,60"}});
  const double took = expect_death(node, loop, "loop-" + loop, 2);
  MESSAGE("cache node, loop-" << loop << " hung: exited " << took
                              << " s into the hang (bound 2 s)");
}

TEST_CASE("watchdog: a cache node whose fetch loop hangs ends itself within the bound") {
  TempDir dir("watchdog-test");
  ChildProcess node;
  start_server(node, "cache_node", cache_node_settings(dir, 2),
               {{"BALANCER_TEST_HANG", "fetch,300,60"}});
  const double took = expect_death(node, "fetch", "fetch", 2);
  MESSAGE("cache node, fetch loop hung: exited " << took << " s into the hang (bound 2 s)");
}

TEST_CASE("watchdog: a balancer whose home loop hangs ends itself within the bound") {
  TempDir dir("watchdog-test");
  write_file(dir.file("channels.json"), R"({"channels": []})");
  write_file(dir.file("caches.json"), R"({"caches": []})");
  ChildProcess balancer;
  start_server(balancer, "balancer",
               {"listen.port=0", "channels_file=" + dir.file("channels.json"),
                "caches_file=" + dir.file("caches.json"), "api.data_dir=" + dir.file("api"),
                "api.products_file=", "server.access_log=false", "server.watchdog_s=2"},
               {{"BALANCER_TEST_HANG", "0,300,60"}});
  const double took = expect_death(balancer, "0", "loop-0", 2);
  MESSAGE("balancer, loop-0 hung: exited " << took << " s into the hang (bound 2 s)");
}

TEST_CASE("watchdog: without a hang a node keeps serving past the bound and drains cleanly") {
  TempDir dir("watchdog-test");
  ChildProcess node;
  const int port = start_server(node, "cache_node", cache_node_settings(dir, 2), {});
  // Every loop watched: the serving ones and the fetch loop.
  CHECK(node.stderr_text().find("watchdog: " + std::to_string(test_threads() + 1) +
                                " event loop(s) watched, bound 2 s") != std::string::npos);
  // Two and a half times the bound with nothing to do: the idle loops still beat.
  CHECK_FALSE(node.wait_exit(deadline_in(5s)).has_value());
  CHECK(http_get(local_url(port, "/health")).status == 200);
  node.terminate();
  const auto code = node.wait_exit(deadline_in(15s));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(node.stderr_text().find("watchdog: event loop") == std::string::npos);
}

TEST_CASE("watchdog: systemd hears READY=1, then WATCHDOG=1 only while every loop turns") {
  TempDir dir("watchdog-test");
  NotifySocket systemd(dir.file("notify"));
  ChildProcess node;
  // WatchdogSec=1 s: a ping every 0.5 s; the loop hangs 2 s after start; own bound 4 s.
  start_server(node, "cache_node", cache_node_settings(dir, 4),
               {{"NOTIFY_SOCKET", systemd.path()},
                {"WATCHDOG_USEC", "1000000"},
                {"BALANCER_TEST_HANG", "0,2000,60"}});
  CHECK(systemd.receive(5s) == "READY=1");
  int pings_before = 0;
  while (node.stderr_text().find("test hook: loop 0 hangs") == std::string::npos) {
    auto message = systemd.receive(1500ms);
    REQUIRE_MESSAGE(message, "no ping within 1.5 s while serving");
    CHECK(*message == "WATCHDOG=1");
    if (++pings_before > 40) break;  // bounded: the hang comes 2 s in
  }
  CHECK(pings_before >= 2);
  // Once the loop hangs, at most one ping already on its way; then silence until the death.
  int pings_after = 0;
  while (pings_after < 20 && systemd.receive(1500ms)) ++pings_after;
  CHECK(pings_after <= 1);
  const auto code = node.wait_exit(deadline_in(8s));
  REQUIRE(code.has_value());
  CHECK(*code == 134);
  MESSAGE("pings while serving: " << pings_before << ", after the hang: " << pings_after);
}
