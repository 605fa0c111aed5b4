// Flights (cache_node/fetching/flights.h) driven by hand: a fake upstream whose callbacks
// the test calls, each loop's "later" a queue the test drains, a FakeClock and a
// real SharedCache (LMDB in a temp dir). Many requests for one chunk start one
// fetch; its end reaches every waiter on every loop; failures answer everyone
// and store nothing; a waiter that leaves hears nothing more; the size cap
// cancels the transfer; a 304 answers from the refreshed stored copy.
#include <doctest/doctest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "cache_node/fetching/flights.h"
#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "support/process.h"
#include "support/shared_cache_fixture.h"

using namespace cache_node;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = "/demo/seg1.ts";

// Transfers the flights started; the test plays the upstream's part.
struct FakeUpstream {
  struct Transfer {
    http::FetchRequest request;
    http::FetchCallbacks callbacks;
    bool cancelled = false;
  };
  std::vector<Transfer> transfers;  // transfer id - 1

  FlightUpstream bind() {
    return {[this](http::FetchRequest request, http::FetchCallbacks callbacks) {
              transfers.push_back({std::move(request), std::move(callbacks)});
              return http::FetchId{transfers.size()};
            },
            [this](http::FetchId id) { transfers.at(id - 1).cancelled = true; }};
  }
  Transfer& last() {
    REQUIRE(!transfers.empty());
    return transfers.back();
  }
};

http::FetchHead head(int status, std::vector<http::HttpHeader> headers = {}) {
  http::FetchHead h;
  h.status = status;
  h.headers = std::move(headers);
  return h;
}

http::FetchResult done(int status) {
  http::FetchResult r;
  r.ok = true;
  r.status = status;
  return r;
}

// The upstream's whole 200 answer: a head with the body's length, the body, the end.
void answer_whole(FakeUpstream::Transfer& transfer, const std::string& body) {
  transfer.callbacks.on_head(head(200, {{"Content-Length", std::to_string(body.size())}}));
  transfer.callbacks.on_data(body);
  transfer.callbacks.on_done(done(200));
}

// What one waiter heard.
struct Heard {
  int calls = 0;
  FlightProgress last;
  std::string body;    // the flight's body when it ended stored
  bool ended = false;  // heard an end
  bool gone = false;   // set by the test: the client left
};

class RecordingWaiter final : public FlightWaiter {
 public:
  explicit RecordingWaiter(std::shared_ptr<Heard> heard) : heard_(std::move(heard)) {}
  bool advance(const FlightProgress& p, const Flight& flight, int64_t) override {
    if (heard_->gone) return false;
    ++heard_->calls;
    heard_->last = p;
    if (p.end == FlightProgress::End::running) return true;
    heard_->ended = true;
    if (p.end == FlightProgress::End::stored) heard_->body = flight.body()->copy();
    return false;
  }

 private:
  std::shared_ptr<Heard> heard_;
};

// One loop: its Flights and its queue of jobs for later.
struct TestLoop {
  std::deque<std::function<void()>> later;
  std::unique_ptr<Flights> flights;

  // Runs the queued jobs (and those they queue), at most 1000.
  size_t run_later() {
    size_t ran = 0;
    while (!later.empty() && ran < 1000) {
      auto job = std::move(later.front());
      later.pop_front();
      job();
      ++ran;
    }
    REQUIRE(later.empty());
    return ran;
  }
};

struct Node : balancer::test::SharedCacheOnDisk {
  core::Published<RuntimeConfig> config{std::make_shared<RuntimeConfig>()};
  FlightMetrics flight_metrics{metrics};
  FakeUpstream upstream;
  std::vector<std::unique_ptr<TestLoop>> loops;
  std::vector<std::function<void()>> timers;            // Deps::after, fired by the test
  std::vector<std::chrono::milliseconds> timer_delays;  // each timer's delay

