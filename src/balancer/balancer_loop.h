// Inside the balancer (not a public header): what the loops share, and one
// loop's handlers.
//
// Balancer::Shared is process-wide. Its config, cache health and admission are
// read by every loop (snapshots, and admission's interface, which any loop may ask); the source cache,
// the key store, the health poller and the HTTP client they use belong to the
// home loop, and other loops reach them only through post().
// BalancerLoop is one loop's part: its own source front, channel allowlist,
// signed-link memo and the request handlers. Loop thread only.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "balancer/admission_http.h"
#include "balancer/balancer.h"
#include "balancer/cache_choice.h"
#include "balancer/cache_health.h"
#include "balancer/channel_allowlist.h"
#include "balancer/health_poller.h"
#include "balancer/key_store.h"
#include "balancer/request_params.h"
#include "balancer/source_cache.h"
#include "balancer/source_front.h"
#include "balancer/stable_links.h"
#include "common/event_loop.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/playback_ticket.h"
#include "common/url_signing.h"

namespace balancer {

// The running config with what is derived from it. Immutable once published.
struct RuntimeConfig {
  BalancerConfig config;
  std::optional<common::UrlSigner> signer;
  std::optional<common::PlaybackTickets> tickets;
  uint64_t generation = 0;  // bumps on every applied config (invalidates signed-link memos)

