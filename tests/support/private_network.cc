#include "support/private_network.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

namespace balancer::test {
namespace {

std::string failed(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string loopback_up() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failed("socket");
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  std::string why;
  if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
    why = failed("reading loopback's flags");
  } else {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) why = failed("bringing loopback up");
  }
  close(fd);
  return why;
}

// `ip -6 route add local <network> dev lo`, through rtnetlink.
std::string add_local_route(const std::string& network) {
  const size_t slash = network.find('/');
  in6_addr destination{};
  if (slash == std::string::npos ||
      inet_pton(AF_INET6, network.substr(0, slash).c_str(), &destination) != 1) {
    return "'" + network + "' is not an IPv6 network";
  }
  const int prefix = std::stoi(network.substr(slash + 1));
  const unsigned loopback = if_nametoindex("lo");
  struct {
    nlmsghdr header;
    rtmsg route;
    char attributes[64];
  } request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  request.header.nlmsg_type = RTM_NEWROUTE;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  request.route.rtm_family = AF_INET6;
  request.route.rtm_dst_len = static_cast<unsigned char>(prefix);
  request.route.rtm_table = RT_TABLE_LOCAL;
  request.route.rtm_protocol = RTPROT_BOOT;
  request.route.rtm_scope = RT_SCOPE_HOST;
  request.route.rtm_type = RTN_LOCAL;
  auto add = [&request](unsigned short type, const void* data, size_t length) {
    auto* attribute = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&request) +
                                                NLMSG_ALIGN(request.header.nlmsg_len));
    attribute->rta_type = type;
    attribute->rta_len = static_cast<unsigned short>(RTA_LENGTH(length));
    std::memcpy(RTA_DATA(attribute), data, length);
    request.header.nlmsg_len =
        NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
  };
  add(RTA_DST, &destination, sizeof destination);
  add(RTA_OIF, &loopback, sizeof loopback);

  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return failed("netlink socket");
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::string why;
  char answer[4096];
  if (sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) < 0) {
    why = failed("asking for a route to " + network);
  } else if (const ssize_t n = recv(fd, answer, sizeof answer, 0); n < 0) {
    why = failed("reading the kernel's answer for " + network);
  } else {
    const auto* header = reinterpret_cast<const nlmsghdr*>(answer);
    if (static_cast<size_t>(n) < NLMSG_LENGTH(sizeof(nlmsgerr)) ||
        header->nlmsg_type != NLMSG_ERROR) {
      why = "no acknowledgement for the route to " + network;
    } else if (const int error = static_cast<const nlmsgerr*>(NLMSG_DATA(header))->error;
               error != 0) {
      errno = -error;
      why = failed("adding a local route to " + network);
    }
  }
  close(fd);
  return why;
}

// The namespace entered and set up, or why not.
std::string enter(const std::vector<std::string>& ipv6_networks) {
  if (unshare(CLONE_NEWNET) != 0)
    return failed("a network namespace of the test's own (unshare, needs root)");
  if (std::string why = loopback_up(); !why.empty()) return why;
  for (const std::string& network : ipv6_networks) {
    if (std::string why = add_local_route(network); !why.empty()) return why;
  }
  // /proc/sys/net is the namespace of the thread that opens it: this one's, not the machine's.
  std::ofstream nonlocal("/proc/sys/net/ipv6/ip_nonlocal_bind");
  nonlocal << "1\n";
  nonlocal.close();
  if (!nonlocal) return "net.ipv6.ip_nonlocal_bind could not be set in the namespace";
  return "";
}

}  // namespace

std::string enter_private_network(const std::vector<std::string>& ipv6_networks) {
  static thread_local std::optional<std::string> outcome;  // of the first call
  if (!outcome) outcome = enter(ipv6_networks);
  return *outcome;
}

}  // namespace balancer::test
