// A server program for tests (redis-server, postgres) run as a child process on a free
// loopback port: the port is picked, then bound by the server, and another one is tried
// (five in all) when someone else took it first. Stopped and restarted on the same port
// on demand. The subclasses say how to launch the server and when it is ready.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/process.h"

namespace balancer::test {

class ChildServer {
 public:
  virtual ~ChildServer();
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  int port() const { return port_; }
  bool running() const { return child_ != nullptr; }
  // Sends the stop signal and waits for the exit (10 s), then SIGKILL. No-op when stopped.
  void stop();
  // Starts it again on the same port; false when it cannot bind or answer in time.
  bool restart();

 protected:
  // `dir_prefix`: the name of the server's temp dir (removed after the server stopped).
  // `stop_signal`: how stop() asks the server to end (SIGKILL: at once, nothing kept).
  explicit ChildServer(std::string_view dir_prefix, int stop_signal = SIGKILL)
      : dir_(dir_prefix), stop_signal_(stop_signal) {}

  const TempDir& dir() const { return dir_; }

  // Launches on free loopback ports until one works; throws std::runtime_error(`failure`).
  void start_on_free_port(const std::string& failure);
  // Starts `argv` and waits until `ready(child)` holds; false (the child killed) when the
  // child exits or is not ready within `timeout`.
  bool launch_child(const std::vector<std::string>& argv,
                    const std::function<bool(ChildProcess&)>& ready,
                    std::chrono::milliseconds timeout);

 private:
  // Launches the server on `port` (by launch_child); false when it could not.
  virtual bool launch(int port) = 0;

  TempDir dir_;
  int stop_signal_;
  int port_ = -1;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace balancer::test
