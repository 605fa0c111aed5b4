// IP addresses and CIDR networks (IPv4 and IPv6) for cache coverage, admission exemptions and
// connection limits, and the network a client counts as in every per-address limit. Pure values
// and functions; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace core {

// An address in IPv6 form: IPv4 addresses are stored as IPv4-mapped IPv6
// (::ffff:a.b.c.d), so "10.1.2.3" and "::ffff:10.1.2.3" are the same address.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4() const;

  // Parses a dotted IPv4 or textual IPv6 address (no brackets, no zone, no port).
  static std::optional<IpAddress> parse(std::string_view text);
  // Dotted for IPv4 (mapped ones too), RFC 5952 text for IPv6.
  std::string text() const;
};

// A network: address and prefix length, in the 128-bit space (IPv4 /n is /96+n).
// IPv6 networks shorter than /96 never contain IPv4 addresses.
class Cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128 host).
  // Fails (nullopt) on a bad address, a prefix out of range, or host bits set
  // after the prefix (e.g. "10.0.0.1/8": almost always a typo in config).
  static std::optional<Cidr> parse(std::string_view text);

  bool contains(const IpAddress& address) const;
  // The prefix length as written (0..32 for IPv4, 0..128 for IPv6).
  int prefix_length() const { return v4_ ? prefix_ - 96 : prefix_; }
  bool is_v4() const { return v4_; }

 private:
  IpAddress network_;
  int prefix_ = 0;  // in the 128-bit space
  bool v4_ = false;
};

// How many leading bits of an IPv6 client's address name its network by default: a phone on a
// mobile network, or a home router, is given a /64 (RFC 6177, 3GPP TS 23.401) and may use any
// of its 2^64 addresses.
inline constexpr int kDefaultIpv6PrefixLength = 64;

// The network a client counts as in every per-address limit and share (connections, unsent
// playlist bytes, anonymous viewers, queue tickets, sign-in attempts): an IPv4 address (or an
// IPv4-mapped IPv6 one, as a dual-stack socket reports it) is itself; an IPv6 address is its
// first `ipv6_prefix_length` bits (1..128, clamped), the rest zero. One host holding a /64
// counts once, not once per address it picks.
IpAddress address_group(const IpAddress& address, int ipv6_prefix_length);
// The same as the text those limits key their tables by: "203.0.113.7" for IPv4 (mapped too),
// "2001:db8:1::/64" for an IPv6 network ("2001:db8::1" at 128). Text that is not an IP address
// (a Unix socket's peer: "") comes back as it is.
std::string address_group_key(std::string_view ip, int ipv6_prefix_length);

}  // namespace core
