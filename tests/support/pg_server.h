// A real PostgreSQL 15 server for tests: initdb in a temp dir (trust auth, user "balancer",
// database "balancer"), postgres on a free loopback port, stopped (fast shutdown) and restarted
// on demand. PostgreSQL refuses to run as root: as root, initdb and postgres run as "nobody"
// (setpriv, which execs, so the pid we hold is the server's). Needs Debian's postgresql-15.
#pragma once

#include <memory>
#include <string>

#include "support/process.h"

namespace balancer::test {

class PgServer {
 public:
  // Creates the cluster and starts the server; throws std::runtime_error when it cannot.
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  // Fast shutdown (SIGINT), waited for; SIGKILL if it takes more than 10 s. No-op when stopped.
  void stop();
  // Starts it again on the same port and data; false when it does not accept connections in time.
  bool restart();
  // Whether the binaries are installed (tests say "skipped" otherwise).
  static bool available();

 private:
  bool launch(int port);
  std::vector<std::string> as_owner(std::vector<std::string> argv) const;

  TempDir dir_{"balancer-pg"};
  int port_ = -1;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace balancer::test
