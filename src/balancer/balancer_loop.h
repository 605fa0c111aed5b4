// Inside the balancer (not a public header): how its state is split by thread
// rule, and one loop's handlers. Each part's type says which thread may touch it:
//   - RuntimeConfig (balancer_config.h) and HealthView: immutable snapshots, published through
//     core::Published (the home loop publishes the config, the fetch loop the health view;
//     any loop reads its own Reader);
//   - BalancerMetrics, AdmissionReport (balancer_metrics.h): the process's numbers,
//     any thread (the report under its own mutex);
//   - AnyLoopState (any_loop_state.h): admission, stable-link listings, byte counts;
//     any thread, each member safe by itself;
//   - BalancerFetchers (balancer_fetchers.h): source cache, key store, health poller; fetch
//     loop only (a thread of its own that serves no viewer), reached through post();
//   - AdmissionTick (admission_tick.h): admission's one-second tick; home loop only;
//   - LoopSet: the loops' handlers and servers; filled before the loops run, read-only after;
//   - BalancerLoop: one loop's handlers: its ViewerEndpoints (viewers/viewer_endpoints.h: source
//     front, allowlist, link memo, viewer handlers) and the operator's; its loop only.
// Balancer::Shared holds one of each; it has no state or rule of its own. The loops and the
// API host receive AnyThreadParts (the any-thread members only) and the fetchers' any-loop door,
// never Shared.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/api.h"
#include "balancer/admission_tick.h"
#include "balancer/any_loop_state.h"
#include "balancer/balancer.h"
#include "balancer/balancer_fetchers.h"
#include "balancer/caches/cache_choice.h"
#include "balancer/caches/cache_health.h"
#include "balancer/operator/balancer_metrics.h"
#include "balancer/sources/source_front.h"
#include "balancer/viewers/admission_http.h"
#include "balancer/viewers/viewer_access.h"
#include "balancer/viewers/viewer_endpoints.h"
#include "cmcd/quality_meter.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "signing/playback_ticket.h"
#include "signing/url_signing.h"

namespace balancer {

class BalancerLoop;
class LoopSet;

// What any thread may touch of the balancer's process-wide state: the members of
// Balancer::Shared whose types are safe from any thread (see above). What the loops and the
// API host receive; the home loop's state is not here.
struct AnyThreadParts {
  const core::Clock& clock;
  const core::Published<RuntimeConfig>& config;
  const core::Published<HealthView>& health;
  BalancerMetrics& metrics;
  cmcd::QualityMeter& playback;
  AnyLoopState& any_loop;
  AdmissionReport& admission_report;
  const LoopSet& loops;  // read-only once the loops run
};

// What the REST API asks of the balancer (api/playback_host.h); api_host.cc. Any loop thread.
class ApiHost final : public api::PlaybackHost {
 public:
  explicit ApiHost(AnyThreadParts parts);
  std::vector<api::ChannelEntry> channels() const override;
  std::vector<api::CacheEntry> usable_caches() const override;
  core::Result<std::string> viewer_key(const std::string& channel, const std::string& ticket,
                                       const std::string& viewer) const override;
  void admit(const std::string& viewer_key, const std::string& channel,
             const std::string& remote_ip, core::EventLoop& loop,
             std::function<void(const api::AdmissionAnswer&)> done) override;
  core::Result<std::string> issue_ticket(const std::string& channel, const std::string& viewer_id,
                                         int64_t expires_unix) const override;
  void release(const std::string& viewer_key, core::EventLoop& loop) override;

 private:
  AnyThreadParts parts_;
};

// One loop's part: its server's routes, the viewer endpoints it owns and the operator's
// endpoints. Its loop's thread only.
class BalancerLoop {
 public:
  // Before the loops run: `sources`, `keys` and `chooser` are the fetchers' any-loop doors
  // (this loop's SourceFront asks the fetch loop's source cache through `sources`);
  // `serving_loops` is how many loops serve (this one among them).
  BalancerLoop(AnyThreadParts parts, size_t serving_loops, SourceAsker& sources, KeyFetcher& keys,
               SourceChooser& chooser, core::EventLoop& loop);

