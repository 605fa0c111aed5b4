// One of our servers (balancer, cache_node) run as a child process for a test: its config
// file, the fixture's --set settings and then the test's own (which win, on reload too),
// the event loops of BALANCER_TEST_THREADS. A restart (stop() or kill_hard(), then start())
// listens on the same port as before, as a real server would. The fixtures
// (BalancerProcess, CacheNodeProcess) say which binary and which settings.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/process.h"

namespace balancer::test {

// The value of one Prometheus series line "name{labels} value" (exact name+labels).
std::optional<double> metric_value(const std::string& metrics, const std::string& series);
// The sum of every series of the metric `name`, whatever its labels (0 when none is listed).
double metric_sum(const std::string& metrics, const std::string& name);

// How a test reaches a server: the HTTP version the client speaks, on the server's TLS port
// or its plain one.
struct Transport {
  const char* name;
  HttpRequest::Version version;
  bool tls;
};

class ServerProcess {
 public:
  virtual ~ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the binary and waits until it listens (REQUIREd, with its stderr as the message).
  void start();
  int port() const { return port_; }
  int tls_port() const { return tls_port_; }
  std::string url(const std::string& target) const { return local_url(port_, target); }
  std::string tls_url(const std::string& target) const {
    return "https://127.0.0.1:" + std::to_string(tls_port_) + target;
  }
  // `request` (method, headers, body) to `target` over `t`, trusting `ca_file` on TLS.
  HttpResponse request_over(const Transport& t, const std::string& ca_file,
                            const std::string& target, HttpRequest request = {}) const {
    request.url = t.tls ? tls_url(target) : url(target);
    request.ca_file = ca_file;
    request.version = t.version;
    return http_request(request);
  }
  HttpResponse get(const std::string& target,
                   std::chrono::milliseconds timeout = kDefaultHttpTimeout) const {
    return http_get(url(target), {}, timeout);
  }
  // get(target), whose 200 is REQUIREd (the target and body in the failure message).
  HttpResponse get_ok(const std::string& target) const;
  std::string health() const { return get("/health").body; }
  std::string metrics() const { return get("/metrics").body; }
  // One series of /metrics; -1 when it is not there.
  double metric(const std::string& series) const {
    return metric_value(metrics(), series).value_or(-1);
  }
  ChildProcess& process() { return *process_; }
  pid_t pid() const { return process_->pid(); }
  // SIGTERM, and the exit REQUIREd within 15 s.
  void stop();
  // SIGHUP, then true once the server's reload counter for `result` ("ok", "rejected") has
  // moved, false when it has not within 5 s.
  bool reload(const std::string& result = "ok") const;
  // SIGKILL, and the exit REQUIREd within 10 s.
  void kill_hard();

 protected:
  // `binary`: balancer or cache_node; `main_config`: its config file; `overrides`: the
  // test's --set key=value pairs.
  ServerProcess(std::string binary, std::string main_config, std::vector<std::string> overrides);
  // The fixture's --set key=value pairs, before the test's; port() and tls_port() are those
  // of the last start (-1 and 0 before the first).
  virtual std::vector<std::string> fixture_settings() const = 0;

 private:
  std::string binary_;
  std::string main_config_;
  std::vector<std::string> overrides_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = -1;
  int tls_port_ = 0;
};

}  // namespace balancer::test
