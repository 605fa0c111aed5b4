// The admission contract: every scenario runs through the one interface (admission/admission.h)
// against both factories, make_local_admission and make_redis_admission (a real redis-server
// started by the test), and asserts the same observable outcome on both. Time is injected: the
// scenario's seconds are the caller's `now`, and the Redis backend is told to use them as the
// store's clock (StoreTime::caller_now). As in the server, tick() runs once per second of
// scenario time on the home loop; a status is read after a tick at that time (the Redis backend
// reports the fleet's numbers as of its last tick). Then what only the Redis backend has: two
// balancers on one store, and "unavailable" (never an admit) while Redis is down, with slots
// restored by heartbeats when it is back.
#include <doctest/doctest.h>
#include <event2/event.h>
#include <deque>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admission/admission.h"
#include "core/event_loop.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace admission {
namespace admission_contract_test {

using namespace std::chrono_literals;
using Kind = AdmissionDecision::Kind;
using balancer::test::RedisServer;

constexpr uint64_t kMbps = 1'000'000;

// The defaults otherwise: 30 s idle timeout and ticket grace, 15 s head reservation, 10 s retry.
AdmissionLimits limits(uint32_t max_streams, double max_traffic_mbps = 0) {
  return AdmissionLimits{.max_streams = max_streams, .max_traffic_mbps = max_traffic_mbps};
}

// One redis-server for this test program; each backend instance uses its own key prefix.
RedisServer& shared_redis() {
  static RedisServer server;
  return server;
}

// Runs `loop` until `done()` or 10 s pass.
bool run_until(core::EventLoop& loop, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    event_base_loop(&loop.base(), EVLOOP_ONCE);
  }
  return done();
}

