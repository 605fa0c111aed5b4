// The same admission scenarios against both backends: the in-process AdmissionPolicy (the
// reference) and the Redis store's Lua script on a real redis-server started by the test. Time
// is injected into both (a steady TimePoint for the policy, wall-clock milliseconds for Redis),
// so the scenarios move it by hand. Then what only the Redis store has: one FIFO queue for
// several clients, slots restored by heartbeats after Redis lost them, and "unavailable" (never
// an admit) while Redis is down, with recovery by itself.
#include <doctest/doctest.h>
#include <event2/event.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "balancer/admission_policy.h"
#include "balancer/redis_admission.h"
#include "common/event_loop.h"
#include "common/redis_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace balancer {
namespace {

using namespace std::chrono_literals;
using Kind = AdmissionDecision::Kind;
using test::RedisServer;

constexpr uint64_t kMbps = 1'000'000;

AdmissionLimits limits(uint32_t max_streams, double max_traffic_mbps = 0) {
  AdmissionLimits l;
  l.max_streams = max_streams;
  l.max_traffic_mbps = max_traffic_mbps;
  l.idle_timeout = 30s;
  l.ticket_grace = 30s;
  l.head_reservation = 15s;
  l.retry_after = 10s;
  return l;
}

// One redis-server for this test program; each backend instance uses its own key prefix.
RedisServer& shared_redis() {
  static RedisServer server;
  return server;
}

// Runs `loop` until `done()` or 10 s pass.
bool run_until(common::EventLoop& loop, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    event_base_loop(&loop.base(), EVLOOP_ONCE);
  return done();
}

class LocalBackend {
 public:
  static constexpr const char* kName = "local";
  explicit LocalBackend(const AdmissionLimits& l) : policy_(l) {}

  AdmissionDecision request(std::string_view viewer, double at_s, uint64_t bandwidth_bps = 0,
                            const ViewerSource& from = {}) {
    return policy_.request(viewer, StreamInfo{"ch1", "c1", bandwidth_bps}, at(at_s), from);
  }
  void set_emulation(bool on, double at_s) { policy_.set_emulation(on, at(at_s)); }
  AdmissionStatus status(double at_s) { return policy_.status(at(at_s)); }

 private:
  static TimePoint at(double s) {
    return TimePoint(std::chrono::hours(1)) +
           std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
  }
  AdmissionPolicy policy_;
};

class RedisBackend {
 public:
  static constexpr const char* kName = "redis";
  explicit RedisBackend(const AdmissionLimits& l, int port = shared_redis().port(),
                        std::string prefix = "")
      : limits_(l),
        loop_(0),
        client_(loop_, common::RedisOptions{"127.0.0.1", static_cast<uint16_t>(port), "", 2000ms}),
        scripts_(client_, prefix.empty() ? "test" + std::to_string(next_prefix_++) : prefix) {}

  AdmissionDecision request(std::string_view viewer, double at_s, uint64_t bandwidth_bps = 0,
                            const ViewerSource& from = {}) {
    std::optional<AdmissionDecision> out;
    scripts_.decide(viewer, bandwidth_bps, from, limits_, at(at_s),
                    [&](const AdmissionDecision& d) { out = d; });
    REQUIRE(run_until(loop_, [&] { return out.has_value(); }));
    return *out;
  }
  void set_emulation(bool on, double at_s) {
    std::optional<std::optional<EmulationSwitch>> out;
    scripts_.switch_emulation(on, limits_, at(at_s),
                              [&](std::optional<EmulationSwitch> s) { out = s; });
    REQUIRE(run_until(loop_, [&] { return out.has_value(); }));
    REQUIRE(out->has_value());
  }
  AdmissionStatus status(double at_s) {
    std::optional<std::optional<AdmissionStatus>> out;
    scripts_.status(limits_, at(at_s),
                    [&](std::optional<AdmissionStatus> s) { out = std::move(s); });
    REQUIRE(run_until(loop_, [&] { return out.has_value(); }));
    REQUIRE(out->has_value());
    return **out;
  }
  bool heartbeat(const std::vector<std::pair<std::string, uint64_t>>& beats, double at_s) {
    std::optional<bool> out;
    scripts_.heartbeat(beats, limits_, at(at_s), [&](bool ok) { out = ok; });
    REQUIRE(run_until(loop_, [&] { return out.has_value(); }));
    return *out;
  }
  common::RedisClient& client() { return client_; }
  common::EventLoop& loop() { return loop_; }

