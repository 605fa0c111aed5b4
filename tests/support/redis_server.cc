#include "support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace balancer::test {
namespace {

using namespace std::chrono_literals;

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = -1;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace

RedisServer::RedisServer() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int candidate = free_loopback_port();
    if (candidate > 0 && launch(candidate)) {
      port_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot start redis-server (is it installed? scripts/setup.sh)");
}

RedisServer::~RedisServer() {
  stop();
}

bool RedisServer::launch(int port) {
  auto child = std::make_unique<ChildProcess>();
  const std::vector<std::string> argv = {"redis-server",
                                         "--port",
                                         std::to_string(port),
                                         "--bind",
                                         "127.0.0.1",
                                         "--dir",
                                         dir_.path(),
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--logfile",
                                         "",
                                         "--daemonize",
                                         "no",
                                         "--protected-mode",
                                         "no"};
  if (!child->start(argv)) return false;
  const auto ready = child->wait_for_line(
      [](std::string_view line) {
        return line.find("Ready to accept connections") != std::string_view::npos;
      },
      deadline_in(10s));
  if (!ready) {
    child->kill();
    child->wait_exit(deadline_in(5s));
    return false;
  }
  child_ = std::move(child);
  return true;
}

void RedisServer::stop() {
  if (!child_) return;
  child_->kill();
  child_->wait_exit(deadline_in(10s));
  child_.reset();
}

bool RedisServer::restart() {
  stop();
  // The port was just freed (redis binds with SO_REUSEADDR); a bounded retry covers a slow release.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (launch(port_)) return true;
  }
  return false;
}

}  // namespace balancer::test
