// Which cache node a viewer's chunk links lead to (DESIGN.md flow 2), as a pure
// function of the configured nodes, their current usability and the request:
//   1. the viewer's cache id, if that node is configured and usable;
//   2. another usable node of the same site as the viewer's cache id;
//   3. a usable node whose coverage networks contain the viewer's address
//      (longest prefix wins);
//   4. origin.
// "Usable" = healthy and not overloaded (CacheHealth::usable). Among equals, the
// viewer's hash picks one, so a viewer sticks to the same sibling across
// refreshes while viewers as a whole spread over the siblings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/cidr.h"

namespace balancer {

// A view of one configured cache node; the caller keeps the pointees alive.
struct CacheCandidate {
  std::string_view id;
  std::string_view site;
  const std::vector<core::Cidr>* networks = nullptr;  // may be null (no coverage)
  bool usable = false;
};

struct CacheChoice {
  enum class Reason { requested, same_site, network, origin };
  std::optional<size_t> index;  // into the candidates; nullopt = origin
  Reason reason = Reason::origin;
};

const char* to_string(CacheChoice::Reason reason);

// `requested_id` may be empty or unknown; `viewer_ip` may be nullopt (unparsable).
CacheChoice choose_cache(const std::vector<CacheCandidate>& caches, std::string_view requested_id,
                         const std::optional<core::IpAddress>& viewer_ip, uint64_t viewer_hash);

// A stable 64-bit hash (FNV-1a) of a viewer key, for choose_cache.
uint64_t viewer_hash(std::string_view viewer_key);

}  // namespace balancer
