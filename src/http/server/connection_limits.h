// How many client connections a process holds, in all and per client address (an IPv6 client by
// its network, core::address_group), on every listener of every loop (docs/http.md § Connection
// limits). A connection is counted from its accept to its close, whatever it becomes (HTTP/1,
// TLS, HTTP/2): the accepting loop asks admit() before it spends anything on the socket, and the
// ConnectionSlot it gets back gives the place up when destroyed.
//
// Several loops accept from one listening socket, so the counts are process-wide: the total
// is one atomic, and the per-address table is split into shards, each a map under its own
// mutex, chosen by a hash of the address. One table (not one per loop with a share of the
// limit each) because the loops do not see equal shares of one address: a phone's
// connections land on whichever loop is free, and a per-loop share would refuse an address
// long before it reached its limit. A shard's lock is held for one map update per accept
// and per close; with 64 shards two loops rarely meet on one.
//
// At the total, a server makes room by closing an idle connection (http/server/idle_eviction.h)
// before it refuses; when none is idle, kOperatorReserve more are admitted for the operator's
// paths only (HttpServerOptions::operator_paths), so /health and /metrics answer however full
// the table is of connections at work.
//
// Thread-safe; must outlive every slot it handed out.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cidr.h"
#include "core/metrics.h"

namespace http {

struct ConnectionLimitOptions {
  size_t max_connections = 0;              // in all; 0 = default_max_connections()
  size_t max_connections_per_address = 0;  // per client network; 0 = no limit
  std::vector<core::Cidr> exempt;          // addresses not limited per address (a venue's NAT)
  // "Per address" is per core::address_group: an IPv4 address, an IPv6 address's first this
  // many bits (a phone's /64 is one client however many of its addresses it uses).
  int ipv6_prefix_length = core::kDefaultIpv6PrefixLength;
};

// The total when the config names none: nine tenths of the open-file limit `nofile`, less a
// reserve for what is not a client (origin fetches, files, LMDB, the loops' own descriptors):
// an eighth of the rest, at least 16 and at most 4096.
size_t default_max_connections(uint64_t nofile);
// The same for this process's soft RLIMIT_NOFILE.
size_t default_max_connections();

// Connections admitted past max_connections when no idle one could be closed, each for one
// request to an operator path (HttpServerOptions::operator_paths).
inline constexpr size_t kOperatorReserve = 16;

class ConnectionLimits;

// One admitted connection's place; empty when default-constructed or moved from. Movable
// between threads with the connection it belongs to.
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  ~ConnectionSlot() { release(); }
  ConnectionSlot(ConnectionSlot&& other) noexcept { *this = std::move(other); }
  ConnectionSlot& operator=(ConnectionSlot&& other) noexcept;
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  void release();
  // Admitted into the operator's reserve (ConnectionLimits::admit with `reserve`): serves one
  // request to an operator path.
  bool operator_only() const { return operator_only_; }

 private:
  friend class ConnectionLimits;
  ConnectionLimits* limits_ = nullptr;
  bool per_address_ = false;  // counted in the per-address table under address_
  bool operator_only_ = false;
  core::IpAddress address_;  // the client's network (core::address_group)
};

class ConnectionLimits {
 public:
  enum class Verdict { admitted, over_total, over_address };
  // How the total applies: `only`, it is the limit and a refusal is counted; `first`, the same
  // uncounted (the caller makes room and asks again); `reserve`, kOperatorReserve more.
  enum class Pass { only, first, reserve };

  // Registers in `metrics` the gauge http_connections_open and the counters
  // http_connections_refused_total{reason="total"|"per_address"}. `options.max_connections`
  // 0 takes default_max_connections().
  ConnectionLimits(ConnectionLimitOptions options, core::MetricsRegistry& metrics);
  ConnectionLimits(const ConnectionLimits&) = delete;
  ConnectionLimits& operator=(const ConnectionLimits&) = delete;

  // Any thread: whether a connection from `peer` may be served; when admitted, `slot` holds
  // its place. A refusal is counted. A peer that is not IP (a Unix socket) is limited in all
  // only. An exempt peer is known by its whole address; the others are counted by their
  // network (core::address_group). A slot admitted past max_connections (Pass::reserve) is
  // operator_only().
  Verdict admit(const sockaddr* peer, ConnectionSlot& slot, Pass pass = Pass::only);
  // Any thread: the connections open from `slot`'s network (its own counted); 1 for a peer
  // counted in all only (exempt, or not IP). What makes a network a large holder
  // (idle_eviction.h).
  size_t open_in_network(const ConnectionSlot& slot);

  size_t open() const { return open_.load(std::memory_order_relaxed); }
  size_t max_connections() const { return max_total_; }
  // Any thread: whether the connections open are `percent` of max_connections() or more, so the
  // process can take few more clients (a cache node's /health says it is overloaded then).
  bool nearly_full(uint32_t percent) const { return open() * 100 >= max_total_ * percent; }
  size_t max_connections_per_address() const { return max_per_address_; }

 private:
  friend class ConnectionSlot;
  struct AddressHash {
    size_t operator()(const core::IpAddress& a) const;
  };
  struct AddressEqual {
    bool operator()(const core::IpAddress& a, const core::IpAddress& b) const {
      return a.bytes == b.bytes;
    }
  };
  struct alignas(64) Shard {
    std::mutex mutex;
    std::unordered_map<core::IpAddress, uint32_t, AddressHash, AddressEqual>
        open;  // no zero entries
  };
  static constexpr size_t kShards = 64;

  Shard& shard_of(const core::IpAddress& address) {
    return shards_[AddressHash{}(address) % kShards];
  }
  bool exempt(const core::IpAddress& address) const;
  void release(ConnectionSlot& slot);

  const size_t max_total_;
  const size_t max_per_address_;
  const int ipv6_prefix_length_;
  const std::vector<core::Cidr> exempt_;
  std::atomic<size_t> open_{0};
  std::array<Shard, kShards> shards_;
  core::Gauge& open_gauge_;
  core::Counter& refused_total_;
  core::Counter& refused_per_address_;
  core::Counter& admitted_reserve_;
};

}  // namespace http
