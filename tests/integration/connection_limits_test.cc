// Connection limits and the open-file limit, on a real cache node (the balancer runs the same
// HttpServer): past server.max_connections_per_address a plain connection gets 429 JSON and
// is closed while another address is served; at server.max_connections an idle connection
// makes room, and with none idle only /health and /metrics are served (the operator's
// reserve), anything else 503; a TLS
// connection past a limit is closed at accept, before any handshake; and at the open-file
// limit the server neither spins nor floods its log, and serves again once connections close.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/cache_node_fixture.h"
#include "support/fault_support.h"
#include "support/raw_h2_client.h"
#include "support/sockets.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// What the server answered on a fresh connection from `source` (nullptr: 127.0.0.1) to
// `GET target`, read until it closed; and whether it did close.
struct Answer {
  int status = 0;
  RawResponse response;
  bool closed = false;
};
Answer ask(int port, const char* source, const std::string& target = "/health",
           bool close_after = true) {
  Answer answer;
  const int fd = connect_loopback_from(source, port);
  if (fd < 0) return answer;
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: t\r\n" +
                              (close_after ? "Connection: close\r\n" : "") + "\r\n";
  (void)!write(fd, request.data(), request.size());
  RawRead read = read_until_closed(fd);
  close(fd);
  auto responses = split_responses(read.bytes);
  if (!responses.empty()) {
    answer.response = responses[0];
    answer.status = responses[0].status;
  }
  answer.closed = read.closed;
  return answer;
}

// A keep-alive connection from 127.0.0.1 that has had one request answered 200: the server
// holds it (counted) from then on. -1 when it was not served.
int held_connection(int port) {
  const int fd = connect_loopback(port);
  if (fd < 0) return -1;
  const std::string request = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  RawRead read = read_raw(fd, [](const std::string& b) { return !split_responses(b).empty(); });
  auto responses = split_responses(read.bytes);
  if (responses.empty() || responses[0].status != 200) {
    close(fd);
    return -1;
  }
  return fd;
}

void hold(Sockets& sockets, int port, int count) {
  for (int i = 0; i < count; ++i) {
    const int fd = held_connection(port);
    REQUIRE_MESSAGE(fd >= 0, "connection " << i << " was not served");
    sockets.fds.push_back(fd);
  }
}

// A refusal as DESIGN.md's error contract has it: the status, the JSON error with `code`,
// Retry-After, Connection: close, and the close.
void check_refusal(const Answer& a, int status, const std::string& code,
                   const std::string& retry_after) {
  CHECK(a.status == status);
  CHECK(a.response.body.find("\"code\":\"" + code + "\"") != std::string::npos);
  CHECK(a.response.has_header("Retry-After: " + retry_after));
  CHECK(a.response.has_header("Connection: close"));
  CHECK(a.response.has_header("Content-Type: application/json"));
  CHECK(a.closed);
}

size_t line_count(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A node that also listens for TLS (its certificate in a folder of its own), `setting` on top.
struct TlsNode {
  explicit TlsNode(const std::string& setting) : n(with(certs.overrides(), setting)) {}
  // GET /health over TLS, trusting the node's certificate.
  HttpRequest health_request() const {
    HttpRequest request;
    request.url = n.node.tls_url("/health");
    request.ca_file = certs.cert;
    return request;
  }
  static std::vector<std::string> with(std::vector<std::string> overrides,
                                       const std::string& setting) {
    overrides.push_back(setting);
    return overrides;
  }
  TempDir dir;
  TestTlsFiles certs{dir.path(), "limits-test"};
  NodeOnOrigin n;
};

}  // namespace

TEST_CASE("past max_connections_per_address: 429 JSON and the close; another address is served") {
  NodeOnOrigin n({"server.max_connections_per_address=4"});
  Sockets held;
  hold(held, n.node.port(), 4);
  check_refusal(ask(n.node.port(), nullptr), 429, "too_many_connections_from_address", "10");
  // 127.0.0.2 is another client: served, and it reads the count of refusals.
  const Answer other = ask(n.node.port(), "127.0.0.2", "/metrics");
  REQUIRE(other.status == 200);
  CHECK(metric_value(other.response.body,
                     "http_connections_refused_total{reason=\"per_address\"}") == 1);
  CHECK(metric_value(other.response.body, "http_connections_open") >= 5);
  // A place freed is a place to take (the server sees the close in its own time).
  close(held.fds.back());
  held.fds.pop_back();
  CHECK(wait_until([&] { return ask(n.node.port(), nullptr).status == 200; }, 10s));
}

