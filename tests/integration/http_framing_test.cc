// Strict HTTP/1.1 framing on the wire (RFC 9112 §6.3, §3.2): a real cache node
// and a real balancer answer every request head a proxy could frame differently
// (two Content-Lengths, "identity, chunked", whitespace before a colon, "+5",
// "0x5", no or two Host fields, ...) with one 400 JSON error and close the
// connection, so the request smuggled behind it never gets an answer; ordinary
// keep-alive and pipelined requests, with bodies by length or chunked, go on
// being served on one connection.
#include <doctest/doctest.h>
#include <event2/event.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// Two HTTP/1 transports answer these heads: our own (plain listeners, the default) and evhttp
// (a listener with h2c, whose HTTP/1.1 connections pass through the protocol filter). Where
// one refuses a head before the framing check sees it, its code is "bad_request": our head
// parser for a malformed field line, evhttp's own parser for a few values (with a JSON 400 and
// a closed connection too; which ones depends on the libevent build, docs/architecture.md,
// "Request framing"). Those are not counted by reason.
const std::string kParserRefusal = "bad_request";

struct SmugglingCase {
  const char* what;
  std::string head;  // request line + fields + blank line, with `{P}` for the path
  std::string body;  // what the head's framing (as a proxy might read it) covers
  std::string code;  // our transport's JSON error code (and http_bad_requests_total's reason)
  std::string evhttp_code = {};    // evhttp's, when it differs from `code`
  bool evhttp_may_refuse = false;  // evhttp's own refusal is fine too
  bool head_request = false;
};

std::string with_path(std::string text, const std::string& path) {
  for (size_t at = text.find("{P}"); at != std::string::npos; at = text.find("{P}", at))
    text.replace(at, 3, path);
  return text;
}

