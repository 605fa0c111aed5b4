// Raw TCP to our servers on 127.0.0.1 (and [::1]), for tests that speak below HTTP clients
// (protocol mix-ups, hand-made HTTP/2 clients, request smuggling). TESTS ONLY.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace balancer::test {

// A loopback port nobody listens on right now (bound and released: someone may take it
// before the caller binds it); -1 when none could be had.
int free_loopback_port();
// Whether 127.0.0.1:port accepts a TCP connection.
bool loopback_accepts(int port);

// A blocking socket connected to 127.0.0.1:port whose reads give up after
// `receive_timeout`; -1 when the connection fails. The caller closes it.
int connect_loopback(int port, std::chrono::milliseconds receive_timeout = std::chrono::seconds(5));
// The same from another loopback address (`source`, e.g. "127.0.0.2": all of 127/8 is local
// on Linux), to be another client to a server that counts connections per address.
int connect_loopback_from(const char* source, int port,
                          std::chrono::milliseconds receive_timeout = std::chrono::seconds(5));

// A blocking socket connected to [::1]:port from the IPv6 address `source`, which need not be
// configured anywhere (IP_FREEBIND): with a local route for its network (private_network.h)
// one test process is any number of IPv6 clients. `receive_buffer` > 0 sets SO_RCVBUF first (a
// client that reads slowly). -1 when the connection fails.
int connect_ipv6_from(const std::string& source, int port,
                      std::chrono::milliseconds receive_timeout = std::chrono::seconds(5),
                      int receive_buffer = 0);

// Client sockets, closed with the holder (or by close_all()).
struct Sockets {
  std::vector<int> fds;
  Sockets() = default;
  ~Sockets();
  Sockets(const Sockets&) = delete;
  Sockets& operator=(const Sockets&) = delete;
  void close_all();
};

// Bytes a server sent on `fd` until it closed the connection, or until
// `enough(bytes)` says the caller has what it waited for, or the socket's receive
// timeout passed (at most 256 reads). `closed`: the server closed (EOF or reset).
struct RawRead {
  std::string bytes;
  bool closed = false;
};
RawRead read_raw(int fd, const std::function<bool(const std::string&)>& enough);
RawRead read_until_closed(int fd);
// `bytes` sent on a fresh connection to 127.0.0.1:port (reads give up after
// `receive_timeout`), then read as read_raw() does; "" when it cannot connect.
RawRead exchange_raw(int port, std::string_view bytes,
                     const std::function<bool(const std::string&)>& enough,
                     std::chrono::milliseconds receive_timeout = std::chrono::seconds(3));

// One HTTP/1.1 response cut from a raw byte stream (Content-Length framing only,
// as our servers' complete replies are).
struct RawResponse {
  int status = 0;
  std::string head;  // status line and header lines, CRLFs included
  std::string body;
  bool has_header(const std::string& line) const;  // e.g. "Connection: close" (case-sensitive)
};
// Splits `bytes` into complete responses; `head_first`: the first answers a HEAD
// (no body despite its Content-Length). Stops at the first incomplete one and
// leaves its bytes in `rest`.
std::vector<RawResponse> split_responses(const std::string& bytes, bool head_first = false,
                                         std::string* rest = nullptr);

}  // namespace balancer::test
