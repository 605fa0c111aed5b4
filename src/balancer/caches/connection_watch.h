// A connection kept open to each cache node's health address, so that the death of a node's
// process (kill -9, a crash: its kernel closes the connection) is seen within a round trip
// instead of at the next health poll; the poller then polls that node at once, and a refused
// connection takes it down (docs/balancer.md § Health polling). A Low-Latency viewer asks for a
// new part every ~0.3 s: each one the balancer lists on a dead node before it notices is a
// request that fails, and each player retries it there (Shaka, hls.js's backoff) or changes
// rendition (VHS). Nothing is sent on the connection; whatever the node sends is discarded.
// Only numeric hosts are watched (no name lookup on the loop). Loop thread only.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace balancer {

// The socket address of an http:// or https:// URL whose host is a numeric IPv4 or bracketed
// IPv6 address (the scheme's port unless one is given); nullopt otherwise.
std::optional<sockaddr_storage> numeric_url_address(std::string_view url);

class ConnectionWatch {
 public:
  // `on_closed(id)`: the connection to node `id` closed or could not be made.
  ConnectionWatch(event_base& base, const core::Clock& clock,
                  std::function<void(const std::string& id)> on_closed);
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // The nodes (id → health URL) to watch from now on; connects to each new one.
  void configure(const std::map<std::string, std::string>& urls);
  // Connects to `id` again unless connected, connecting, or tried within `min_gap` (a node up
  // but closing the connection at once costs one attempt per gap, never a loop).
  void rearm(const std::string& id, std::chrono::milliseconds min_gap);
  void stop();
  bool connected(const std::string& id) const;

 private:
  struct Watched {
    ConnectionWatch* owner = nullptr;
    std::string id;
    sockaddr_storage address{};
    bufferevent* connection = nullptr;
    bool open = false;
    core::SteadyTime last_attempt{};
  };
  void connect(Watched& w);
  static void close(Watched& w);
  static void on_event(bufferevent* bev, short what, void* arg);

  event_base& base_;
  const core::Clock& clock_;
  std::function<void(const std::string& id)> on_closed_;
  std::map<std::string, std::unique_ptr<Watched>> watched_;
};

}  // namespace balancer
