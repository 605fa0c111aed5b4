#include "balancer/sources/delivery_directives.h"

namespace balancer {

std::string DeliveryDirectives::query() const {
  std::string out;
  if (msn) out.append("_HLS_msn=").append(std::to_string(*msn));
  if (part) out.append(out.empty() ? "" : "&").append("_HLS_part=").append(std::to_string(*part));
  if (!skip.empty()) out.append(out.empty() ? "" : "&").append("_HLS_skip=").append(skip);
  return out;
}

}  // namespace balancer
