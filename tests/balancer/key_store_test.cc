// KeyStore against a real test_origin, with a FakeClock deciding the TTL: a key is
// fetched once however many ask, served from memory for key_delivery.ttl counted from
// when its fetch started, and every kind of origin failure is answered with its own
// status and code and never kept.
#include "balancer/sources/key_store.h"

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/loopback_node.h"
#include "support/origin_client_fixture.h"

namespace balancer {
namespace key_store_test {

using namespace std::chrono_literals;

KeyStoreOptions options_with(std::chrono::milliseconds ttl, size_t max_bytes = 64 * 1024,
                             std::chrono::milliseconds timeout = 3000ms) {
  KeyStoreOptions options;
  options.ttl = ttl;
  options.max_bytes = max_bytes;
  options.timeout = timeout;
  return options;
}

struct Fixture : test::OriginClient {
  std::unique_ptr<KeyStore> store;

  explicit Fixture(KeyStoreOptions options) {
    store = std::make_unique<KeyStore>(loop, *client, metrics, options, clock);
  }

  // Asks for the key at origin path `path` without running the loop; the answer lands
  // in the returned slot.
  std::shared_ptr<std::optional<KeyResult>> ask(const std::string& path) {
    auto answer = std::make_shared<std::optional<KeyResult>>();
    store->get(origin.url(path), [answer](const KeyResult& r) {
      CHECK_FALSE(answer->has_value());  // answered once
      *answer = r;
    });
    return answer;
  }
  // Asks and runs the loop until the answer comes (10 s at most).
  KeyResult get(const std::string& path) {
    auto answer = ask(path);
    REQUIRE(test::run_until(*base, [&] { return answer->has_value(); }));
    return **answer;
  }
  uint64_t fetches() {
    return metrics
        .counter("balancer_origin_fetches_total", "", "resource=\"key\",trigger=\"request\"")
        .value();
  }
  uint64_t hits() { return metrics.counter("balancer_key_cache_hits_total", "").value(); }
  uint64_t failures(const std::string& code) {
    return metrics
        .counter("balancer_origin_fetch_failures_total", "",
                 "resource=\"key\",code=\"" + code + "\"")
        .value();
  }
};

TEST_CASE("key store: a key is fetched once, served from memory until its TTL, then refetched") {
  Fixture f(options_with(1000ms));
  test::write_file(f.dir.file("k1.txt"), "0123456789abcdef");

  KeyResult first = f.get("/files/k1.txt");
  REQUIRE(first.key != nullptr);
  CHECK(first.status == 0);
  CHECK(first.key->bytes == "0123456789abcdef");
  CHECK(first.key->content_type == "text/plain");  // the origin's, passed on
  CHECK(f.origin.count("/files/k1.txt") == 1);
  CHECK(f.fetches() == 1);

  // One tick short of the TTL: answered at once from memory, before the loop runs.
  test::write_file(f.dir.file("k1.txt"), "fedcba9876543210");
  f.clock.advance(999ms);
  auto held = f.ask("/files/k1.txt");
  REQUIRE(held->has_value());
  CHECK((*held)->key == first.key);
  CHECK(f.hits() == 1);

  // At the TTL the copy is too old: origin is asked again and the new bytes are served.
  f.clock.advance(1ms);
  KeyResult second = f.get("/files/k1.txt");
  REQUIRE(second.key != nullptr);
  CHECK(second.key->bytes == "fedcba9876543210");
  CHECK(f.origin.count("/files/k1.txt") == 2);
  CHECK(f.fetches() == 2);
  CHECK(f.hits() == 1);
}

TEST_CASE("key store: the TTL counts from when the fetch started, not from when it ended") {
  Fixture f(options_with(1000ms));
  test::write_file(f.dir.file("k.key"), "slow-key-bytes!!");
  // The origin holds the request while 600 ms pass on the store's clock.
  auto answer = f.ask("/files/k.key?hold=1");
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.held() == 1; }));
  f.clock.advance(600ms);
  REQUIRE(f.origin.release() == 1);
  REQUIRE(test::run_until(*f.base, [&] { return answer->has_value(); }));
  REQUIRE((*answer)->key != nullptr);

  f.clock.advance(399ms);  // 999 ms after the start
  CHECK(f.ask("/files/k.key?hold=1")->has_value());
  CHECK(f.origin.count("/files/k.key") == 1);

  f.clock.advance(1ms);  // 1000 ms after the start, 400 ms after the answer
  auto again = f.ask("/files/k.key?hold=1");
  CHECK_FALSE(again->has_value());
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.held() == 1; }));
  CHECK(f.origin.count("/files/k.key") == 2);
  REQUIRE(f.origin.release() == 1);
  REQUIRE(test::run_until(*f.base, [&] { return again->has_value(); }));
}

