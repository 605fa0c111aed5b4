// A network of the test's own, where one test process is many IPv6 clients: per-address limits
// meet what a phone on a mobile network has, a /64 of its own, only over real connections from
// many of its addresses. TESTS ONLY.
#pragma once

#include <string>
#include <vector>

namespace balancer::test {

// Moves the calling thread, and the children it starts from then on (the servers under test),
// into a network namespace of its own: loopback up, each of `ipv6_networks` ("2001:db8:1::/64")
// routed to loopback as local, and binding to an address no interface has allowed, so that a
// socket may bind any address of those networks and reach [::1] from it (connect_ipv6_from,
// or an HttpRequest's source_address). Nothing outside the process sees the namespace, and it
// goes with the process. Returns "" when done (a second call: what the first returned), else
// why not (not root: it needs CAP_SYS_ADMIN and CAP_NET_ADMIN), for the test to say "skipped".
// Call it from the test's own thread before starting any server.
std::string enter_private_network(const std::vector<std::string>& ipv6_networks);

}  // namespace balancer::test
