// A real redis-server for tests: started in a temp dir on a free loopback port (picked, then
// bound by redis; retried when another process took it first), no persistence, stopped and
// restarted on the same port on demand. Needs Debian's redis-server (scripts/setup.sh).
#pragma once

#include <memory>
#include <string>

#include "support/process.h"

namespace balancer::test {

class RedisServer {
 public:
  // Starts the server; throws std::runtime_error when it cannot.
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  bool running() const { return child_ != nullptr; }
  // SIGKILL and reap (its data is gone: no persistence). No-op when stopped.
  void stop();
  // Starts it again on the same port; false when it cannot bind or answer in time.
  bool restart();

 private:
  bool launch(int port);

  TempDir dir_{"balancer-redis"};
  int port_ = -1;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace balancer::test
