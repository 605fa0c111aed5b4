// Which idle connection makes room when the connection table is full (docs/http.md § Connection
// limits): a pure choice over the oldest idle connections of one loop, so a flood of idle
// connections from many networks cannot keep a new viewer out, and viewers already served
// are the last to go.
//
// A connection is idle while it waits for a request: just accepted and silent (or still in its
// TLS handshake, or its head not complete), or kept alive between requests. One with a request
// in progress, a reply being written or a close under way is never a candidate.
#pragma once

#include <cstddef>
#include <span>

namespace http {

// One idle connection as the choice sees it.
struct IdleCandidate {
  size_t network_open = 1;  // connections open from its network (ConnectionLimits::open_in_network)
  bool served = false;      // it has had a request answered
};

// The oldest idle connections a choice looks at: a bounded cost per accept when full.
inline constexpr size_t kIdleCandidates = 32;

// The index in `oldest_first` (oldest idle first) of the connection to close: the one from the
// network holding the most connections (a flood's networks hold many, a viewer's few); among
// those, one that was never served (it asked for nothing since it connected); then the oldest.
// `oldest_first.size()` when it is empty.
size_t choose_idle_victim(std::span<const IdleCandidate> oldest_first);

class ConnectionLimits;

// A connection of either protocol as its loop's IdleList holds it: an HTTP/1 connection between
// requests, an HTTP/2 one with no stream open (an idle h2 flood otherwise held its places for
// good). Loop thread only.
class IdleConnection {
 public:
  // What the choice weighs.
  virtual IdleCandidate idle_candidate(ConnectionLimits& limits) const = 0;
  // Closes the connection: its place in the table is free when this returns.
  virtual void evict() = 0;
  IdleConnection* newer_idle() const { return idle_next_; }

 protected:
  IdleConnection() = default;
  virtual ~IdleConnection() = default;

 private:
  friend class IdleList;
  IdleConnection* idle_prev_ = nullptr;  // older in the list
  IdleConnection* idle_next_ = nullptr;  // newer
  bool idle_ = false;                    // in the list
};

// One loop's idle connections, oldest first, linked through the connections themselves: no
// allocation as a connection goes idle and busy again.
class IdleList {
 public:
  // Into the list at its newest end, or out of it (a no-op when already so).
  void set(IdleConnection& connection, bool idle);
  IdleConnection* oldest() const { return oldest_; }

 private:
  IdleConnection* oldest_ = nullptr;
  IdleConnection* newest_ = nullptr;
};

}  // namespace http
