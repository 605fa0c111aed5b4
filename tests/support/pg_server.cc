#include "support/pg_server.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

#include "support/sockets.h"

namespace balancer::test {
namespace {

using namespace std::chrono_literals;

const std::string kBin = "/usr/lib/postgresql/15/bin/";

}  // namespace

bool PgServer::available() {
  return access((kBin + "postgres").c_str(), X_OK) == 0;
}

std::vector<std::string> PgServer::as_owner(std::vector<std::string> argv) const {
  if (geteuid() != 0) return argv;
  std::vector<std::string> out = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

PgServer::PgServer() : ChildServer("balancer-pg", SIGINT) {
  if (geteuid() == 0) {
    const passwd* nobody = getpwnam("nobody");
    if (nobody == nullptr || chown(dir().path().c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
      throw std::runtime_error("cannot hand the PostgreSQL temp dir to nobody");
    }
  }
  ChildProcess init;
  if (!init.start(as_owner({kBin + "initdb", "-D", dir().file("data"), "-U", "balancer",
                            "--auth=trust", "-E", "UTF8", "--no-sync"})) ||
      init.wait_exit(deadline_in(60s)) != 0) {
    throw std::runtime_error("initdb failed: " + init.stderr_text());
  }
  start_on_free_port("cannot start postgres");
  ChildProcess create;
  if (!create.start({kBin + "createdb", "-h", "127.0.0.1", "-p", std::to_string(port()), "-U",
                     "balancer", "balancer"}) ||
      create.wait_exit(deadline_in(30s)) != 0) {
    throw std::runtime_error("createdb failed: " + create.stderr_text());
  }
}

bool PgServer::launch(int port) {
  // Accepting TCP is not enough: during start-up the server refuses sessions ("starting up").
  return launch_child(
      as_owner({kBin + "postgres", "-D", dir().file("data"), "-p", std::to_string(port), "-k",
                dir().path(), "-h", "127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off"}),
      [port](ChildProcess& child) {
        return child.stderr_text().find("ready to accept connections") != std::string::npos &&
               loopback_accepts(port);
      },
      30s);
}

}  // namespace balancer::test
