// The server's own HTTP/1 transport (http/http1_connection.h) on a real event loop, spoken
// to byte by byte over a loopback socket: keep-alive and pipelining in order, bodies by
// length and chunked (with 100-continue), limits, HTTP/1.0, streamed replies, timeouts and
// a client that leaves while its request is held.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/handles.h"
#include "core/metrics.h"
#include "http/http_server.h"
#include "support/sockets.h"

namespace {

using namespace std::chrono_literals;

// A server on its own loop and one raw client connection to it; the test drives the loop
// while it waits for the server's bytes.
struct RawLoop {
  explicit RawLoop(int io_timeout_s = 30) : base(event_base_new()) {
    common::HttpServerOptions options;
    options.service = "test";
    options.max_header_bytes = 2048;
    options.max_body_bytes = 1024;
    options.access_log = false;
    options.io_timeout_s = io_timeout_s;
    auto created = common::HttpServer::create(*base, options, metrics);
    REQUIRE(created.ok());
    server = std::move(created).value();
    server->route("/echo", {"GET", "POST", "HEAD"}, [](common::HttpExchange& ex) {
      ex.reply(200, ex.method() + " " + ex.target() + " " + ex.body(), "text/plain");
    });
  }
  ~RawLoop() {
    if (fd >= 0) close(fd);
  }
  void connect() {
    fd = balancer::test::connect_loopback(server->port(), 5s);
    REQUIRE(fd >= 0);
  }
  void send(const std::string& bytes) {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // Runs the loop, reading what the server sends, until `enough(received)` or the deadline.
  bool run_until(const std::function<bool()>& enough, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!enough() && std::chrono::steady_clock::now() < deadline) {
      timeval slice{0, 10000};
      event_base_loopexit(base.get(), &slice);
      event_base_loop(base.get(), EVLOOP_ONCE);
      char buffer[65536];
      for (int i = 0; i < 64 && fd >= 0; ++i) {
        const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) peer_closed = true;
        if (n <= 0) break;
        received.append(buffer, static_cast<size_t>(n));
      }
    }
    return enough();
  }
  bool responses_at_least(size_t n) {
    return run_until([&] { return balancer::test::split_responses(received).size() >= n; });
  }
  bool until_closed(std::chrono::milliseconds timeout = 5s) {
    return run_until([&] { return peer_closed; }, timeout);
  }
  std::vector<balancer::test::RawResponse> responses() const {
    return balancer::test::split_responses(received);
  }

  common::EventBasePtr base;
  common::MetricsRegistry metrics;
  std::unique_ptr<common::HttpServer> server;
  int fd = -1;
  std::string received;
  bool peer_closed = false;
};

const std::string kGet = "GET /echo?a=1 HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEST_CASE("http/1 transport: pipelined requests with bodies are answered in order, then more") {
  RawLoop loop;
  loop.connect();
  loop.send(kGet + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" +
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
            "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n" + kGet);
  REQUIRE(loop.responses_at_least(4));
  auto responses = loop.responses();
  REQUIRE(responses.size() == 4);
  CHECK(responses[0].body == "GET /echo?a=1 ");
  CHECK(responses[1].body == "POST /echo hello");
  CHECK(responses[2].body == "POST /echo abcde");
  CHECK(responses[3].body == "GET /echo?a=1 ");
  for (const auto& r : responses) {
    CHECK(r.status == 200);
    CHECK_FALSE(r.has_header("Connection: close"));
  }
  // The connection stays for the next request, which arrives a byte at a time.
  const std::string next = "GET /echo?b=2 HTTP/1.1\r\nHost: t\r\n\r\n";
  for (char c : next) {
    loop.send(std::string(1, c));
    loop.run_until([] { return false; }, 1ms);
  }
  REQUIRE(loop.responses_at_least(5));
  CHECK(loop.responses()[4].body == "GET /echo?b=2 ");
  CHECK_FALSE(loop.peer_closed);
}

TEST_CASE("http/1 transport: Expect: 100-continue gets its interim answer before the body") {
  RawLoop loop;
  loop.connect();
  loop.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  REQUIRE(loop.run_until([&] { return loop.received.find("\r\n\r\n") != std::string::npos; }));
  CHECK(loop.received == "HTTP/1.1 100 Continue\r\n\r\n");
  loop.received.clear();
  loop.send("xyz");
  REQUIRE(loop.responses_at_least(1));
  CHECK(loop.responses()[0].body == "POST /echo xyz");
}

TEST_CASE("http/1 transport: a body over the limit is refused before it is read, and the close") {
  RawLoop loop;
  SUBCASE("by length") {
    loop.connect();
    loop.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" +
              std::string(2000, 'x'));
  }
  SUBCASE("chunked") {
    loop.connect();
    loop.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
              std::string(2048, 'x') + "\r\n");
  }
  REQUIRE(loop.until_closed());
  auto responses = loop.responses();
  REQUIRE(responses.size() == 1);
  CHECK(responses[0].status == 413);
  CHECK(responses[0].has_header("Connection: close"));
  CHECK(responses[0].body.find("\"body_too_large\"") != std::string::npos);
}

TEST_CASE("http/1 transport: a malformed chunked body is a JSON 400 and the close") {
  RawLoop loop;
  loop.connect();
  loop.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + kGet);
  REQUIRE(loop.until_closed());
  auto responses = loop.responses();
  REQUIRE(responses.size() == 1);  // the GET behind it is never read
  CHECK(responses[0].status == 400);
  CHECK(responses[0].body.find("\"bad_chunked_body\"") != std::string::npos);
}

