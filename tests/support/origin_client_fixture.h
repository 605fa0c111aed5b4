// What the balancer's origin-facing classes (SourceCache, KeyStore) are built on in their unit
// tests: a real test_origin serving a temp dir, an event loop with an HTTP client on it, a
// metrics registry and a fake clock. Loop thread (the test's) only.
#pragma once

#include <doctest/doctest.h>
#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "http/client/http_client.h"
#include "support/loops_by_hand.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer::test {

struct OriginClient {
  TempDir dir;
  TestOrigin origin{serving_files(dir.path())};
  core::EventLoop loop{0};  // run by hand on the test's thread (through `base`)
  event_base* base = &loop.base();
  core::MetricsRegistry metrics;
  core::FakeClock clock;
  std::unique_ptr<http::HttpClient> client;

  OriginClient() {
    auto made = http::HttpClient::create(*base, {});
    REQUIRE(made.ok());
    client = std::move(*made);
  }

  // Runs the loop on this thread until `done` holds (false after `limit`).
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return run_loops_until({&loop}, done, limit);
  }
};

}  // namespace balancer::test
