// The process around a server: command line (--config, --check-config, --set),
// config load, `threads` event loops each with its own HTTP server on one shared
// listening socket per port, signals (SIGTERM/SIGINT drain, SIGHUP reload), the metrics
// registry, and the reload contract: parse → validate everything (files, TLS
// certificate and key, the service's own checks) into new objects → swap. Nothing
// running changes before the whole new configuration is known good, and the swap
// cannot fail; on a rejection every running object stays as it was, one error
// line is logged and <service>_config_reloads_total{result="rejected"} counts it.
//
// A component implements Service<Config>; its main() is one run_service() call.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/event_loop.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/systemd_notify.h"
#include "core/watchdog.h"
#include "http/server/http_server.h"

namespace http {

// What every component gets from the host. Outlives the service.
struct ServiceContext {
  std::string name;
  const core::Clock* clock = &core::Clock::real();
  core::MetricsRegistry* metrics = nullptr;
  std::vector<core::EventLoop*> loops;  // loops[0] is the home loop: signals, timers, reloads
  // A loop of its own thread that serves no connection: fetches shared by every loop (a
  // balancer's playlist refreshes, keys, health polls), on time whatever the viewers' load
  // does to the serving loops. Null: the home loop does them.
  core::EventLoop* fetch = nullptr;

  core::EventLoop& home() const { return *loops[0]; }
  core::EventLoop& fetch_loop() const { return fetch ? *fetch : home(); }
  size_t threads() const { return loops.size(); }
};

// The swap step of a reload that passed validation: publishes what the prepare
// step built and applies it to the running objects. Home loop, called at most
// once; cannot fail (all fallible work happened before it was made).
using ReloadSwap = std::function<void()>;

template <class Config>
class Service {
 public:
  virtual ~Service() = default;
  // Main thread, before any loop runs: registers routes on loop `index`'s server.
  virtual void attach(size_t index, HttpServer& server) = 0;
  // Home loop: checks `fresh` (already loaded and validated by ServiceSpec::load)
  // against the running service and builds everything it needs, changing
  // nothing running. Returns the swap that applies it, or why it cannot be
  // applied. Listen address and threads change only on restart.
  virtual core::Result<ReloadSwap> prepare_reload(Config fresh) = 0;
  // Home loop, when draining starts: stop background work (refresh timers, polls).
  virtual void stop_background() {}
};

template <class Config>
struct ServiceSpec {
  std::string name;            // "balancer", "cache_node": logs, metrics prefix
  std::string default_config;  // path used without --config
  // Loads and validates the whole config (files + overrides).
  std::function<core::Result<Config>(const std::string& path,
                                     const std::vector<std::string>& overrides)>
      load;
  std::function<std::string(const Config&)> summary;              // for --check-config
  std::function<const HttpServerOptions&(const Config&)> server;  // listen address, limits, threads
  std::function<core::Result<std::unique_ptr<Service<Config>>>(ServiceContext&, const Config&)>
      create;
};

// A ServiceSpec::create for a service class `S` whose S::create(context, config) returns
// Result<std::unique_ptr<S>>: `spec.create = create_service<S, Config>;`.
template <class S, class Config>
core::Result<std::unique_ptr<Service<Config>>> create_service(ServiceContext& context,
                                                              const Config& config) {
  auto created = S::create(context, config);
  if (!created) return created.error();
  return std::unique_ptr<Service<Config>>(std::move(created).value());
}

// The config-independent part of the host (service_host.cc).
class ServiceHost {
 public:
  ServiceHost(std::string name, const HttpServerOptions& server);
  ~ServiceHost();
  ServiceContext& context() { return context_; }
  // Creates one server per loop; `attach(i, server)` registers its routes.
  core::Status create_servers(const std::function<void(size_t, HttpServer&)>& attach);
  uint16_t port() const;
  uint16_t tls_port() const;
  // Reload, prepare step (home loop): a new TLS context from `fresh`'s certificate
  // and key, checked to match but not serving yet. Null when there is nothing to
  // install (TLS off, or switched on or off, which needs a restart). Fails with
  // "tls_config" naming the file when the files do not load; nothing changes.
  core::Result<SslCtxPtr> prepare_tls(const HttpServerOptions& fresh) const;
  // Reload, swap step (home loop): new connections get `prepared` (open ones keep
  // theirs); null keeps the running certificate. Cannot fail.
  void install_tls(const HttpServerOptions& fresh, SslCtxPtr prepared);
  // Runs every loop (loop 0 on the calling thread) until drained; returns the exit code.
  int run(std::function<void()> on_reload, std::function<void()> stop_background);
  // Reload bookkeeping: counts the outcome and logs it on one line.
  void reload_outcome(const core::Status& status, const std::string& applied_summary);