TimePoint at(double s) {
  return TimePoint(std::chrono::hours(1)) +
         std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

struct LocalFactory {
  static std::unique_ptr<Admission> make(core::EventLoop&, const AdmissionLimits& l) {
    return make_local_admission(l);
  }
};

struct RedisFactory {
  static inline std::atomic<int> next_prefix{0};
  // `prefix` "" = a fresh key namespace (a fleet of its own).
  static std::unique_ptr<Admission> make(core::EventLoop& loop, const AdmissionLimits& l,
                                         int port = shared_redis().port(),
                                         std::string prefix = "") {
    RedisAdmissionOptions o;
    o.port = static_cast<uint16_t>(port);
    o.prefix = prefix.empty() ? "contract" + std::to_string(next_prefix++) : prefix;
    o.timeout = 2000ms;
    o.heartbeat_interval = 0ms;  // every tick sends what was refreshed since the last one
    return make_redis_admission({&loop}, o, l, StoreTime::caller_now);
  }
};

// One backend behind the interface, with its home loop run on the test thread.
class Contract {
 public:
  template <class Factory, class... Args>
  static Contract of(const AdmissionLimits& l, Args&&... args) {
    Contract c;
    c.admission_ = Factory::make(*c.loop_, l, std::forward<Args>(args)...);
    return c;
  }

  AdmissionDecision request(std::string_view viewer, double at_s, uint64_t bandwidth_bps = 0,
                            const ViewerSource& from = {}, std::string_view channel = "ch1",
                            std::string_view cache = "c1") {
    advance(at_s);
    std::optional<AdmissionDecision> out;
    admission_->request(*loop_, viewer, StreamInfo{channel, cache, bandwidth_bps}, from, at(at_s),
                        [&](const AdmissionDecision& d) { out = d; });
    REQUIRE(run_until(*loop_, [&] { return out.has_value(); }));
    return *out;
  }
  AdmissionDecision check(std::string_view viewer, std::string_view channel, double at_s) {
    advance(at_s);
    std::optional<AdmissionDecision> out;
    admission_->check(*loop_, viewer, channel, {}, at(at_s),
                      [&](const AdmissionDecision& d) { out = d; });
    REQUIRE(run_until(*loop_, [&] { return out.has_value(); }));
    return *out;
  }
  std::optional<bool> release(std::string_view viewer, double at_s) {
    advance(at_s);
    std::optional<std::optional<bool>> out;
    admission_->release(*loop_, viewer, at(at_s), [&](std::optional<bool> r) { out = r; });
    REQUIRE(run_until(*loop_, [&] { return out.has_value(); }));
    return *out;
  }
  // nullopt: the store could not be asked.
  std::optional<EmulationSwitch> try_switch_emulation(std::optional<bool> want, double at_s) {
    advance(at_s);
    std::optional<std::optional<EmulationSwitch>> out;
    admission_->switch_emulation(*loop_, want, at(at_s),
                                 [&](std::optional<EmulationSwitch> s) { out = s; });
    REQUIRE(run_until(*loop_, [&] { return out.has_value(); }));
    return *out;
  }
  EmulationSwitch switch_emulation(std::optional<bool> want, double at_s) {
    const std::optional<EmulationSwitch> s = try_switch_emulation(want, at_s);
    REQUIRE(s.has_value());
    return *s;
  }
  void set_limits(const AdmissionLimits& l, double at_s) {
    advance(at_s);
    admission_->set_limits(l, at(at_s));
  }
  AdmissionStatus status(double at_s) {
    advance(at_s);
    tick(at_s);  // again at this very time: what happened since the last tick is counted
    return admission_->status(at(at_s));
  }
  // The server's one-second timer, for every whole second up to `at_s`.
  void advance(double at_s) {
    for (double t = last_tick_ + 1; t <= at_s; t += 1) tick(t);
  }
  void tick(double at_s) {
    bool done = false;
    admission_->tick(at(at_s), [&] { done = true; });
    REQUIRE(run_until(*loop_, [&] { return done; }));
    last_tick_ = std::max(last_tick_, at_s);
  }

 private:
  Contract() : loop_(std::make_unique<core::EventLoop>(0)) {}

  std::unique_ptr<core::EventLoop> loop_;  // declared first: outlives the backend
  std::unique_ptr<Admission> admission_;
  double last_tick_ = 0;
};

#define BACKENDS LocalFactory, RedisFactory

TEST_CASE_TEMPLATE(
    "max_streams 3 and 5 arrivals: 3 admitted, then positions 1 and 2 with tickets kept on renewal",
    F, BACKENDS) {
  Contract b = Contract::of<F>(limits(3));
  for (const char* v : {"a", "b", "c"}) CHECK(b.request(v, 0).admitted());
  const AdmissionDecision d = b.request("d", 1);
  REQUIRE(d.kind == Kind::queued);
  CHECK(d.position == 1);
  CHECK(d.ticket != 0);
  CHECK(!d.estimated_wait);  // no slot has freed yet: the wait is unknown, not guessed
  CHECK(d.retry_after == 10s);
  const AdmissionDecision e = b.request("e", 2);
  REQUIRE(e.kind == Kind::queued);
  CHECK(e.position == 2);
  CHECK(e.ticket > d.ticket);
  CHECK(!e.estimated_wait);
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
    "an idle slot is reserved for the head; a newcomer cannot take it; the head claims it", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(3));
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
  CHECK(!s.slot_free_rate_per_s);  // one free is no rate
  CHECK(!s.next_wait);
}

