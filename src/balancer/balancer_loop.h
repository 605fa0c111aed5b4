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
//   - BalancerLoop: one loop's source front, allowlist, link memo and handlers; its loop only.
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
#include "balancer/viewers/channel_allowlist.h"
#include "balancer/viewers/held_counts.h"
#include "balancer/viewers/playlist_mapper.h"
#include "balancer/viewers/request_params.h"
#include "balancer/viewers/unsent_replies.h"
#include "balancer/viewers/viewer_access.h"
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

// Where a viewer's chunk links lead, and what that choice was read from: it holds
// for the same request while that health snapshot is current and until holds_until.
struct CacheDecision {
  const CacheConfig* cache = nullptr;  // null: origin
  CacheChoice::Reason reason = CacheChoice::Reason::origin;
  std::shared_ptr<const HealthView> health;  // the snapshot it read
  TimePoint holds_until = TimePoint::max();  // a node it found usable turns stale after this
};

// A viewer's request in progress (waiting for origin or the fetch loop). The loop
// that accepted it only.
struct Pending {
  explicit Pending(http::HttpExchange e) : ex(std::move(e)) {}
  http::HttpExchange ex;
  ViewerRequest request;
  std::shared_ptr<const RuntimeConfig> config;
  const ChannelConfig* channel = nullptr;  // into config->config
  std::string viewer_key;
  // Set by admit(): what the admission policy was told about this request.
  std::string cache_id;  // "" = origin
  uint64_t bandwidth_bps = 0;
  CacheDecision choice;  // the cache choice admit() told it
  // A blocking reload (_HLS_msn) counts against its viewer's playlists.max_blocking_per_viewer
  // until it is answered.
  std::unique_ptr<HeldCounts::Token> blocking_hold;
};
using PendingPtr = std::shared_ptr<Pending>;

// One loop's part: its source front, channel allowlist, signed-link memo and the
// request handlers. Its loop's thread only.
class BalancerLoop {
 public:
  // Before the loops run: `sources`, `keys` and `chooser` are the fetchers' any-loop doors
  // (this loop's SourceFront asks the fetch loop's source cache through `sources`).
  BalancerLoop(AnyThreadParts parts, SourceAsker& sources, KeyFetcher& keys, SourceChooser& chooser,
               core::EventLoop& loop);

  core::EventLoop& loop() { return loop_; }
  void attach(http::HttpServer& server);

  // Viewer endpoints (viewer_endpoints.cc).
  void handle_playlist(http::HttpExchange& ex);
  void handle_key(http::HttpExchange& ex);
  // GET /steering/<channel>?cache=..: the steering manifest (hls/steering.h).
  void handle_steering(http::HttpExchange& ex);
  // Operator endpoints (operator_endpoints.cc).
  void handle_switch(http::HttpExchange& ex);
  void handle_admin_status(http::HttpExchange& ex);
  // GET /admin/sources: each channel's sources; POST ?channel=<id>&source=<index>|auto: the
  // operator's choice of the source it plays from.
  void handle_admin_sources(http::HttpExchange& ex);
  void handle_health(http::HttpExchange& ex);

