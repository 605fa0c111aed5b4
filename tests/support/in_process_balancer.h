// A real Balancer in the test's process, on event loops the test runs: its config for a
// test_origin (anonymous viewers allowed; one cache node that never answers its health checks,
// so chunk links lead to origin) and an HTTP server on each of its loops. Shared by the tests
// that drive the balancer's loops by hand (viewer_endpoints_test, fetch_loop_test):
// InProcessLoops is their fixture.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "balancer/balancer.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "http/server/http_server.h"
#include "http/server/service_host.h"
#include "support/balancer_fixture.h"
#include "support/loops_by_hand.h"

namespace balancer::test {

inline core::ConfigDocument config_document(const std::string& name, const std::string& text) {
  auto d = core::ConfigDocument::parse(name, text, {});
  REQUIRE_MESSAGE(d.ok(), (d.ok() ? "" : d.error().message));
  return std::move(d).value();
}

// `channels`: channel_json() entries; `main_extra`: members appended to main.json's object.
inline BalancerConfig in_process_config(const std::string& origin_base_url,
                                        const std::vector<std::string>& channels,
                                        const std::string& main_extra = "") {
  const std::string main = R"({
      "listen": {"host": "127.0.0.1", "port": 0},
      "channels_file": "channels.json",
      "caches_file": "caches.json",
      "origins": {"demo": {"url": ")" +
                           origin_base_url + R"("}},
      "signing": {"keys": [")" +
                           kBalancerSigningKey + R"("]},
      "playback": {"ticket_keys": [")" +
                           kTicketKey + R"("], "allow_anonymous": true})" + main_extra + "}";
  auto config = read_main_config(config_document("main.json", main));
  REQUIRE_MESSAGE(config.ok(), (config.ok() ? "" : config.error().message));
  REQUIRE(read_channels(config_document("channels.json", channels_json(channels)), *config).ok());
  REQUIRE(
      read_caches(config_document("caches.json", caches_json({cache_json("venue-a", "venue", 9)})),
                  *config)
          .ok());
  return std::move(config).value();
}

// Creates the balancer on `context` and one server per loop (servers[i] on context.loops[i]).
inline std::unique_ptr<Balancer> start_in_process(
    http::ServiceContext& context, const BalancerConfig& config, core::MetricsRegistry& metrics,
    std::vector<std::unique_ptr<http::HttpServer>>& servers) {
  auto created = Balancer::create(context, config);
  REQUIRE_MESSAGE(created.ok(), (created.ok() ? "" : created.error().message));
  std::unique_ptr<Balancer> balancer = std::move(created).value();
  for (core::EventLoop* loop : context.loops) {
    http::HttpServerOptions options = config.server;
    options.service = "balancer";
    options.access_log = false;
    auto server = http::HttpServer::create(loop->base(), options, metrics);
    REQUIRE(server.ok());
    balancer->attach(loop->index(), **server);
    servers.push_back(std::move(server).value());
  }
  return balancer;
}

// What a GET to one of the balancer's servers got.
struct Answer {
  int status = 0;
  std::string body;
  http::FetchHead head;
};

// A real Balancer on two serving loops (home and one more) that the test runs in turn on its
// own thread, a server on each and a client on the second loop; its fetchers on a fetch loop
// that runs on a thread of its own (FetchLoopKind::own_thread), or on the home loop (a host
// without a fetch loop). A test's fixture derives from it: builds its origin, then calls start().
struct InProcessLoops {
  enum class ClockKind { real, fake };                 // fake: the balancer's clock is `clock`
  enum class FetchLoopKind { home_loop, own_thread };  // where the fetchers run
  core::FakeClock clock;
  core::MetricsRegistry metrics;
  core::EventLoop home{0};
  core::EventLoop second{1};
  std::optional<core::EventLoop> fetch;  // FetchLoopKind::own_thread
  http::ServiceContext context;
  std::unique_ptr<Balancer> balancer;
  std::vector<std::unique_ptr<http::HttpServer>> servers;
  std::unique_ptr<http::HttpClient> client;  // on the second loop
  std::thread fetch_thread;

  InProcessLoops(ClockKind clock_kind, FetchLoopKind fetch_loop) {
    context.name = "balancer";
    if (clock_kind == ClockKind::fake) context.clock = &clock;
    context.metrics = &metrics;
    context.loops = {&home, &second};
    if (fetch_loop == FetchLoopKind::own_thread) context.fetch = &fetch.emplace(2);
  }
  InProcessLoops(const InProcessLoops&) = delete;
  InProcessLoops& operator=(const InProcessLoops&) = delete;

  // Creates the balancer and its servers, and starts the fetch loop's thread (if any).
  void start(const BalancerConfig& config) {
    balancer = start_in_process(context, config, metrics, servers);
    auto made = http::HttpClient::create(second.base(), {});
    REQUIRE(made.ok());
    client = std::move(made).value();
    if (fetch) fetch_thread = std::thread([this] { fetch->run(); });
  }

  ~InProcessLoops() {
    // Posted to the fetch loop, which runs it before it stops (or run here without one).
    if (balancer) balancer->stop_background();
    if (fetch_thread.joinable()) {
      fetch->stop();
      fetch_thread.join();
    }
    // The servers (and the client) go before the balancer whose handlers they route to.
    client.reset();
    servers.clear();
    balancer.reset();
  }

  // Runs both serving loops on this thread until `done` holds (`limit` at most).
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return run_loops_until({&home, &second}, done, limit);
  }

  // GET `target` from the server of loop `index`.
  Answer get(const std::string& target, size_t index = 1) {
    std::optional<Answer> got;
    auto reply = std::make_shared<Answer>();
    http::FetchRequest request{
        "http://127.0.0.1:" + std::to_string(servers[index]->port()) + target,
        "GET",
        {},
        std::nullopt,
        {}};
    client->fetch(request, {[reply](const http::FetchHead& h) { reply->head = h; },
                            [reply](std::string_view data) { reply->body.append(data); },
                            [reply, &got](const http::FetchResult& r) {
                              reply->status = r.status;
                              got = *reply;
                            }});
    REQUIRE(run_until([&] { return got.has_value(); }));
    return *got;
  }
};

}  // namespace balancer::test
