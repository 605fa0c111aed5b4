// HTTPS on the real cache node and balancer: chunks (memory and disk hits, ranges,
// 304, signature refusals) and playlists over TLS, handshake failures and protocol
// mix-ups that must not hurt the server, a certificate reload on SIGHUP while a
// download runs, and sessions resumed across nodes that share a ticket key file.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>

#include "core/handles.h"
#include "http/client/http_client.h"
#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/sockets.h"
#include "support/test_certificate.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// The pair the server starts on (`first`, which `overrides()` names) and another; a copy of
// the first certificate keeps it under a stable name after a test writes over the served files
// (the client trusts exactly one certificate per request).
struct Certificates : TestTlsFilePair {
  explicit Certificates(const TempDir& dir)
      : TestTlsFilePair(dir.file("tls")), first_copy(dir.file("first.pem")) {
    std::filesystem::copy_file(first.cert, first_copy);
  }
  std::vector<std::string> overrides() const { return first.overrides(); }
  std::string first_copy;
};

HttpResponse https_get(const std::string& url, const std::string& ca_file,
                       const HttpHeaders& headers = {}) {
  HttpRequest request;
  request.url = url;
  request.ca_file = ca_file;
  request.headers = headers;
  return http_request(request);
}

// Sends `bytes` and reads until the server closes or 3 s pass (bounded).
std::string send_raw(int port, const std::string& bytes) {
  return exchange_raw(port, bytes, [](const std::string&) { return false; }).bytes;
}

// The first bytes of a TLS 1.2 ClientHello record (enough to be taken for one).
const std::string kClientHelloStart("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11);

}  // namespace

TEST_CASE("cache node over HTTPS: memory and disk hits, ranges, 304 and signature refusals") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  auto overrides = certs.overrides();
  CacheNodeProcess node(dir.file("data"), origin.base_url(), overrides);
  REQUIRE(node.tls_port() > 0);
  const std::string target = "/o/demo/gen/300K/tls.ts";
  const std::string body = generated_body("tls.ts", 300 * 1024);

  auto miss = https_get(node.tls_url(node.signed_url(target).substr(node.url("").size())),
                        certs.first.cert);
  REQUIRE_MESSAGE(miss.ok(), miss.error);
  CHECK(miss.status == 200);
  CHECK(miss.http_version == 11);
  CHECK(miss.header("X-Cache") == std::optional<std::string>("MISS"));
  CHECK(miss.body == body);

  auto signed_path = [&] { return node.signed_url(target).substr(node.url("").size()); };
  auto hit = https_get(node.tls_url(signed_path()), certs.first.cert);
  CHECK(hit.header("X-Cache") == std::optional<std::string>("HIT"));
  CHECK(hit.body == body);
  auto range =
      https_get(node.tls_url(signed_path()), certs.first.cert, {{"Range", "bytes=1000-1999"}});
  CHECK(range.status == 206);
  CHECK(range.body == body.substr(1000, 1000));
  auto etag = hit.header("ETag").value_or("");
  auto not_modified =
      https_get(node.tls_url(signed_path()), certs.first.cert, {{"If-None-Match", etag}});
  CHECK(not_modified.status == 304);
  CHECK(not_modified.body.empty());
  auto unsigned_reply = https_get(node.tls_url(target), certs.first.cert);
  CHECK(unsigned_reply.status == 403);
  CHECK(is_json_error(unsigned_reply, "signature_missing"));

  // After a restart the chunk comes from disk: the TLS front end must read the file
  // itself (a socket-only sendfile segment would reach the client as nothing).
  REQUIRE(node.wait_disk_settled(1));
  node.stop();
  node.start();
  auto disk = https_get(node.tls_url(signed_path()), certs.first.cert);
  CHECK(disk.status == 200);
  CHECK(disk.header("X-Cache").value_or("").find("HIT") == 0);
  CHECK(disk.body.size() == body.size());
  CHECK(disk.body == body);
  auto disk_range =
      https_get(node.tls_url(signed_path()), certs.first.cert, {{"Range", "bytes=-4096"}});
  CHECK(disk_range.status == 206);
  CHECK(disk_range.body == body.substr(body.size() - 4096));
  // Plain HTTP stays available beside HTTPS.
  CHECK(http_get(node.signed_url(target)).body == body);
  CHECK(origin.count("/gen/300K/tls.ts") == 1);
}

