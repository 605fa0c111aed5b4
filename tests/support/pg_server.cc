#include "support/pg_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

namespace balancer::test {
namespace {

using namespace std::chrono_literals;

const std::string kBin = "/usr/lib/postgresql/15/bin/";

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

bool accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

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

PgServer::PgServer() {
  if (geteuid() == 0) {
    const passwd* nobody = getpwnam("nobody");
    if (nobody == nullptr || chown(dir_.path().c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
      throw std::runtime_error("cannot hand the PostgreSQL temp dir to nobody");
    }
  }
  ChildProcess init;
  if (!init.start(as_owner({kBin + "initdb", "-D", dir_.file("data"), "-U", "balancer",
                            "--auth=trust", "-E", "UTF8", "--no-sync"})) ||
      init.wait_exit(deadline_in(60s)) != 0) {
    throw std::runtime_error("initdb failed: " + init.stderr_text());
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int candidate = free_loopback_port();
    if (candidate > 0 && launch(candidate)) {
      port_ = candidate;
      ChildProcess create;
      if (!create.start({kBin + "createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                         "balancer", "balancer"}) ||
          create.wait_exit(deadline_in(30s)) != 0) {
        throw std::runtime_error("createdb failed: " + create.stderr_text());
      }
      return;
    }
  }
  throw std::runtime_error("cannot start postgres");
}

PgServer::~PgServer() {
  stop();
}

bool PgServer::launch(int port) {
  auto child = std::make_unique<ChildProcess>();
  if (!child->start(
          as_owner({kBin + "postgres", "-D", dir_.file("data"), "-p", std::to_string(port), "-k",
                    dir_.path(), "-h", "127.0.0.1", "-c", "fsync=off", "-c",
                    "synchronous_commit=off", "-c", "full_page_writes=off"}))) {
    return false;
  }
  // Accepting TCP is not enough: during start-up the server refuses sessions ("starting up").
  const auto ready = [&] {
    return child->stderr_text().find("ready to accept connections") != std::string::npos &&
           accepts(port);
  };
  if (!wait_until([&] { return ready() || !child->running(); }, 30s) || !child->running()) {
    child->kill();
    child->wait_exit(deadline_in(10s));
    return false;
  }
  child_ = std::move(child);
  return true;
}

void PgServer::stop() {
  if (!child_) return;
  ::kill(child_->pid(), SIGINT);  // fast shutdown: clients are cut off, data stays
  if (!child_->wait_exit(deadline_in(10s))) {
    child_->kill();
    child_->wait_exit(deadline_in(10s));
  }
  child_.reset();
}

bool PgServer::restart() {
  stop();
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (launch(port_)) return true;
  }
  return false;
}

}  // namespace balancer::test
