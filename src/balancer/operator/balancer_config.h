// The balancer's configuration as typed, validated structs: the main file
// (BalancerConfig), the channels file (ChannelConfig) and the caches file
// (CacheConfig), and the functions that read them (balancer_config.cc).
// Plain values: built on the main thread (start, SIGHUP), then published
// immutable (RuntimeConfig, below). Reference: docs/configuration.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/api.h"
#include "balancer/caches/cache_config.h"
#include "balancer/sources/live_restart.h"
#include "balancer/sources/source_health.h"
#include "balancer/sources/source_policy.h"
#include "balancer/viewers/admission_names.h"
#include "core/cidr.h"
#include "core/config.h"
#include "core/result.h"
#include "http/server/cors.h"
#include "http/server/http_server.h"
#include "signing/playback_ticket.h"
#include "signing/url_signing.h"

namespace balancer {

struct OriginConfig {
  std::string url;  // base URL, no trailing slash; may carry a path prefix
};

// One source of a channel: a playlist on a configured origin (channels[].sources[]).
struct ChannelSource {
  std::string origin;  // an id of BalancerConfig::origins
  std::string source;  // "/path[?query]" of the master (or media) playlist on that origin
  bool operator==(const ChannelSource&) const = default;
};

// One entry of the channels file.
struct ChannelConfig {
  std::string id;  // [A-Za-z0-9_-]{1,64}; the /hls/<id>/ in URLs
  std::string title;
  std::string origin;  // sources[0].origin: the preferred source, whose names viewers see
  std::string source;  // sources[0].source
  // "sources", in order of preference (DESIGN.md "Sources fail, the channel does not"); the
  // older "origin" + "source" pair is one source. Renditions match by name: a media playlist's
  // path relative to its source's directory is the same in every source (source_switch.h).
  std::vector<ChannelSource> sources;
  FailoverPolicy failover;  // "failover": when a source is left and when it is taken back
  bool free = false;        // free: true, or
  std::string product;      // the product that unlocks a paid channel
  LiveMode kind = LiveMode::automatic;  // "kind": "auto" | "live" | "vod" (how an end tag is taken)
  bool finished = false;                // "finished": the operator says the event is over
  bool prefetch = true;                 // "prefetch": new live segments are prefetched to the nodes
  // "target_latency_s": how far behind live its players should play (HOLD-BACK, PART-HOLD-BACK
  // in what the balancer serves, raised to the spec's bounds); 0 keeps origin's.
  double target_latency_s = 0;
};

struct HealthConfig {
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{800};
  int up_after = 2;
  int down_after = 2;
};

struct BalancerConfig {
  std::string main_file;
  std::string channels_file;  // resolved against the main file's directory
  std::string caches_file;
  http::HttpServerOptions server;
  std::string public_url;  // "" → links back to the balancer are path-absolute
  std::map<std::string, OriginConfig> origins;
  // Chunk URL signing (same keys as the cache nodes; first signs).
  std::vector<std::string> signing_keys;
  std::chrono::seconds chunk_url_lifetime{120};
  // Playback tickets.
  std::vector<std::string> ticket_keys;
  bool allow_anonymous = false;  // free channels play with viewer=<id> and no ticket
  PlaylistTimings playlists;
  std::chrono::milliseconds key_ttl{30000};
  size_t key_max_bytes = 64 * 1024;
  HealthConfig health;
  std::chrono::milliseconds upstream_connect_timeout{2000};
  bool upstream_http2 = true;
  // Stream and traffic limits, queue timings (limits.*, queue.*), validated.
  AdmissionLimits admission;
  // admission.backend: "local" (this process decides; the default) or "redis" (several
  // balancers share one limit and one queue through admission.redis.*). Restart to change.
  std::string admission_backend = "local";
  RedisAdmissionOptions admission_redis;
  // limits.per_address_exempt: clients not counted per address (e.g. a venue's NAT).
  std::vector<core::Cidr> per_address_exempt;
  // Overload switch and /admin/status: the key ("" = no key accepted) and
  // whether loopback clients need none.
  std::string operator_key;
  bool operator_allow_loopback = true;
  std::string log_level = "info";
  // Which web origins may read viewer-facing answers (section "cors").
  http::CorsOptions cors;
  // Content steering (section "steering", docs/balancer.md): masters list the
  // variants on the cache choice's pathway and name the steering manifest, which
  // orders the pathways (the viewer's site's cache nodes, then origin) and clones
  // the others from the listed one; its TTL is 30 s by default (a
  // dead node's pathway lists new segments on the next usable host, not waiting for the TTL).
  bool steering_enabled = true;
  int steering_ttl_s = 30;
  // steering.media_masters: a channel whose source is a media playlist is answered
  // with a master of one variant, so that it is steered like the others.
  bool steering_media_masters = true;
  // web.dir: the web player, dashboard and hls.js (web_pages.h); "" = no pages.
  std::string web_dir;
  // The mobile REST API (section "api", docs/api.md).
  api::ApiConfig api;
  std::vector<ChannelConfig> channels;
  std::vector<CacheConfig> caches;
  PrefetchConfig prefetch;

  const ChannelConfig* find_channel(const std::string& id) const;
};

// How many sources one channel may list.
inline constexpr size_t kMaxChannelSources = 4;

// Reads the main file (with `--set` overrides) and the channels and caches files
// it names. Every error names the file and the key ("bad_config").
core::Result<BalancerConfig> load_balancer_config(const std::string& main_path,
                                                  const std::vector<std::string>& overrides);

// The same from parsed documents (tests): the main document's channels_file and
// caches_file are resolved but not read.
core::Result<BalancerConfig> read_main_config(const core::ConfigDocument& main);
// Fill config.channels / config.caches; cross-checks against config.origins.
core::Status read_channels(const core::ConfigDocument& doc, BalancerConfig& config);
core::Status read_caches(const core::ConfigDocument& doc, BalancerConfig& config);
// Fill config.api.products from the products file; cross-checks against the
// channels already read (a paid channel's product exists and unlocks it).
core::Status read_products(const core::ConfigDocument& doc, BalancerConfig& config);

// The running config with what is derived from it. Immutable once published:
// any thread reads it.
struct RuntimeConfig {
  BalancerConfig config;
  std::optional<signing::UrlSigner> signer;
  std::optional<signing::PlaybackTickets> tickets;
  uint64_t generation = 0;  // bumps on every applied config (invalidates signed-link memos)

  const ChannelConfig* find_channel(const std::string& id) const { return config.find_channel(id); }
};

}  // namespace balancer