  explicit Node(size_t loop_count = 2, uint64_t max_object_bytes = 64ull << 20)
      : SharedCacheOnDisk(100) {
    auto runtime = std::make_shared<RuntimeConfig>();
    runtime->config.max_object_bytes = max_object_bytes;
    config.publish(std::move(runtime));
    for (size_t index = 0; index < loop_count; ++index) {
      auto loop = std::make_unique<TestLoop>();
      TestLoop* self = loop.get();
      loop->flights = std::make_unique<Flights>(Flights::Deps{
          .loop = index,
          .cache = cache.get(),
          .clock = &clock,
          .metrics = &flight_metrics,
          .config = &config,
          .upstream = upstream.bind(),
          .later = [self](std::function<void()> job) { self->later.push_back(std::move(job)); },
          .notify = [this, index](const std::shared_ptr<Flight>& flight) { notify(flight, index); },
          .after =
              [this](std::chrono::milliseconds delay, std::function<void()> job) {
                timers.push_back(std::move(job));
                timer_delays.push_back(delay);
              }});
      loops.push_back(std::move(loop));
    }
  }

  // As the node does: the loop that made progress at once, the others later.
  void notify(const std::shared_ptr<Flight>& flight, size_t from_loop) {
    for (size_t index : flight->subscribers()) {
      Flights* target = loops[index]->flights.get();
      if (index == from_loop) {
        target->progress(flight);
      } else {
        loops[index]->later.push_back([target, flight] { target->progress(flight); });
      }
    }
  }

  // A request for `key` on `loop`, as NodeLoop::handle_chunk takes it past the
  // hit path: a waiter on a new or running flight, or the lookup's answer.
  SharedCache::Lookup::Kind ask(size_t loop, const std::shared_ptr<Heard>& heard,
                                const std::string& key = kKey) {
    SharedCache::Lookup found = cache->find_or_start(key, loop);
    Flights& flights = *loops[loop]->flights;
    switch (found.kind) {
      case SharedCache::Lookup::Kind::hit:
      case SharedCache::Lookup::Kind::negative:
        return found.kind;
      case SharedCache::Lookup::Kind::started:
      case SharedCache::Lookup::Kind::revalidate:
        flights.start(found.flight, "http://origin.test" + key);
        break;
      case SharedCache::Lookup::Kind::joined:
        break;
    }
    flights.join(found.flight, std::make_unique<RecordingWaiter>(heard));
    return found.kind;
  }

  void run_all_later() {
    for (auto& loop : loops) loop->run_later();
  }
  uint64_t errors(const std::string& code) { return flight_metrics.error(code).value(); }
};

std::vector<std::shared_ptr<Heard>> make_heard(size_t n) {
  std::vector<std::shared_ptr<Heard>> out;
  for (size_t i = 0; i < n; ++i) out.push_back(std::make_shared<Heard>());
  return out;
}

}  // namespace

TEST_CASE("flights: many requests for one chunk on two loops start one fetch and all wait on it") {
  Node node;
  auto heard = make_heard(10);
  for (size_t i = 0; i < heard.size(); ++i) {
    auto kind = node.ask(i % 2, heard[i]);
    CHECK(kind ==
          (i == 0 ? SharedCache::Lookup::Kind::started : SharedCache::Lookup::Kind::joined));
  }
  CHECK(node.upstream.transfers.size() == 1);
  CHECK(node.upstream.last().request.url == std::string("http://origin.test") + kKey);
  CHECK(node.flight_metrics.origin_fetches.value() == 1);
  CHECK(node.cache->inflight() == 1);
  CHECK(node.loops[0]->flights->waiting(kKey) == 5);
  CHECK(node.loops[1]->flights->waiting(kKey) == 5);
  CHECK(node.loops[0]->flights->transfers() == 1);  // the loop that started it runs it
  CHECK(node.loops[1]->flights->transfers() == 0);
}