TEST_CASE("handshake failures and protocol mix-ups close one connection, never the server") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  CacheNodeProcess node(dir.file("data"), origin.base_url(), certs.overrides());

  // Plain HTTP on the TLS port: no HTTP answer, the connection is closed.
  std::string plain_on_tls = send_raw(node.tls_port(), "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(plain_on_tls.find("HTTP/1.1 200") == std::string::npos);
  // A TLS ClientHello on the plain port: refused as a bad request, no crash.
  std::string tls_on_plain = send_raw(node.port(), kClientHelloStart + std::string(200, '\0'));
  CHECK(tls_on_plain.find("HTTP/1.1 200") == std::string::npos);
  // A truncated ClientHello, then silence, then close; garbage records.
  int fd = connect_loopback(node.tls_port());
  REQUIRE(fd >= 0);
  (void)!write(fd, kClientHelloStart.data(), kClientHelloStart.size());
  close(fd);
  send_raw(node.tls_port(), std::string(5000, '\x17'));
  // A client that does not trust the certificate aborts the handshake.
  auto untrusted = https_get(node.tls_url("/ping"), certs.second.cert);
  CHECK(untrusted.status == 0);
  CHECK_FALSE(untrusted.ok());

  // TLS 1.2 only with forward-secret AEAD ciphers: a client offering nothing but CBC
  // (which OpenSSL's defaults would accept) is refused; one offering AES-GCM gets in.
  HttpRequest cbc_only;
  cbc_only.url = node.tls_url("/ping");
  cbc_only.ca_file = certs.first.cert;
  cbc_only.tls12_ciphers = "ECDHE-ECDSA-AES128-SHA";
  auto cbc = http_request(cbc_only);
  CHECK(cbc.status == 0);
  CHECK_FALSE(cbc.ok());
  HttpRequest gcm = cbc_only;
  gcm.tls12_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
  CHECK(http_request(gcm).status == 200);

  // The server still answers on both ports, and is still the same process.
  auto ping = https_get(node.tls_url("/ping"), certs.first.cert);
  CHECK(ping.status == 200);
  CHECK(ping.body.find("\"id\"") != std::string::npos);
  CHECK(http_get(node.url("/ping")).status == 200);
  CHECK_FALSE(node.process().wait_exit(deadline_in(0ms)).has_value());
}

TEST_CASE(
    "certificate reload on SIGHUP: new connections get the new certificate, a running download "
    "finishes") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  CacheNodeProcess node(dir.file("data"), origin.base_url(), certs.overrides());
  const std::string target = "/o/demo/gen/4M/reload.ts";
  const std::string body = generated_body("reload.ts", 4 << 20);
  auto signed_path = [&] { return node.signed_url(target).substr(node.url("").size()); };
  REQUIRE(https_get(node.tls_url(signed_path()), certs.first_copy).body ==
          body);  // now a memory hit

  auto reloads = [&](const std::string& result) {
    std::string metrics = http_get(node.url("/metrics")).body;
    return metric_value(metrics, "cache_node_config_reloads_total{result=\"" + result + "\"}")
        .value_or(-1);
  };
  // A slow viewer: 4 MiB at 1 MiB/s, so the download spans the reload.
  std::atomic<uint64_t> received{0};
  HttpRequest slow_request;
  slow_request.url = node.tls_url(signed_path());
  slow_request.ca_file = certs.first_copy;
  slow_request.max_recv_bytes_per_s = 1 << 20;
  slow_request.timeout = 30s;
  slow_request.body_progress = &received;
  auto slow = std::async(std::launch::async, [&] { return http_request(slow_request); });
  // The handshake is done and bytes flow before the certificate changes.
  REQUIRE(wait_until([&] { return received.load() > 0; }, 10s));

  // Swap the files (as certbot does) and signal.
  std::filesystem::copy_file(certs.second.cert, certs.first.cert,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs.second.key, certs.first.key,
                             std::filesystem::copy_options::overwrite_existing);
  double ok_before = reloads("ok");
  ::kill(node.process().pid(), SIGHUP);
  REQUIRE(wait_until([&] { return reloads("ok") > ok_before; }, 5s));

  // New connections: only the new certificate verifies.
  auto with_new = https_get(node.tls_url("/ping"), certs.second.cert);
  CHECK(with_new.status == 200);
  auto with_old = https_get(node.tls_url("/ping"), certs.first_copy);
  CHECK(with_old.status == 0);

  // A certificate file that does not load: the reload is rejected, the running one stays.
  write_file(certs.first.cert, "not a certificate\n");
  double rejected_before = reloads("rejected");
  ::kill(node.process().pid(), SIGHUP);
  REQUIRE(wait_until([&] { return reloads("rejected") > rejected_before; }, 5s));
  CHECK(https_get(node.tls_url("/ping"), certs.second.cert).status == 200);

  // The download that started with the first certificate finished whole.
  REQUIRE(slow.wait_for(30s) == std::future_status::ready);
  HttpResponse finished = slow.get();
  CHECK_MESSAGE(finished.ok(), finished.error);
  CHECK(finished.status == 200);
  CHECK(finished.body.size() == body.size());
  CHECK(finished.body == body);
  CHECK(finished.total > 2s);  // it really was running across the reload
}