 private:
  void drain_all();
  // Before any loop runs: every loop beats for the watchdog (server.watchdog_s, systemd's
  // WATCHDOG_USEC), whose thread then starts.
  void start_watchdog();
  // Test builds only (BALANCER_TEST_HOOKS): BALANCER_TEST_HANG="<loop>,<after_ms>,<for_s>"
  // (<loop>: a serving loop's index or "fetch") blocks that loop once, as a wedged loop would.
  void arm_test_hang();

  std::string name_;
  HttpServerOptions server_options_;
  core::MetricsRegistry metrics_;
  std::vector<std::unique_ptr<core::EventLoop>> loops_;
  std::unique_ptr<core::EventLoop> fetch_loop_;  // context_.fetch
  core::SystemdNotifier notify_;                 // NOTIFY_SOCKET: READY, STOPPING, WATCHDOG
  std::unique_ptr<core::Watchdog> watchdog_;     // beats on the loops above: goes before them
  std::unique_ptr<core::LoopTimer> test_hang_;   // arm_test_hang()
  ServiceContext context_;
  std::unique_ptr<TlsContext> tls_;  // shared by every loop's TLS listener
  std::vector<std::unique_ptr<HttpServer>> servers_;
  std::function<void()> stop_background_;
  bool draining_ = false;
  core::Counter& reloads_ok_;
  core::Counter& reloads_rejected_;
};

// The number of loops when the config says nothing: the cores this process may use.
size_t default_threads();

// One reload (home loop): parse and validate everything into new objects — the
// files (`load`), then the TLS context, then the service's own part — and only
// when all of it succeeded, swap: install the TLS context and run the service's
// swap, neither of which can fail. A failure anywhere changes nothing running.
// Counts and logs the outcome.
template <class Config>
void reload_service(ServiceHost& host, Service<Config>& service, const ServiceSpec<Config>& spec,
                    const std::type_identity_t<std::function<core::Result<Config>()>>& load) {
  auto fresh = load();
  if (!fresh) return host.reload_outcome(fresh.error(), "");
  const std::string summary = spec.summary(*fresh);
  const HttpServerOptions fresh_server = spec.server(*fresh);
  auto tls = host.prepare_tls(fresh_server);
  if (!tls) return host.reload_outcome(tls.error(), "");
  auto swap = service.prepare_reload(std::move(fresh).value());
  if (!swap) return host.reload_outcome(swap.error(), "");
  // The swap: nothing from here on can fail.
  host.install_tls(fresh_server, std::move(tls).value());
  (*swap)();
  host.reload_outcome({}, summary);
}

// Parses the command line, loads the config, and either checks it (--check-config)
// or runs the service until SIGTERM. Returns the process exit code.
template <class Config>
int run_service(int argc, char** argv, const ServiceSpec<Config>& spec) {
  auto cli = core::parse_command_line(argc, argv, spec.default_config);
  if (!cli || cli->help) {
    if (!cli) fprintf(stderr, "%s: %s\n", spec.name.c_str(), cli.error().message.c_str());
    fprintf(stderr, "usage: %s [--config FILE] [--check-config] [--set key=value]...\n",
            spec.name.c_str());
    return cli ? 0 : 2;
  }
  auto load = [&] { return spec.load(cli->config_path, cli->overrides); };
  auto config = load();
  if (!config) {
    fprintf(stderr, "%s: bad config: %s\n", spec.name.c_str(), config.error().message.c_str());
    return 2;
  }
  if (cli->check_config) {
    printf("%s: %s: config ok (%s)\n", spec.name.c_str(), cli->config_path.c_str(),
           spec.summary(*config).c_str());
    return 0;
  }
  ServiceHost host(spec.name, spec.server(*config));
  auto service = spec.create(host.context(), *config);
  if (!service) {
    fprintf(stderr, "%s: cannot start: %s\n", spec.name.c_str(), service.error().message.c_str());
    return 1;
  }
  Service<Config>& s = **service;
  auto servers = host.create_servers([&](size_t i, HttpServer& server) { s.attach(i, server); });
  if (!servers) {
    fprintf(stderr, "%s: cannot start: %s\n", spec.name.c_str(), servers.error().message.c_str());
    return 1;
  }
  return host.run([&] { reload_service(host, s, spec, load); }, [&] { s.stop_background(); });
}

}  // namespace http
