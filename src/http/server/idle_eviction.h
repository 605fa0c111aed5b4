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

}  // namespace http