TEST_CASE("balancer over HTTPS: playlists and the API; a bad certificate is a config error") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin(live_files(dir));
  BalancerProcess balancer(dir, origin.url("/files"),
                           channels_json({channel_json("demo", "/live/index.m3u8")}),
                           caches_json({}), certs.overrides());
  REQUIRE(balancer.tls_port() > 0);
  const std::string base = "https://127.0.0.1:" + std::to_string(balancer.tls_port());
  auto playlist = https_get(base + "/hls/demo/live/index.m3u8?viewer=tls-viewer", certs.first.cert);
  REQUIRE_MESSAGE(playlist.ok(), playlist.error);
  CHECK(playlist.status == 200);
  CHECK(playlist.body.find("#EXTM3U") == 0);
  CHECK(playlist.body.find("seg1.ts") != std::string::npos);
  auto session = https_get(base + "/api/v1/auth/session", certs.first.cert);
  CHECK(session.status == 401);
  CHECK(session.header("Content-Type").value_or("").find("application/json") == 0);
  CHECK(balancer.get("/health").status == 200);  // plain beside it

  // --check-config names the key and the problem.
  ChildProcess check;
  std::string error;
  REQUIRE(check.start(
      {binary_path("balancer"), "--config",
       std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json", "--check-config", "--set",
       "listen.tls.enabled=true", "--set", "listen.tls.port=8443", "--set",
       "listen.tls.certificate=" + certs.first.key, "--set", "listen.tls.key=" + certs.first.key},
      {}, {}, &error));
  auto code = check.wait_exit(deadline_in(10s));
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  CHECK(check.stderr_text().find("listen.tls.certificate") != std::string::npos);
  CHECK(check.stderr_text().find("cannot load the certificate") != std::string::npos);
}

namespace {

// One HTTPS/1.0 GET /health over a fresh connection, offering `resume` (may be null).
// Returns whether the handshake resumed; `session` gets the connection's session (with
// the server's ticket), owned by the caller.
bool get_health_over_tls(int port, SSL_SESSION* resume, SSL_SESSION** session) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL* ssl = SSL_new(ctx);
  const int fd = connect_loopback(port, std::chrono::seconds(3));
  bool resumed = false;
  if (fd >= 0 && ssl != nullptr) {
    SSL_set_fd(ssl, fd);
    if (resume != nullptr) SSL_set_session(ssl, resume);
    if (SSL_connect(ssl) == 1) {
      resumed = SSL_session_reused(ssl) == 1;
      const std::string request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
      SSL_write(ssl, request.data(), static_cast<int>(request.size()));
      // Read to the server's close: the TLS 1.3 tickets come after the handshake, and the
      // session stays resumable only if the server ends with close_notify (bounded by the
      // socket's timeout).
      char buf[4096];
      for (int i = 0; i < 64 && SSL_read(ssl, buf, sizeof buf) > 0; ++i) {
      }
      *session = SSL_get1_session(ssl);
      // Closed by the server after its answer: a clean end (freed without one, OpenSSL takes
      // the session for broken and never offers it again).
      SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
  }
  if (ssl != nullptr) SSL_free(ssl);
  if (fd >= 0) close(fd);
  SSL_CTX_free(ctx);
  return resumed;
}

}  // namespace