 private:
  // Wall-clock milliseconds of a fixed day plus the scenario's seconds.
  static int64_t at(double s) { return 1'767'225'600'000 + static_cast<int64_t>(s * 1000); }
  static inline std::atomic<int> next_prefix_{0};
  AdmissionLimits limits_;
  common::EventLoop loop_;
  common::RedisClient client_;
  RedisAdmissionScripts scripts_;
};

#define BACKENDS LocalBackend, RedisBackend

TEST_CASE_TEMPLATE(
    "max_streams 3 and 5 arrivals: 3 admitted, then positions 1 and 2 with tickets kept on renewal",
    B, BACKENDS) {
  B b(limits(3));
  for (const char* v : {"a", "b", "c"}) CHECK(b.request(v, 0).admitted());
  const AdmissionDecision d = b.request("d", 1);
  REQUIRE(d.kind == Kind::kQueued);
  CHECK(d.position == 1);
  CHECK(d.ticket != 0);
  CHECK(d.estimated_wait == 30s);  // no turnover observed yet: one idle_timeout per free
  CHECK(d.retry_after == 10s);
  const AdmissionDecision e = b.request("e", 2);
  REQUIRE(e.kind == Kind::kQueued);
  CHECK(e.position == 2);
  CHECK(e.ticket > d.ticket);
  CHECK(e.estimated_wait == 60s);
  const AdmissionDecision d_again = b.request("d", 3);
  CHECK(d_again.ticket == d.ticket);
  CHECK(d_again.position == 1);
  const AdmissionStatus s = b.status(3);
  CHECK(s.active_viewers == 3);
  CHECK(s.queued_viewers == 2);
  CHECK(s.head_waited == 2s);
  CHECK(s.counters.tickets_issued == 2);
}

TEST_CASE_TEMPLATE(
    "an idle slot is reserved for the head; a newcomer cannot take it; the head claims it", B,
    BACKENDS) {
  B b(limits(3));
  for (const char* v : {"a", "b", "c"}) REQUIRE(b.request(v, 0).admitted());
  REQUIRE(b.request("d", 1).position == 1);
  REQUIRE(b.request("e", 1).position == 2);
  CHECK(b.request("b", 20).admitted());
  CHECK(b.request("c", 20).admitted());
  CHECK(b.request("d", 20).position == 1);
  CHECK(b.request("e", 20).position == 2);
  // At t=30 a has been idle for idle_timeout: its slot is freed and reserved for d.
  CHECK(b.request("e", 30).position == 2);
  AdmissionStatus s = b.status(30);
  CHECK(s.active_viewers == 2);
  CHECK(s.reserved_slots == 1);
  CHECK(s.counters.slots_expired == 1);
  CHECK(b.request("n", 30).position == 3);  // a newcomer waits behind everyone
  CHECK(b.request("d", 31).admitted());
  CHECK(b.request("e", 32).position == 1);
  s = b.status(32);
  CHECK(s.active_viewers == 3);
  CHECK(s.reserved_slots == 0);
  CHECK(s.counters.admitted_from_queue == 1);
  CHECK(s.slot_free_rate_per_s > 0);
}

TEST_CASE_TEMPLATE(
    "a ticket not renewed within the grace is dropped; its viewer comes back at the tail", B,
    BACKENDS) {
  B b(limits(1));
  REQUIRE(b.request("a", 0).admitted());
  const AdmissionDecision first = b.request("b", 0);
  REQUIRE(first.position == 1);
  REQUIRE(b.request("c", 1).position == 2);
  CHECK(b.request("a", 20).admitted());
  CHECK(b.request("c", 20).position == 2);
  CHECK(b.request("c", 30).position == 1);  // b never renewed: dropped at t=30
  CHECK(b.status(30).counters.tickets_expired == 1);
  const AdmissionDecision again = b.request("b", 31);
  CHECK(again.kind == Kind::kQueued);
  CHECK(again.ticket != first.ticket);
  CHECK(again.position == 2);
}

TEST_CASE_TEMPLATE("a reserved slot not claimed within head_reservation passes to the next in line",
                   B, BACKENDS) {
  B b(limits(1));
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 1).position == 1);
  REQUIRE(b.request("c", 1).position == 2);
  CHECK(b.request("b", 29).position == 1);
  CHECK(b.request("c", 29).position == 2);
  // a went idle at 30: its slot is reserved for b until 45; b never comes to claim it.
  CHECK(b.status(30).reserved_slots == 1);
  CHECK(b.request("c", 40).position == 2);
  CHECK(b.request("c", 46).admitted());  // b lapsed at 45; the slot passed to c
  const AdmissionStatus s = b.status(46);
  CHECK(s.counters.reservations_lapsed == 1);
  CHECK(s.queued_viewers == 0);
  CHECK(s.active_viewers == 1);
}

