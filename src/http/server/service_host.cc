#include "http/server/service_host.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "core/answer_here.h"
#include "core/log.h"
#include "core/signals.h"

namespace http {

size_t default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

ServiceHost::ServiceHost(std::string name, const HttpServerOptions& server)
    : name_(std::move(name)),
      server_options_(server),
      reloads_ok_(metrics_.counter(name_ + "_config_reloads_total", "Config reloads by result",
                                   "result=\"ok\"")),
      reloads_rejected_(metrics_.counter(name_ + "_config_reloads_total",
                                         "Config reloads by result", "result=\"rejected\"")) {
  size_t threads = server.threads > 0 ? server.threads : default_threads();
  for (size_t i = 0; i < threads; ++i) loops_.push_back(std::make_unique<core::EventLoop>(i));
  context_.name = name_;
  context_.metrics = &metrics_;
  for (auto& loop : loops_) context_.loops.push_back(loop.get());
  fetch_loop_ = std::make_unique<core::EventLoop>(threads);
  context_.fetch = fetch_loop_.get();
  metrics_.gauge_fn(name_ + "_threads", "Event loops serving requests",
                    [n = threads] { return double(n); });
}

ServiceHost::~ServiceHost() = default;

namespace {

// -1 for -1; the duplicate is closed on exec like the original.
int duplicate_socket(int fd) {
  return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

}  // namespace

core::Status ServiceHost::create_servers(const std::function<void(size_t, HttpServer&)>& attach) {
  HttpServerOptions options = server_options_;
  options.service = name_;
  options.shared_listener = loops_.size() > 1;
  if (options.tls.enabled) {
    auto ctx = build_server_tls_context(options.tls);
    if (!ctx) return ctx.error();
    tls_ = std::make_unique<TlsContext>(std::move(ctx).value());
  }
  // One count for every loop's listeners: they share the process's descriptors.
  auto limits = std::make_shared<ConnectionLimits>(options.connection_limits(), metrics_);
  LOG_INFO(name_, "connection limits: ", limits->max_connections(), " in all, ",
           limits->max_connections_per_address(), " per address (0 = none; an IPv6 client by its /",
           options.ipv6_prefix_length, "), ", options.connection_limit_exempt.size(),
           " exempt network(s)");
  for (size_t i = 0; i < loops_.size(); ++i) {
    // Loop 0 binds the ports (maybe ephemeral); the others accept on duplicates of its sockets.
    if (i > 0) {
      options.port = servers_[0]->port();
      options.tls.port = servers_[0]->tls_port();
      options.listen_fd = duplicate_socket(servers_[0]->listen_fd());
      options.tls_listen_fd = duplicate_socket(servers_[0]->tls_listen_fd());
      if ((servers_[0]->listen_fd() >= 0 && options.listen_fd < 0) ||
          (servers_[0]->tls_listen_fd() >= 0 && options.tls_listen_fd < 0)) {
        const int failure = errno;
        for (int fd : {options.listen_fd, options.tls_listen_fd}) {
          if (fd >= 0) close(fd);
        }
        return core::Error{"listen_failed",
                           std::string("cannot share the listening socket: ") + strerror(failure)};
      }
    }
    auto server = HttpServer::create(loops_[i]->base(), options, metrics_, *context_.clock,
                                     tls_.get(), limits);
    if (!server) return server.error();
    attach(i, **server);
    servers_.push_back(std::move(server).value());
  }
  return {};
}

uint16_t ServiceHost::port() const {
  return servers_.empty() ? 0 : servers_[0]->port();
}
uint16_t ServiceHost::tls_port() const {
  return servers_.empty() ? 0 : servers_[0]->tls_port();
}

core::Result<SslCtxPtr> ServiceHost::prepare_tls(const HttpServerOptions& fresh) const {
  if (tls_ == nullptr || !fresh.tls.enabled)
    return SslCtxPtr();  // install_tls says why nothing changes
  TlsOptions options = fresh.tls;
  // ALPN must keep offering what the listeners were built to speak (listen.http2 needs a restart).
  options.http2 = server_options_.tls.http2;
  return build_server_tls_context(options);
}

void ServiceHost::install_tls(const HttpServerOptions& fresh, SslCtxPtr prepared) {
  if (tls_ == nullptr) {
    if (fresh.tls.enabled) LOG_WARN(name_, "reload: TLS can be turned on only by a restart");
    return;
  }
  if (!fresh.tls.enabled) {
    LOG_WARN(name_, "reload: TLS can be turned off only by a restart; keeping the certificate");
    return;
  }
  if (prepared == nullptr) return;
  tls_->install(std::move(prepared));
  LOG_INFO(name_, "TLS certificate reloaded from ", fresh.tls.certificate);
}

void ServiceHost::reload_outcome(const core::Status& status, const std::string& applied_summary) {
  // Logged before counted: whoever sees the count change finds the line.
  if (!status) {
    // One line however many problems the loader found (it joins them with newlines).
    std::string reasons = status.error().message;
    for (size_t at = reasons.find('\n'); at != std::string::npos; at = reasons.find('\n', at)) {
      reasons.replace(at, 1, "; ");
    }
    LOG_ERROR(name_, "reload rejected, keeping the running config: ", reasons);
    reloads_rejected_.inc();
    return;
  }
  LOG_INFO(name_, "configuration reloaded: ", applied_summary);
  reloads_ok_.inc();
}

void ServiceHost::start_watchdog() {
  notify_ = core::SystemdNotifier::from_environment();
  watchdog_ = std::make_unique<core::Watchdog>(
      name_, std::chrono::seconds(server_options_.watchdog_s), notify_);
  for (auto& loop : loops_) watchdog_->watch(*loop, "loop-" + std::to_string(loop->index()));
  watchdog_->watch(*fetch_loop_, "fetch");
  watchdog_->start();
  if (server_options_.watchdog_s > 0 || notify_.watchdog_interval()) {
    LOG_INFO(name_, "watchdog: ", loops_.size() + 1, " event loop(s) watched, bound ",
             server_options_.watchdog_s, " s (0 = off)",
             notify_.watchdog_interval() ? ", systemd pinged while every loop turns" : "");
  }
}

void ServiceHost::arm_test_hang() {
#ifdef BALANCER_TEST_HOOKS
  const char* spec = std::getenv("BALANCER_TEST_HANG");
  if (spec == nullptr) return;
  std::string which;
  long after_ms = 0;
  long for_s = 0;
  std::istringstream in(spec);
  char comma = 0;
  if (!std::getline(in, which, ',') || !(in >> after_ms >> comma >> for_s) || comma != ',') {
    LOG_ERROR(name_, "test hook: BALANCER_TEST_HANG='", spec, "' is not <loop>,<after_ms>,<for_s>");
    return;
  }
  core::EventLoop* loop = which == "fetch" ? fetch_loop_.get() : nullptr;
  for (auto& serving : loops_) {
    if (which == std::to_string(serving->index())) loop = serving.get();
  }
  if (loop == nullptr) {
    LOG_ERROR(name_, "test hook: BALANCER_TEST_HANG names no loop: ", which);
    return;
  }
  test_hang_ =
      std::make_unique<core::LoopTimer>(*loop, core::LoopTimer::Repeat::once, [this, which, for_s] {
        LOG_WARN(name_, "test hook: loop ", which, " hangs for ", for_s, " s");
        std::this_thread::sleep_for(std::chrono::seconds(for_s));
      });
  test_hang_->start(std::chrono::milliseconds(after_ms));
#endif
}

void ServiceHost::drain_all() {
  if (draining_) return;
  draining_ = true;
  notify_.notify("STOPPING=1");
  LOG_INFO(name_, "shutting down: draining connections");
  if (stop_background_) stop_background_();
  // Each server drains on its own loop and tells the home loop; the last one stops them all.
  struct Drained {};
  auto remaining = std::make_shared<size_t>(servers_.size());  // home loop
  for (size_t i = 0; i < servers_.size(); ++i) {
    HttpServer* server = servers_[i].get();
    core::ask_there_answer_here(
        *loops_[i], *loops_[0], core::LifetimeWatch::forever(),
        [server](auto reply) { server->drain([reply]() mutable { reply(Drained{}); }); },
        [this, remaining](Drained) {
          if (--*remaining != 0) return;
          for (auto& loop : loops_) loop->stop();
          fetch_loop_->stop();
        });
  }
}

int ServiceHost::run(std::function<void()> on_reload, std::function<void()> stop_background) {
  stop_background_ = std::move(stop_background);
  // Signals are handled by the home loop: the other threads block them.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  std::vector<std::thread> threads;
  arm_test_hang();
  {
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &handled, &old);
    start_watchdog();  // its thread blocks the signals too
    for (size_t i = 1; i < loops_.size(); ++i) {
      threads.emplace_back([loop = loops_[i].get(), i] {
        // "loop-N" in top -H and /proc/<pid>/task/*/comm (the benchmarks' busy share per loop);
        // loop 0 is the main thread and keeps the program's name.
        pthread_setname_np(pthread_self(), ("loop-" + std::to_string(i)).c_str());
        loop->run();
      });
    }
    threads.emplace_back([loop = fetch_loop_.get()] {
      pthread_setname_np(pthread_self(), "fetch");
      loop->run();
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  int exit_code = 0;
  {
    core::SignalHandlers signals(
        loops_[0]->base(), [this] { drain_all(); }, std::move(on_reload));
    announce_listening(name_, port(), tls_port());
    LOG_INFO(name_, "serving on port ", port(),
             tls_port() != 0 ? " and TLS port " + std::to_string(tls_port()) : "", " with ",
             loops_.size(), " event loop(s)");
    notify_.notify("READY=1");
    loops_[0]->run();
  }
  // The loops stop beating as they stop: the watchdog goes first.
  watchdog_->stop();
  for (auto& t : threads) t.join();
  test_hang_.reset();
  watchdog_.reset();
  // Servers go before the service: exchanges the service still holds then answer nothing.
  servers_.clear();
  LOG_INFO(name_, "stopped");
  return exit_code;
}

}  // namespace http
