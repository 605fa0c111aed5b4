// The server's own HTTP/1 transport (http/h1/http1_connection.h) on a real event loop, spoken
// to byte by byte over a loopback socket: keep-alive and pipelining in order, bodies by
// length and chunked (with 100-continue), limits, HTTP/1.0, streamed replies, timeouts and
// a client that leaves while its request is held. Over TLS too: the handshake, records,
// close_notify, and a handshake trickled in. With h2c, HTTP/2's preface handed over.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/handles.h"
#include "core/metrics.h"
#include "http/http_handles.h"
#include "http/server/http_server.h"
#include "http/tls/tls.h"
#include "support/process.h"
#include "support/sockets.h"
#include "support/test_certificate.h"

namespace {

using namespace std::chrono_literals;

// What RawLoop::trickle sent, and how long until the server closed (or it gave up).
struct Trickled {
  size_t sent = 0;  // bytes sent before the server closed (or all of them)
  std::chrono::steady_clock::duration took{};
};

// A server on its own loop and one raw client connection to it; the test drives the loop
// while it waits for the server's bytes.
// With `tls`, the server listens for TLS only (a self-signed certificate) and the client
// speaks TLS through OpenSSL on the same socket: `received` holds what it decrypted.
struct RawLoop {
  explicit RawLoop(int io_timeout_s = 30, bool tls = false, bool h2c = false)
      : base(event_base_new()) {
    http::HttpServerOptions options;
    options.service = "test";
    options.max_header_bytes = 2048;
    options.max_body_bytes = 1024;
    options.access_log = false;
    options.io_timeout_s = io_timeout_s;
    options.h2c = h2c;
    if (tls) {
      certificate = std::make_unique<balancer::test::TestTlsFiles>(dir.file("tls"));
      options.plain = false;
      options.tls.enabled = true;
      options.tls.certificate = certificate->cert;
      options.tls.key = certificate->key;
      auto context = http::build_server_tls_context(options.tls);
      REQUIRE(context.ok());
      tls_context = std::make_unique<http::TlsContext>(std::move(context).value());
      client_context.reset(SSL_CTX_new(TLS_client_method()));
      REQUIRE(client_context);
    }
    auto created =
        http::HttpServer::create(*base, options, metrics, core::Clock::real(), tls_context.get());
    REQUIRE(created.ok());
    server = std::move(created).value();
    server->route("/echo", {"GET", "POST", "HEAD"}, [](http::HttpExchange& ex) {
      ex.reply(200, ex.method() + " " + ex.target() + " " + ex.body(), "text/plain");
    });
  }
  ~RawLoop() {
    if (fd >= 0) close(fd);
  }
  void connect() {
    fd = balancer::test::connect_loopback(tls_context ? server->tls_port() : server->port(), 5s);
    REQUIRE(fd >= 0);
  }
  // connect(), then the TLS handshake (the client offers `alpn`, wire format).
  void connect_tls(const std::string& alpn = std::string("\x08http/1.1", 9)) {
    connect();
    REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    client.reset(SSL_new(client_context.get()));
    REQUIRE(client);
    SSL_set_fd(client.get(), fd);
    SSL_set_connect_state(client.get());
    SSL_set_alpn_protos(client.get(), reinterpret_cast<const unsigned char*>(alpn.data()),
                        static_cast<unsigned>(alpn.size()));
    REQUIRE(run_until([&] { return SSL_is_init_finished(client.get()) == 1; }));
  }
  void send(const std::string& bytes) {
    if (!client) {
      REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(bytes.size()));
      return;
    }
    // Small writes: the socket takes them at once (a record each).
    REQUIRE(SSL_write(client.get(), bytes.data(), static_cast<int>(bytes.size())) ==
            static_cast<int>(bytes.size()));
  }
  // Runs the loop, reading what the server sends, until `enough(received)` or the deadline.
  bool run_until(const std::function<bool()>& enough, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!enough() && std::chrono::steady_clock::now() < deadline) {
      timeval slice{0, 10000};
      event_base_loopexit(base.get(), &slice);
      event_base_loop(base.get(), EVLOOP_ONCE);
      char buffer[65536];
      if (client) {
        read_tls();
        continue;
      }
      for (int i = 0; i < 64 && fd >= 0; ++i) {
        const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) peer_closed = true;
        if (n <= 0) break;
        received.append(buffer, static_cast<size_t>(n));
      }
    }
    return enough();
  }
  // The handshake's next step, then what the server sent, decrypted.
  void read_tls() {
    SSL* ssl = client.get();
    if (!SSL_is_init_finished(ssl) && SSL_do_handshake(ssl) != 1) return;
    char buffer[16384];
    for (int i = 0; i < 64; ++i) {
      const int n = SSL_read(ssl, buffer, sizeof buffer);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
        continue;
      }
      const int error = SSL_get_error(ssl, n);
      if (error == SSL_ERROR_ZERO_RETURN) close_notify = true;
      if (error != SSL_ERROR_WANT_READ) peer_closed = true;  // close_notify, EOF or reset
      ERR_clear_error();
      return;
    }
  }
  // Sends `bytes` on the raw socket a byte every 200 ms until the server closes, or for at
  // most 6 s.
  Trickled trickle(const std::string& bytes) {
    Trickled result;
    const auto start = std::chrono::steady_clock::now();
    auto next_send = start;
    run_until(
        [&] {
          if (peer_closed) return true;
          if (std::chrono::steady_clock::now() >= next_send && result.sent < bytes.size()) {
            // The server may close between our reads: a reset or broken pipe is its close.
            if (::send(fd, bytes.data() + result.sent, 1, MSG_NOSIGNAL) != 1) {
              CHECK((errno == ECONNRESET || errno == EPIPE));
              peer_closed = true;
              return true;
            }
            ++result.sent;
            next_send += 200ms;
          }
          return false;
        },
        6s);
    result.took = std::chrono::steady_clock::now() - start;
    return result;
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

  balancer::test::TempDir dir{"http1-connection"};
  std::unique_ptr<balancer::test::TestTlsFiles> certificate;
  std::unique_ptr<http::TlsContext> tls_context;
  http::SslCtxPtr client_context;
  http::SslPtr client;
  core::EventBasePtr base;
  core::MetricsRegistry metrics;
  std::unique_ptr<http::HttpServer> server;
  int fd = -1;
  std::string received;
  bool peer_closed = false;
  bool close_notify = false;  // the server ended TLS properly before closing
};