TEST_CASE_TEMPLATE(
    "emulation queues newcomers, admitted viewers keep playing, off resumes in queue order", B,
    BACKENDS) {
  B b(limits(4));
  REQUIRE(b.request("a", 0).admitted());
  b.set_emulation(true, 1);
  CHECK(b.request("a", 2).admitted());
  CHECK(b.request("x", 2).position == 1);
  CHECK(b.request("y", 3).position == 2);
  CHECK(b.status(3).emulation);
  b.set_emulation(false, 4);
  CHECK(b.status(4).reserved_slots == 2);  // x and y hold room; one more fits beyond theirs
  CHECK(b.request("z", 5).admitted());
  CHECK(b.request("w", 5).position == 3);  // no room beyond the reservations now
  CHECK(b.request("y", 5).admitted());
  CHECK(b.request("x", 6).admitted());
  CHECK(b.status(7).active_viewers == 4);
}

TEST_CASE_TEMPLATE(
    "the traffic limit admits by BANDWIDTH and never skips a big head for a small newcomer", B,
    BACKENDS) {
  B b(limits(0, 10));
  CHECK(b.request("a", 0, 4 * kMbps).admitted());
  CHECK(b.request("b", 0, 4 * kMbps).admitted());
  CHECK(b.request("c", 1, 4 * kMbps).position == 1);  // 12 > 10
  CHECK(b.request("d", 2, 1 * kMbps).position == 2);  // 9 would fit, but it would jump the queue
  CHECK(b.status(2).traffic_estimate_mbps == doctest::Approx(8));
  CHECK(b.request("b", 3, 1 * kMbps).admitted());  // b steps down: c (4) and d (1) now fit
  CHECK(b.status(3).reserved_slots == 2);
  CHECK(b.request("d", 5, 1 * kMbps).admitted());
  CHECK(b.request("c", 5, 4 * kMbps).admitted());
  CHECK(b.status(5).traffic_estimate_mbps == doctest::Approx(10));
}

TEST_CASE_TEMPLATE("per-address and max_entries bounds refuse a new viewer and record nothing", B,
                   BACKENDS) {
  AdmissionLimits l = limits(1);
  l.max_anonymous_per_address = 2;
  l.max_entries = 3;
  B b(l);
  const ViewerSource anon{"10.0.0.1", true};
  CHECK(b.request("v1", 0, 0, anon).admitted());
  CHECK(b.request("v2", 0, 0, anon).position == 1);
  const AdmissionDecision third = b.request("v3", 0, 0, anon);
  CHECK(third.kind == Kind::kRefused);
  CHECK(third.refusal == AdmissionDecision::Refusal::kAddressViewers);
  CHECK(b.request("t1", 0, 0, {"10.0.0.2", false}).position == 2);
  const AdmissionDecision full = b.request("t2", 0, 0, {"10.0.0.3", false});
  CHECK(full.kind == Kind::kRefused);
  CHECK(full.refusal == AdmissionDecision::Refusal::kFull);
  const AdmissionStatus s = b.status(1);
  CHECK(s.queued_viewers == 2);
  CHECK(s.counters.refused_address == 1);
  CHECK(s.counters.refused_full == 1);
}

