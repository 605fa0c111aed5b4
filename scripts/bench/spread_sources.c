// A client's loopback connections spread over several source addresses (127.0.0.2 and up), for
// wrk at stadium counts: every connection from one address to one port needs its own ephemeral
// port, and past about 14,000 of them connect() slows down as the kernel searches the range
// (32768-60999) for a free one, so a run measures connection setup rather than serving.
// Loaded with LD_PRELOAD; SPREAD_SOURCES=N uses N addresses. Every server in a run gets the
// same clients. Built by lib.sh (spread_sources_library).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*ConnectFn)(int, const struct sockaddr*, socklen_t);

int connect(int fd, const struct sockaddr* to, socklen_t length) {
  static ConnectFn real_connect;
  static atomic_uint next;
  if (real_connect == NULL) real_connect = (ConnectFn)dlsym(RTLD_NEXT, "connect");
  const char* count_text = getenv("SPREAD_SOURCES");
  const int count = count_text != NULL ? atoi(count_text) : 0;
  if (count > 0 && to != NULL && to->sa_family == AF_INET &&
      length >= (socklen_t)sizeof(struct sockaddr_in) &&
      (ntohl(((const struct sockaddr_in*)to)->sin_addr.s_addr) >> 24) == 127) {
    struct sockaddr_in from = {0};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000002u + atomic_fetch_add(&next, 1u) % (unsigned)count);
    const int one = 1;
    // The port is chosen at connect() for the whole 4-tuple, not reserved at bind().
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    (void)bind(fd, (const struct sockaddr*)&from, sizeof from);  // failing: connects as asked
  }
  return real_connect(fd, to, length);
}
