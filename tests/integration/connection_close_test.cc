// Requests that ask the server to close after the reply (HTTP/1.0 without keep-alive,
// HTTP/1.1 with "Connection: close"), mixed with keep-alive ones, sequential and
// concurrent, on every listener of both servers: plain, plain with h2c, and TLS. Each
// gets its whole reply; afterwards the server answers /health, idles, and stops
// cleanly on SIGTERM. (Through the TLS/h2c filter, the reply used to be dropped with
// the connection and the loop then spun or crashed after a few of them.)
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

enum class Ask { http1_0, close, keep_alive };

struct Listener {
  std::string name;
  std::string base;     // scheme://127.0.0.1:port
  std::string ca_file;  // for https
};

// One request of kind `ask` for `target`; "" when the reply is whole, else what was wrong.
std::string check_one(const Listener& l, const std::string& target, Ask ask,
                      const std::string& expected_body, const std::string& expected_prefix) {
  HttpRequest request;
  request.url = l.base + target;
  request.ca_file = l.ca_file;
  request.timeout = 10s;
  if (ask == Ask::http1_0) request.version = HttpRequest::Version::http1_0;
  if (ask == Ask::close) request.headers = {{"Connection", "close"}};
  HttpResponse r = http_request(request);
  std::string what = l.name + " " + target +
                     (ask == Ask::http1_0 ? " (HTTP/1.0)"
                      : ask == Ask::close ? " (close)"
                                          : "");
  if (!r.ok()) return what + ": " + r.error;
  if (r.status != 200) return what + ": status " + std::to_string(r.status);
  if (!expected_body.empty() && r.body != expected_body) {
    return what + ": body of " + std::to_string(r.body.size()) + " bytes, expected " +
           std::to_string(expected_body.size());
  }
  if (r.body.compare(0, expected_prefix.size(), expected_prefix) != 0)
    return what + ": unexpected body";
  if (ask == Ask::close && r.header("Connection").value_or("") != "close")
    return what + ": no Connection: close";
  return "";
}

// Hundreds of closing and keep-alive requests to `l`, then concurrent ones.
// `target(i)` names the i-th request's target and its expected body (or prefix).
void flood(const Listener& l,
           const std::function<std::pair<std::string, std::string>(int)>& target_and_body,
           const std::string& expected_prefix) {
  const Ask asks[] = {Ask::http1_0, Ask::close, Ask::keep_alive};
  int failures = 0;
  for (int i = 0; i < 150 && failures < 5; ++i) {
    auto [target, body] = target_and_body(i);
    std::string problem = check_one(l, target, asks[i % 3], body, expected_prefix);
    if (!problem.empty()) ++failures;
    CHECK_MESSAGE(problem.empty(), problem);
  }
  std::vector<std::future<std::vector<std::string>>> workers;
  for (int w = 0; w < 4; ++w) {
    workers.push_back(std::async(std::launch::async, [&, w] {
      std::vector<std::string> problems;
      for (int i = 0; i < 40 && problems.size() < 3; ++i) {
        auto [target, body] = target_and_body(1000 + w * 100 + i);
        std::string problem = check_one(l, target, asks[(i + w) % 3], body, expected_prefix);
        if (!problem.empty()) problems.push_back(problem);
      }
      return problems;
    }));
  }
  for (auto& worker : workers) {
    for (const std::string& problem : worker.get()) CHECK_MESSAGE(problem.empty(), problem);
  }
}

// After the flood: /health answers, the process idles (under a fifth of a core over
// one second: a spinning loop takes all of one) and SIGTERM ends it with status 0.
void check_healthy_idle_and_stoppable(ChildProcess& process, const std::string& health_url) {
  CHECK(http_get(health_url).status == 200);
  int64_t before = cpu_ticks(process.pid());
  auto window_start = Clock::now();
  // A measurement window, not a synchronisation: the servers have nothing left to do.
  std::this_thread::sleep_for(1s);
  int64_t used = cpu_ticks(process.pid()) - before;
  double window_s = std::chrono::duration<double>(Clock::now() - window_start).count();
  MESSAGE("CPU while idle: ", used, " ticks in ", window_s, " s");
  CHECK(used < 20 * window_s);
  process.terminate();
  auto status = process.wait_exit(deadline_in(15s));
  REQUIRE_MESSAGE(status.has_value(), "no exit within 15 s of SIGTERM");
  CHECK(*status == 0);
}

}  // namespace