 private:
  // Counts the error by `code` and answers it (no-op when the client is gone).
  void fail(http::HttpExchange& ex, int status, const std::string& code,
            const std::string& message);
  // Answers an error already counted.
  void send_error(http::HttpExchange& ex, int status, const std::string& code,
                  const std::string& message);
  PendingPtr begin_viewer_request(http::HttpExchange& ex, std::string_view prefix);
  void observe_playback(const Pending& p);
  SourceRequest source_request(const RuntimeConfig& rc, const ChannelConfig& channel,
                               const std::string& target, DeliveryDirectives directives = {}) const;
  void get_source(const SourceRequest& request, const RuntimeConfig& rc, SourceCallback done);
  void ensure_allowed(const PendingPtr& p, bool key, std::function<void(bool)> then);
  void ensure_key_learned(const PendingPtr& p, std::function<void(bool)> then);
  void serve_playlist(const PendingPtr& p, const SourceResult& result);
  // Answers 503 or 429 reply_backlog_full unless `room` is fits; true when it answered.
  bool refuse_unsent(http::HttpExchange& ex, UnsentReplies::Room room);
  // serve_playlist's body: the viewer's copy of `version` with links to `cache` (origin when
  // null), steered where steering applies.
  std::string render_playlist(const Pending& p, const SourceVersion& version,
                              const CacheConfig* cache, TimePoint started);
  // Admission (DESIGN.md flow 4): runs `then` when the viewer is admitted, else
  // answers 503 + Retry-After + the queue JSON (or the refusal) itself.
  void admit(const PendingPtr& p, std::function<void()> then);
  // Answers a decision that is not an admission; returns whether it was one.
  bool answer_admission(Pending& p, const AdmissionDecision& d);
  // Where this viewer's chunk links lead now. A steering pathway (`pathway`: a
  // configured cache id, or "origin") wins whatever its health: a pathway's copy
  // keeps its URIs, and the steering manifest moves the player off a dead one.
  CacheDecision choose(const BalancerConfig& c, const std::string& requested,
                       const std::string& remote_ip, const std::string& viewer_key, TimePoint now,
                       const std::string& pathway = {});
  // The choice for `p` at `now`: the one admit() made while it still holds (same health
  // snapshot, before holds_until: choose() would answer the same), else a new one.
  const CacheDecision& current_choice(Pending& p, TimePoint now);
  // Steering pathways for a viewer: the current choice first ("origin" when it is no
  // node), then the other cache nodes of its site (all of them, or the usable ones
  // only) in config order, then "origin". Fewer than two: no steering.
  std::vector<std::string> pathways(const BalancerConfig& c, const std::string& requested,
                                    const std::string& remote_ip, const std::string& viewer_key,
                                    TimePoint now, bool usable_only);
  // The viewer's master `body` on the cache choice's pathway with the steering tag
  // (hls/steering.h; the manifest clones the other pathways), or `body` unchanged when it
  // cannot be steered.
  std::string steered_master(const Pending& p, const SourceVersion& version,
                             const ViewerLinks& links, std::string body, TimePoint now);
  // For the request of a channel's source when that is a media playlist (and steering and
  // steering.media_masters are on): a master of one variant, the same playlist on the cache
  // choice's pathway (pathway="." when the viewer has a single pathway); nullopt for every
  // other request.
  std::optional<std::string> made_master(const Pending& p, const SourceVersion& version,
                                         TimePoint now);
  const std::vector<std::string>& chunk_links_for(const SourceVersion& version,
                                                  const RuntimeConfig& rc,
                                                  const ChannelConfig& channel,
                                                  const CacheConfig* cache);
  // The chunk links of this viewer's copy with stable hosts (stable_links.h): `fresh`
  // (all to `cache`) when nothing listed before keeps another host, else a mix.
  const std::vector<std::string>& stable_links_for(const Pending& p, const SourceVersion& version,
                                                   const CacheConfig* cache,
                                                   const std::vector<std::string>& fresh,
                                                   TimePoint now);
  // Answers 401/403 itself and returns nullopt, or how the caller was let in.
  std::optional<std::string> operator_access(http::HttpExchange& ex);

  struct ChunkLinkMemo {
    int64_t computed_unix = 0;
    uint64_t generation = 0;  // config generation they were signed under
    std::vector<std::string> links;
  };

  AnyThreadParts parts_;
  KeyFetcher& keys_;        // the fetch loop's key store, from any loop
  SourceChooser& chooser_;  // the fetch loop's choice of a channel's source, from any loop
  core::EventLoop& loop_;
  SourceFront front_;
  core::Published<RuntimeConfig>::Reader config_;
  core::Published<HealthView>::Reader health_;
  ChannelAllowlist allowlist_;
  uint64_t allowlist_generation_ = 0;
  // Signed chunk links by source version (serial) and destination.
  std::unordered_map<uint64_t, std::unordered_map<std::string, ChunkLinkMemo>> link_memo_;
  std::vector<std::string> mixed_links_;  // scratch for stable_links_for
  // balancer_playlist_newest_age_seconds{channel}: found once per channel (configured: bounded).
  core::Histogram& newest_age_histogram(const std::string& channel);
  std::unordered_map<std::string, core::Histogram*> newest_age_;
  UnsentReplies unsent_;         // playlist replies not yet written, on this loop
  HeldCounts blocking_reloads_;  // by viewer key: blocking reloads waiting, on this loop
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
