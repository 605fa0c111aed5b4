// Playlist replies handed to connections and not yet written to their sockets (clients that do
// not read hold them): counted for the whole process (playlists.max_unsent_bytes) and, on each
// loop, per client address (playlists.max_unsent_bytes_per_address shared over the loops), so
// that one address's stalled connections cannot take the budget every other viewer needs. The
// address is the caller's key: HttpExchange::remote_network(), an IPv6 client's whole network.
// A reply's bytes count from hold() until the connection releases the reply (written or
// closed). One per loop: its loop's thread only (a reply is released on the loop that wrote it).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "balancer/viewers/held_counts.h"

namespace balancer {

class UnsentReplies {
 public:
  // `process_total`: every loop's count together (any thread adds and subtracts).
  explicit UnsentReplies(std::atomic<size_t>& process_total) : process_total_(process_total) {}

  enum class Room { fits, process_full, address_full };
  // Whether a new reply may be handed out for `address`: the process's count under `budget`,
  // the address's count on this loop under `address_share` (a first reply always fits).
  Room room_for(const std::string& address, size_t budget, size_t address_share) const;

  // A reply body, counted until the last reference to it is gone.
  struct Reply {
    std::string body;
  };
  std::shared_ptr<const Reply> hold(std::string body, const std::string& address);

  // This loop's count for `address` (0 when it holds nothing).
  size_t held_by(const std::string& address) const { return by_address_.held_by(address); }

 private:
  std::atomic<size_t>& process_total_;
  HeldCounts by_address_;
};

}  // namespace balancer