TEST_CASE_TEMPLATE(
    "the wait is announced once ten slots freed over 30 s after a first one, at the rate measured "
    "from that first free on: a quiet start does not slow the estimate",
    F, BACKENDS) {
  Contract b = Contract::of<F>(limits(3));
  std::deque<std::string> active = {"a0", "a1", "a2"};
  std::deque<std::string> waiting;
  for (const auto& v : active) REQUIRE(b.request(v, 0).admitted());
  for (int i = 0; i < 4; ++i) {
    waiting.push_back("q" + std::to_string(i));
    REQUIRE(b.request(waiting.back(), 1).kind == Kind::queued);
  }
  // Five quiet minutes: everyone keeps its slot or place, nothing frees.
  double now = 1;
  while (now < 300) {
    now += 10;
    for (const auto& v : active) REQUIRE(b.request(v, now).admitted());
    for (const auto& v : waiting) REQUIRE(!b.request(v, now).estimated_wait);
  }
  // Then a viewer leaves every 4 s: the head takes the slot, a newcomer joins at the tail.
  int next = 4;
  std::vector<AdmissionDecision> told;
  for (int free = 1; free <= 14; ++free) {
    now += 4;
    REQUIRE(b.release(active.front(), now) == true);
    active.pop_front();
    REQUIRE(b.request(waiting.front(), now).admitted());
    active.push_back(waiting.front());
    waiting.pop_front();
    waiting.push_back("q" + std::to_string(next++));
    for (const auto& v : active) REQUIRE(b.request(v, now).admitted());
    told.clear();
    for (const auto& v : waiting) told.push_back(b.request(v, now));
    INFO("free ", free);
    REQUIRE(told.size() == 4);
    CHECK(told[0].estimated_wait.has_value() == (free >= 11));  // the first + 10, 40 s
  }
  // Position p needs p frees, one every 4 s.
  for (size_t i = 0; i < told.size(); ++i) {
    INFO("position ", told[i].position);
    REQUIRE(told[i].estimated_wait.has_value());
    const double expected = 4.0 * static_cast<double>(told[i].position);
    CHECK(static_cast<double>(told[i].estimated_wait->count()) >= expected * 0.9);
    CHECK(static_cast<double>(told[i].estimated_wait->count()) <= expected * 1.15 + 1);
    CHECK(told[i].retry_after == std::min(*told[i].estimated_wait, 10s));
  }
  const AdmissionStatus s = b.status(now);
  REQUIRE(s.slot_free_rate_per_s.has_value());
  CHECK(*s.slot_free_rate_per_s == doctest::Approx(0.25).epsilon(0.12));
  REQUIRE(s.next_wait.has_value());
  CHECK(s.next_wait->count() >= 18);  // position 5
}

TEST_CASE_TEMPLATE(
    "a ticket not renewed within the grace is dropped; its viewer comes back at the tail", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
  REQUIRE(b.request("a", 0).admitted());
  const AdmissionDecision first = b.request("b", 0);
  REQUIRE(first.position == 1);
  REQUIRE(b.request("c", 1).position == 2);
  CHECK(b.request("a", 20).admitted());
  CHECK(b.request("c", 20).position == 2);
  CHECK(b.request("c", 30).position == 1);  // b never renewed: dropped at t=30
  CHECK(b.status(30).counters.tickets_expired == 1);
  const AdmissionDecision again = b.request("b", 31);
  CHECK(again.kind == Kind::queued);
  CHECK(again.ticket != first.ticket);
  CHECK(again.position == 2);
}

TEST_CASE_TEMPLATE("a reserved slot not claimed within head_reservation passes to the next in line",
                   F, BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
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
    "emulation queues newcomers, admitted viewers keep playing, off resumes in queue order", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(4));
  REQUIRE(b.request("a", 0).admitted());
  CHECK(b.switch_emulation(true, 1).changed);
  CHECK(b.request("a", 2).admitted());
  CHECK(b.request("x", 2).position == 1);
  CHECK(b.request("y", 3).position == 2);
  CHECK(b.status(3).emulation);
  CHECK(b.switch_emulation(false, 4).changed);
  CHECK(b.status(4).reserved_slots == 2);  // x and y hold room; one more fits beyond theirs
  CHECK(b.request("z", 5).admitted());
  CHECK(b.request("w", 5).position == 3);  // no room beyond the reservations now
  CHECK(b.request("y", 5).admitted());
  CHECK(b.request("x", 6).admitted());
  CHECK(b.status(7).active_viewers == 4);
}

TEST_CASE_TEMPLATE(
    "the overload switch: empty toggles, a value sets, changed says whether it moved", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(0));
  EmulationSwitch s = b.switch_emulation(std::nullopt, 1);
  CHECK(s.on);
  CHECK(s.changed);
  s = b.switch_emulation(true, 2);
  CHECK(s.on);
  CHECK_FALSE(s.changed);
  CHECK(b.request("a", 2).position == 1);  // unlimited, yet no one is admitted while it is on
  CHECK(b.status(2).emulation);
  s = b.switch_emulation(std::nullopt, 3);
  CHECK_FALSE(s.on);
  CHECK(s.changed);
  s = b.switch_emulation(false, 3);
  CHECK_FALSE(s.on);
  CHECK_FALSE(s.changed);
  CHECK_FALSE(b.status(3).emulation);
  CHECK(b.request("a", 4).admitted());  // its reserved slot
  CHECK(b.request("n", 4).admitted());
}

