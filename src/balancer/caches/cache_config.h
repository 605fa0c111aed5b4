// The cache nodes as the configuration names them (the caches file, section "prefetch"): read
// by operator/balancer_config.cc, used by this room.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/cidr.h"

namespace balancer {

// One entry of the caches file.
struct CacheConfig {
  std::string id;
  std::string site;
  std::string url;                         // public base URL viewers use, no trailing slash
  std::string health_url;                  // default url + "/health"
  std::vector<std::string> networks_text;  // as written, for /health
  std::vector<core::Cidr> networks;        // coverage, IPv4 and IPv6
};

// Section "prefetch": new segments of live sources named to the cache nodes
// serving them (prefetch_client.h); off without a key.
struct PrefetchConfig {
  std::string key;          // the nodes' prefetch.keys holds it; "" = no prefetch
  double max_per_s = 50;    // requests sent per second at most
  size_t max_queue = 256;   // requests waiting at most (over it the oldest is dropped)
  size_t max_inflight = 8;  // requests in progress at most
  std::chrono::milliseconds timeout{2000};  // per request
};

}  // namespace balancer
