// A real Balancer in the test's process, on event loops the test runs: its config for a
// test_origin (anonymous viewers allowed; one cache node that never answers its health checks,
// so chunk links lead to origin) and an HTTP server on each of its loops. Shared by the tests
// that drive the balancer's loops by hand (viewer_endpoints_test, fetch_loop_test).
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "balancer/balancer.h"
#include "core/config.h"
#include "core/metrics.h"
#include "http/server/http_server.h"
#include "http/server/service_host.h"
#include "support/balancer_fixture.h"

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

}  // namespace balancer::test
