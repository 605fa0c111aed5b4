// Strict HTTP/1.1 framing on the wire (RFC 9112 §6.3, §3.2): a real cache node
// and a real balancer answer every request head a proxy could frame differently
// (two Content-Lengths, "identity, chunked", whitespace before a colon, "+5",
// "0x5", no or two Host fields, ...) with one 400 JSON error and close the
// connection, so the request smuggled behind it never gets an answer; ordinary
// keep-alive and pipelined requests, with bodies by length or chunked, go on
// being served on one connection. An absolute-form target (RFC 9112 §3.2.2) is served as
// its path and query; a malformed one is a 400 JSON error too.
#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/smuggling_cases.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// One HTTP/1 transport answers the smuggling table's heads (support/smuggling_cases.h), on
// plain listeners with and without h2c (where it first looks for HTTP/2's preface).

std::string code_prefix(const std::string& code) {
  return "{\"error\":{\"code\":\"" + code + "\",\"message\":\"";
}

std::string metrics_of(int port) {
  return http_get(local_url(port, "/metrics")).body;
}

// `bytes` written on a fresh connection to `port` (both REQUIREd), then what the server sends
// until it closes the connection (or reads give up, after 3 s).
RawRead send_until_closed(int port, const std::string& bytes) {
  const int fd = connect_loopback(port, 3s);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  RawRead read = read_until_closed(fd);
  close(fd);
  return read;
}

// The one response in `read`, REQUIREd to be the only one.
RawResponse only_response(const RawRead& read) {
  auto responses = split_responses(read.bytes);
  REQUIRE(responses.size() == 1);
  return responses[0];
}

double bad_requests(const std::string& metrics, const std::string& reason) {
  return metric_value(metrics, "http_bad_requests_total{reason=\"" + reason + "\"}").value_or(-1);
}

// Every smuggling case against the server on `port`, whose `path` answers GET.
void check_refusals(int port, const std::string& path) {
  for (const SmugglingCase& c : smuggling_cases()) {
    INFO(std::string(c.what));
    std::string before = metrics_of(port);
    RawRead read =
        send_until_closed(port, with_path(c.head, path) + c.body + smuggled_request(path));
    INFO(read.bytes);
    CHECK(read.closed);  // the server closed, rather than waiting for more
    std::string rest;
    auto responses = split_responses(read.bytes, c.head_request, &rest);
    CHECK(rest.empty());  // no second response, whole or partial
    CHECK(responses.size() == 1);
    if (responses.empty()) continue;
    CHECK(responses[0].status == 400);
    CHECK(responses[0].has_header("Connection: close"));
    CHECK(responses[0].has_header("Content-Type: application/json"));
    if (!c.head_request) CHECK(responses[0].body.find(code_prefix(c.code)) == 0);
    if (c.code != kParserRefusal) {
      CHECK(bad_requests(metrics_of(port), c.code) == bad_requests(before, c.code) + 1);
    }
  }
}

// Keep-alive and pipelining with the accepted forms: five requests in one write
// (GETs, a POST framed by Content-Length and one chunked, answered 405 by a
// GET-only path after their bodies were read), then one more on the same connection.
void check_keep_alive(int port, const std::string& path) {
  int fd = connect_loopback(port, 3s);
  REQUIRE(fd >= 0);
  std::string get = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  std::string pipelined = get + get + "POST " + path +
                          " HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nAAAAA" + "POST " +
                          path + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                          "5\r\nAAAAA\r\n0\r\n\r\n" + get;
  REQUIRE(write(fd, pipelined.data(), pipelined.size()) == static_cast<ssize_t>(pipelined.size()));
  RawRead read =
      read_raw(fd, [](const std::string& bytes) { return split_responses(bytes).size() >= 5; });
  INFO(read.bytes);
  CHECK_FALSE(read.closed);
  auto responses = split_responses(read.bytes);
  REQUIRE(responses.size() == 5);
  CHECK(responses[0].status == 200);
  CHECK(responses[1].status == 200);
  CHECK(responses[2].status == 405);
  CHECK(responses[3].status == 405);
  CHECK(responses[4].status == 200);
  for (const auto& r : responses) CHECK_FALSE(r.has_header("Connection: close"));
  // The same connection serves a request written after the answers.
  REQUIRE(write(fd, get.data(), get.size()) == static_cast<ssize_t>(get.size()));
  RawRead again =
      read_raw(fd, [](const std::string& bytes) { return !split_responses(bytes).empty(); });
  auto last = split_responses(again.bytes);
  REQUIRE(last.size() == 1);
  CHECK(last[0].status == 200);
  close(fd);

  // HTTP/1.0 needs no Host; without keep-alive the server closes after the answer.
  RawRead old_read = send_until_closed(port, "GET " + path + " HTTP/1.0\r\n\r\n");
  CHECK(old_read.closed);
  CHECK(only_response(old_read).status == 200);
}

}  // namespace