  core::EventLoop& loop() { return loop_; }
  void attach(http::HttpServer& server);

  // Operator endpoints (operator_endpoints.cc).
  void handle_switch(http::HttpExchange& ex);
  void handle_admin_status(http::HttpExchange& ex);
  // GET /admin/sources: each channel's sources; POST ?channel=<id>&source=<index>|auto: the
  // operator's choice of the source it plays from.
  void handle_admin_sources(http::HttpExchange& ex);
  void handle_health(http::HttpExchange& ex);

 private:
  // Counts the error by `code` and answers it (no-op when the client is gone), as the viewer
  // endpoints do.
  void fail(http::HttpExchange& ex, int status, const std::string& code,
            const std::string& message) {
    viewers_.fail(ex, status, code, message);
  }
  // Answers 401/403 itself and returns nullopt, or how the caller was let in.
  std::optional<std::string> operator_access(http::HttpExchange& ex);

  AnyThreadParts parts_;
  SourceChooser& chooser_;  // the fetch loop's choice of a channel's source, from any loop
  core::EventLoop& loop_;
  core::Published<RuntimeConfig>::Reader config_;
  core::Published<HealthView>::Reader health_;
  ViewerEndpoints viewers_;  // the viewer endpoints of this loop (viewers/viewer_endpoints.h)
};

// The loops' handlers and their servers. Filled on the main thread before the loops
// run (create, attach), read-only afterwards: any thread reads it.
class LoopSet {
 public:
  void add_loop(std::unique_ptr<BalancerLoop> loop) { loops_.push_back(std::move(loop)); }
  void add_server(http::HttpServer& server) { servers_.push_back(&server); }
  BalancerLoop& loop(size_t index) { return *loops_[index]; }
  size_t loop_count() const { return loops_.size(); }
  // Requests in progress on every server.
  size_t active_requests() const;
  // Whether any server drains (graceful stop under way).
  bool draining() const;

 private:
  std::vector<std::unique_ptr<BalancerLoop>> loops_;
  std::vector<http::HttpServer*> servers_;
};

// The balancer's process-wide parts, one of each type above; the aggregate has no
// state or thread rule of its own (each member's type has one). Built on the main
// thread by Balancer::create().
struct Balancer::Shared {
  Shared(http::ServiceContext& context, std::shared_ptr<const RuntimeConfig> initial);

  http::ServiceContext& context;
  const core::Clock& clock;
  // Immutable snapshots, any thread: the running config (reload publishes it on the home
  // loop) and the cache nodes' health (the fetch loop's poller publishes it).
  core::Published<RuntimeConfig> config;
  core::Published<HealthView> health;
  BalancerMetrics metrics;                        // any thread
  cmcd::QualityMeter playback;                    // any thread: what the players report (CMCD)
  AnyLoopState any_loop;                          // any thread
  AdmissionReport admission_report;               // any loop, under its mutex
  std::unique_ptr<BalancerFetchers> fetchers;     // fetch loop only
  std::unique_ptr<AdmissionTick> admission_tick;  // home loop only
  // Runs `job` on the fetch loop: at once when that is the calling loop (the home loop does
  // the fetching when the host has no fetch loop), else posted.
  void on_fetch_loop(std::function<void()> job);
  LoopSet loops;  // read-only once the loops run
  // What the loops and the API host may touch.
  AnyThreadParts any_thread_parts() {
    return {clock, config, health, metrics, playback, any_loop, admission_report, loops};
  }
  // The REST API (src/api/) and what it asks of us; declared last, so they are destroyed first.
  std::unique_ptr<ApiHost> api_host;
  std::unique_ptr<api::Api> api;
};

}  // namespace balancer
