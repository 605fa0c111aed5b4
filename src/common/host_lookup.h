// Host names for the clients that connect by address (Redis, PostgreSQL): tell an
// IP literal from a name, and resolve a name. Resolving blocks: call it on a
// worker thread, never on an event loop.
#pragma once

#include <string>

namespace common {

// True for an IPv4 or IPv6 address literal (nothing to resolve). Any thread.
bool is_ip_literal(const std::string& host);

// The first address `host` resolves to, as text; "" when it does not resolve.
// Blocking (getaddrinfo): worker threads only.
std::string resolve_host(const std::string& host);

}  // namespace common