TEST_CASE("key store: concurrent requests for one key share one origin fetch and one copy") {
  Fixture f(options_with(30000ms));
  test::write_file(f.dir.file("shared.key"), "shared-key-bytes");
  std::vector<std::shared_ptr<std::optional<KeyResult>>> answers;
  for (int i = 0; i < 3; ++i) answers.push_back(f.ask("/files/shared.key?hold=1"));
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.held() == 1; }));
  answers.push_back(f.ask("/files/shared.key?hold=1"));  // joins the fetch under way
  REQUIRE(f.origin.release() == 1);
  REQUIRE(test::run_until(*f.base, [&] {
    return std::all_of(answers.begin(), answers.end(),
                       [](const auto& a) { return a->has_value(); });
  }));
  CHECK(f.origin.count("/files/shared.key") == 1);
  CHECK(f.fetches() == 1);
  for (const auto& a : answers) {
    REQUIRE((*a)->key != nullptr);
    CHECK((*a)->key == (*answers.front())->key);
    CHECK((*a)->key->bytes == "shared-key-bytes");
  }
}

TEST_CASE("key store: each origin failure has its status and code, and is never kept") {
  Fixture f(options_with(30000ms, 64 * 1024, 300ms));

  KeyResult missing = f.get("/files/absent.key");
  CHECK(missing.key == nullptr);
  CHECK(missing.status == 404);
  CHECK(missing.error.code == "not_found");
  CHECK(f.failures("not_found") == 1);
  // Not kept: the next request asks origin again, and finds the key once it exists.
  test::write_file(f.dir.file("absent.key"), "now-it-is-there!");
  KeyResult found = f.get("/files/absent.key");
  REQUIRE(found.key != nullptr);
  CHECK(found.key->bytes == "now-it-is-there!");
  CHECK(f.origin.count("/files/absent.key") == 2);

  test::write_file(f.dir.file("k.key"), "0123456789abcdef");
  KeyResult broken = f.get("/files/k.key?status=500");
  CHECK(broken.key == nullptr);
  CHECK(broken.status == 502);
  CHECK(broken.error.code == "origin_error");
  CHECK(f.failures("origin_error") == 1);
  CHECK(f.get("/files/k.key?status=500").status == 502);
  CHECK(f.origin.count("/files/k.key?status=500") == 2);

  KeyResult slow = f.get("/files/k.key?hang=1");
  CHECK(slow.key == nullptr);
  CHECK(slow.status == 504);
  CHECK(slow.error.code == "origin_timeout");
  CHECK(f.failures("origin_timeout") == 1);

  // An origin nobody listens on (a server that has gone away).
  std::string gone;
  {
    test::LoopbackNode closed(*f.base);
    gone = closed.url("/k.key");
    closed.close();
  }
  std::optional<KeyResult> unreachable;
  f.store->get(gone, [&](const KeyResult& r) { unreachable = r; });
  REQUIRE(test::run_until(*f.base, [&] { return unreachable.has_value(); }));
  CHECK(unreachable->key == nullptr);
  CHECK(unreachable->status == 502);
  CHECK(unreachable->error.code == "origin_unreachable");
  CHECK(f.failures("origin_unreachable") == 1);
  CHECK(f.hits() == 0);
}

TEST_CASE("key store: a key of max_bytes is served; one byte more is refused 502 key_too_large") {
  Fixture f(options_with(30000ms, 16));
  test::write_file(f.dir.file("fits.key"), std::string(16, 'k'));
  test::write_file(f.dir.file("big.key"), std::string(17, 'k'));
  KeyResult fits = f.get("/files/fits.key");
  REQUIRE(fits.key != nullptr);
  CHECK(fits.key->bytes == std::string(16, 'k'));
  KeyResult big = f.get("/files/big.key");
  CHECK(big.key == nullptr);
  CHECK(big.status == 502);
  CHECK(big.error.code == "key_too_large");
  CHECK(f.failures("key_too_large") == 1);
  CHECK(f.get("/files/big.key").status == 502);  // not kept
  CHECK(f.origin.count("/files/big.key") == 2);
}

TEST_CASE("key store: a shorter TTL set by a reload applies to the keys already held") {
  Fixture f(options_with(30000ms));
  test::write_file(f.dir.file("k.key"), "0123456789abcdef");
  REQUIRE(f.get("/files/k.key").key != nullptr);
  f.clock.advance(2000ms);
  CHECK(f.ask("/files/k.key")->has_value());  // within 30 s
  f.store->set_options(options_with(1000ms));
  CHECK_FALSE(f.ask("/files/k.key")->has_value());  // 2 s old is past 1 s: origin again
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.count("/files/k.key") == 2; }));
}

TEST_CASE("key store: destroying the store cancels its fetches; no waiter is called after") {
  Fixture f(options_with(30000ms));
  test::write_file(f.dir.file("k.key"), "0123456789abcdef");
  auto answer = f.ask("/files/k.key?hold=1");
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.held() == 1; }));
  REQUIRE(f.client->active() == 1);
  f.store.reset();
  CHECK(f.client->active() == 0);
  // The origin answers after all; the connection is gone, so it has no one to answer.
  f.origin.release();
  REQUIRE(test::run_until(*f.base, [&] { return f.origin.in_flight() == 0; }));
  CHECK_FALSE(answer->has_value());
}

}  // namespace key_store_test
}  // namespace balancer
