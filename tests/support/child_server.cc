#include "support/child_server.h"

#include <signal.h>

#include <stdexcept>

#include "support/sockets.h"

namespace balancer::test {

using namespace std::chrono_literals;

ChildServer::~ChildServer() {
  stop();
}

void ChildServer::start_on_free_port(const std::string& failure) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int candidate = free_loopback_port();
    if (candidate > 0 && launch(candidate)) {
      port_ = candidate;
      return;
    }
  }
  throw std::runtime_error(failure);
}

bool ChildServer::launch_child(const std::vector<std::string>& argv,
                               const std::function<bool(ChildProcess&)>& ready,
                               std::chrono::milliseconds timeout) {
  auto child = std::make_unique<ChildProcess>();
  if (!child->start(argv)) return false;
  if (!wait_until([&] { return ready(*child) || !child->running(); }, timeout) ||
      !child->running()) {
    child->kill();
    child->wait_exit(deadline_in(10s));
    return false;
  }
  child_ = std::move(child);
  return true;
}

void ChildServer::stop() {
  if (!child_) return;
  if (stop_signal_ != SIGKILL) ::kill(child_->pid(), stop_signal_);
  if (stop_signal_ == SIGKILL || !child_->wait_exit(deadline_in(10s))) {
    child_->kill();
    child_->wait_exit(deadline_in(10s));
  }
  child_.reset();
}

bool ChildServer::restart() {
  stop();
  // The port was just freed; a bounded retry covers a slow release.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (launch(port_)) return true;
  }
  return false;
}

}  // namespace balancer::test
