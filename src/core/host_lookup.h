// Host names for the clients that connect by address (Redis, PostgreSQL): tell an
// IP literal from a name, and resolve a name. Resolving blocks: call it on a
// worker thread, never on an event loop.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/answer_here.h"

struct sockaddr;

namespace core {

class EventLoop;
class WorkerThread;

// True for an IPv4 or IPv6 address literal (nothing to resolve). Any thread.
bool is_ip_literal(const std::string& host);

// The IP address of `address` as text ("127.0.0.1", "::1"); "" for a family other than IPv4 and
// IPv6. Any thread.
std::string address_text(const sockaddr* address);

// The first address `host` resolves to, as text; "" when it does not resolve.
// Blocking (getaddrinfo): worker threads only.
std::string resolve_host(const std::string& host);

// The address a client connects to, learned once: at once for an IP literal, else looked up on
// a thread of its own (started on first need) so the loop never blocks. Loop thread only.
class HostAddress {
 public:
  HostAddress(EventLoop& loop, std::string host);
  ~HostAddress();  // joins the lookup thread (a lookup in flight finishes first)
  HostAddress(const HostAddress&) = delete;
  HostAddress& operator=(const HostAddress&) = delete;

  const std::string& host() const { return host_; }
  // The address, or "" while not known.
  const std::string& address() const { return address_; }
  bool known() const { return !address_.empty(); }

  // Known (an IP literal, or learned before): true. Otherwise starts a lookup and returns false;
  // `found(address)` runs later on the loop, "" when the name does not resolve, unless this
  // object is gone by then.
  bool known_or_lookup(std::function<void(std::string address)> found);
  void learned(std::string address) { address_ = std::move(address); }
  // Stops looking up (joins); a `found` already handed to the loop still runs.
  void stop();

 private:
  EventLoop& loop_;
  std::string host_;
  std::string address_;
  Lifetime lifetime_;  // outlives lookups_ (joined first); answers arriving later are dropped
  std::unique_ptr<WorkerThread> lookups_;
};

}  // namespace core
