// Starts a real cache_node binary for integration tests.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "signing/url_signing.h"
#include "support/herd.h"
#include "support/http_client.h"
#include "support/json_error.h"
#include "support/origin_fixture.h"
#include "support/process.h"
#include "support/server_process.h"

namespace balancer::test {

inline const std::string kSigningKey = "integration-key-current-0001";
inline const std::string kPreviousKey = "integration-key-previous-0000";

class CacheNodeProcess : public ServerProcess {
 public:
  // `overrides` are --set key=value pairs on top of the example config, or of
  // `main_config` when given (they win on reload too).
  CacheNodeProcess(std::string data_dir, std::string origin_url,
                   std::vector<std::string> overrides = {}, std::string main_config = "")
      : ServerProcess("cache_node",
                      main_config.empty()
                          ? std::string(BALANCER_SOURCE_DIR) + "/conf/cache_node.json"
                          : std::move(main_config),
                      std::move(overrides)),
        data_dir_(std::move(data_dir)),
        origin_url_(std::move(origin_url)) {
    start();
  }

  // A signed chunk URL for `target` ("/o/demo/...") valid for `ttl_s` seconds.
  std::string signed_url(const std::string& target, int64_t ttl_s = 60,
                         const std::string& key = kSigningKey) const {
    auto signer = signing::UrlSigner::create({key});
    REQUIRE(signer.ok());
    return url(signer->sign(target, static_cast<int64_t>(time(nullptr)) + ttl_s));
  }
  int64_t health_number(const std::string& key) const {
    return json_integer(health(), key).value_or(-1);
  }
  // Waits until background disk writes are done.
  bool wait_disk_settled(size_t chunks) const {
    return wait_until(
        [&] {
          std::string h = health();
          return json_integer(h, "pending_writes") == 0 &&
                 json_integer(h, "disk_chunks").value_or(-1) == static_cast<int64_t>(chunks);
        },
        std::chrono::seconds(10));
  }

 private:
  std::vector<std::string> fixture_settings() const override {
    return {"listen.port=" + std::to_string(port() > 0 ? port() : 0),
            "listen.tls.port=" + std::to_string(tls_port() > 0 ? tls_port() : 0),
            "data_dir=" + data_dir_, "origins.demo.url=" + origin_url_,
            "signing.keys=[\"" + kSigningKey + "\",\"" + kPreviousKey + "\"]",
            "server.access_log=false",
            // test_origin takes its behaviour from the query (rate_kbps,
            // status, cc, ...): keep it, unless a test sets the policy.
            "origins.demo.query=\"keep\""};
  }

  std::string data_dir_;
  std::string origin_url_;
};

// One cache node in front of its own test origin, its data in the test's temp dir: what most
// cache node tests start from. `overrides` are the node's --set pairs.
struct NodeOnOrigin {
  explicit NodeOnOrigin(std::vector<std::string> overrides = {})
      : node(dir.file("data"), origin.base_url(), std::move(overrides)) {}
  // An object of the origin: its `path` there ("/gen/2K/live.m3u8") and the node's URL for it
  // on origin "demo", `query` ("?cc=...") appended. Read as `const auto [path, url] = ...`.
  struct Object {
    std::string path;
    std::string url;
  };
  Object object(const std::string& path, const std::string& query = "") const {
    return {path, node.url("/o/demo" + path + query)};
  }

  TempDir dir;
  TestOrigin origin;
  CacheNodeProcess node;
};

// Runs the herd while the origin holds what it is asked (hold=1 in options.url) and lets
// it answer once `arrived()` holds (say, the node counts every client waiting) and the
// origin holds the node's fetch, so that a "concurrent" herd does not depend on how fast
// this machine starts its clients. (The clients can all be waiting on the node before its
// fetch reaches the origin: released then, the fetch would be held until the clients gave up.)
inline HerdResult run_herd_on_held_origin(const HerdOptions& options, const TestOrigin& origin,
                                          const std::function<bool()>& arrived) {
  HerdResult result;
  std::thread herd([&] { result = run_herd(options); });
  const bool all_arrived = wait_until([&] { return arrived() && origin.held() >= 1; },
                                      std::chrono::seconds(20), std::chrono::milliseconds(10));
  const bool released =
      origin.release() >= 0;  // also when they did not all arrive: the herd must end
  herd.join();
  CHECK(all_arrived);
  CHECK(released);
  return result;
}

// One GET whose origin request is held (hold=1 in `url`) until the origin has it.
inline HttpResponse http_get_on_held_origin(const std::string& url, const TestOrigin& origin) {
  HttpResponse response;
  std::thread get([&] { response = http_get(url); });
  const bool arrived = wait_until([&] { return origin.held() == 1; }, std::chrono::seconds(20),
                                  std::chrono::milliseconds(10));
  const bool released = origin.release() >= 0;
  get.join();
  CHECK(arrived);
  CHECK(released);
  return response;
}

// Clients of a herd on one missing object wait on one flight: the first started it, every
// other one joined it.
inline std::function<bool()> herd_joined(const CacheNodeProcess& node, int clients) {
  const int64_t before = node.health_number("coalesced");
  return
      [&node, before, clients] { return node.health_number("coalesced") - before == clients - 1; };
}

}  // namespace balancer::test