TEST_CASE("cache node: closing requests on the plain, h2c and TLS listeners get whole replies") {
  TempDir dir;
  TestTlsFiles certs(dir.path(), "close-test");
  TestOrigin origin;
  // Misses (streamed to the client as origin sends them) and hits, small and large.
  auto chunk = [](int i) {
    std::string name = "close-" + std::to_string(i % 40) + ".ts";
    size_t size = i % 5 == 0 ? 600 * 1024 : 20 * 1024;
    return std::make_pair("/o/demo/gen/" + std::to_string(size / 1024) + "K/" + name,
                          generated_body(name, size));
  };

  SUBCASE("TLS and h2c") {
    auto overrides = certs.overrides();
    overrides.push_back("listen.h2c=true");
    CacheNodeProcess node(dir.file("data"), origin.base_url(), overrides);
    REQUIRE(node.tls_port() > 0);
    auto signed_target = [&](int i) {
      auto [target, body] = chunk(i);
      return std::make_pair(node.signed_url(target).substr(node.url("").size()), body);
    };
    // A large miss streamed over h2c while the others close: it must arrive whole.
    const std::string big_name = "close-big.ts";
    const std::string big_body = generated_body(big_name, 8 << 20);
    auto big = std::async(std::launch::async, [&] {
      HttpRequest request;
      request.url = node.signed_url("/o/demo/gen/8192K/" + big_name);
      request.version = HttpRequest::Version::http2_prior_knowledge;
      request.max_recv_bytes_per_s = 4 << 20;
      return http_request(request);
    });
    flood(
        Listener{"node https", "https://127.0.0.1:" + std::to_string(node.tls_port()), certs.cert},
        signed_target, "");
    flood(Listener{"node plain+h2c", "http://127.0.0.1:" + std::to_string(node.port()), ""},
          signed_target, "");
    auto big_reply = big.get();
    CHECK_MESSAGE(big_reply.ok(), big_reply.error);
    CHECK(big_reply.body.size() == big_body.size());
    CHECK(big_reply.body == big_body);
    check_healthy_idle_and_stoppable(node.process(), node.url("/health"));
  }
  SUBCASE("plain only") {
    CacheNodeProcess node(dir.file("data"), origin.base_url());
    auto signed_target = [&](int i) {
      auto [target, body] = chunk(i);
      return std::make_pair(node.signed_url(target).substr(node.url("").size()), body);
    };
    flood(Listener{"node plain", "http://127.0.0.1:" + std::to_string(node.port()), ""},
          signed_target, "");
    check_healthy_idle_and_stoppable(node.process(), node.url("/health"));
  }
}

TEST_CASE("balancer: closing requests on the plain and TLS listeners get whole replies") {
  TempDir dir;
  TestTlsFiles certs(dir.path(), "close-test");
  TestOrigin origin(live_files(dir));
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/index.m3u8")}),
                           caches_json({}), certs.overrides());
  REQUIRE(balancer.tls_port() > 0);
  auto playlist = [](int i) {
    // Few viewers: anonymous ones are limited per address (limits.max_anonymous_per_address).
    return std::make_pair("/hls/demo/live/index.m3u8?viewer=close-" + std::to_string(i % 16),
                          std::string());
  };
  flood(Listener{"balancer https", "https://127.0.0.1:" + std::to_string(balancer.tls_port()),
                 certs.cert},
        playlist, "#EXTM3U");
  flood(Listener{"balancer plain", "http://127.0.0.1:" + std::to_string(balancer.port()), ""},
        playlist, "#EXTM3U");
  check_healthy_idle_and_stoppable(balancer.process(), balancer.url("/health"));
}