TEST_CASE_TEMPLATE(
    "the traffic limit admits by BANDWIDTH and never skips a big head for a small newcomer", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(0, 10));
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

TEST_CASE_TEMPLATE("per-address and max_entries bounds refuse a new viewer and record nothing", F,
                   BACKENDS) {
  AdmissionLimits l = limits(1);
  l.max_anonymous_per_address = 2;
  l.max_entries = 3;
  Contract b = Contract::of<F>(l);
  const ViewerSource anon{"10.0.0.1", true, ""};
  CHECK(b.request("v1", 0, 0, anon).admitted());
  CHECK(b.request("v2", 0, 0, anon).position == 1);
  const AdmissionDecision third = b.request("v3", 0, 0, anon);
  CHECK(third.kind == Kind::refused);
  CHECK(third.refusal == AdmissionDecision::Refusal::address_viewers);
  CHECK(b.request("t1", 0, 0, {"10.0.0.2", false, ""}).position == 2);
  const AdmissionDecision full = b.request("t2", 0, 0, {"10.0.0.3", false, ""});
  CHECK(full.kind == Kind::refused);
  CHECK(full.refusal == AdmissionDecision::Refusal::full);
  const AdmissionStatus s = b.status(1);
  CHECK(s.queued_viewers == 2);
  CHECK(s.counters.refused_address == 1);
  CHECK(s.counters.refused_full == 1);
}

TEST_CASE_TEMPLATE(
    "two devices of one account are two streams: emulation queues the second; "
    "max_streams_per_account refuses one more and counts again once a device stops",
    F, BACKENDS) {
  AdmissionLimits l = limits(0);
  l.max_streams_per_account = 2;
  Contract b = Contract::of<F>(l);
  const ViewerSource account{"10.0.0.1", false, "u1"};
  CHECK(b.request("t:u1/phone", 0, 0, account).admitted());
  CHECK(b.switch_emulation(true, 1).on);
  CHECK(b.request("t:u1/phone", 1, 0, account).admitted());
  CHECK(b.request("t:u1/tablet", 1, 0, account).position == 1);
  const AdmissionDecision third = b.request("t:u1/tv", 1, 0, account);
  CHECK(third.kind == Kind::refused);
  CHECK(third.refusal == AdmissionDecision::Refusal::account_streams);
  CHECK(third.retry_after == 10s);
  CHECK(b.request("t:u2/tv", 1, 0, {"10.0.0.1", false, "u2"}).position == 2);
  CHECK_FALSE(b.switch_emulation(false, 2).on);
  CHECK(b.request("t:u1/tablet", 2, 0, account).admitted());
  AdmissionStatus s = b.status(2);
  CHECK(s.active_viewers == 2);
  CHECK(s.queued_viewers == 1);
  CHECK(s.counters.refused_account == 1);
  CHECK(b.release("t:u1/phone", 3) == true);
  CHECK(b.request("t:u1/tv", 3, 0, account).admitted());
  CHECK(b.request("t:u1/phone", 3, 0, account).kind == Kind::refused);
  s = b.status(3);
  CHECK(s.active_viewers == 2);  // tablet and tv; u2's tv holds a reserved slot in the queue
  CHECK(s.counters.refused_account == 2);
}

TEST_CASE_TEMPLATE("an empty or oversized viewer key is refused and records nothing", F, BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
  CHECK(b.request("", 0).kind == Kind::bad_viewer_key);
  CHECK(b.check(std::string(kMaxViewerKeyBytes + 1, 'x'), "ch1", 0).kind == Kind::bad_viewer_key);
  CHECK(b.release("", 0) == false);
  const AdmissionStatus s = b.status(0);
  CHECK(s.active_viewers == 0);
  CHECK(s.queued_viewers == 0);
  CHECK(b.request("a", 1).admitted());
}

TEST_CASE_TEMPLATE("1,000 arrivals at a full service get strictly increasing positions 1..1000", F,
                   BACKENDS) {
  AdmissionLimits l = limits(3);
  l.max_tickets_per_address = 0;
  Contract b = Contract::of<F>(l);
  for (const char* v : {"a", "b", "c"}) REQUIRE(b.request(v, 0).admitted());
  uint64_t last_ticket = 0;
  int in_order = 0;
  for (int i = 1; i <= 1000; ++i) {
    const AdmissionDecision d = b.request("q" + std::to_string(i), 1);
    if (d.kind == Kind::queued && d.position == static_cast<uint64_t>(i) && d.ticket > last_ticket)
      ++in_order;
    last_ticket = d.ticket;
  }
  CHECK(in_order == 1000);
}