std::vector<SmugglingCase> smuggling_cases() {
  return {
      {"two different Content-Length values (evhttp reads the first)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n", "AAAAA",
       "repeated_content_length"},
      {"two identical Content-Length fields",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "AAAAA",
       "repeated_content_length"},
      {"Transfer-Encoding: identity, chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: gzip, chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: gzip and Transfer-Encoding: chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: <tab>chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"Transfer-Encoding: <space><tab>chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", "bad_transfer_encoding"},
      {"chunked on HTTP/1.0 keep-alive",
       "POST {P} HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
       "0\r\n\r\n", "bad_transfer_encoding"},
      {"Content-Length with Transfer-Encoding: chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       "0\r\n\r\n",
       "content_length_with_transfer_encoding",
       {},
       true},
      {"Content-Length : 5 (evhttp stores a field named \"Content-Length \" and reads no body)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", "AAAAA", kParserRefusal,
       "bad_header_name"},
      {"Transfer-Encoding : chunked",
       "POST {P} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
       "5\r\nAAAAA\r\n0\r\n\r\n", kParserRefusal, "bad_header_name"},
      {"Content-Length: +5 (evhttp reads 5)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "AAAAA", "bad_content_length"},
      {"Content-Length: 0x5 (refused by evhttp's own parser)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", "AAAAA", "bad_content_length",
       kParserRefusal},
      {"Content-Length: -1 (refused by evhttp's own parser)",
       "POST {P} HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "AAAAA", "bad_content_length",
       kParserRefusal},
      {"HEAD with a body (evhttp reads none for HEAD)",
       "HEAD {P} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
       "AAAAA",
       "head_with_body",
       {},
       false,
       true},
      {"HTTP/1.1 without Host", "GET {P} HTTP/1.1\r\n\r\n", "", "missing_host"},
      {"two Host fields", "GET {P} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "", "repeated_host"},
      {"a Host that is no host", "GET {P} HTTP/1.1\r\nHost: a/b@c\r\n\r\n", "", "bad_host"},
  };
}

// The request hidden behind each refused head: it must never be answered.
std::string smuggled(const std::string& path) {
  return "GET " + path + "?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n";
}

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

enum class Http1Kind { builtin, evhttp };

// Every smuggling case against the server on `port`, whose `path` answers GET. On a
// port whose connections go through the protocol filter (h2c here: evhttp) this includes
// the replies evhttp makes on its own, which used to be cut off and then break the loop.
void check_refusals(int port, const std::string& path, Http1Kind transport) {
  for (SmugglingCase c : smuggling_cases()) {
    if (transport == Http1Kind::evhttp && !c.evhttp_code.empty()) c.code = c.evhttp_code;
    if (transport == Http1Kind::builtin) c.evhttp_may_refuse = false;
    INFO(std::string(c.what));
    std::string before = metrics_of(port);
    RawRead read = send_until_closed(port, with_path(c.head, path) + c.body + smuggled(path));
    INFO(read.bytes);
    CHECK(read.closed);  // the server closed, rather than waiting for more
    std::string rest;
    auto responses = split_responses(read.bytes, c.head_request, &rest);
    CHECK(rest.empty());  // no second response, whole or partial
    CHECK(responses.size() == 1);
    if (responses.empty()) continue;
    CHECK(responses[0].status == 400);
    CHECK(responses[0].has_header("Connection: close"));
    bool ours = c.head_request || responses[0].body.find(code_prefix(c.code)) == 0;
    // evhttp's own refusals are JSON only through the libevent overrides, which run on
    // libevent 2.1.12-stable only (check_libevent_overrides_in_effect says so elsewhere).
    const bool json = transport == Http1Kind::builtin || event_get_version_number() == 0x02010c00;
    const bool evhttp_json = json && c.code == kParserRefusal;
    if (ours && (c.code != kParserRefusal || json))
      CHECK(responses[0].has_header("Content-Type: application/json"));
    if (c.evhttp_may_refuse && !ours && evhttp_json)
      CHECK(responses[0].body.find(code_prefix(kParserRefusal)) == 0);
    if (!c.evhttp_may_refuse && (c.code != kParserRefusal || json)) CHECK(ours);
    if (ours && c.code != kParserRefusal) {
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
  check_refusals(s.node.port(), "/ping", Http1Kind::builtin);
  check_keep_alive(s.node.port(), "/ping");
  // With h2c the plain port's connections go through the protocol filter, which
  // closes them itself after a closing reply: nothing behind a refused head is read.
  CacheNodeProcess h2c_node(s.dir.file("data-h2c"), s.origin.base_url(), {"listen.h2c=true"});
  check_refusals(h2c_node.port(), "/ping", Http1Kind::evhttp);
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
  check_refusals(balancer.port(), "/health", Http1Kind::builtin);
  check_keep_alive(balancer.port(), "/health");
  BalancerProcess on_evhttp(dir, origin.url("/files"), channels_json({}), caches_json({}),
                            {"server.http1_transport=evhttp"});
  check_refusals(on_evhttp.port(), "/health", Http1Kind::evhttp);
  check_keep_alive(on_evhttp.port(), "/health");
  CHECK(balancer.get("/health").status == 200);
}

namespace {

// On evhttp (the transport of TLS and h2c listeners, and of plain ones configured
// with server.http1_transport "evhttp"), a request line it cannot parse is refused by evhttp
// itself, before any code of ours runs: its JSON body and content type come only from the
// formatting replacement (src/http/libevent_overrides.cc), which the server also reports as in
// effect, and whose fast path wrote the reply's lines.
void check_libevent_overrides_in_effect(int port) {
  RawRead read = send_until_closed(port, "NOT A REQUEST LINE\r\n\r\n");
  INFO(read.bytes);
  const RawResponse response = only_response(read);
  CHECK(response.status == 400);
  const std::string metrics = metrics_of(port);
  if (event_get_version_number() != 0x02010c00) {
    // The servers' libevent is the tests' (the system's): the overrides run only on the
    // 2.1.12-stable they were written for and forward to libevent's own functions elsewhere.
    MESSAGE("libevent ", event_get_version(),
            " is not 2.1.12-stable: the libevent overrides are off, evhttp's own refusals are "
            "libevent's HTML pages, not JSON errors (docs/architecture.md)");
    CHECK(metric_value(metrics, "http_evhttp_format_in_effect") == std::optional<double>(0));
    return;
  }
  CHECK(response.has_header("Content-Type: application/json"));
  CHECK(response.body.find(code_prefix(kParserRefusal)) == 0);
  CHECK(metric_value(metrics, "http_evhttp_format_in_effect") == std::optional<double>(1));
  // Between two scrapes, two replies (that scrape's and a /health's): each a status line
  // and at least two header lines, all on the fast path (one per reply if only status
  // lines were still recognised, say after a libevent update changed a format).
  const double lines_before = metric_value(metrics, "http_fast_header_lines_total").value_or(0);
  CHECK(http_get(local_url(port, "/health")).status == 200);
  const double lines_after =
      metric_value(metrics_of(port), "http_fast_header_lines_total").value_or(0);
  CHECK(lines_after - lines_before >= 6);
}

}  // namespace

TEST_CASE(
    "both servers: evhttp's own refusal is a JSON error and the formatting replacement is in "
    "effect") {
  NodeOnOrigin s;
  CacheNodeProcess node(s.dir.file("data-evhttp"), s.origin.base_url(),
                        {"server.http1_transport=evhttp"});
  check_libevent_overrides_in_effect(node.port());
  BalancerProcess balancer(s.dir, s.origin.url("/files"), channels_json({}), caches_json({}),
                           {"server.http1_transport=evhttp"});
  check_libevent_overrides_in_effect(balancer.port());
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
