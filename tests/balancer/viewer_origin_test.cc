// Who asks, as admission's per-address bounds count it (viewer_origin): an IPv6 client by its
// network of server.ipv6_prefix_length bits, an IPv4 client by its address, nobody from an
// exempt network; anonymous when the viewer made its id up.
#include <doctest/doctest.h>

#include <string>

#include "balancer/balancer_loop.h"

namespace balancer {
namespace viewer_origin_test {

RuntimeConfig config_with(int ipv6_prefix_length, std::vector<const char*> exempt = {}) {
  RuntimeConfig rc;
  rc.config.server.ipv6_prefix_length = ipv6_prefix_length;
  for (const char* network : exempt)
    rc.config.per_address_exempt.push_back(*core::Cidr::parse(network));
  return rc;
}

TEST_CASE("viewer origin: an IPv6 viewer counts as its /64, an IPv4 viewer as its address") {
  const RuntimeConfig rc = config_with(64);
  const ViewerOrigin a = viewer_origin(rc, "2001:db8:7::1", "v:phone");
  const ViewerOrigin b = viewer_origin(rc, "2001:db8:7:0:aaaa:bbbb:cccc:dddd", "t:user");
  CHECK(a.network == "2001:db8:7::/64");
  CHECK(b.network == a.network);
  CHECK(a.anonymous);
  CHECK_FALSE(b.anonymous);
  CHECK(a.source().address == "2001:db8:7::/64");
  CHECK(a.source().anonymous);
  CHECK(viewer_origin(rc, "2001:db8:7:1::1", "v:x").network == "2001:db8:7:1::/64");
  CHECK(viewer_origin(rc, "198.51.100.4", "v:x").network == "198.51.100.4");
  CHECK(viewer_origin(rc, "::ffff:198.51.100.4", "v:x").network == "198.51.100.4");
  CHECK(viewer_origin(config_with(128), "2001:db8:7::1", "v:x").network == "2001:db8:7::1");
  CHECK(viewer_origin(config_with(48), "2001:db8:7:5::1", "v:x").network == "2001:db8:7::/48");
}

TEST_CASE("viewer origin: an exempt address is not counted, whatever its network") {
  const RuntimeConfig rc = config_with(64, {"2001:db8:7::100/120", "10.0.0.0/8"});
  CHECK(viewer_origin(rc, "2001:db8:7::101", "v:x").network.empty());
  CHECK(viewer_origin(rc, "2001:db8:7::101", "v:x").anonymous);
  CHECK(viewer_origin(rc, "10.9.8.7", "v:x").network.empty());
  // The rest of that /64 is counted, as one.
  CHECK(viewer_origin(rc, "2001:db8:7::1", "v:x").network == "2001:db8:7::/64");
}

TEST_CASE(
    "viewer origin: a ticket's viewer id <account>/<device> names the account it counts for") {
  const RuntimeConfig rc = config_with(64, {"10.0.0.0/8"});
  CHECK(viewer_origin(rc, "198.51.100.4", "t:u42/sAbC-_9").account == "u42");
  CHECK(viewer_origin(rc, "198.51.100.4", "t:u42/sAbC-_9").source().account == "u42");
  CHECK(viewer_origin(rc, "10.9.8.7", "t:u42/s1").account == "u42");     // exempt address: still
  CHECK(viewer_origin(rc, "198.51.100.4", "t:u42").account.empty());     // an older ticket: none
  CHECK(viewer_origin(rc, "198.51.100.4", "v:u42/s1").account.empty());  // made up: none
  CHECK(ticket_account("t:/s1").empty());
  CHECK(ticket_account("t:u42/").empty());
  CHECK(ticket_account("t:a/b/c") == "a");
}

}  // namespace viewer_origin_test
}  // namespace balancer