TEST_CASE_TEMPLATE(
    "release frees a slot for the head of the queue, drops a ticket, and is false for a stranger",
    F, BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 1).position == 1);
  REQUIRE(b.request("c", 1).position == 2);
  CHECK(b.release("a", 2) == true);
  AdmissionStatus s = b.status(2);
  CHECK(s.active_viewers == 0);
  CHECK(s.reserved_slots == 1);  // the freed slot waits for b, the head
  CHECK(s.counters.released == 1);
  CHECK(b.request("n", 2).position == 3);  // a newcomer does not take it
  CHECK(b.request("b", 3).admitted());
  CHECK(b.release("c", 4) == true);  // a ticket given up: everyone behind moves up
  CHECK(b.request("n", 5).position == 1);
  CHECK(b.release("stranger", 5) == false);
  s = b.status(5);
  CHECK(s.counters.released == 2);
  CHECK(s.active_viewers == 1);
  CHECK(s.queued_viewers == 1);
  // A released viewer that comes back is a newcomer.
  const AdmissionDecision again = b.request("a", 6);
  CHECK(again.kind == Kind::queued);
  CHECK(again.position == 2);
}

TEST_CASE_TEMPLATE("the access check and playlist requests share one ticket and one slot", F,
                   BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
  REQUIRE(b.request("t:a", 0).admitted());
  const AdmissionDecision asked = b.check("t:b", "ch1", 1);
  REQUIRE(asked.kind == Kind::queued);
  const AdmissionDecision renewed = b.request("t:b", 2, 2 * kMbps);
  CHECK(renewed.ticket == asked.ticket);
  CHECK(renewed.position == 1);
  REQUIRE(b.release("t:a", 3) == true);
  CHECK(b.check("t:b", "", 4).admitted());
  CHECK(b.request("t:b", 5, 2 * kMbps).admitted());
  CHECK(b.check("t:b", "ch2", 6).admitted());
  const AdmissionStatus s = b.status(6);
  CHECK(s.active_viewers == 1);
  CHECK(s.counters.admitted == 2);
}

TEST_CASE_TEMPLATE(
    "new limits: raised, the head gets in at its next renewal; lowered, admitted viewers stay", F,
    BACKENDS) {
  Contract b = Contract::of<F>(limits(1));
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 1).position == 1);
  b.set_limits(limits(2), 2);
  CHECK(b.request("b", 3).admitted());
  CHECK(b.status(3).limits.max_streams == 2);
  b.set_limits(limits(1), 4);
  CHECK(b.request("a", 5).admitted());
  CHECK(b.request("b", 5).admitted());
  CHECK(b.request("c", 6).position == 1);  // over the lowered limit: newcomers wait
  const AdmissionStatus s = b.status(6);
  CHECK(s.active_viewers == 2);
  CHECK(s.queued_viewers == 1);
  CHECK(s.limits.max_streams == 1);
}

TEST_CASE_TEMPLATE(
    "tick alone, with no request, frees idle slots, reserves them for the head, drops stale "
    "tickets",
    F, BACKENDS) {
  Contract b = Contract::of<F>(limits(2));
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 0).admitted());
  REQUIRE(b.request("c", 0).position == 1);
  REQUIRE(b.request("c", 5).position == 1);
  b.advance(30);  // the timer only: a and b were idle for idle_timeout
  AdmissionStatus s = b.status(30);
  CHECK(s.active_viewers == 0);
  CHECK(s.reserved_slots == 1);
  CHECK(s.counters.slots_expired == 2);
  CHECK(s.channels.empty());
  b.advance(35);  // c last renewed at 5: its ticket is dropped at 35
  s = b.status(35);
  CHECK(s.queued_viewers == 0);
  CHECK(s.reserved_slots == 0);
  CHECK(s.counters.tickets_expired == 1);
  CHECK(b.request("d", 36).admitted());
}