TEST_CASE("at max_connections an idle connection makes room; the oldest goes first") {
  NodeOnOrigin n({"server.max_connections=3", "server.max_connections_per_address=0"});
  Sockets held;
  hold(held, n.node.port(), 3);
  // A new client takes the place of an idle one (the accepting loop's oldest: with one loop, the
  // first held).
  const Answer fresh = ask(n.node.port(), "127.0.0.2");
  CHECK(fresh.status == 200);
  // Which loop takes each connection is the kernel's choice, and only the accepting loop's idle
  // ones make room: with two loops all three held ones may sit on the other, and /health is
  // then answered from the operator's reserve (seen once in CI's sanitizer pass, once beside
  // other tests). The eviction itself is checked with one loop.
  if (test_threads() > 1 || !servers_sanitizer().empty()) return;
  CHECK(count_closed_by_peer(held.fds) == 1);
  CHECK(count_closed_by_peer({held.fds[0]}) == 1);
  CHECK(n.node.metric("http_connections_evicted_total") >= 1);
  CHECK(n.node.metric("http_connections_refused_total{reason=\"total\"}") == 0);
}

TEST_CASE("at max_connections an HTTP/2 connection with no stream open makes room too") {
  // Which loop takes each connection is the kernel's choice, and only the accepting loop's idle
  // connections make room (see above): checked with one loop.
  if (test_threads() > 1) {
    MESSAGE("skipped with two loops: the accepting loop may hold none of the idle connections");
    return;
  }
  NodeOnOrigin n(
      {"listen.h2c=true", "server.max_connections=3", "server.max_connections_per_address=0"});
  // Three h2c connections, each with one request answered, then idle (no stream open): before,
  // an HTTP/2 connection was never a candidate, and a flood of them held the table for good.
  std::vector<std::unique_ptr<RawH2Client>> held;
  for (int i = 0; i < 3; ++i) {
    auto client = std::make_unique<RawH2Client>(n.node.port());
    REQUIRE(client->connected());
    const int32_t id = client->submit(client->get_request("/health"));
    client->run_until_answered(100);
    REQUIRE(client->stream(id).status == 200);
    held.push_back(std::move(client));
  }
  // A new client on any path (not the operator's reserve): served, and the oldest h2
  // connection was told GOAWAY and closed to make room.
  const Answer fresh = ask(n.node.port(), "127.0.0.2", "/no-such-path");
  CHECK(fresh.status == 404);
  held[0]->run_until_closed(20);
  CHECK(held[0]->got_goaway());
  CHECK(held[0]->goaway_error() == NGHTTP2_NO_ERROR);
  CHECK(held[0]->closed());
  CHECK(n.node.metric("http_connections_evicted_total") >= 1);
}

