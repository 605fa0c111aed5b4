// Playlist replies handed to connections and not yet written to their sockets (clients that do
// not read hold them): counted for the whole process (playlists.max_unsent_bytes) and, on each
// loop, per client address (playlists.max_unsent_bytes_per_address shared over the loops), so
// that one address's stalled connections cannot take the budget every other viewer needs; and
// shared fairly, so that many addresses together cannot either: the largest holders are refused
// first (room_for). The address is the caller's key: HttpExchange::remote_network(), an IPv6
// client's whole network.
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
  struct Limits {
    size_t process = 0;        // playlists.max_unsent_bytes, every loop together
    size_t loop = 0;           // this loop's part of it
    size_t address_share = 0;  // what one address may hold on this loop
  };
  // Whether a reply of `size` bytes may be handed out for `address` (0: asked before the reply
  // is made, to spare making one that would be refused). In order:
  //  - process_full while the process's count is at `limits.process`;
  //  - address_full while the address's count on this loop is at `limits.address_share` (a
  //    first reply always fits it);
  //  - the fair share: a loop that holds nothing takes any reply; otherwise the address's count
  //    with this reply must be at most half of what this loop has free, so that what stays free
  //    is never less than what the address then holds. Non-readers from many addresses are
  //    refused as they grow, the largest first, and what they leave free is at least the last
  //    copy they were given: a viewer with a smaller reply is served. Refused, an address that
  //    holds something here is address_full, one that holds nothing process_full.
  Room room_for(const std::string& address, size_t size, const Limits& limits) const;

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
