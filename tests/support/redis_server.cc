#include "support/redis_server.h"

namespace balancer::test {

using namespace std::chrono_literals;

RedisServer::RedisServer() : ChildServer("balancer-redis") {
  start_on_free_port("cannot start redis-server (is it installed? scripts/setup.sh)");
}

bool RedisServer::launch(int port) {
  const std::vector<std::string> argv = {"redis-server",
                                         "--port",
                                         std::to_string(port),
                                         "--bind",
                                         "127.0.0.1",
                                         "--dir",
                                         dir().path(),
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
  return launch_child(
      argv,
      [](ChildProcess& child) {
        for (const auto& line : child.stdout_lines()) {
          if (line.find("Ready to accept connections") != std::string::npos) return true;
        }
        return false;
      },
      10s);
}

}  // namespace balancer::test