TEST_CASE(
    "at max_connections with none idle: /health and /metrics through the operator's reserve, "
    "anything else 503 JSON and the close") {
  NodeOnOrigin n({"server.max_connections=3", "server.max_connections_per_address=0"});
  // Three connections at work: each has sent a request head whose body never comes. The
  // server's 100 Continue says it read the head (until then the connection is idle to it, and
  // the first poll of the metrics below would close it to make room).
  Sockets busy;
  for (int i = 0; i < 3; ++i) {
    const int fd = connect_loopback(n.node.port());
    REQUIRE(fd >= 0);
    busy.fds.push_back(fd);
    const std::string head =
        "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n";
    REQUIRE(write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
    const RawRead read = read_raw(fd, [](const std::string& bytes) {
      return bytes.find("100 Continue") != std::string::npos;
    });
    REQUIRE(read.bytes.find("100 Continue") != std::string::npos);
  }
  REQUIRE(wait_until([&] { return n.node.metric("http_connections_open") >= 4; }, 10s));
  check_refusal(ask(n.node.port(), nullptr, "/o/demo/a.ts"), 503, "too_many_connections", "5");
  check_refusal(ask(n.node.port(), "127.0.0.2", "/nothing"), 503, "too_many_connections", "5");
  const Answer health = ask(n.node.port(), "127.0.0.3", "/health", false);
  CHECK(health.status == 200);
  CHECK(health.response.has_header("Connection: close"));
  CHECK(health.closed);  // asked to stay open: the reserve's place is not kept
  const Answer metrics = ask(n.node.port(), "127.0.0.4", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metric_value(metrics.response.body, "http_connections_operator_reserve_total") >= 4);
  busy.close_all();
  CHECK(wait_until([&] { return n.node.metric("http_connections_open") == 1; }, 10s));
}

TEST_CASE("a TLS connection past the limit is closed at accept, without a handshake") {
  TlsNode tls("server.max_connections_per_address=2");
  NodeOnOrigin& n = tls.n;
  REQUIRE(n.node.tls_port() > 0);
  // The count is the process's, across listeners: two plain connections fill it.
  Sockets held;
  hold(held, n.node.port(), 2);
  // Silent, the client is closed on at once: no ServerHello, no wait for a ClientHello (without
  // the limit it would wait io_timeout_s, past this read's 5 s).
  const int fd = connect_loopback(n.node.tls_port(), 5s);
  REQUIRE(fd >= 0);
  const RawRead read = read_until_closed(fd);
  close(fd);
  CHECK(read.closed);
  CHECK(read.bytes.empty());
  HttpRequest request = tls.health_request();
  request.timeout = 5s;
  CHECK_FALSE(http_request(request).ok());
  held.close_all();
  CHECK(wait_until([&] { return http_request(request).status == 200; }, 10s));
  CHECK(n.node.metric("http_connections_refused_total{reason=\"per_address\"}") >= 2);
}

TEST_CASE("half a ClientHello is held without a session, and closed after io_timeout_s") {
  TlsNode tls("server.io_timeout_s=1");
  NodeOnOrigin& n = tls.n;
  // A handshake record that says 512 bytes follow, and 100 of them: the server waits for the
  // rest (the kernel holds the bytes), and the handshake's time bound still closes it.
  std::string partial = {'\x16', '\x03', '\x01', '\x02', '\x00'};
  partial.append(100, '\x01');
  const int fd = connect_loopback(n.node.tls_port(), 5s);
  REQUIRE(fd >= 0);
  const auto sent_at = Clock::now();
  REQUIRE(write(fd, partial.data(), partial.size()) == static_cast<ssize_t>(partial.size()));
  const RawRead read = read_until_closed(fd);
  const double waited = std::chrono::duration<double>(Clock::now() - sent_at).count();
  close(fd);
  CHECK(read.closed);
  CHECK(read.bytes.empty());
  CHECK(waited > 0.5);
  CHECK(waited < 4);
  // The server is well: a real handshake and request go through.
  CHECK(http_request(tls.health_request()).status == 200);
}

TEST_CASE("at the open-file limit: no spinning, a bounded log, and service once fds are free") {
  TempDir dir;
  ChildOptions options;
  options.argv = {binary_path("cache_node"), "--config",
                  std::string(BALANCER_SOURCE_DIR) + "/conf/cache_node.json", "--set",
                  "listen.port=0", "--set", "data_dir=" + dir.file("data"), "--set",
                  "origins.demo.url=http://127.0.0.1:9", "--set", "server.access_log=false",
                  // Limits far above the descriptors: accept itself must fail (EMFILE).
                  "--set", "server.max_connections=100000", "--set",
                  "server.max_connections_per_address=0", "--set", "storage.memory_mb=16"};
  for (auto& a : threads_args()) options.argv.push_back(a);
  options.max_open_files = 64;
  ChildProcess node;
  std::string error;
  REQUIRE_MESSAGE(node.start(options, &error), error);
  const int port = node.wait_for_listening_port(deadline_in(10s));
  REQUIRE_MESSAGE(port > 0, node.stderr_text());
  REQUIRE(ask(port, nullptr).status == 200);

  // More connections than the server has descriptors left: the kernel completes them all
  // (the backlog); the server accepts until EMFILE.
  Sockets clients;
  for (int i = 0; i < 100; ++i) {
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    clients.fds.push_back(fd);
  }
  REQUIRE_MESSAGE(
      wait_until([&] { return node.stderr_text().find("accept failed") != std::string::npos; },
                 10s),
      node.stderr_text());
  const size_t lines_before = line_count(node.stderr_text());
  const int64_t ticks_before = cpu_ticks(node.pid());
  const auto window_start = Clock::now();
  // An observation window, not a synchronisation: what the server does at the limit, idle.
  std::this_thread::sleep_for(2s);
  const int64_t used = cpu_ticks(node.pid()) - ticks_before;
  const double window_s = std::chrono::duration<double>(Clock::now() - window_start).count();
  const std::string log = node.stderr_text();
  const size_t lines = line_count(log) - lines_before;
  MESSAGE("at the fd limit: ", used, " CPU ticks and ", lines, " log lines in ", window_s, " s");
  // Spinning on accept took a whole core (~100 ticks a second) and wrote ~230,000 lines a second.
  CHECK(used < 10 * window_s);
  CHECK(lines <= 3);
  CHECK(log.find("Too many open files") != std::string::npos);

  clients.close_all();
  CHECK(wait_until([&] { return ask(port, nullptr).status == 200; }, 10s));
  node.terminate();
  CHECK(node.wait_exit(deadline_in(15s)).has_value());
}
