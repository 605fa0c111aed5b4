// The loops of a server share one listening socket (HttpServerOptions::shared_listener): a
// new connection goes to whichever loop is free, and a loop takes at most kAcceptsPerTurn
// connections per turn instead of the whole queue. Real sockets on loopback, real loops on real
// threads.
#include <doctest/doctest.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/handles.h"
#include "core/metrics.h"
#include "http/server/http_server.h"
#include "support/http_client.h"
#include "support/sockets.h"

namespace {

using namespace std::chrono_literals;

http::HttpServerOptions shared_options() {
  http::HttpServerOptions options;
  options.service = "test";
  options.access_log = false;
  options.shared_listener = true;
  return options;
}

// Connections the kernel has set up on `listen_fd` and no loop has accepted yet.
std::optional<unsigned> accept_queue_length(int listen_fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  return info.tcpi_unacked;  // for a listening socket: its accept queue
}

// A client connection the kernel completes without any loop running.
struct Connected {
  explicit Connected(uint16_t port) : fd(balancer::test::connect_loopback(port)), ok(fd >= 0) {}
  ~Connected() {
    if (fd >= 0) close(fd);
  }
  Connected(const Connected&) = delete;
  Connected& operator=(const Connected&) = delete;
  int fd;
  bool ok;
};

// One loop turn of a loop with nothing else to do: the listening socket is ready.
void one_turn(event_base* base) {
  timeval bound{1, 0};
  event_base_loopexit(base, &bound);
  event_base_loop(base, EVLOOP_ONCE);
}

// A server on its own loop thread. Its "/hold" keeps that loop busy (blocked, as a loop in a
// long handshake or rewrite is) until released; "/who" names the loop.
struct LoopThread {
  LoopThread(std::string name, http::HttpServerOptions options)
      : base((evthread_use_pthreads(), event_base_new())) {
    auto created = http::HttpServer::create(*base, options, metrics);
    REQUIRE(created.ok());
    server = std::move(created).value();
    server->route("/who", {"GET"}, [name](http::HttpExchange& ex) { ex.reply(200, name); });
    server->route("/hold", {"GET"}, [this](http::HttpExchange& ex) {
      holding = true;
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (!released && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
      }
      ex.reply(200, "released");
    });
    keep_alive.reset(event_new(
        base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    timeval second{1, 0};
    event_add(keep_alive.get(), &second);
  }
  void start() {
    thread = std::thread([this] { event_base_dispatch(base.get()); });
  }
  // The server goes on its own loop, which then runs a little longer: a connection freed
  // there is finalized by a later turn of that loop.
  void stop() {
    released = true;
    event_base_once(
        base.get(), -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<LoopThread*>(arg);
          self->server.reset();
          self->keep_alive.reset();
          timeval settle{0, 50000};
          event_base_loopexit(self->base.get(), &settle);
        },
        this, nullptr);
    if (thread.joinable()) thread.join();
  }

  core::EventBasePtr base;
  core::MetricsRegistry metrics;
  std::unique_ptr<http::HttpServer> server;
  core::EventPtr keep_alive;
  std::thread thread;
  std::atomic<bool> holding{false};
  std::atomic<bool> released{false};
};

}  // namespace

TEST_CASE(
    "a loop on a shared listener takes at most kAcceptsPerTurn connections per turn, not the "
    "whole queue") {
  core::EventBasePtr base(event_base_new());
  core::MetricsRegistry metrics;
  auto created = http::HttpServer::create(*base, shared_options(), metrics);
  REQUIRE(created.ok());
  auto server = std::move(created).value();
  const int listening = server->listen_fd();
  REQUIRE(listening >= 0);

  const unsigned queued = http::kAcceptsPerTurn + 3;
  std::vector<std::unique_ptr<Connected>> clients;
  for (unsigned i = 0; i < queued; ++i) {
    clients.push_back(std::make_unique<Connected>(server->port()));
    REQUIRE(clients.back()->ok);
  }
  REQUIRE(accept_queue_length(listening) == queued);
  one_turn(base.get());
  CHECK(accept_queue_length(listening) == 3u);  // left to the other loops
  // A later turn takes the rest.
  for (int turn = 0; turn < 10 && accept_queue_length(listening).value_or(0) > 0; ++turn) {
    one_turn(base.get());
  }
  CHECK(accept_queue_length(listening) == 0u);
}

TEST_CASE("a server with a listener of its own takes the whole queue in one wake-up") {
  core::EventBasePtr base(event_base_new());
  core::MetricsRegistry metrics;
  http::HttpServerOptions alone = shared_options();
  alone.shared_listener = false;
  auto created = http::HttpServer::create(*base, alone, metrics);
  REQUIRE(created.ok());
  auto server = std::move(created).value();
  std::vector<std::unique_ptr<Connected>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Connected>(server->port()));
    REQUIRE(clients.back()->ok);
  }
  REQUIRE(accept_queue_length(server->listen_fd()) == 3u);
  one_turn(base.get());
  CHECK(accept_queue_length(server->listen_fd()) == 0u);
}

TEST_CASE("loops sharing a listener: while one is busy, the other answers every new connection") {
  LoopThread first("first", shared_options());
  http::HttpServerOptions joining = shared_options();
  joining.port = first.server->port();
  joining.listen_fd = fcntl(first.server->listen_fd(), F_DUPFD_CLOEXEC, 0);
  REQUIRE(joining.listen_fd >= 0);
  LoopThread second("second", joining);
  first.start();
  second.start();

  // Whichever loop takes this request is busy until released.
  const std::string base_url = "http://127.0.0.1:" + std::to_string(first.server->port());
  std::thread held([&] { balancer::test::http_get(base_url + "/hold", {}, 15s); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!first.holding && !second.holding && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  const bool first_busy = first.holding;
  REQUIRE((first_busy || second.holding));
  const std::string free_loop = first_busy ? "second" : "first";

  // New connections (each request its own): with a listener per loop the kernel would hash
  // about half of them to the busy loop, where they would wait for it.
  for (int i = 0; i < 12; ++i) {
    CAPTURE(i);
    const auto r = balancer::test::http_get(base_url + "/who", {{"Connection", "close"}}, 2s);
    CHECK(r.status == 200);
    CHECK(r.body == free_loop);
  }
  first.released = true;
  second.released = true;
  held.join();
  first.stop();
  second.stop();
}