TEST_CASE("http/1 transport: HTTP/1.0 closes unless asked to keep the connection") {
  RawLoop loop;
  loop.connect();
  loop.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  REQUIRE(loop.responses_at_least(1));
  CHECK(loop.responses()[0].has_header("Connection: keep-alive"));
  loop.send("GET /echo HTTP/1.0\r\n\r\n");
  REQUIRE(loop.until_closed());
  auto responses = loop.responses();
  REQUIRE(responses.size() == 2);
  CHECK(responses[1].status == 200);
  CHECK(responses[1].has_header("Connection: close"));
}

TEST_CASE("http/1 transport: a streamed reply without a length is chunked, and its end is seen") {
  RawLoop loop;
  std::vector<common::HttpExchange> parked;
  loop.server->route("/stream", {"GET"}, [&](common::HttpExchange& ex) {
    ex.start(200);
    ex.send("one,", 4);
    parked.push_back(std::move(ex));
  });
  loop.connect();
  loop.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(loop.run_until([&] { return loop.received.find("one,") != std::string::npos; }));
  CHECK(loop.received.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  REQUIRE(parked.size() == 1);
  parked[0].send("two", 3);
  parked[0].end();
  REQUIRE(loop.run_until([&] { return loop.received.find("0\r\n\r\n") != std::string::npos; }));
  CHECK(loop.received.substr(loop.received.find("\r\n\r\n") + 4) ==
        "4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n");
  // And the connection serves the next request.
  loop.received.clear();
  loop.send(kGet);
  REQUIRE(loop.responses_at_least(1));
  CHECK(loop.responses()[0].status == 200);
}

TEST_CASE("http/1 transport: a client that leaves while its request is held is noticed") {
  RawLoop loop;
  std::vector<common::HttpExchange> parked;
  bool closed_seen = false;
  loop.server->route("/held", {"GET"}, [&](common::HttpExchange& ex) {
    ex.on_close([&] { closed_seen = true; });
    parked.push_back(std::move(ex));
  });
  loop.connect();
  loop.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(loop.run_until([&] { return parked.size() == 1; }));
  CHECK(loop.server->open_connections() == 1);
  close(loop.fd);
  loop.fd = -1;
  REQUIRE(loop.run_until([&] { return closed_seen; }));
  CHECK(parked[0].closed());
  CHECK(loop.server->active_requests() == 0);
  CHECK(loop.server->open_connections() == 0);
  parked.clear();  // a closed exchange's guard does not reply or crash
}

TEST_CASE(
    "http/1 transport: an idle connection and an unfinished head are closed after the "
    "I/O timeout, a held request is not") {
  RawLoop loop(1);
  std::vector<common::HttpExchange> parked;
  loop.server->route("/held", {"GET"},
                     [&](common::HttpExchange& ex) { parked.push_back(std::move(ex)); });
  SUBCASE("idle after a reply") {
    loop.connect();
    loop.send(kGet);
    REQUIRE(loop.responses_at_least(1));
    CHECK(loop.until_closed(4s));
  }
  SUBCASE("half a head") {
    loop.connect();
    loop.send("GET /echo HTTP/1.1\r\nHo");
    CHECK(loop.until_closed(4s));
    CHECK(loop.received.empty());
  }
  SUBCASE("held by the handler for longer than the timeout") {
    loop.connect();
    loop.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(loop.run_until([&] { return parked.size() == 1; }));
    const auto start = std::chrono::steady_clock::now();
    loop.run_until([&] { return loop.peer_closed; }, 2500ms);
    CHECK_FALSE(loop.peer_closed);
    CHECK(std::chrono::steady_clock::now() - start >= 2s);
    parked[0].reply(200, "late", "text/plain");
    REQUIRE(loop.responses_at_least(1));
    CHECK(loop.responses()[0].body == "late");
  }
}

TEST_CASE(
    "http/1 transport: a head sent a byte at a time must still arrive within the I/O "
    "timeout") {
  RawLoop loop(1);
  loop.connect();
  const std::string head = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(100, 'a');
  size_t sent = 0;
  const auto start = std::chrono::steady_clock::now();
  auto next_send = start;
  // Each byte comes well within the timeout of the one before; the head as a whole does not.
  REQUIRE(loop.run_until(
      [&] {
        if (loop.peer_closed) return true;
        if (std::chrono::steady_clock::now() >= next_send && sent < head.size()) {
          CHECK(::send(loop.fd, head.data() + sent, 1, MSG_NOSIGNAL) == 1);
          ++sent;
          next_send += 200ms;
        }
        return false;
      },
      6s));
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  CHECK(loop.received.empty());
}

TEST_CASE(
    "http/1 transport: HEAD gets the length and no body; response fields with a line "
    "break are dropped") {
  RawLoop loop;
  loop.server->route("/inject", {"GET"}, [](common::HttpExchange& ex) {
    ex.add_header("X-Good", "yes");
    ex.add_header("X-Bad", "a\r\nSet-Cookie: evil=1");
    ex.reply(200, "ok", "text/plain");
  });
  loop.connect();
  loop.send("HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /inject HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(loop.run_until(
      [&] { return balancer::test::split_responses(loop.received, true).size() >= 2; }));
  auto responses = balancer::test::split_responses(loop.received, true);
  CHECK(responses[0].has_header("Content-Length: 11"));  // "HEAD /echo "
  CHECK(responses[0].body.empty());
  CHECK(responses[1].body == "ok");
  CHECK(responses[1].has_header("X-Good: yes"));
  CHECK(loop.received.find("evil") == std::string::npos);
}
