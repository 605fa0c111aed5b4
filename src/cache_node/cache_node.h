// The cache node: serves chunks of configured origins under /o/<origin>/<path>,
// fetching each chunk from its upstream (origin or parent cache node) once,
// however many viewers ask at the same moment; waiters receive bytes as they
// arrive. Also /ping, /health and /metrics. Loop thread only.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/result.h"

namespace cache_node {

struct OriginConfig {
  std::string url;  // base URL; the chunk path is appended
};

struct CacheNodeConfig {
  std::string node_id;
  std::string site;
  common::HttpServerOptions server;
  std::string data_dir;
  std::map<std::string, OriginConfig> origins;
  std::optional<std::string> parent;  // base URL of a parent cache node
  bool signing_required = true;
  std::vector<std::string> signing_keys;
  uint64_t memory_bytes = 256ull << 20;
  uint64_t disk_bytes = 4ull << 30;
  uint64_t max_object_bytes = 64ull << 20;
  std::chrono::milliseconds negative_ttl{2000};
  std::chrono::milliseconds upstream_connect_timeout{2000};
  std::chrono::milliseconds upstream_timeout{30000};
  bool upstream_http2 = true;
  std::string upstream_ca_file;  // CA bundle for https upstreams; empty = system store
  uint32_t overload_max_connections = 10000;
  double overload_max_egress_mbps = 10000;
  std::string log_level = "info";
};

// Reads and validates the config; errors name the file and the key.
common::Result<CacheNodeConfig> load_cache_node_config(const common::ConfigDocument& doc);

class CacheNode {
 public:
  static common::Result<std::unique_ptr<CacheNode>> create(event_base& base, CacheNodeConfig config);
  ~CacheNode();

  uint16_t port() const;
  // Applies a new config: origins, signing, limits of behaviour, log level.
  // Listen address, data_dir and storage sizes need a restart (a warning says so).
  void reload(CacheNodeConfig config);
  // Graceful shutdown: stop accepting, finish replies, then on_drained.
  void drain(std::function<void()> on_drained);

  struct Impl;

 private:
  explicit CacheNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cache_node