const std::string kGet = "GET /echo?a=1 HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEST_CASE("http/1 transport with h2c: HTTP/2's preface, even in pieces, goes to HTTP/2") {
  RawLoop loop(30, false, true);
  loop.connect();
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  loop.send(preface.substr(0, 10));
  // Bytes that may still be either protocol get no answer, and the connection stays.
  CHECK_FALSE(loop.run_until([&] { return !loop.received.empty() || loop.peer_closed; }, 100ms));
  const std::string empty_settings("\0\0\0\x04\0\0\0\0\0", 9);
  loop.send(preface.substr(10) + empty_settings);
  REQUIRE(loop.run_until([&] { return loop.received.size() >= 9 || loop.peer_closed; }));
  INFO(loop.received);
  CHECK(loop.received[3] == '\x04');  // the server's SETTINGS: HTTP/2 from its first byte
  CHECK(loop.received.find("HTTP/1.1") == std::string::npos);
}

TEST_CASE("http/1 transport with h2c: bytes that only start like the preface stay HTTP/1") {
  RawLoop loop(30, false, true);
  // An HTTP/1 head with version 2.0 (the preface's first line, then something else).
  loop.connect();
  loop.send("PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n");
  REQUIRE(loop.until_closed());
  REQUIRE(loop.responses().size() == 1);
  CHECK(loop.responses()[0].status == 505);
  // An ordinary request, kept alive.
  close(loop.fd);
  loop.received.clear();
  loop.peer_closed = false;
  loop.connect();
  loop.send(kGet);
  REQUIRE(loop.responses_at_least(1));
  CHECK(loop.responses()[0].status == 200);
  CHECK(loop.responses()[0].body == "GET /echo?a=1 ");
  loop.send(kGet);
  REQUIRE(loop.responses_at_least(2));
  CHECK_FALSE(loop.peer_closed);
}

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
  std::vector<http::HttpExchange> parked;
  loop.server->route("/stream", {"GET"}, [&](http::HttpExchange& ex) {
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

namespace {

// Routes /part to a reply started with a 3-byte length and parked in `parked`, asks for it, and
// returns once the handler has run.
void ask_started_part(RawLoop& loop, std::vector<http::HttpExchange>& parked) {
  loop.server->route("/part", {"GET"}, [&parked](http::HttpExchange& ex) {
    ex.add_header("Content-Length", "3");
    ex.start(200);
    parked.push_back(std::move(ex));
  });
  loop.connect();
  loop.send("GET /part HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(loop.run_until([&] { return !parked.empty(); }));
}

// Sends the parked reply's body and end; the client reads it whole.
void finish_started_part(RawLoop& loop, http::HttpExchange& parked) {
  parked.send("abc", 3);
  parked.end();
  REQUIRE(loop.responses_at_least(1));
  CHECK(loop.responses()[0].status == 200);
  CHECK(loop.responses()[0].body == "abc");
}

}  // namespace

TEST_CASE("http/1 transport: a streamed reply's head leaves with its first body bytes") {
  RawLoop loop;
  std::vector<http::HttpExchange> parked;
  ask_started_part(loop, parked);
  // A write of the head would be in the client's socket already: loopback delivers within
  // the send.
  char byte = 0;
  CHECK(recv(loop.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == -1);
  CHECK(loop.received.empty());
  finish_started_part(loop, parked[0]);
}

TEST_CASE("http/1 transport: a held head is our wait, not a stalled reader: no I/O timeout") {
  RawLoop loop(/*io_timeout_s=*/1);
  std::vector<http::HttpExchange> parked;
  ask_started_part(loop, parked);
  // Past the timeout (a slow origin between its head and its body).
  CHECK_FALSE(loop.run_until([&] { return loop.peer_closed; }, 1600ms));
  finish_started_part(loop, parked[0]);
}

TEST_CASE("http/1 transport: a client that leaves while its request is held is noticed") {
  RawLoop loop;
  std::vector<http::HttpExchange> parked;
  bool closed_seen = false;
  loop.server->route("/held", {"GET"}, [&](http::HttpExchange& ex) {
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
  std::vector<http::HttpExchange> parked;
  loop.server->route("/held", {"GET"},
                     [&](http::HttpExchange& ex) { parked.push_back(std::move(ex)); });
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
  // Each byte comes well within the timeout of the one before; the head as a whole does not.
  const Trickled trickled = loop.trickle(head);
  REQUIRE(loop.peer_closed);
  CHECK(trickled.took < 4s);
  CHECK(loop.received.empty());
}

TEST_CASE(
    "http/1 transport: HEAD gets the length and no body; response fields with a line "
    "break are dropped") {
  RawLoop loop;
  loop.server->route("/inject", {"GET"}, [](http::HttpExchange& ex) {
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

TEST_CASE(
    "http/1 transport over TLS: pipelined requests in order, a head a byte at a time, and "
    "close_notify after an HTTP/1.0 reply") {
  RawLoop loop(30, true);
  loop.connect_tls();
  loop.send(kGet + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" + kGet);
  REQUIRE(loop.responses_at_least(3));
  auto responses = loop.responses();
  CHECK(responses[0].body == "GET /echo?a=1 ");
  CHECK(responses[1].body == "POST /echo hello");
  CHECK(responses[2].body == "GET /echo?a=1 ");
  // A record per byte: each is decrypted and the head is read once whole.
  for (char c : std::string("GET /echo?b=2 HTTP/1.1\r\nHost: t\r\n\r\n")) {
    loop.send(std::string(1, c));
    loop.run_until([] { return false; }, 1ms);
  }
  REQUIRE(loop.responses_at_least(4));
  CHECK(loop.responses()[3].body == "GET /echo?b=2 ");
  CHECK_FALSE(loop.peer_closed);
  // A body larger than a record, in one reply.
  loop.server->route("/big", {"GET"}, [](http::HttpExchange& ex) {
    ex.reply(200, std::string(100000, 'b'), "text/plain");
  });
  loop.send("GET /big HTTP/1.0\r\n\r\n");
  REQUIRE(loop.until_closed());
  REQUIRE(loop.responses().size() == 5);
  CHECK(loop.responses()[4].body == std::string(100000, 'b'));
  CHECK(loop.close_notify);
}

TEST_CASE(
    "http/1 transport over TLS: a reply streamed in small pieces to a client that is not "
    "reading arrives whole") {
  RawLoop loop(30, true);
  constexpr size_t kPieces = 4000;
  constexpr size_t kPieceBytes = 1000;
  std::string expected;
  loop.server->route("/pieces", {"GET"}, [&](http::HttpExchange& ex) {
    ex.add_header("Content-Length", std::to_string(kPieces * kPieceBytes));
    ex.start(200);
    // The socket fills long before the end: writes wait and are retried as more pieces join
    // the record being written (so from another address).
    for (size_t i = 0; i < kPieces; ++i) {
      const std::string piece(kPieceBytes, static_cast<char>('a' + i % 26));
      expected += piece;
      ex.send(piece.data(), piece.size());
    }
    ex.end();
  });
  loop.connect_tls();
  loop.send("GET /pieces HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(loop.run_until(
      [&] {
        return loop.peer_closed || balancer::test::split_responses(loop.received).size() == 1;
      },
      10s));
  REQUIRE(loop.responses().size() == 1);
  CHECK(loop.responses()[0].body.size() == expected.size());
  CHECK(loop.responses()[0].body == expected);
  CHECK_FALSE(loop.peer_closed);
}

TEST_CASE("http/1 transport over TLS: heads it cannot read get the JSON error contract") {
  RawLoop loop(30, true);
  loop.connect_tls();
  SUBCASE("far over the header limit: 431") {
    loop.send("GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
    REQUIRE(loop.until_closed());
    REQUIRE(loop.responses().size() == 1);
    CHECK(loop.responses()[0].status == 431);
    CHECK(loop.responses()[0].body.find("\"headers_too_large\"") != std::string::npos);
  }
  SUBCASE("HTTP/2's preface after agreeing on http/1.1: 505") {
    loop.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    REQUIRE(loop.until_closed());
    REQUIRE(loop.responses().size() == 1);
    CHECK(loop.responses()[0].status == 505);
    CHECK(loop.responses()[0].body.find("\"http_version_not_supported\"") != std::string::npos);
  }
  CHECK(loop.close_notify);
}

TEST_CASE(
    "http/1 transport over TLS: a handshake sent a byte at a time must end within the I/O "
    "timeout") {
  RawLoop loop(1, true);
  // A real ClientHello, made by a client that writes into memory.
  http::SslPtr hello_maker(SSL_new(loop.client_context.get()));
  REQUIRE(hello_maker);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(hello_maker.get(), in, out);  // the session owns both
  SSL_set_connect_state(hello_maker.get());
  CHECK(SSL_do_handshake(hello_maker.get()) != 1);  // waits for the server's answer
  char* bytes = nullptr;
  const long size = BIO_get_mem_data(out, &bytes);
  REQUIRE(size > 100);
  const std::string hello(bytes, static_cast<size_t>(size));
  loop.connect();
  // Each byte well within the timeout of the one before; the handshake as a whole not.
  const Trickled trickled = loop.trickle(hello);
  REQUIRE(loop.peer_closed);
  CHECK(trickled.took < 4s);
  CHECK(trickled.sent < hello.size());
}