TEST_CASE("a TLS session from one cache node resumes on a sibling given the same ticket key file") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  write_file(dir.file("site.key"), std::string(48, 'k'));
  write_file(dir.file("other.key"), std::string(48, 'x'));
  auto with_tickets = [&](const std::string& file) {
    auto o = certs.overrides();
    o.push_back("listen.tls.ticket_key_file=" + file);
    return o;
  };
  CacheNodeProcess first(dir.file("first"), origin.base_url(), with_tickets(dir.file("site.key")));
  CacheNodeProcess sibling(dir.file("sibling"), origin.base_url(),
                           with_tickets(dir.file("site.key")));
  CacheNodeProcess stranger(dir.file("stranger"), origin.base_url(),
                            with_tickets(dir.file("other.key")));

  SSL_SESSION* session = nullptr;
  CHECK_FALSE(get_health_over_tls(first.tls_port(), nullptr, &session));
  REQUIRE(session != nullptr);
  SSL_SESSION* again = nullptr;
  CHECK(get_health_over_tls(sibling.tls_port(), session, &again));
  SSL_SESSION* refused = nullptr;
  CHECK_FALSE(get_health_over_tls(stranger.tls_port(), session, &refused));
  CHECK(refused != nullptr);  // a full handshake instead, and the request still answered
  for (SSL_SESSION* s : {session, again, refused}) SSL_SESSION_free(s);
}

TEST_CASE("each TLS 1.3 resumption hands the client a new ticket for its next connection") {
  // A TLS 1.3 client uses a ticket once (RFC 8446 C.4): the session each connection ends with
  // must resume the next. Before, a resumption sealed no new ticket, so every other connection
  // of such a client (wrk, OpenSSL's SSL_clear reuse, BoringSSL's phones) was a full handshake.
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  CacheNodeProcess node(dir.file("node"), origin.base_url(), certs.overrides());
  SSL_SESSION* session = nullptr;
  CHECK_FALSE(get_health_over_tls(node.tls_port(), nullptr, &session));
  REQUIRE(session != nullptr);
  int resumed = 0;
  constexpr int kConnections = 6;
  for (int i = 0; i < kConnections; ++i) {
    SSL_SESSION* next = nullptr;
    if (get_health_over_tls(node.tls_port(), session, &next)) ++resumed;
    SSL_SESSION_free(session);
    session = next;
    REQUIRE(session != nullptr);
  }
  SSL_SESSION_free(session);
  CHECK(resumed == kConnections);
  // The node counts them as the client saw them: one full handshake, the rest resumed.
  const std::string metrics = http_get(node.url("/metrics")).body;
  CHECK(metric_value(metrics, "tls_handshakes_total{session=\"new\"}") == 1);
  CHECK(metric_value(metrics, "tls_handshakes_total{session=\"resumed\"}") == kConnections);
}

TEST_CASE(
    "http client: a kept handle resumes its TLS session on its next connection, unless told not "
    "to (the audience tool: each viewer's handshakes its own)") {
  TempDir dir;
  Certificates certs(dir);
  TestOrigin origin;
  CacheNodeProcess node(dir.file("node"), origin.base_url(), certs.overrides());
  // Three requests one after the other, each on a new connection, through one client.
  const auto three_connections = [&](bool resume) {
    core::EventBasePtr base(event_base_new());
    http::HttpClientOptions options;
    options.ca_file = certs.first.cert;
    options.resume_tls_sessions = resume;
    auto client = http::HttpClient::create(*base, options);
    REQUIRE(client.ok());
    for (int i = 0; i < 3; ++i) {
      http::FetchRequest request{node.tls_url("/health"), "GET", {}, std::nullopt, {}};
      request.fresh_connection = true;
      int status = 0;
      bool done = false;
      client.value()->fetch(request, {{}, {}, [&](const http::FetchResult& r) {
                                        status = r.status;
                                        done = true;
                                      }});
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (!done && std::chrono::steady_clock::now() < deadline) {
        timeval slice{0, 20000};
        event_base_loopexit(base.get(), &slice);
        event_base_loop(base.get(), EVLOOP_ONCE);
      }
      CHECK(status == 200);
    }
  };
  const auto handshakes = [&](const char* session) {
    return metric_value(http_get(node.url("/metrics")).body,
                        "tls_handshakes_total{session=\"" + std::string(session) + "\"}")
        .value_or(-1);
  };
  three_connections(false);
  CHECK(handshakes("new") == 3);
  CHECK(handshakes("resumed") == 0);
  three_connections(true);
  CHECK(handshakes("new") == 4);
  CHECK(handshakes("resumed") == 2);
}
