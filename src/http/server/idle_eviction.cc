#include "http/server/idle_eviction.h"

namespace http {

size_t choose_idle_victim(std::span<const IdleCandidate> oldest_first) {
  size_t chosen = oldest_first.size();
  for (size_t i = 0; i < oldest_first.size(); ++i) {
    if (chosen == oldest_first.size()) {
      chosen = i;
      continue;
    }
    const IdleCandidate& c = oldest_first[i];
    const IdleCandidate& best = oldest_first[chosen];
    // Strictly before the best so far: among equals the older (earlier) one stays.
    if (c.network_open != best.network_open ? c.network_open > best.network_open
                                            : (!c.served && best.served)) {
      chosen = i;
    }
  }
  return chosen;
}

void IdleList::set(IdleConnection& connection, bool idle) {
  if (idle == connection.idle_) return;
  if (idle) {
    connection.idle_prev_ = newest_;
    connection.idle_next_ = nullptr;
    (newest_ != nullptr ? newest_->idle_next_ : oldest_) = &connection;
    newest_ = &connection;
  } else {
    IdleConnection* older = connection.idle_prev_;
    IdleConnection* newer = connection.idle_next_;
    (older != nullptr ? older->idle_next_ : oldest_) = newer;
    (newer != nullptr ? newer->idle_prev_ : newest_) = older;
    connection.idle_prev_ = nullptr;
    connection.idle_next_ = nullptr;
  }
  connection.idle_ = idle;
}

}  // namespace http
