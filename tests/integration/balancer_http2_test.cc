// The balancer serves HTTP/2 beside HTTP/1.1 with the cache node's front end: h2 by ALPN on
// its TLS port and h2c with prior knowledge on its plain port (listen.h2c), for everything it
// serves: the REST API (a POST body in, JSON out), the master and media playlists with their
// signed chunk links, the steering manifest, operator status, web-less 404s in the JSON error
// shape, and an LL-HLS blocking playlist reload answered later on its own stream; with
// listen.http2=false, ALPN offers HTTP/1.1 only; streams stalled by a zero window end at
// io_timeout_s.
#include <doctest/doctest.h>

#include <string>
#include <thread>

#include "support/api_fixture.h"
#include "support/raw_h2_client.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// The balancer's TLS port, with HTTP/2 (h2 by ALPN and h2c) on or off.
struct TlsFiles : TestTlsFiles {
  explicit TlsFiles(const TempDir& dir) : TestTlsFiles(dir.path(), "h2-balancer") {}
  std::vector<std::string> overrides(bool http2 = true) const {
    auto o = TestTlsFiles::overrides();
    o.push_back(std::string("listen.h2c=") + (http2 ? "true" : "false"));
    o.push_back(std::string("listen.http2=") + (http2 ? "true" : "false"));
    return o;
  }
};

HttpResponse call(const BalancerProcess& b, const Transport& t, const TlsFiles& tls,
                  const std::string& method, const std::string& target,
                  const std::string& body = "", HttpHeaders headers = {}) {
  HttpRequest request;
  request.method = method;
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  request.headers = std::move(headers);
  request.body = body;
  return b.request_over(t, tls.cert, target, request);
}

}  // namespace

TEST_CASE("balancer over HTTP/2 (h2 by ALPN and h2c): API, playlists, steering, status, errors") {
  TempDir certs_dir;
  TlsFiles tls(certs_dir);
  std::vector<std::string> overrides = tls.overrides();
  overrides.push_back("playback.allow_anonymous=true");
  ApiStack stack(overrides);
  BalancerProcess& b = *stack.balancer;
  REQUIRE(b.tls_port() > 0);
  stack.add_user("h2user", "h2-password-1");

  for (const Transport& t :
       {Transport{"h2 (TLS, ALPN)", HttpRequest::Version::http2_tls, true},
        Transport{"h2c (prior knowledge)", HttpRequest::Version::http2_prior_knowledge, false}}) {
    INFO(t.name);
    auto health = call(b, t, tls, "GET", "/health");
    CHECK(health.status == 200);
    CHECK(health.http_version == 20);

    auto login = call(b, t, tls, "POST", "/api/v1/auth/login",
                      R"({"login":"h2user","password":"h2-password-1"})");
    INFO(login.body);
    REQUIRE(login.status == 200);
    CHECK(login.http_version == 20);
    const std::string token = stack.token_of(login);
    auto channels =
        call(b, t, tls, "GET", "/api/v1/channels", "", {{"Authorization", "Bearer " + token}});
    CHECK(channels.status == 200);
    CHECK(channels.body.find("\"demo\"") != std::string::npos);

    auto master = call(b, t, tls, "GET", "/hls/demo/live/master.m3u8?viewer=h2-viewer");
    INFO(master.body.substr(0, 300));
    CHECK(master.status == 200);
    CHECK(master.http_version == 20);
    CHECK(master.body.rfind("#EXTM3U", 0) == 0);
    CHECK(master.header("Content-Type").value_or("").find("mpegurl") != std::string::npos);

    auto missing = call(b, t, tls, "GET", "/hls/nope/live/master.m3u8?viewer=h2-viewer");
    CHECK(missing.status == 404);
    CHECK(is_json_error(missing, "unknown_channel"));
    auto bad = call(b, t, tls, "GET", "/hls/demo/../x.m3u8?viewer=h2-viewer");
    CHECK(bad.status == 400);

    auto status = call(b, t, tls, "GET", "/admin/status");
    CHECK(status.status == 200);
    CHECK(status.body.find("\"viewers\"") != std::string::npos);
  }
}

