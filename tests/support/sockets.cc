#include "support/sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace balancer::test {

namespace {

sockaddr_in loopback_address(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// `fd` when it is bound and connected (`ok`), its reads giving up after `receive_timeout`;
// else closed, and -1.
int connected_or_closed(int fd, bool ok, std::chrono::milliseconds receive_timeout) {
  if (!ok) {
    close(fd);
    return -1;
  }
  auto ms = receive_timeout.count();
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

}  // namespace

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = loopback_address(0);
  int port = -1;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool loopback_accepts(int port) {
  const int fd = connect_loopback(port);
  if (fd < 0) return false;
  close(fd);
  return true;
}

int connect_loopback(int port, std::chrono::milliseconds receive_timeout) {
  return connect_loopback_from(nullptr, port, receive_timeout);
}

int connect_loopback_from(const char* source, int port, std::chrono::milliseconds receive_timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  bool ok = true;
  if (source != nullptr) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ok = inet_pton(AF_INET, source, &from.sin_addr) == 1 &&
         bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0;
  }
  sockaddr_in addr = loopback_address(port);
  ok = ok && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  return connected_or_closed(fd, ok, receive_timeout);
}

int connect_ipv6_from(const std::string& source, int port,
                      std::chrono::milliseconds receive_timeout, int receive_buffer) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one);
  if (receive_buffer > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in6 from{};
  from.sin6_family = AF_INET6;
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(static_cast<uint16_t>(port));
  to.sin6_addr = in6addr_loopback;
  const bool ok = inet_pton(AF_INET6, source.c_str(), &from.sin6_addr) == 1 &&
                  bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0 &&
                  connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  return connected_or_closed(fd, ok, receive_timeout);
}

Sockets::~Sockets() {
  close_all();
}

void Sockets::close_all() {
  for (int fd : fds) close(fd);
  fds.clear();
}

RawRead read_raw(int fd, const std::function<bool(const std::string&)>& enough) {
  RawRead out;
  char buf[16384];
  for (int i = 0; i < 256 && !enough(out.bytes); ++i) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      out.closed = true;
      break;
    }
    if (n < 0) break;  // the receive timeout
    out.bytes.append(buf, static_cast<size_t>(n));
  }
  return out;
}

RawRead read_until_closed(int fd) {
  return read_raw(fd, [](const std::string&) { return false; });
}

RawRead exchange_raw(int port, std::string_view bytes,
                     const std::function<bool(const std::string&)>& enough,
                     std::chrono::milliseconds receive_timeout) {
  const int fd = connect_loopback(port, receive_timeout);
  if (fd < 0) return {};
  (void)!write(fd, bytes.data(), bytes.size());
  RawRead out = read_raw(fd, enough);
  close(fd);
  return out;
}

bool RawResponse::has_header(const std::string& line) const {
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}

std::vector<RawResponse> split_responses(const std::string& bytes, bool head_first,
                                         std::string* rest) {
  std::vector<RawResponse> out;
  size_t at = 0;
  while (at < bytes.size()) {
    size_t end = bytes.find("\r\n\r\n", at);
    if (end == std::string::npos || bytes.compare(at, 5, "HTTP/") != 0) break;
    RawResponse r;
    r.head = bytes.substr(at, end + 4 - at);
    size_t space = r.head.find(' ');
    r.status = space == std::string::npos ? 0 : std::atoi(r.head.c_str() + space + 1);
    size_t length = 0;
    size_t cl = r.head.find("\r\nContent-Length: ");
    if (cl != std::string::npos) length = std::strtoull(r.head.c_str() + cl + 18, nullptr, 10);
    if (head_first && out.empty()) length = 0;
    if (end + 4 + length > bytes.size()) break;
    r.body = bytes.substr(end + 4, length);
    at = end + 4 + length;
    out.push_back(std::move(r));
  }
  if (rest != nullptr) *rest = bytes.substr(at);
  return out;
}

}  // namespace balancer::test
