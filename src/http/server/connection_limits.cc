#include "http/server/connection_limits.h"

#include <netinet/in.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace http {
namespace {

// The peer's address in IpAddress form (IPv4 mapped into IPv6); false when it is not IP.
bool ip_of(const sockaddr* peer, core::IpAddress& out) {
  if (peer == nullptr) return false;
  if (peer->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(peer);
    out.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(out.bytes.data() + 12, &v4->sin_addr, 4);
    return true;
  }
  if (peer->sa_family == AF_INET6) {
    std::memcpy(out.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr, 16);
    return true;
  }
  return false;
}

}  // namespace

size_t default_max_connections(uint64_t nofile) {
  const uint64_t usable = nofile / 10 * 9;
  const uint64_t reserve = std::clamp<uint64_t>(usable / 8, 16, 4096);
  return static_cast<size_t>(usable > reserve ? usable - reserve : 1);
}

size_t default_max_connections() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return default_max_connections(uint64_t{1} << 20);
  return default_max_connections(static_cast<uint64_t>(limit.rlim_cur));
}

ConnectionSlot& ConnectionSlot::operator=(ConnectionSlot&& other) noexcept {
  if (this != &other) {
    release();
    limits_ = std::exchange(other.limits_, nullptr);
    per_address_ = std::exchange(other.per_address_, false);
    operator_only_ = std::exchange(other.operator_only_, false);
    address_ = other.address_;
  }
  return *this;
}

void ConnectionSlot::release() {
  if (limits_ == nullptr) return;
  std::exchange(limits_, nullptr)->release(*this);
  per_address_ = false;
  operator_only_ = false;
}

ConnectionLimits::ConnectionLimits(ConnectionLimitOptions options, core::MetricsRegistry& metrics)
    : max_total_(options.max_connections > 0 ? options.max_connections : default_max_connections()),
      max_per_address_(options.max_connections_per_address),
      ipv6_prefix_length_(options.ipv6_prefix_length),
      exempt_(std::move(options.exempt)),
      open_gauge_(metrics.gauge("http_connections_open",
                                "Client connections open (every listener, every protocol)")),
      refused_total_(metrics.counter("http_connections_refused_total",
                                     "Client connections refused at accept, by the limit reached",
                                     "reason=\"total\"")),
      refused_per_address_(metrics.counter(
          "http_connections_refused_total",
          "Client connections refused at accept, by the limit reached", "reason=\"per_address\"")),
      admitted_reserve_(metrics.counter(
          "http_connections_operator_reserve_total",
          "Connections admitted past server.max_connections for an operator path (none idle)")) {
  metrics.gauge("http_connections_max", "server.max_connections in effect")
      .set(static_cast<double>(max_total_));
}

size_t ConnectionLimits::AddressHash::operator()(const core::IpAddress& a) const {
  // FNV-1a: the addresses are the client's to choose, but a shard is only a lock's scope.
  uint64_t h = 14695981039346656037ull;
  for (uint8_t b : a.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

bool ConnectionLimits::exempt(const core::IpAddress& address) const {
  return std::any_of(exempt_.begin(), exempt_.end(),
                     [&](const core::Cidr& network) { return network.contains(address); });
}

ConnectionLimits::Verdict ConnectionLimits::admit(const sockaddr* peer, ConnectionSlot& slot,
                                                  Pass pass) {
  slot.release();
  const size_t before = open_.fetch_add(1, std::memory_order_relaxed);
  if (before >= max_total_ + (pass == Pass::reserve ? kOperatorReserve : 0)) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    if (pass != Pass::first) refused_total_.inc();
    return Verdict::over_total;
  }
  // Counted per network also without a per-address limit: the count tells large holders
  // apart when an idle connection must make room (idle_eviction.h).
  core::IpAddress address;
  if (ip_of(peer, address) && !exempt(address)) {
    address = core::address_group(address, ipv6_prefix_length_);
    Shard& shard = shard_of(address);
    std::lock_guard lock(shard.mutex);
    uint32_t& count = shard.open[address];
    if (max_per_address_ > 0 && count >= max_per_address_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      refused_per_address_.inc();
      return Verdict::over_address;  // count > 0: the entry stays as it was
    }
    ++count;
    slot.per_address_ = true;
    slot.address_ = address;
  }
  slot.limits_ = this;
  slot.operator_only_ = before >= max_total_;
  if (slot.operator_only_) admitted_reserve_.inc();
  open_gauge_.add(1);
  return Verdict::admitted;
}

size_t ConnectionLimits::open_in_network(const ConnectionSlot& slot) {
  if (!slot.per_address_) return 1;
  Shard& shard = shard_of(slot.address_);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(slot.address_);
  return it == shard.open.end() ? 1 : it->second;
}

void ConnectionLimits::release(ConnectionSlot& slot) {
  if (slot.per_address_) {
    Shard& shard = shard_of(slot.address_);
    std::lock_guard lock(shard.mutex);
    auto it = shard.open.find(slot.address_);
    if (it != shard.open.end() && --it->second == 0) shard.open.erase(it);
  }
  open_.fetch_sub(1, std::memory_order_relaxed);
  open_gauge_.add(-1);
}

}  // namespace http
