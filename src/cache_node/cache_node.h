// The cache node: serves chunks of configured origins under /o/<origin>/<path>,
// fetching each chunk from its upstream (origin or parent cache node) once,
// however many viewers ask at the same moment; waiters receive bytes as they
// arrive, on whichever loop they asked. Also /ping, /health and /metrics.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache_node/rules/freshness.h"
#include "cache_node/rules/query_policy.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/result.h"
#include "http/server/cors.h"
#include "http/server/http_server.h"
#include "http/server/service_host.h"

namespace cache_node {

struct OriginConfig {
  std::string url;          // base URL; the chunk path is appended
  OriginQueryPolicy query;  // which query parameters are part of the key and the fetch
  // Request headers copied from the viewer's request that starts an upstream fetch (a
  // tracing id); none by default: upstream requests are anonymous, one per object.
  std::vector<std::string> forward_request_headers;
  // "twin": another origin that holds the same chunks under the same paths, byte for byte (the
  // second encoder of an epoch-locked pair): a fetch that fails here is asked of it.
  std::string twin;
};

struct CacheNodeConfig {
  std::string node_id;
  std::string site;
  http::HttpServerOptions server;
  std::string data_dir;
  std::map<std::string, OriginConfig> origins;
  std::optional<std::string> parent;  // base URL of a parent cache node
  // The site's nodes (id → base URL), this one included; empty: each node
  // fetches from upstream itself. A chunk's owner among them (site_owner.h)
  // fetches it upstream, the others from the owner.
  std::map<std::string, std::string> site_nodes;
  // The key the site's nodes prove their requests to each other with (signing/site_fetch.h);
  // required when site_nodes lists other nodes.
  std::string site_key;
  // How long a node waits for the owner's response head, or its next body byte,
  // before going upstream itself.
  std::chrono::milliseconds site_owner_wait{1000};
  // POST /prefetch: bearer keys (empty: the endpoint refuses everything), prefetch
  // flights in progress at most, prefetches started per second at most.
  std::vector<std::string> prefetch_keys;
  size_t prefetch_max_inflight = 64;
  double prefetch_max_per_s = 200;
  // A viewer's CMCD `nor` (the next object it will ask for) starts its prefetch here, within
  // the same bounds; the link must be one this node would serve the viewer (signed).
  bool prefetch_next_object = true;
  bool signing_required = true;
  std::vector<std::string> signing_keys;
  uint64_t memory_bytes = 256ull << 20;
  uint64_t disk_bytes = 4ull << 30;
  uint64_t max_object_bytes = 64ull << 20;
  size_t max_entries = 100000;  // per storage tier
  std::chrono::milliseconds negative_ttl{2000};
  size_t negative_max_entries = 10000;  // remembered 404s at most
  FreshnessDefaults freshness;          // cache.*: lifetimes without upstream freshness information
  // cache.keep_warm_s: a short-lived object viewers poll is refreshed by the node as it expires
  // for this long after a viewer last read it (serving/keep_warm.h); 0: never.
  std::chrono::seconds keep_warm{30};
  std::chrono::milliseconds upstream_connect_timeout{2000};
  std::chrono::milliseconds upstream_timeout{30000};
  bool upstream_http2 = true;
  std::string upstream_ca_file;  // CA bundle for https upstreams; empty = system store
  uint32_t overload_max_connections = 10000;
  double overload_max_egress_mbps = 10000;
  // overload.connection_table_percent: overloaded when the client connections open are this
  // share of server.max_connections or more (new viewers could soon not connect at all).
  uint32_t overload_connection_table_percent = 90;
  // Who may read /playback (http/server/operator_access.h): this key ("" = none accepted, else
  // at least 16 characters) in X-Operator-Key or ?key=, and loopback clients when allowed.
  std::string operator_key;
  bool operator_allow_loopback = true;
  // The channel ids (what players send as CMCD cid) stalls are labelled with; any other counts
  // as "other" (cmcd/quality_meter.h).
  std::vector<std::string> playback_channels;
  std::string log_level = "info";
  http::CorsOptions cors;  // which web origins may read the node's answers (section "cors")
};

// Reads and validates the config; errors name the file and the key.
core::Result<CacheNodeConfig> load_cache_node_config(const core::ConfigDocument& doc);

// The whole node: shared state (store, fetches in progress, config snapshot)
// plus one set of handlers per event loop. Created on the main thread by the
// service host (http/server/service_host.h), which then runs the loops.
class CacheNode : public http::Service<CacheNodeConfig> {
 public:
  static core::Result<std::unique_ptr<CacheNode>> create(http::ServiceContext& context,
                                                         const CacheNodeConfig& config);
  ~CacheNode() override;

  void attach(size_t index, http::HttpServer& server) override;
  // Home loop. Validates `config` and builds its snapshot (signer) without
  // touching running state; the returned swap, which cannot fail, changes at once
  // origins (and their query policies), parent, signing, negative TTL and count,
  // cache lifetimes (for responses received from then on), overload limits and
  // log level. Listen address, threads, data_dir and storage sizes need a restart
  // (a warning says so). An error leaves everything running as it was.
  core::Result<http::ReloadSwap> prepare_reload(CacheNodeConfig config) override;

  struct Shared;

 private:
  explicit CacheNode(std::unique_ptr<Shared> shared);
  std::unique_ptr<Shared> shared_;
};

}  // namespace cache_node
