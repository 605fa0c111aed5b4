// CIDR parsing and matching, IPv4 and IPv6; the network a client counts as in per-address limits.
#include "core/cidr.h"

#include <doctest/doctest.h>

#include <utility>
#include <vector>

namespace core {
namespace {

bool in(const char* cidr, const char* address) {
  auto net = Cidr::parse(cidr);
  REQUIRE_MESSAGE(net.has_value(), cidr);
  auto ip = IpAddress::parse(address);
  REQUIRE_MESSAGE(ip.has_value(), address);
  return net->contains(*ip);
}

using Memberships = std::vector<std::pair<const char*, const char*>>;  // network, address

// Each address of `inside` is in its network; no address of `outside` is.
void check_membership(const Memberships& inside, const Memberships& outside) {
  for (const auto& [cidr, address] : inside) CHECK_MESSAGE(in(cidr, address), cidr, " ", address);
  for (const auto& [cidr, address] : outside) {
    CHECK_FALSE_MESSAGE(in(cidr, address), cidr, " ", address);
  }
}

TEST_CASE("IPv4 networks contain exactly the addresses under their prefix") {
  check_membership({{"10.0.0.0/8", "10.1.2.3"},
                    {"10.0.0.0/8", "10.255.255.255"},
                    {"192.168.4.0/22", "192.168.7.200"},
                    {"172.16.5.4/32", "172.16.5.4"},
                    {"0.0.0.0/0", "203.0.113.9"}},
                   {{"10.0.0.0/8", "11.0.0.0"},
                    {"10.0.0.0/8", "9.255.255.255"},
                    {"192.168.4.0/22", "192.168.8.1"},
                    {"172.16.5.4/32", "172.16.5.5"}});
}

TEST_CASE("a bare address is a host network") {
  CHECK(in("127.0.0.1", "127.0.0.1"));
  CHECK_FALSE(in("127.0.0.1", "127.0.0.2"));
  CHECK(in("::1", "::1"));
  CHECK(Cidr::parse("127.0.0.1")->prefix_length() == 32);
  CHECK(Cidr::parse("::1")->prefix_length() == 128);
}

TEST_CASE("IPv6 networks contain exactly the addresses under their prefix") {
  check_membership({{"2001:db8::/32", "2001:db8:ffff::1"},
                    {"fd00:20::/48", "fd00:20:0:5::7"},
                    {"2001:db8:abcd:12::/63", "2001:db8:abcd:13::1"},
                    {"::/0", "2001:db8::1"}},
                   {{"2001:db8::/32", "2001:db9::1"},
                    {"fd00:20::/48", "fd00:20:1::7"},
                    {"2001:db8:abcd:12::/63", "2001:db8:abcd:14::1"}});
}

TEST_CASE("IPv4 and IPv6 never match each other, except IPv4-mapped addresses") {
  CHECK_FALSE(in("::/0", "10.0.0.1"));  // an IPv6 /0 is not "everything"
  CHECK_FALSE(in("0.0.0.0/0", "2001:db8::1"));
  CHECK(in("10.0.0.0/8", "::ffff:10.9.8.7"));  // a dual-stack listener's view of an IPv4 client
  CHECK(IpAddress::parse("::ffff:10.9.8.7")->is_v4());
  CHECK_FALSE(IpAddress::parse("2001:db8::1")->is_v4());
}

TEST_CASE("an IPv6 client counts as its /64 by default, an IPv4 client as its address") {
  // Every address of one /64 is one client; the next /64 is another.
  CHECK(address_group_key("2001:db8:1::1", kDefaultIpv6PrefixLength) == "2001:db8:1::/64");
  CHECK(address_group_key("2001:db8:1:0:ffff:ffff:ffff:ffff", 64) == "2001:db8:1::/64");
  CHECK(address_group_key("2001:db8:1:0:8a2e:370:7334:1", 64) == "2001:db8:1::/64");
  CHECK(address_group_key("2001:db8:1:1::1", 64) == "2001:db8:1:1::/64");
  // IPv4, written either way, is the address itself whatever the IPv6 prefix.
  CHECK(address_group_key("203.0.113.7", 64) == "203.0.113.7");
  CHECK(address_group_key("::ffff:203.0.113.7", 64) == "203.0.113.7");
  CHECK(address_group_key("203.0.113.7", 1) == "203.0.113.7");
  // Not an address (a Unix socket's peer): as it is.
  CHECK(address_group_key("", 64).empty());
  CHECK(address_group_key("not-an-ip", 64) == "not-an-ip");
}

TEST_CASE("the IPv6 prefix length chooses how much of an address names its network") {
  CHECK(address_group_key("2001:db8:abcd:12ff::1", 56) == "2001:db8:abcd:1200::/56");
  CHECK(address_group_key("2001:db8:abcd:12ff::1", 48) == "2001:db8:abcd::/48");
  CHECK(address_group_key("2001:db8:abcd:12ff::1", 61) == "2001:db8:abcd:12f8::/61");
  CHECK(address_group_key("2001:db8::1", 128) == "2001:db8::1");
  CHECK(address_group_key("2001:db8::1", 127) == "2001:db8::/127");
  CHECK(address_group_key("ffff::1", 1) == "8000::/1");
  // Out of range is clamped (the config refuses it before it gets here).
  CHECK(address_group_key("2001:db8::1", 0) == "::/1");
  CHECK(address_group_key("2001:db8::1", 200) == "2001:db8::1");
  // The group is a value: addresses in one network group equal, the network contains them.
  const IpAddress a = address_group(*IpAddress::parse("2001:db8:5:6:7::8"), 64);
  const IpAddress b = address_group(*IpAddress::parse("2001:db8:5:6:ffff::"), 64);
  CHECK(a.bytes == b.bytes);
  CHECK(Cidr::parse("2001:db8:5:6::/64")->contains(a));
  CHECK(a.text() == "2001:db8:5:6::");
  CHECK(IpAddress::parse("10.1.2.3")->text() == "10.1.2.3");
}

TEST_CASE("malformed networks are refused") {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8",
                          "10.0.0.1/8", "2001:db8::/129", "2001:db8::1/32", "host.example/8",
                          "[::1]/128", "10.0.0.0/08/1", "1.2.3.4 /32"}) {
    CHECK_MESSAGE(!Cidr::parse(bad).has_value(), bad);
  }
  CHECK_FALSE(IpAddress::parse("fe80::1%eth0").has_value());
  CHECK_FALSE(IpAddress::parse("1.2.3.256").has_value());
}

}  // namespace
}  // namespace core
