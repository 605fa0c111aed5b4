// A viewer's LL-HLS delivery directives, as the fetch loop forwards them to origin and keys its
// blocking reloads by them (viewers/request_params.h reads them from the viewer's URL).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace balancer {

// LL-HLS blocking playlist reload (_HLS_msn / _HLS_part) and delta update (_HLS_skip).
struct DeliveryDirectives {
  std::optional<uint64_t> msn;
  std::optional<uint64_t> part;
  std::string skip;  // "", "YES" or "v2"

  bool blocking() const { return msn.has_value(); }
  bool any() const { return msn.has_value() || !skip.empty(); }
  // "_HLS_msn=..&_HLS_part=..&_HLS_skip=.." in that order, or "".
  std::string query() const;
};

}  // namespace balancer