TEST_CASE_TEMPLATE("1,000 arrivals at a full service get strictly increasing positions 1..1000", B,
                   BACKENDS) {
  AdmissionLimits l = limits(3);
  l.max_tickets_per_address = 0;
  B b(l);
  for (const char* v : {"a", "b", "c"}) REQUIRE(b.request(v, 0).admitted());
  uint64_t last_ticket = 0;
  int in_order = 0;
  for (int i = 1; i <= 1000; ++i) {
    const AdmissionDecision d = b.request("q" + std::to_string(i), 1);
    if (d.kind == Kind::kQueued && d.position == static_cast<uint64_t>(i) && d.ticket > last_ticket)
      ++in_order;
    last_ticket = d.ticket;
  }
  CHECK(in_order == 1000);
}

TEST_CASE(
    "Redis: two connections (two balancers) on one store: one limit, one strictly FIFO queue") {
  AdmissionLimits l = limits(3);
  l.max_tickets_per_address = 0;
  RedisBackend a(l, shared_redis().port(), "fleet-shared");
  RedisBackend b(l, shared_redis().port(), "fleet-shared");
  int admitted = 0;
  int in_order = 0;
  uint64_t last_ticket = 0;
  for (int i = 1; i <= 1003; ++i) {
    RedisBackend& at = i % 2 == 0 ? a : b;  // arrivals alternate between the two
    const AdmissionDecision d = at.request("v" + std::to_string(i), 1);
    if (d.admitted()) {
      ++admitted;
      continue;
    }
    if (d.kind == Kind::kQueued && d.position == static_cast<uint64_t>(i - 3) &&
        d.ticket > last_ticket)
      ++in_order;
    last_ticket = d.ticket;
  }
  CHECK(admitted == 3);
  CHECK(in_order == 1000);
  // The fourth arrival is number 1 whichever of the two it asks, and keeps its ticket.
  const AdmissionDecision via_a = a.request("v4", 2);
  const AdmissionDecision via_b = b.request("v4", 2);
  CHECK(via_a.position == 1);
  CHECK(via_b.position == 1);
  CHECK(via_a.ticket == via_b.ticket);
  CHECK(a.status(2).active_viewers == 3);
}

TEST_CASE("Redis: a heartbeat restores the slots of admitted viewers after Redis lost its data") {
  RedisServer own;
  RedisBackend b(limits(2), own.port());
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 0).admitted());
  REQUIRE(b.request("c", 0).position == 1);

  own.stop();
  // While Redis is down: no admit, an "unavailable" refusal (503 + Retry-After), quickly.
  const auto asked = std::chrono::steady_clock::now();
  const AdmissionDecision down = b.request("d", 1);
  CHECK(down.kind == Kind::kRefused);
  CHECK(down.refusal == AdmissionDecision::Refusal::kUnavailable);
  CHECK(down.retry_after == 10s);
  CHECK(std::chrono::steady_clock::now() - asked < 3s);

  REQUIRE(own.restart());  // empty: no persistence
  // The client reconnects by itself; the balancers' heartbeats put a and b back.
  REQUIRE(test::wait_until(
      [&] {
        event_base_loop(&b.loop().base(), EVLOOP_NONBLOCK);
        return b.client().connected();
      },
      10s));
  CHECK(b.heartbeat({{"a", 0}, {"b", 0}}, 2));
  const AdmissionStatus s = b.status(2);
  CHECK(s.active_viewers == 2);
  CHECK(b.request("e", 3).position == 1);  // the limit holds again: no one was cut off
}

}  // namespace
}  // namespace balancer
