// One loop's viewer endpoints: playlists (/hls/...), keys (/key/...) and content steering
// (/steering/...), with what they keep on that loop: its source front, channel allowlist,
// signed-link memo, unsent replies and held blocking reloads. BalancerLoop (balancer_loop.h)
// owns one and routes those paths to it. Handlers in viewer_endpoints.cc; steering in
// viewer_steering.cc; credentials, keys and admission in viewer_access.cc. Its loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/any_loop_state.h"
#include "balancer/caches/cache_choice.h"
#include "balancer/caches/cache_health.h"
#include "balancer/operator/balancer_config.h"
#include "balancer/operator/balancer_metrics.h"
#include "balancer/sources/key_store.h"
#include "balancer/sources/source_asker.h"
#include "balancer/sources/source_front.h"
#include "balancer/viewers/admission_http.h"
#include "balancer/viewers/channel_allowlist.h"
#include "balancer/viewers/held_counts.h"
#include "balancer/viewers/playlist_mapper.h"
#include "balancer/viewers/request_params.h"
#include "balancer/viewers/unsent_replies.h"
#include "balancer/viewers/viewer_access.h"
#include "cmcd/quality_meter.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "hls/rewrite.h"
#include "hls/steering.h"
#include "http/server/http_exchange.h"

namespace balancer {

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

// What the viewer endpoints touch of the process's state: each member safe from any thread
// (balancer_loop.h says why), and the number of serving loops (each holds its share of the
// unsent playlist bytes).
struct ViewerParts {
  const core::Clock& clock;
  const core::Published<RuntimeConfig>& config;
  const core::Published<HealthView>& health;
  BalancerMetrics& metrics;
  cmcd::QualityMeter& playback;
  AnyLoopState& any_loop;
  size_t serving_loops = 1;
};

class ViewerEndpoints {
 public:
  // Before the loops run: `sources` and `keys` are the fetchers' any-loop doors (this loop's
  // SourceFront asks the fetch loop's source cache through `sources`); all outlive this.
  ViewerEndpoints(ViewerParts parts, SourceAsker& sources, KeyFetcher& keys, core::EventLoop& loop);

  void handle_playlist(http::HttpExchange& ex);
  void handle_key(http::HttpExchange& ex);
  // GET /steering/<channel>?cache=..: the steering manifest (hls/steering.h).
  void handle_steering(http::HttpExchange& ex);
  // Counts the error by `code` and answers it (no-op when the client is gone); the operator
  // endpoints of the loop answer theirs through it too.
  void fail(http::HttpExchange& ex, int status, const std::string& code,
            const std::string& message);

 private:
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
  // The viewer's master (`links`) on the cache choice's pathway with the steering tag
  // (hls/steering.h; the manifest clones the other pathways), or nullopt when it cannot be
  // steered (the viewer gets its copy as it is).
  std::optional<std::string> steered_master(const Pending& p, const SourceVersion& version,
                                            const ViewerLinks& links, TimePoint now);
  // The steered shape of `version` (a master), made on its first steered request on this loop;
  // null when it cannot be steered.
  const hls::SteeredShape* steered_shape(const SourceVersion& version);
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

  struct ChunkLinkMemo {
    int64_t computed_unix = 0;
    uint64_t generation = 0;  // config generation they were signed under
    std::vector<std::string> links;
  };

  ViewerParts parts_;
  KeyFetcher& keys_;  // the fetch loop's key store, from any loop
  core::EventLoop& loop_;
  SourceFront front_;
  core::Published<RuntimeConfig>::Reader config_;
  core::Published<HealthView>::Reader health_;
  ChannelAllowlist allowlist_;
  uint64_t allowlist_generation_ = 0;
  // Signed chunk links by source version (serial) and destination.
  std::unordered_map<uint64_t, std::unordered_map<std::string, ChunkLinkMemo>> link_memo_;
  std::vector<std::string> mixed_links_;    // scratch for stable_links_for
  std::string listing_key_;                 // scratch for stable_links_for: the listing's key
  std::vector<CacheCandidate> candidates_;  // scratch for choose
  // Steered masters' shapes by source version (serial), what they share whoever asks; nullopt:
  // that master cannot be steered.
  std::unordered_map<uint64_t, std::optional<hls::SteeredShape>> steered_shapes_;
  hls::SlotTexts slot_texts_;  // scratch for steered_master: the viewer's URIs
  // balancer_playlist_newest_age_seconds{channel}: found once per channel (configured: bounded).
  core::Histogram& newest_age_histogram(const std::string& channel);
  std::unordered_map<std::string, core::Histogram*> newest_age_;
  UnsentReplies unsent_;         // playlist replies not yet written, on this loop
  HeldCounts blocking_reloads_;  // by viewer key: blocking reloads waiting, on this loop
};

}  // namespace balancer
