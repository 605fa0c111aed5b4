// What the balancer learned each channel may fetch: its source, plus every
// playlist and key its parsed playlists link to on its origin, and what each
// variant costs (BANDWIDTH). A viewer entitled to one channel can never make
// the balancer fetch (or sign) another channel's paths. One per loop: each loop
// learns from the versions it serves. Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "balancer/operator/balancer_config.h"
#include "balancer/sources/source_cache.h"

namespace balancer {

class ChannelAllowlist {
 public:
  // Forgets channels that are gone; a channel whose origin or source changed starts over.
  void retain(const BalancerConfig& config);
  void learn(const ChannelConfig& channel, const SourceVersion& version);
  bool allows_playlist(const ChannelConfig& channel, const std::string& target);
  bool allows_key(const ChannelConfig& channel, const std::string& target);
  // Up to `max` learned playlist targets (to look for a key in after a restart).
  std::vector<std::string> playlists(const ChannelConfig& channel, size_t max);
  // BANDWIDTH of the variant at `target`, 0 when it is not a known variant.
  uint64_t variant_bandwidth(const ChannelConfig& channel, const std::string& target);

 private:
  struct State {
    std::string origin;
    std::string source;
    std::unordered_set<std::string> playlists;
    std::unordered_set<std::string> keys;
    std::unordered_map<std::string, uint64_t> variant_bandwidth;  // by target
    std::unordered_set<uint64_t> learned_serials;
    bool full_logged = false;
  };
  State& state(const ChannelConfig& channel);
  std::unordered_map<std::string, State> channels_;
};

}  // namespace balancer
