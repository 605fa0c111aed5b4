// Inside the balancer (not a public header): its home loop's part.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "balancer/any_loop_state.h"
#include "balancer/caches/cache_health.h"
#include "balancer/caches/health_poller.h"
#include "balancer/operator/balancer_config.h"
#include "balancer/operator/balancer_metrics.h"
#include "balancer/sources/key_store.h"
#include "balancer/sources/prefetch_client.h"
#include "balancer/sources/source_cache.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/thread_rule.h"
#include "http/client/http_client.h"

namespace balancer {

// The one door of the home loop's key store that other loops use: any loop; `done` runs on
// `back`.
class KeyFetcher {
 public:
  virtual ~KeyFetcher() = default;
  virtual void fetch_key(core::EventLoop& back, const std::string& url, KeyCallback done) = 0;
};

// The source cache, the key store, the health poller, the HTTP client they use and
// the one-second tick. Home loop only: other loops reach it through post()
// (fetch_key() does that for them; each loop's SourceFront for the source cache).
class BalancerFetchers final : public KeyFetcher {
 public:
  // Main thread, before the loops run: creates the fetchers on `home_loop` and starts
  // the tick; call configure() next. Fails when the HTTP client cannot be built.
  // `shared`, `report` and `health` outlive the result; every poll result is published
  // into `health`.
  static core::Result<std::unique_ptr<BalancerFetchers>> create(
      core::EventLoop& home_loop, const core::Clock& clock, core::MetricsRegistry& registry,
      const BalancerConfig& config, AnyLoopState& shared, AdmissionReport& report,
      core::Published<HealthView>& health);
  ~BalancerFetchers() override;

  // Home loop: the parts of a config that the home loop's objects hold (admission
  // limits, playlist timings, key options, health targets, per-group gauges).
  void configure(const BalancerConfig& c);
  // Any loop: asks the key store; `done` runs on `back`.
  void fetch_key(core::EventLoop& back, const std::string& url, KeyCallback done) override;
  // Home loop: no more background refreshes or polls (drain).
  void stop();
  // Home loop only (or before the loops run); other loops' SourceFronts use it through post().
  SourceCache& sources() {
    core::expect_on(loop_);
    return *sources_;
  }

 private:
  BalancerFetchers(core::EventLoop& home_loop, const core::Clock& clock, AnyLoopState& shared,
               AdmissionReport& report);
  // Every second: frees idle slots, passes on egress readings, stores the source cache's size.
  void tick();
  void feed_measured_traffic(TimePoint now);

  core::EventLoop& loop_;
  const core::Clock& clock_;
  AnyLoopState& shared_;
  AdmissionReport& report_;
  std::unique_ptr<http::HttpClient> client_;
  std::unique_ptr<SourceCache> sources_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<HealthPoller> poller_;
  std::unique_ptr<PrefetchClient> prefetch_;  // after client_ and poller_: uses both
  uint64_t egress_readings_fed_ = 0;
  bool measured_fed_ = false;
  core::EventPtr tick_timer_;  // last: freed first
};

}  // namespace balancer