TEST_CASE(
    "cache node: request heads a proxy could frame differently get 400 JSON and a closed "
    "connection") {
  NodeOnOrigin s;
  check_refusals(s.node.port(), "/ping");
  check_keep_alive(s.node.port(), "/ping");
  // With h2c the plain port first looks for HTTP/2's preface, then reads HTTP/1 the same way.
  CacheNodeProcess h2c_node(s.dir.file("data-h2c"), s.origin.base_url(), {"listen.h2c=true"});
  check_refusals(h2c_node.port(), "/ping");
  check_keep_alive(h2c_node.port(), "/ping");
  // Clients that always send Host (libcurl) are unaffected.
  CHECK(http_get(s.node.url("/ping")).status == 200);
  CHECK(http_get(s.node.signed_url("/o/demo/gen/4K/framing.ts")).status == 200);
}

TEST_CASE(
    "balancer: request heads a proxy could frame differently get 400 JSON and a closed "
    "connection") {
  TempDir dir;
  TestOrigin origin;
  BalancerProcess balancer(dir, origin.url("/files"), channels_json({}), caches_json({}));
  check_refusals(balancer.port(), "/health");
  check_keep_alive(balancer.port(), "/health");
  CHECK(balancer.get("/health").status == 200);
}

TEST_CASE("both servers: a head our transport cannot read is a JSON 400, and the close") {
  NodeOnOrigin s;
  BalancerProcess balancer(s.dir, s.origin.url("/files"), channels_json({}), caches_json({}));
  for (int port : {s.node.port(), balancer.port()}) {
    for (const char* head : {"NOT A REQUEST LINE\r\n\r\n", "GET /health HTTP/1.1\rHost: a\r\n\r\n",
                             "GET /health HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"}) {
      INFO(head);
      RawRead read = send_until_closed(port, head);
      CHECK(read.closed);
      const RawResponse response = only_response(read);
      CHECK(response.status == 400);
      CHECK(response.has_header("Connection: close"));
      CHECK(response.has_header("Content-Type: application/json"));
      CHECK(response.body.find(code_prefix(kParserRefusal)) == 0);
    }
    // A version other than HTTP/1.x (HTTP/2's preface on a listener without h2c among them).
    RawRead read = send_until_closed(port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    CHECK(read.closed);
    const RawResponse response = only_response(read);
    CHECK(response.status == 505);
    CHECK(response.body.find(code_prefix("http_version_not_supported")) == 0);
  }
}

TEST_CASE("both servers: an absolute-form target is served as its path; a malformed one is 400") {
  NodeOnOrigin s;
  BalancerProcess balancer(s.dir, s.origin.url("/files"), channels_json({}), caches_json({}));
  // A chunk by its whole signed URL, as a proxy-minded client sends it; the Host sent is not
  // the target's authority, which wins (RFC 9112 section 3.2.2).
  const std::string url = s.node.signed_url("/o/demo/gen/4K/absolute.ts");
  REQUIRE(url.rfind("http://", 0) == 0);
  RawRead read = send_until_closed(
      s.node.port(),
      "GET " + url + " HTTP/1.1\r\nHost: not-this.example\r\nConnection: close\r\n\r\n");
  const RawResponse chunk = only_response(read);
  CHECK(chunk.status == 200);
  CHECK(chunk.body == generated_body("absolute.ts", 4096));
  const std::string health = "GET HTTP://127.0.0.1:" + std::to_string(balancer.port()) +
                             "/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  CHECK(only_response(send_until_closed(balancer.port(), health)).status == 200);

  for (int port : {s.node.port(), balancer.port()}) {
    for (const char* target : {"http://user@127.0.0.1/ping", "http:///ping",
                               "http://127.0.0.1:99999/ping", "https://[127.0.0.1]/ping"}) {
      INFO(target);
      const RawRead refused =
          send_until_closed(port, std::string("GET ") + target + " HTTP/1.1\r\nHost: a\r\n\r\n");
      CHECK(refused.closed);
      const RawResponse response = only_response(refused);
      CHECK(response.status == 400);
      CHECK(response.has_header("Content-Type: application/json"));
      CHECK(response.body.find(code_prefix(kParserRefusal)) == 0);
    }
  }
}