  const ChannelConfig* find_channel(const std::string& id) const;
};

using HealthView = std::map<std::string, CacheHealth>;

// Group `name` in a status snapshot, or null when it has no active viewers.
inline const AdmissionGroupCount* find_group(const std::vector<AdmissionGroupCount>& groups,
                                             const std::string& name) {
  for (const auto& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

// The viewer key ("t:<ticket viewer>" or "v:<viewer id>") that `request`'s
// credentials give on `channel` at `now_unix`, or why not (ticket_*,
// credentials_required, ticket_required).
common::Result<std::string> authorize_viewer(const RuntimeConfig& rc, const ViewerRequest& request,
                                             const ChannelConfig& channel, int64_t now_unix);
// The status of an authorize_viewer() error: 403 for ticket_wrong_channel and
// not_entitled (a paid channel asked for with a made-up viewer id), else 401.
int credential_error_status(const std::string& code);
// Who asks, for admission's per-address bounds: the client address unless it is in
// limits.per_address_exempt; anonymous when the key is a made-up viewer id ("v:").
ViewerSource viewer_source(const RuntimeConfig& rc, const std::string& remote_ip, std::string_view viewer_key);

class BalancerLoop;

// What the REST API asks of the balancer (api/playback_host.h); api_host.cc. Any loop thread.
class ApiHost final : public api::PlaybackHost {
 public:
  explicit ApiHost(Balancer::Shared& shared);
  std::vector<api::ChannelEntry> channels() const override;
  std::vector<api::CacheEntry> usable_caches() const override;
  common::Result<std::string> viewer_key(const std::string& channel, const std::string& ticket,
                                         const std::string& viewer) const override;
  void admit(const std::string& viewer_key, const std::string& channel, const std::string& remote_ip,
             common::EventLoop& loop, std::function<void(const api::AdmissionAnswer&)> done) override;
  common::Result<std::string> issue_ticket(const std::string& channel, const std::string& viewer_id,
                                           int64_t expires_unix) const override;

 private:
  Balancer::Shared& shared_;
};

struct Balancer::Shared {
  Shared(common::ServiceContext& context, std::shared_ptr<const RuntimeConfig> initial);

  common::Counter& error_counter(const std::string& code);
  common::Counter& admission_counter(const char* endpoint, const char* result);
  // Any loop: asks the home loop's key store; `done` runs on `back`.
  void fetch_key(common::EventLoop& back, const std::string& url, KeyCallback done);
  // Renders /metrics (one status snapshot per render, under a lock: any loop may render).
  std::string render_metrics();
  // Under status_mutex: re-reads the policy's status and syncs the policy's counters.
  void refresh_snapshot(TimePoint now);
  size_t active_requests() const;
  // Home loop.
  void tick();
  void feed_measured_traffic(TimePoint now);
  void register_admission_metrics();
  void register_gauges(const BalancerConfig& c);
  void configure_home(const BalancerConfig& c);

  common::ServiceContext& context;
  const common::Clock& clock;
  common::MetricsRegistry& metrics;
  common::Published<RuntimeConfig> config;
  common::Published<HealthView> health;
  // Limits and queue (admission/admission.h): in this process or shared through Redis, as
  // admission.backend chose at start. Any loop asks it; tick() on the home loop.
  std::unique_ptr<Admission> admission;
  // Stable segment hosts per viewer and playlist (stable_links.h), for every loop.
  ListingTable listings{400000, std::chrono::seconds(60)};
  // Home loop only.
  std::unique_ptr<common::HttpClient> client;
  std::unique_ptr<SourceCache> sources;
  std::unique_ptr<KeyStore> keys;
  std::unique_ptr<HealthPoller> poller;
  common::EventPtr tick_timer;
  uint64_t egress_readings_fed = 0;
  bool measured_fed = false;
  uint64_t generation = 0;
  std::set<std::string> gauges_channel, gauges_cache;
  // Set by attach() before the loops run; read-only afterwards.
  std::vector<std::unique_ptr<BalancerLoop>> loops;
  std::vector<common::HttpServer*> servers;
  // Numbers the home loop publishes each second for /health and /metrics.
  std::atomic<size_t> source_entries{0};
  std::atomic<size_t> sources_refreshing{0};
  // Bytes of playlist replies not yet written to their clients' sockets (every loop;
  // playlists.max_unsent_bytes bounds it).
  std::atomic<size_t> unsent_playlist_bytes{0};
  std::mutex status_mutex;          // guards status_snapshot (written per render)
  AdmissionStatus status_snapshot;  // see refresh_snapshot()

  common::Counter& requests_playlist;
  common::Counter& requests_key;
  common::Histogram& rewrite_seconds;
  common::Counter& playlist_admitted;
  common::Counter& playlist_queued;
  common::Counter& access_admitted;
  common::Counter& access_queued;
  common::Counter& emulation_switches;
  common::Counter& admitted_direct;
  common::Counter& admitted_from_queue;
  common::Counter& tickets_issued;
  common::Counter& tickets_not_renewed;
  common::Counter& tickets_lapsed;
  common::Counter& slots_expired;
  common::Counter& released;
  common::Counter& refused_address;
  common::Counter& refused_full;
  common::Counter* choice_counters[4] = {};
  // The REST API (src/api/) and what it asks of us; declared last, so they are destroyed first.
  std::unique_ptr<ApiHost> api_host;
  std::unique_ptr<api::Api> api;
};

// A viewer's request in progress (waiting for origin or the home loop).
struct Pending {
  explicit Pending(common::HttpExchange e) : ex(std::move(e)) {}
  common::HttpExchange ex;
  ViewerRequest request;
  std::shared_ptr<const RuntimeConfig> config;
  const ChannelConfig* channel = nullptr;  // into config->config
  std::string viewer_key;
  // Set by admit(): what the admission policy was told about this request.
  std::string cache_id;  // "" = origin
  uint64_t bandwidth_bps = 0;
};
using PendingPtr = std::shared_ptr<Pending>;

class BalancerLoop {
 public:
  BalancerLoop(Balancer::Shared& shared, common::EventLoop& loop);

  common::EventLoop& loop() { return loop_; }
  void attach(common::HttpServer& server);

  // Viewer endpoints (viewer_endpoints.cc).
  void handle_playlist(common::HttpExchange& ex);
  void handle_key(common::HttpExchange& ex);
  // GET /steering/<channel>?cache=..: the steering manifest (hls/steering.h).
  void handle_steering(common::HttpExchange& ex);
  // Operator endpoints (operator_endpoints.cc).
  void handle_switch(common::HttpExchange& ex);
  void handle_admin_status(common::HttpExchange& ex);
  void handle_health(common::HttpExchange& ex);

 private:
  void fail(common::HttpExchange& ex, int status, const std::string& code, const std::string& message);
  PendingPtr begin_viewer_request(common::HttpExchange& ex, std::string_view prefix);
  SourceRequest source_request(const RuntimeConfig& rc, const ChannelConfig& channel, const std::string& target,
                               DeliveryDirectives directives = {}) const;
  void get_source(const SourceRequest& request, const RuntimeConfig& rc, SourceCallback done);
  void ensure_allowed(const PendingPtr& p, bool key, std::function<void(bool)> then);
  void ensure_key_learned(const PendingPtr& p, std::function<void(bool)> then);
  void serve_playlist(const PendingPtr& p, const SourceResult& result);
  // Admission (DESIGN.md flow 4): runs `then` when the viewer is admitted, else
  // answers 503 + Retry-After + the queue JSON (or the refusal) itself.
  void admit(const PendingPtr& p, std::function<void()> then);
  // Answers a decision that is not an admission; returns whether it was one.
  bool answer_admission(Pending& p, const AdmissionDecision& d);
  // Where this viewer's chunk links lead now. A steering pathway (`pathway`: a
  // configured cache id, or "origin") wins whatever its health: a pathway's copy
  // keeps its URIs, and the steering manifest moves the player off a dead one.
  std::pair<const CacheConfig*, CacheChoice::Reason> choose(
      const BalancerConfig& c, const std::string& requested, const std::string& remote_ip,
      const std::string& viewer_key, TimePoint now, const std::string& pathway = {});
  // Steering pathways for a viewer: the current choice first, then the other cache
  // nodes of its site (all of them, or the usable ones only) in config order, then
  // "origin". Fewer than two: no steering.
  std::vector<std::string> pathways(const BalancerConfig& c, const std::string& requested,
                                    const std::string& remote_ip, const std::string& viewer_key,
                                    TimePoint now, bool usable_only);
  const std::vector<std::string>& chunk_links_for(const SourceVersion& version, const RuntimeConfig& rc,
                                                  const ChannelConfig& channel, const CacheConfig* cache);
  // The chunk links of this viewer's copy with stable hosts (stable_links.h): `fresh`
  // (all to `cache`) when nothing listed before keeps another host, else a mix.
  const std::vector<std::string>& stable_links_for(const Pending& p, const SourceVersion& version,
                                                   const CacheConfig* cache,
                                                   const std::vector<std::string>& fresh,
                                                   TimePoint now);
  // Answers 401/403 itself and returns nullopt, or how the caller was let in.
  std::optional<std::string> operator_access(common::HttpExchange& ex);

  struct ChunkLinkMemo {
    int64_t computed_unix = 0;
    uint64_t generation = 0;  // config generation they were signed under
    std::vector<std::string> links;
  };

  Balancer::Shared& shared_;
  common::EventLoop& loop_;
  SourceFront front_;
  common::Published<RuntimeConfig>::Reader config_;
  common::Published<HealthView>::Reader health_;
  ChannelAllowlist allowlist_;
  uint64_t allowlist_generation_ = 0;
  // Signed chunk links by source version (serial) and destination.
  std::unordered_map<uint64_t, std::unordered_map<std::string, ChunkLinkMemo>> link_memo_;
  std::vector<std::string> mixed_links_;  // scratch for stable_links_for
  common::LogRateLimiter log_limiter_;
};

}  // namespace balancer
