// The host's reload contract (http/server/service_host.h, reload_service): a reload the
// service rejects after the certificate changed leaves the certificate served, the
// service's state and the counters' "ok" side as they were; a valid one installs both.
// A real ServiceHost serves TLS on loopback; its certificate is read from a handshake.
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <future>
#include <thread>

#include "http/server/service_host.h"
#include "support/process.h"
#include "support/test_certificate.h"

using namespace balancer::test;

namespace {

struct FakeConfig {
  http::HttpServerOptions server;
  int value = 0;
  bool service_accepts = true;  // false: the service's own check fails (after TLS was built)
};

// A service whose running state is one number; it rejects configs that say so.
class FakeService : public http::Service<FakeConfig> {
 public:
  void attach(size_t, http::HttpServer&) override {}
  core::Result<http::ReloadSwap> prepare_reload(FakeConfig fresh) override {
    if (!fresh.service_accepts)
      return core::Error{"bad_config", "fake.value: refused by the service"};
    return http::ReloadSwap([this, v = fresh.value] { value = v; });
  }
  int value = 0;
};

http::HttpServerOptions tls_server(const std::string& cert, const std::string& key) {
  http::HttpServerOptions options;
  options.threads = 1;
  options.access_log = false;
  options.tls.enabled = true;
  options.tls.certificate = cert;
  options.tls.key = key;
  return options;
}

}  // namespace

TEST_CASE("a reload the service rejects after a certificate change keeps the running certificate") {
  // As the host's signal handling does for a real server: a peer that went away is no signal.
  signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const std::string first_cert = dir.file("first.pem"), first_key = dir.file("first.key");
  const std::string second_cert = dir.file("second.pem"), second_key = dir.file("second.key");
  std::string error;
  REQUIRE_MESSAGE(write_self_signed_certificate(first_cert, first_key, "first", &error), error);
  REQUIRE_MESSAGE(write_self_signed_certificate(second_cert, second_key, "second", &error), error);

  FakeConfig next;  // what the next reload's files say
  http::ServiceSpec<FakeConfig> spec;
  spec.name = "fake";
  spec.summary = [](const FakeConfig& c) { return "value " + std::to_string(c.value); };
  spec.server = [](const FakeConfig& c) -> const http::HttpServerOptions& { return c.server; };
  auto load = [&]() -> core::Result<FakeConfig> { return next; };

  http::ServiceHost host("fake", tls_server(first_cert, first_key));
  FakeService service;
  REQUIRE(
      host.create_servers([&](size_t i, http::HttpServer& server) { service.attach(i, server); })
          .ok());
  REQUIRE(host.tls_port() > 0);
  core::EventLoop& home = host.context().home();
  std::thread loop_thread([&] { home.run(); });
  // Reloads run on the home loop, as SIGHUP's do.
  auto reload = [&] {
    std::promise<void> done;
    home.post([&] {
      http::reload_service(host, service, spec, load);
      done.set_value();
    });
    return done.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  };
  auto counted = [&](const std::string& result) {
    // The same series the host registered (counter() returns the existing one).
    return host.context()
        .metrics
        ->counter("fake_config_reloads_total", "Config reloads by result",
                  "result=\"" + result + "\"")
        .value();
  };
  const std::string first = certificate_fingerprint(first_cert);
  const std::string second = certificate_fingerprint(second_cert);
  CHECK(tls_handshake(host.tls_port()).fingerprint == first);

  next.server = tls_server(second_cert, second_key);
  next.value = 7;
  next.service_accepts = false;
  REQUIRE(reload());
  CHECK(counted("rejected") == 1u);
  CHECK(counted("ok") == 0u);
  CHECK(tls_handshake(host.tls_port()).fingerprint == first);
  CHECK(service.value == 0);

  // A certificate that does not load: rejected before the service is asked.
  next.server = tls_server(second_cert, first_key);
  next.service_accepts = true;
  REQUIRE(reload());
  CHECK(counted("rejected") == 2u);
  CHECK(tls_handshake(host.tls_port()).fingerprint == first);
  CHECK(service.value == 0);

  next.server = tls_server(second_cert, second_key);
  REQUIRE(reload());
  CHECK(counted("ok") == 1u);
  CHECK(tls_handshake(host.tls_port()).fingerprint == second);
  CHECK(service.value == 7);

  home.post([&] { home.stop(); });
  loop_thread.join();
}