TEST_CASE(
    "flights: the end of a fetch reaches every waiter on every loop, with the whole body, and is "
    "stored") {
  Node node;
  auto heard = make_heard(6);
  for (size_t i = 0; i < heard.size(); ++i) node.ask(i % 2, heard[i]);
  auto& transfer = node.upstream.last();
  const int loop1_calls = heard[1]->calls;

  transfer.callbacks.on_head(
      head(200, {{"Content-Length", "6"}, {"Content-Type", "video/mp2t"}, {"ETag", "\"a\""}}));
  // The owner loop's waiters hear of the head at once; the other loop's later.
  CHECK(heard[0]->last.head_known);
  CHECK(heard[1]->calls == loop1_calls);
  CHECK_FALSE(heard[1]->last.head_known);
  transfer.callbacks.on_data("abc");
  transfer.callbacks.on_data("def");
  CHECK(heard[0]->last.bytes == 0);  // data is told later, once for both callbacks
  CHECK(node.loops[0]->later.size() == 1);
  node.loops[0]->run_later();
  CHECK(heard[0]->last.bytes == 6);
  CHECK(heard[1]->last.bytes == 0);  // told of the head and the data, at its next turn
  node.loops[1]->run_later();
  CHECK(heard[1]->last.bytes == 6);

  transfer.callbacks.on_done(done(200));
  for (size_t i = 0; i < heard.size(); i += 2) {
    CHECK(heard[i]->ended);
    CHECK(heard[i]->last.end == FlightProgress::End::stored);
    CHECK(heard[i]->body == "abcdef");
  }
  CHECK_FALSE(heard[1]->ended);  // loop 1 hears at its next turn
  node.run_all_later();
  for (const auto& h : heard) {
    CHECK(h->ended);
    CHECK(h->body == "abcdef");
    CHECK(h->last.meta.etag == "\"a\"");
  }
  CHECK(node.cache->inflight() == 0);
  CHECK(node.loops[0]->flights->waiting(kKey) == 0);
  CHECK(node.loops[1]->flights->waiting(kKey) == 0);
  CHECK(node.loops[0]->flights->transfers() == 0);
  auto stored = node.cache->find(kKey);
  REQUIRE(stored.has_value());
  CHECK(stored->meta.size == 6);
  // The next request is a hit: no second fetch.
  CHECK(node.ask(1, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::hit);
  CHECK(node.upstream.transfers.size() == 1);
}

TEST_CASE(
    "flights: an unreachable upstream answers every waiter with the error and stores nothing") {
  Node node;
  auto heard = make_heard(4);
  for (size_t i = 0; i < heard.size(); ++i) node.ask(i % 2, heard[i]);
  http::FetchResult failed;
  failed.ok = false;
  failed.error = "Couldn't connect to server";
  node.upstream.last().callbacks.on_done(failed);
  node.run_all_later();
  for (const auto& h : heard) {
    CHECK(h->ended);
    CHECK(h->last.end == FlightProgress::End::failed);
    CHECK(h->last.fail_status == 502);
    CHECK(h->last.fail_code == "origin_unreachable");
  }
  CHECK(node.errors("origin_unreachable") == 1);  // once per fetch, not per waiter
  CHECK(node.cache->inflight() == 0);
  CHECK_FALSE(node.cache->find(kKey).has_value());
  // Not remembered: the next request asks the upstream again.
  CHECK(node.ask(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::started);
  CHECK(node.upstream.transfers.size() == 2);
}

TEST_CASE("flights: an upstream 404 answers every waiter and is remembered for the negative TTL") {
  Node node;
  auto heard = make_heard(2);
  node.ask(0, heard[0]);
  node.ask(1, heard[1]);
  auto& transfer = node.upstream.last();
  transfer.callbacks.on_head(head(404));
  transfer.callbacks.on_done(done(404));
  node.run_all_later();
  for (const auto& h : heard) {
    CHECK(h->last.end == FlightProgress::End::not_found);
    CHECK(h->last.fail_status == 404);
    CHECK(h->last.fail_code == "not_found");
  }
  CHECK(node.ask(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::negative);
  node.clock.advance(node.config.load()->config.negative_ttl + 1ms);
  CHECK(node.ask(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::started);
}

TEST_CASE(
    "flights: a waiter that leaves before the end hears nothing more; the others and the store "
    "still get it") {
  Node node;
  auto heard = make_heard(3);
  for (const auto& h : heard) node.ask(0, h);
  auto& transfer = node.upstream.last();
  transfer.callbacks.on_head(head(200, {{"Content-Length", "4"}}));
  heard[1]->gone = true;
  const int calls_before = heard[1]->calls;
  transfer.callbacks.on_data("ab");
  node.run_all_later();
  CHECK(node.loops[0]->flights->waiting(kKey) == 2);  // dropped at the first progress after it left
  transfer.callbacks.on_data("cd");
  transfer.callbacks.on_done(done(200));
  node.run_all_later();
  CHECK(heard[1]->calls == calls_before);
  CHECK_FALSE(heard[1]->ended);
  CHECK(heard[0]->body == "abcd");
  CHECK(heard[2]->body == "abcd");
}

TEST_CASE("flights: when every waiter has left, the fetch still runs to the end and is stored") {
  Node node;
  auto h = std::make_shared<Heard>();
  node.ask(0, h);
  auto& transfer = node.upstream.last();
  transfer.callbacks.on_head(head(200, {{"Content-Length", "2"}}));
  h->gone = true;
  transfer.callbacks.on_data("xy");
  node.run_all_later();
  CHECK(node.loops[0]->flights->waiting(kKey) == 0);
  CHECK_FALSE(transfer.cancelled);
  transfer.callbacks.on_done(done(200));
  CHECK(node.cache->inflight() == 0);
  auto stored = node.cache->find(kKey);
  REQUIRE(stored.has_value());
  CHECK(stored->meta.size == 2);
}

TEST_CASE(
    "flights: a body over max_object_bytes cancels the transfer and fails as object_too_large") {
  Node node(2, /*max_object_bytes=*/4);
  auto heard = make_heard(2);

  SUBCASE("announced by Content-Length") {
    node.ask(0, heard[0]);
    node.ask(1, heard[1]);
    node.upstream.last().callbacks.on_head(head(200, {{"Content-Length", "5"}}));
  }
  SUBCASE("found while the body arrives") {
    node.ask(0, heard[0]);
    node.ask(1, heard[1]);
    auto& transfer = node.upstream.last();
    transfer.callbacks.on_head(head(200));
    transfer.callbacks.on_data("abc");
    CHECK_FALSE(transfer.cancelled);
    transfer.callbacks.on_data("de");
  }
  CHECK(node.upstream.last().cancelled);
  node.run_all_later();
  for (const auto& h : heard) {
    CHECK(h->last.end == FlightProgress::End::failed);
    CHECK(h->last.fail_code == "object_too_large");
  }
  CHECK(node.errors("object_too_large") == 1);
  CHECK(node.cache->inflight() == 0);
  CHECK_FALSE(node.cache->find(kKey).has_value());
  CHECK(node.loops[0]->flights->transfers() == 0);
}

TEST_CASE(
    "flights: a stale copy is revalidated with one conditional fetch; a 304 answers from it, "
    "refreshed") {
  Node node;
  auto first = std::make_shared<Heard>();
  node.ask(0, first);
  auto& fill = node.upstream.last();
  fill.callbacks.on_head(
      head(200, {{"Content-Length", "3"}, {"ETag", "\"v1\""}, {"Cache-Control", "max-age=1"}}));
  fill.callbacks.on_data("abc");
  fill.callbacks.on_done(done(200));
  node.run_all_later();
  REQUIRE(first->body == "abc");

  node.clock.advance(2s);  // past max-age
  auto heard = make_heard(2);
  CHECK(node.ask(0, heard[0]) == SharedCache::Lookup::Kind::revalidate);
  CHECK(node.ask(1, heard[1]) == SharedCache::Lookup::Kind::joined);
  REQUIRE(node.upstream.transfers.size() == 2);
  auto& revalidation = node.upstream.last();
  bool conditional = false;
  for (const auto& h : revalidation.request.headers)
    conditional |= h.name == "If-None-Match" && h.value == "\"v1\"";
  CHECK(conditional);
  revalidation.callbacks.on_head(head(304, {{"ETag", "\"v1\""}, {"Cache-Control", "max-age=60"}}));
  revalidation.callbacks.on_done(done(304));
  node.run_all_later();
  for (const auto& h : heard) CHECK(h->last.end == FlightProgress::End::revalidated);
  CHECK(node.flight_metrics.revalidation(cache_node::Revalidation::not_modified).value() == 1);
  auto stored = node.cache->find(kKey);
  REQUIRE(stored.has_value());
  CHECK(stored->meta.fresh_until_ms > node.clock.unix_now_ms() + 50'000);
  CHECK(node.ask(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::hit);
}

namespace {
// A miss on loop 0 whose transfer goes to the site's owner, with the origin as fallback.
struct AskedThroughOwner {
  AskedThroughOwner() {
    SharedCache::Lookup found = node.cache->find_or_start(kKey, 0);
    REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
    OwnerFetch owner;
    owner.url = std::string("http://owner.test/o") + kKey;
    owner.fallback_url = std::string("http://origin.test") + kKey;
    node.loops[0]->flights->start_from_owner(found.flight, owner);
    node.loops[0]->flights->join(found.flight, std::make_unique<RecordingWaiter>(heard));
  }
  Node node;
  std::shared_ptr<Heard> heard = std::make_shared<Heard>();
};
}  // namespace

TEST_CASE_FIXTURE(
    AskedThroughOwner,
    "flights: a miss fetched from the site's owner is stored without an origin fetch") {
  REQUIRE(node.upstream.transfers.size() == 1);
  CHECK(node.upstream.last().request.url == std::string("http://owner.test/o") + kKey);
  auto& transfer = node.upstream.last();
  answer_whole(transfer, "abcdef");
  node.run_all_later();
  CHECK(heard->body == "abcdef");
  CHECK(node.flight_metrics.sibling_fetches.value() == 1);
  CHECK(node.flight_metrics.origin_fetches.value() == 0);
  // The timer set for a slow owner finds the flight ended: nothing more is fetched.
  REQUIRE(node.timers.size() == 1);
  node.timers[0]();
  CHECK(node.upstream.transfers.size() == 1);
  CHECK(node.timers.size() == 1);
}

TEST_CASE_FIXTURE(
    AskedThroughOwner,
    "flights: an owner that breaks off mid-body is replaced by the origin, and the body stays "
    "byte-exact") {
  auto* owner = &node.upstream.last();
  owner->callbacks.on_head(head(200, {{"Content-Length", "10"}}));
  owner->callbacks.on_data("hello");
  node.run_all_later();
  CHECK(heard->last.bytes == 5);
  http::FetchResult broken;
  broken.ok = false;
  broken.error = "connection reset";
  owner->callbacks.on_done(broken);
  REQUIRE(node.upstream.transfers.size() == 2);
  auto& origin = node.upstream.transfers[1];
  CHECK(origin.request.url == std::string("http://origin.test") + kKey);
  origin.callbacks.on_head(head(200, {{"Content-Length", "10"}}));
  origin.callbacks.on_data("hel");  // the bytes the owner sent are skipped
  origin.callbacks.on_data("loworld");
  origin.callbacks.on_done(done(200));
  node.run_all_later();
  CHECK(heard->ended);
  CHECK(heard->last.end == FlightProgress::End::stored);
  CHECK(heard->body == "helloworld");
  CHECK(node.flight_metrics.sibling_fallback_failed.value() == 1);
  CHECK(node.flight_metrics.origin_fetches.value() == 1);
}

TEST_CASE_FIXTURE(
    AskedThroughOwner,
    "flights: an owner with no head in time is cancelled for the origin; its late answer is "
    "ignored") {
  REQUIRE(node.timers.size() == 1);
  node.timers[0]();  // head_wait passed
  REQUIRE(node.upstream.transfers.size() == 2);
  CHECK(node.upstream.transfers[0].cancelled);
  CHECK(node.flight_metrics.sibling_fallback_slow.value() == 1);
  node.upstream.transfers[0].callbacks.on_head(head(200, {{"Content-Length", "3"}}));  // too late
  node.upstream.transfers[0].callbacks.on_data("xyz");
  auto& origin = node.upstream.transfers[1];
  answer_whole(origin, "abcdef");
  node.run_all_later();
  CHECK(heard->body == "abcdef");
}

TEST_CASE_FIXTURE(AskedThroughOwner,
                  "flights: an owner's 404 is the origin's answer: no fallback, remembered") {
  auto& owner = node.upstream.last();
  owner.callbacks.on_head(head(404));
  owner.callbacks.on_done(done(404));
  node.run_all_later();
  CHECK(heard->last.end == FlightProgress::End::not_found);
  CHECK(node.upstream.transfers.size() == 1);
  CHECK(node.cache->find_or_start(kKey, 0).kind == SharedCache::Lookup::Kind::negative);
}

TEST_CASE_FIXTURE(AskedThroughOwner,
                  "flights: an owner answering 5xx before any byte is replaced by the origin") {
  node.upstream.last().callbacks.on_head(head(503));
  REQUIRE(node.upstream.transfers.size() == 2);
  auto& origin = node.upstream.transfers[1];
  answer_whole(origin, "ok");
  node.run_all_later();
  CHECK(heard->body == "ok");
  CHECK(node.flight_metrics.sibling_fallback_failed.value() == 1);
}

TEST_CASE_FIXTURE(
    AskedThroughOwner,
    "flights: an owner that stops sending mid-body for the wait is replaced by the origin after "
    "its bytes") {
  auto& owner = node.upstream.last();
  owner.callbacks.on_head(head(200, {{"Content-Length", "10"}}));
  owner.callbacks.on_data("hel");
  REQUIRE(node.timers.size() == 1);
  node.timers[0]();  // progress since the start: the owner is watched again
  CHECK(node.upstream.transfers.size() == 1);
  REQUIRE(node.timers.size() == 2);
  node.upstream.transfers[0].callbacks.on_data("lo");
  node.timers[1]();  // progress again
  REQUIRE(node.timers.size() == 3);
  node.timers[2]();  // nothing for a whole wait: the origin is asked
  REQUIRE(node.upstream.transfers.size() == 2);
  CHECK(node.upstream.transfers[0].cancelled);
  CHECK(node.flight_metrics.sibling_fallback_slow.value() == 1);
  auto& origin = node.upstream.transfers[1];
  answer_whole(origin, "helloworld");
  node.run_all_later();
  CHECK(heard->body == "helloworld");
  CHECK(node.timers.size() == 3);  // the origin is not watched
}

TEST_CASE(
    "flights: a part link's upstream that sends no head within three part targets ends in 504 for "
    "every waiter, not remembered; a head in time keeps the transfer") {
  Node node;
  auto heard = make_heard(2);
  auto ask_part = [&](size_t loop, const std::shared_ptr<Heard>& h) {
    SharedCache::Lookup found = node.cache->find_or_start(kKey, loop);
    if (found.kind == SharedCache::Lookup::Kind::started)
      node.loops[loop]->flights->start(found.flight, std::string("http://origin.test") + kKey, {},
                                       250ms);
    node.loops[loop]->flights->join(found.flight, std::make_unique<RecordingWaiter>(h));
    return found.kind;
  };
  SUBCASE("no head: 504 origin_timeout, the transfer cancelled") {
    ask_part(0, heard[0]);
    ask_part(1, heard[1]);
    REQUIRE(node.timers.size() == 1);
    CHECK(node.timer_delays[0] == kPartHeadWaits * 250ms);
    node.timers[0]();
    node.run_all_later();
    CHECK(node.upstream.last().cancelled);
    for (const auto& h : heard) {
      CHECK(h->ended);
      CHECK(h->last.fail_status == 504);
      CHECK(h->last.fail_code == "origin_timeout");
    }
    CHECK(node.flight_metrics.part_head_timeouts.value() == 1);
    CHECK(ask_part(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::started);
  }
  SUBCASE("a head in time: the wait ends nothing") {
    ask_part(0, heard[0]);
    node.upstream.last().callbacks.on_head(head(200, {{"Content-Length", "5"}}));
    REQUIRE(node.timers.size() == 1);
    node.timers[0]();
    node.upstream.last().callbacks.on_data("hello");
    node.upstream.last().callbacks.on_done(done(200));
    node.run_all_later();
    CHECK(heard[0]->body == "hello");
    CHECK(node.flight_metrics.part_head_timeouts.value() == 0);
  }
  SUBCASE("a head, then no body byte for a whole wait: the transfer and its replies are cut") {
    ask_part(0, heard[0]);
    auto& transfer = node.upstream.last();
    transfer.callbacks.on_head(head(200, {{"Content-Length", "10"}}));
    transfer.callbacks.on_data("hel");
    node.run_all_later();
    REQUIRE(node.timers.size() == 1);
    node.timers[0]();  // the head came: watched for body bytes from here
    REQUIRE(node.timers.size() == 2);
    CHECK(node.timer_delays[1] == kPartHeadWaits * 250ms);
    transfer.callbacks.on_data("lo");
    node.timers[1]();  // bytes since: watched again
    REQUIRE(node.timers.size() == 3);
    CHECK_FALSE(transfer.cancelled);
    node.timers[2]();  // silent for a whole wait
    node.run_all_later();
    CHECK(transfer.cancelled);
    CHECK(heard[0]->ended);
    CHECK(heard[0]->last.end == FlightProgress::End::failed);
    CHECK(node.flight_metrics.part_body_stalls.value() == 1);
    CHECK(node.flight_metrics.part_head_timeouts.value() == 0);
    CHECK(ask_part(0, std::make_shared<Heard>()) == SharedCache::Lookup::Kind::started);
  }
}

TEST_CASE(
    "flights: each fetch from an origin counts as answered or failed for it; a 404 or another "
    "4xx counts nothing; a twin's fallback counts the origin failed and the twin's own answer") {
  Node node;
  auto runtime = std::make_shared<RuntimeConfig>(*node.config.load());
  runtime->config.origins["demo"].twin = "backup";
  runtime->config.origins["backup"].url = "http://backup.test";
  node.config.publish(std::move(runtime));
  auto fetch = [&](const std::string& key, const std::string& twin_url = {}) {
    SharedCache::Lookup found = node.cache->find_or_start(key, 0);
    REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
    node.loops[0]->flights->start(found.flight, "http://origin.test/" + key, {}, {}, twin_url);
    node.loops[0]->flights->join(found.flight,
                                 std::make_unique<RecordingWaiter>(std::make_shared<Heard>()));
    return &node.upstream.last();
  };
  auto counts = [&] {
    std::map<std::string, std::pair<uint64_t, uint64_t>> out;
    for (const auto& c : node.flight_metrics.origins.counts())
      out[c.origin] = {c.answered, c.failed};
    return out;
  };
  answer_whole(*fetch("demo/a.ts"), "a");
  auto* refused = fetch("demo/b.ts");
  refused->callbacks.on_head(head(503));
  refused->callbacks.on_done(done(503));
  for (int status : {404, 403}) {
    auto* asked = fetch("demo/c" + std::to_string(status) + ".ts");
    asked->callbacks.on_head(head(status));
    asked->callbacks.on_done(done(status));
  }
  http::FetchResult reset;
  reset.error = "connection reset";
  fetch("demo/d.ts")->callbacks.on_done(reset);
  CHECK(counts() == std::map<std::string, std::pair<uint64_t, uint64_t>>{{"demo", {1, 2}}});
  // With a twin: the origin's 503 is its failure, the twin's 200 the twin's answer.
  auto* origin = fetch("demo/e.ts", "http://backup.test/e.ts");
  origin->callbacks.on_head(head(503));
  answer_whole(node.upstream.last(), "e");
  CHECK(node.upstream.last().request.url == "http://backup.test/e.ts");
  CHECK(counts() ==
        std::map<std::string, std::pair<uint64_t, uint64_t>>{{"backup", {1, 0}}, {"demo", {1, 3}}});
  node.run_all_later();
}

TEST_CASE(
    "flights: an origin with a twin that stops sending mid-body for a second is replaced by the "
    "twin after its bytes; one that keeps sending is kept") {
  Node node;
  auto heard = std::make_shared<Heard>();
  SharedCache::Lookup found = node.cache->find_or_start("demo/f.ts", 0);
  REQUIRE(found.kind == SharedCache::Lookup::Kind::started);
  node.loops[0]->flights->start(found.flight, "http://origin.test/demo/f.ts", {}, {},
                                "http://twin.test/demo/f.ts");
  node.loops[0]->flights->join(found.flight, std::make_unique<RecordingWaiter>(heard));
  auto& origin = node.upstream.last();
  origin.callbacks.on_head(head(200, {{"Content-Length", "10"}}));
  origin.callbacks.on_data("hel");
  REQUIRE(node.timers.size() == 1);
  CHECK(node.timer_delays[0] == kTwinHeadWait);
  node.timers[0]();  // a head and bytes since the start: watched again
  REQUIRE(node.timers.size() == 2);
  node.upstream.transfers[0].callbacks.on_data("lo");
  node.timers[1]();  // more bytes: watched again
  REQUIRE(node.timers.size() == 3);
  CHECK(node.upstream.transfers.size() == 1);
  node.timers[2]();  // not a byte for a whole second: the twin is asked
  REQUIRE(node.upstream.transfers.size() == 2);
  CHECK(node.upstream.transfers[0].cancelled);
  CHECK(node.flight_metrics.twin_fallbacks.value() == 1);
  auto& twin = node.upstream.transfers[1];
  CHECK(twin.request.url == "http://twin.test/demo/f.ts");
  answer_whole(twin, "helloworld");
  node.run_all_later();
  CHECK(heard->body == "helloworld");
}
