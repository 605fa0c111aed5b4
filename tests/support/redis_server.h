// A real redis-server for tests: started in a temp dir on a free loopback port (picked, then
// bound by redis; retried when another process took it first), no persistence, stopped and
// restarted on the same port on demand. Needs Debian's redis-server (scripts/setup.sh).
#pragma once

#include "support/child_server.h"

namespace balancer::test {

// stop() is SIGKILL (its data is gone: no persistence); restart() starts an empty one on
// the same port.
class RedisServer : public ChildServer {
 public:
  // Starts the server; throws std::runtime_error when it cannot.
  RedisServer();

 private:
  bool launch(int port) override;
};

}  // namespace balancer::test