TEST_CASE(
    "balancer over h2c: a playlist whose origin answers late is answered later on its own stream") {
  TempDir dir;
  TempDir certs_dir;
  TlsFiles tls(certs_dir);
  TestOrigin origin(live_files(dir, 10));
  // hold=1: origin keeps every request of this source until /__release.
  BalancerProcess b(dir, origin.url("/files"),
                    channels_json({channel_json("held", "/live/index.m3u8?hold=1")}),
                    caches_json({}), tls.overrides());
  const Transport h2c{"h2c", HttpRequest::Version::http2_prior_knowledge, false};
  HttpResponse late;
  std::thread viewer(
      [&] { late = call(b, h2c, tls, "GET", "/hls/held/live/index.m3u8?hold=1&viewer=v1"); });
  const bool at_origin = wait_until([&] { return origin.held() >= 1; }, 20s, 10ms);
  // Meanwhile the balancer answers other HTTP/2 requests.
  const auto health = call(b, h2c, tls, "GET", "/health");
  const bool released = origin.release() >= 0;
  viewer.join();
  CHECK(at_origin);
  CHECK(released);
  CHECK(health.status == 200);
  INFO(late.body);
  CHECK(late.status == 200);
  CHECK(late.http_version == 20);
  CHECK(late.body.find("seg10.ts") != std::string::npos);
}

TEST_CASE("balancer with listen.http2=false: ALPN offers HTTP/1.1 only") {
  TempDir certs_dir;
  TlsFiles tls(certs_dir);
  ApiStack stack(tls.overrides(false));
  const Transport h2{"h2", HttpRequest::Version::http2_tls, true};
  auto health = call(*stack.balancer, h2, tls, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.http_version == 11);
}

TEST_CASE("balancer over h2 (TLS): streams stalled by a zero window are closed at io_timeout_s") {
  TempDir dir;
  TempDir certs_dir;
  TlsFiles tls(certs_dir);
  TestOrigin origin(live_files(dir, 10));
  auto overrides = tls.overrides();
  overrides.push_back("server.io_timeout_s=2");
  overrides.push_back("playback.allow_anonymous=true");
  BalancerProcess b(dir, origin.url("/files"),
                    channels_json({channel_json("demo", "/live/index.m3u8")}), caches_json({}),
                    overrides);
  const std::string path = "/hls/demo/live/index.m3u8?viewer=stalled";
  REQUIRE(b.get(path).status == 200);
  const int64_t rss_before = proc_status_kib(b.pid(), "VmRSS");
  RawH2Client::Options options;
  options.tls = true;
  options.receive_timeout = std::chrono::milliseconds(300);
  options.manual_windows = true;
  options.settings = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}};
  RawH2Client client(b.tls_port(), options);
  REQUIRE(client.connected());
  constexpr size_t kStreams = 128;
  const auto nva = client.get_request(path);
  for (size_t i = 0; i < kStreams; ++i) client.submit(nva);
  for (int i = 0; i < 1000 && client.statuses().size() < kStreams && client.exchange(); ++i) {
  }
  REQUIRE(client.statuses().size() == kStreams);
  const int64_t rss_stalled = proc_status_kib(b.pid(), "VmRSS");
  const double seconds = client.ping_until_closed(std::chrono::seconds(12));
  MESSAGE("stalled h2 connection (" << kStreams << " playlist streams) closed after " << seconds
                                    << " s; balancer RSS " << rss_before << " KiB before, "
                                    << rss_stalled << " KiB while stalled");
  CHECK((client.got_goaway() || client.closed()));
  CHECK(seconds < 2 + 3);  // io_timeout_s, the timer's 1 s tick, a margin
  CHECK(b.metric("http2_stalled_connections_closed_total") >= 1);
  CHECK(b.get("/health").status == 200);
}
