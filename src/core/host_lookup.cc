#include "core/host_lookup.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/answer_here.h"
#include "core/event_loop.h"
#include "core/worker.h"

namespace core {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address == nullptr) return {};
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

std::string resolve_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return {};
  std::string text = address_text(found->ai_addr);
  freeaddrinfo(found);
  return text;
}

HostAddress::HostAddress(EventLoop& loop, std::string host) : loop_(loop), host_(std::move(host)) {
  if (is_ip_literal(host_)) address_ = host_;
}

HostAddress::~HostAddress() = default;

bool HostAddress::known_or_lookup(std::function<void(std::string address)> found) {
  if (known()) return true;
  if (!lookups_) lookups_ = std::make_unique<WorkerThread>();
  run_there_answer_here(
      *lookups_, loop_, lifetime_.watch(), [host = host_] { return resolve_host(host); },
      std::move(found));
  return false;
}

void HostAddress::stop() {
  lookups_.reset();
}

}  // namespace core