// `counts` (per channel or per cache node) is exactly `expected`: names and active viewers, in
// order.
template <typename Counts>
void check_viewer_counts(const Counts& counts,
                         const std::vector<std::pair<std::string, uint64_t>>& expected) {
  REQUIRE(counts.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(counts[i].name == expected[i].first);
    CHECK(counts[i].active_viewers == expected[i].second);
  }
}

TEST_CASE_TEMPLATE("status counts active viewers per channel, per cache node and on origin", F,
                   BACKENDS) {
  Contract b = Contract::of<F>(limits(0));
  REQUIRE(b.request("a", 0, 2 * kMbps, {}, "ch1", "c1").admitted());
  REQUIRE(b.request("b", 0, 1 * kMbps, {}, "ch2", "").admitted());
  REQUIRE(b.request("c", 0, 1 * kMbps, {}, "ch1", "c1").admitted());
  AdmissionStatus s = b.status(0);
  CHECK(s.active_viewers == 3);
  CHECK(s.origin_viewers == 1);
  check_viewer_counts(s.channels, {{"ch1", 2}, {"ch2", 1}});
  REQUIRE(s.caches.size() == 1);
  CHECK(s.caches[0].active_viewers == 2);
  // a follows its chunks to another node: one slot, counted where it is now.
  REQUIRE(b.request("a", 1, 0, {}, "ch1", "c2").admitted());
  s = b.status(1);
  CHECK(s.active_viewers == 3);
  check_viewer_counts(s.caches, {{"c1", 1}, {"c2", 1}});
  CHECK(s.declared_mbps == doctest::Approx(4));
}

TEST_CASE("Redis: two balancers on one store: one limit, one strictly FIFO queue") {
  AdmissionLimits l = limits(3);
  l.max_tickets_per_address = 0;
  Contract a = Contract::of<RedisFactory>(l, shared_redis().port(), "fleet-shared");
  Contract b = Contract::of<RedisFactory>(l, shared_redis().port(), "fleet-shared");
  int admitted = 0;
  int in_order = 0;
  uint64_t last_ticket = 0;
  for (int i = 1; i <= 1003; ++i) {
    Contract& via = i % 2 == 0 ? a : b;  // arrivals alternate between the two
    const AdmissionDecision d = via.request("v" + std::to_string(i), 1);
    if (d.admitted()) {
      ++admitted;
      continue;
    }
    if (d.kind == Kind::queued && d.position == static_cast<uint64_t>(i - 3) &&
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
  // The switch is the fleet's: set through one balancer, seen through the other.
  CHECK(a.switch_emulation(true, 3).changed);
  CHECK(b.status(3).emulation);
  CHECK_FALSE(b.switch_emulation(true, 3).changed);
}

TEST_CASE("Redis: unavailable (never an admit) while down; heartbeats restore admitted slots") {
  RedisServer own;
  Contract b = Contract::of<RedisFactory>(limits(2), own.port());
  REQUIRE(b.request("a", 0).admitted());
  REQUIRE(b.request("b", 0).admitted());
  REQUIRE(b.request("c", 0).position == 1);

  own.stop();
  // While Redis is down: no admit, an "unavailable" refusal (503 + Retry-After), quickly.
  const auto asked = std::chrono::steady_clock::now();
  const AdmissionDecision down = b.request("d", 1);
  CHECK(down.kind == Kind::refused);
  CHECK(down.refusal == AdmissionDecision::Refusal::unavailable);
  CHECK(down.retry_after == 10s);
  CHECK(std::chrono::steady_clock::now() - asked < 3s);
  CHECK_FALSE(b.try_switch_emulation(true, 1).has_value());
  // Admitted viewers keep playing on their leases.
  CHECK(b.request("a", 1).admitted());
  CHECK(b.request("b", 1).admitted());

  REQUIRE(own.restart());  // empty: no persistence
  // The client reconnects by itself; the heartbeats of a and b put their slots back.
  // (Polled: while the client reconnects, each tick fails at once.)
  REQUIRE(balancer::test::wait_until([&] { return b.status(2).active_viewers == 2; }, 10s));
  CHECK(b.request("e", 3).position == 1);  // the limit holds again: no one was cut off
}

}  // namespace admission_contract_test
}  // namespace admission
