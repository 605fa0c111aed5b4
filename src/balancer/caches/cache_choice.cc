#include "balancer/caches/cache_choice.h"

#include <algorithm>

#include "core/enum_names.h"

namespace balancer {

const char* to_string(CacheChoice::Reason reason) {
  static constexpr const char* kReasonNames[] = {"requested", "same_site", "network", "origin"};
  static_assert(std::size(kReasonNames) == core::enum_count(CacheChoice::Reason::origin));
  return core::enum_name(reason, kReasonNames);
}

uint64_t viewer_hash(std::string_view viewer_key) {
  uint64_t h = 1469598103934665603ull;
  for (char c : viewer_key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

CacheChoice choose_cache(const std::vector<CacheCandidate>& caches, std::string_view requested_id,
                         const std::optional<core::IpAddress>& viewer_ip, uint64_t viewer_hash) {
  CacheChoice choice;
  const CacheCandidate* requested = nullptr;
  size_t requested_index = 0;
  if (!requested_id.empty()) {
    for (size_t i = 0; i < caches.size(); ++i) {
      if (caches[i].id == requested_id) {
        requested = &caches[i];
        requested_index = i;
        break;
      }
    }
  }
  if (requested != nullptr && requested->usable) {
    choice.index = requested_index;
    choice.reason = CacheChoice::Reason::requested;
    return choice;
  }
  std::vector<size_t> pool;
  if (requested != nullptr) {
    for (size_t i = 0; i < caches.size(); ++i) {
      if (i != requested_index && caches[i].usable && caches[i].site == requested->site)
        pool.push_back(i);
    }
    if (!pool.empty()) {
      choice.index = pool[viewer_hash % pool.size()];
      choice.reason = CacheChoice::Reason::same_site;
      return choice;
    }
  }
  if (viewer_ip) {
    int best = -1;
    for (size_t i = 0; i < caches.size(); ++i) {
      if (!caches[i].usable || caches[i].networks == nullptr) continue;
      int longest = -1;
      for (const auto& net : *caches[i].networks) {
        if (net.contains(*viewer_ip))
          longest = std::max(longest, net.prefix_length() + (net.is_v4() ? 96 : 0));
      }
      if (longest < 0) continue;
      if (longest > best) {
        best = longest;
        pool.clear();
      }
      if (longest == best) pool.push_back(i);
    }
    if (!pool.empty()) {
      choice.index = pool[viewer_hash % pool.size()];
      choice.reason = CacheChoice::Reason::network;
      return choice;
    }
  }
  return choice;
}

}  // namespace balancer
