// A real PostgreSQL 15 server for tests: initdb in a temp dir (trust auth, user "balancer",
// database "balancer"), postgres on a free loopback port, stopped (fast shutdown) and restarted
// on demand. PostgreSQL refuses to run as root: as root, initdb and postgres run as "nobody"
// (setpriv, which execs, so the pid we hold is the server's). Needs Debian's postgresql-15.
#pragma once

#include <string>
#include <vector>

#include "support/child_server.h"

namespace balancer::test {

// stop() is a fast shutdown (SIGINT: clients cut off, data kept), SIGKILL after 10 s;
// restart() starts it again on the same port and data.
class PgServer : public ChildServer {
 public:
  // Creates the cluster and starts the server; throws std::runtime_error when it cannot.
  PgServer();
  // Whether the binaries are installed (tests say "skipped" otherwise).
  static bool available();

 private:
  bool launch(int port) override;
  std::vector<std::string> as_owner(std::vector<std::string> argv) const;
};

}  // namespace balancer::test
