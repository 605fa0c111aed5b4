// Inside the balancer (not a public header): its fetch loop's part (service_host.h,
// ServiceContext::fetch): what fetches for every loop, on a thread that serves no viewer, so a
// refresh is sent and its answer read on time however busy the serving loops are.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "balancer/any_loop_state.h"
#include "balancer/caches/cache_health.h"
#include "balancer/caches/health_poller.h"
#include "balancer/caches/prefetch_client.h"
#include "balancer/operator/balancer_config.h"
#include "balancer/sources/key_store.h"
#include "balancer/sources/source_asker.h"
#include "balancer/sources/source_cache.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/thread_rule.h"
#include "http/client/http_client.h"

namespace balancer {

// The fetch loop's door for the operator's choice of a channel's source: any loop; `done` runs
// on `back` with whether the channel has that source (and a copy served).
class SourceChooser {
 public:
  virtual ~SourceChooser() = default;
  virtual void choose_source(core::EventLoop& back, const std::string& channel,
                             std::optional<size_t> index,
                             std::function<void(SourceCache::SourceChoice)> done) = 0;
};

// The source cache, the key store, the health poller, the HTTP client they use and
// the one-second tick. Fetch loop only: other loops reach it through post()
// (fetch_key() and choose_source() do that for them; source_asker() for their SourceFronts).
class BalancerFetchers final : public KeyFetcher, public SourceChooser {
 public:
  // Main thread, before the loops run: creates the fetchers on `fetch_loop` and starts
  // the tick; call configure() next. Fails when the HTTP client cannot be built.
  // `shared` and `health` outlive the result; every poll result is published into `health`.
  static core::Result<std::unique_ptr<BalancerFetchers>> create(
      core::EventLoop& fetch_loop, const core::Clock& clock, core::MetricsRegistry& registry,
      const BalancerConfig& config, AnyLoopState& shared, core::Published<HealthView>& health);
  ~BalancerFetchers() override;

  // Fetch loop: the parts of a config that the fetchers hold (playlist timings, key
  // options, health targets, prefetch).
  void configure(const BalancerConfig& c);
  // Any loop: asks the key store; `done` runs on `back`.
  void fetch_key(core::EventLoop& back, const std::string& url, KeyCallback done) override;
  // Any loop: the operator's choice of a channel's source (nullopt: automatic again).
  void choose_source(core::EventLoop& back, const std::string& channel, std::optional<size_t> index,
                     std::function<void(SourceCache::SourceChoice)> done) override;
  // Fetch loop: no more background refreshes or polls (drain).
  void stop();
  // Any loop: the source cache's one door for the loops' SourceFronts (it posts to this loop).
  SourceAsker& source_asker() { return *source_asker_; }
  core::EventLoop& loop() { return loop_; }

 private:
  BalancerFetchers(core::EventLoop& fetch_loop, AnyLoopState& shared);
  // Every second: stores the source cache's size for /health and /metrics.
  void tick();
  // The channels with several sources, for the loops' /admin/status (AnyLoopState).
  void publish_sources_board();

  core::EventLoop& loop_;
  AnyLoopState& shared_;
  std::unique_ptr<http::HttpClient> client_;
  std::unique_ptr<SourceCache> sources_;
  std::unique_ptr<SourceAsker> source_asker_;  // asks sources_
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<HealthPoller> poller_;
  std::unique_ptr<PrefetchClient> prefetch_;  // after client_ and poller_: uses both
  core::EventPtr tick_timer_;                 // last: freed first
};

}  // namespace balancer
