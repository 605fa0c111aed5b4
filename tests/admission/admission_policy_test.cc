#include "admission/admission_policy.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace admission {
namespace {

using namespace std::chrono_literals;
using Kind = AdmissionDecision::Kind;

// Injected clock: tests pass `t(seconds)`; nothing reads a real clock.
TimePoint t(double seconds) {
  return TimePoint(std::chrono::hours(1)) +
         std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

// The defaults otherwise: 30 s idle timeout and ticket grace, 15 s head reservation, 10 s retry.
AdmissionLimits limits(uint32_t max_streams, double max_traffic_mbps = 0) {
  return AdmissionLimits{.max_streams = max_streams, .max_traffic_mbps = max_traffic_mbps};
}

StreamInfo on(std::string_view channel = "ch1", std::string_view cache = "c1",
              uint64_t bandwidth_bps = 0) {
  return StreamInfo{channel, cache, bandwidth_bps};
}

constexpr uint64_t kMbps = 1'000'000;

uint64_t count_of(const std::vector<AdmissionGroupCount>& groups, std::string_view name) {
  for (const auto& g : groups) {
    if (g.name == name) return g.active_viewers;
  }
  return 0;
}

TEST_CASE("limits of 3 streams and 5 arriving viewers: 3 admitted, 2 queued at positions 1, 2") {
  AdmissionPolicy p(limits(3));
  for (const char* v : {"a", "b", "c"}) CHECK(p.request(v, on(), t(0)).admitted());

  const AdmissionDecision d = p.request("d", on(), t(1));
  REQUIRE(d.kind == Kind::queued);
  CHECK(d.position == 1);
  CHECK(d.ticket != 0);
  CHECK(!d.estimated_wait);  // no slot has freed yet: the wait is unknown
  CHECK(d.retry_after == 10s);

  const AdmissionDecision e = p.request("e", on(), t(2));
  REQUIRE(e.kind == Kind::queued);
  CHECK(e.position == 2);
  CHECK(e.ticket > d.ticket);
  CHECK(!e.estimated_wait);

  const AdmissionDecision d_again = p.request("d", on(), t(3));  // renewing keeps the ticket
  CHECK(d_again.ticket == d.ticket);
  CHECK(d_again.position == 1);

  const AdmissionStatus s = p.status(t(3));
  CHECK(s.active_viewers == 3);
  CHECK(s.queued_viewers == 2);
  CHECK(s.head_waited == 2s);
  CHECK(s.counters.tickets_issued == 2);
}

TEST_CASE("an idle viewer's slot goes to the head of the queue when it renews; the next moves up") {
  AdmissionPolicy p(limits(3));
  for (const char* v : {"a", "b", "c"}) REQUIRE(p.request(v, on(), t(0)).admitted());
  REQUIRE(p.request("d", on(), t(1)).position == 1);
  REQUIRE(p.request("e", on(), t(1)).position == 2);

  // b and c keep playing, a stops; d and e keep renewing their tickets.
  CHECK(p.request("b", on(), t(20)).admitted());
  CHECK(p.request("c", on(), t(20)).admitted());
  CHECK(p.request("d", on(), t(10)).position == 1);
  CHECK(p.request("e", on(), t(20)).position == 2);

  // At t=30 a has been idle for idle_timeout: its slot is freed and reserved for d.
  const AdmissionDecision e_early = p.request("e", on(), t(30));
  CHECK(e_early.kind == Kind::queued);
  CHECK(e_early.position == 2);
  AdmissionStatus s = p.status(t(30));
  CHECK(s.active_viewers == 2);
  CHECK(s.reserved_slots == 1);
  CHECK(s.counters.slots_expired == 1);

  CHECK(p.request("d", on(), t(31)).admitted());
  const AdmissionDecision e_next = p.request("e", on(), t(32));
  CHECK(e_next.kind == Kind::queued);
  CHECK(e_next.position == 1);

  s = p.status(t(32));
  CHECK(s.active_viewers == 3);
  CHECK(s.queued_viewers == 1);
  CHECK(s.reserved_slots == 0);
  CHECK(s.counters.admitted_from_queue == 1);
  CHECK(p.request("a", on(), t(33)).position == 2);  // a came back: a newcomer at the tail
}

// The one slot of `p`: viewer a takes it, then b waits first and c second, each arriving at the
// given second; returns b's decision.
AdmissionDecision a_holds_b_and_c_wait(AdmissionPolicy& p, double a_at, double b_at, double c_at) {
  REQUIRE(p.request("a", on(), t(a_at)).admitted());
  const AdmissionDecision b = p.request("b", on(), t(b_at));
  REQUIRE(b.position == 1);
  REQUIRE(p.request("c", on(), t(c_at)).position == 2);
  return b;
}

TEST_CASE(
    "a ticket not renewed within the grace is dropped and its viewer waits again at the tail") {
  AdmissionPolicy p(limits(1));
  const AdmissionDecision b = a_holds_b_and_c_wait(p, 0, 0, 1);

  CHECK(p.request("a", on(), t(20)).admitted());
  CHECK(p.request("c", on(), t(20)).position == 2);
  // b never renewed: at t=30 its ticket is dropped and c moves up.
  CHECK(p.request("c", on(), t(30)).position == 1);
  const AdmissionStatus s = p.status(t(30));
  CHECK(s.queued_viewers == 1);
  CHECK(s.counters.tickets_expired == 1);

  const AdmissionDecision b_again = p.request("b", on(), t(31));
  CHECK(b_again.kind == Kind::queued);
  CHECK(b_again.ticket != b.ticket);
  CHECK(b_again.position == 2);
}

TEST_CASE("the traffic limit admits by variant bandwidth and reserves freed traffic in order") {
  AdmissionPolicy p(limits(0, 10));
  CHECK(p.request("a", on("ch1", "c1", 4 * kMbps), t(0)).admitted());
  CHECK(p.request("b", on("ch1", "c1", 4 * kMbps), t(0)).admitted());
  const AdmissionDecision c = p.request("c", on("ch1", "c1", 4 * kMbps), t(1));  // 12 > 10
  CHECK(c.kind == Kind::queued);
  CHECK(c.position == 1);
  // 1 Mbit/s would fit, but a newcomer never jumps the queue.
  const AdmissionDecision d = p.request("d", on("ch1", "c1", 1 * kMbps), t(2));
  CHECK(d.kind == Kind::queued);
  CHECK(d.position == 2);
  CHECK(p.status(t(2)).traffic_estimate_mbps == doctest::Approx(8));

  // b steps down to a 1 Mbit/s variant: 5 in use, c (4) and then d (1) fit exactly.
  CHECK(p.request("b", on("ch1", "c1", 1 * kMbps), t(3)).admitted());
  CHECK(p.status(t(3)).reserved_slots == 2);
  // A viewer of unknown bandwidth (master playlist) counts at the mean: it does not fit.
  CHECK(p.request("e", on(), t(4)).position == 3);
  CHECK(p.request("d", on("ch1", "c1", 1 * kMbps), t(5)).admitted());
  CHECK(p.request("c", on("ch1", "c1", 4 * kMbps), t(5)).admitted());
  const AdmissionStatus s = p.status(t(5));
  CHECK(s.traffic_estimate_mbps == doctest::Approx(10));
  CHECK(s.active_viewers == 4);
  CHECK(p.request("e", on(), t(6)).position == 1);
}

TEST_CASE("lowering a limit keeps every admitted viewer and queues only new ones") {
  AdmissionPolicy p(limits(5));
  for (const char* v : {"a", "b", "c", "d"}) REQUIRE(p.request(v, on(), t(0)).admitted());
  p.set_limits(limits(2), t(1));
  for (const char* v : {"a", "b", "c", "d"}) CHECK(p.request(v, on(), t(2)).admitted());
  CHECK(p.request("e", on(), t(3)).position == 1);
  CHECK(p.status(t(3)).active_viewers == 4);

  REQUIRE(p.release("a", t(4)));
  REQUIRE(p.release("b", t(4)));
  CHECK(p.request("e", on(), t(5)).kind == Kind::queued);  // 2 active: still at the limit
  REQUIRE(p.release("c", t(6)));
  CHECK(p.request("e", on(), t(7)).admitted());
  CHECK(p.request("f", on(), t(8)).position == 1);
  CHECK(p.status(t(8)).active_viewers == 2);
}

TEST_CASE("raising a limit (reload) reserves the new room for the head of the queue, in order") {
  AdmissionPolicy p(limits(1));
  REQUIRE(p.request("a", on(), t(0)).admitted());
  REQUIRE(p.request("b", on(), t(1)).position == 1);
  REQUIRE(p.request("c", on(), t(2)).position == 2);
  REQUIRE(p.request("d", on(), t(3)).position == 3);

  p.set_limits(limits(3), t(4));  // room for two more: b and c, not d, not a newcomer
  CHECK(p.status(t(4)).reserved_slots == 2);
  CHECK(p.request("n", on(), t(5)).position == 4);
  CHECK(p.request("d", on(), t(5)).position == 3);
  CHECK(p.request("c", on(), t(6)).admitted());  // a reserved viewer need not wait for the head
  CHECK(p.request("b", on(), t(7)).admitted());
  CHECK(p.request("d", on(), t(8)).position == 1);
  const AdmissionStatus s = p.status(t(8));
  CHECK(s.active_viewers == 3);
  CHECK(s.reserved_slots == 0);
  CHECK(s.counters.admitted_from_queue == 2);
}

TEST_CASE("emulation queues new viewers, leaves admitted ones alone, and off resumes in order") {
  AdmissionPolicy p(limits(4));
  REQUIRE(p.request("a", on(), t(0)).admitted());
  REQUIRE(p.request("b", on(), t(0)).admitted());
  p.set_emulation(true, t(1));
  CHECK(p.request("a", on(), t(2)).admitted());
  CHECK(p.request("b", on(), t(2)).admitted());
  CHECK(p.request("c", on(), t(3)).position == 1);
  CHECK(p.request("d", on(), t(4)).position == 2);
  CHECK(p.request("e", on(), t(5)).position == 3);
  CHECK(p.request("c", on(), t(6)).kind == Kind::queued);  // room for 2, but emulating
  AdmissionStatus s = p.status(t(6));
  CHECK(s.emulation);
  CHECK(s.reserved_slots == 0);
  CHECK(s.active_viewers == 2);

  p.set_emulation(false, t(7));
  CHECK(p.status(t(7)).reserved_slots == 2);
  CHECK(p.request("e", on(), t(8)).position == 3);  // c and d come first
  CHECK(p.request("d", on(), t(8)).admitted());
  CHECK(p.request("c", on(), t(9)).admitted());
  CHECK(p.request("e", on(), t(9)).position == 1);
  s = p.status(t(9));
  CHECK_FALSE(s.emulation);
  CHECK(s.active_viewers == 4);
  CHECK(s.queued_viewers == 1);
}

TEST_CASE("a viewer switching variant, cache or channel keeps its one slot; counts move with it") {
  AdmissionPolicy p(limits(2));
  REQUIRE(p.request("a", on("ch1", "c1", 2 * kMbps), t(0)).admitted());
  REQUIRE(p.request("b", on("ch1", "c2", 2 * kMbps), t(0)).admitted());
  // a walks out of the venue (origin), picks a higher variant, and changes channel.
  CHECK(p.request("a", on("ch2", "", 5 * kMbps), t(1)).admitted());
  CHECK(p.request("c", on(), t(2)).position == 1);  // still one slot each: the limit holds

  AdmissionStatus s = p.status(t(2));
  CHECK(s.active_viewers == 2);
  CHECK(s.origin_viewers == 1);
  CHECK(count_of(s.caches, "c1") == 0);
  CHECK(count_of(s.caches, "c2") == 1);
  CHECK(count_of(s.channels, "ch1") == 1);
  CHECK(count_of(s.channels, "ch2") == 1);
  CHECK(s.declared_mbps == doctest::Approx(7));

  // A master playlist (bandwidth 0) and an API access check keep the known variant and cache.
  CHECK(p.request("a", on("ch2", "", 0), t(3)).admitted());
  CHECK(p.check("b", "", t(3)).admitted());
  s = p.status(t(3));
  CHECK(s.declared_mbps == doctest::Approx(7));
  CHECK(count_of(s.caches, "c2") == 1);
  REQUIRE(s.caches.size() == 1);
  CHECK(s.caches[0].declared_mbps == doctest::Approx(2));
  // Back into the venue on cache c1.
  CHECK(p.request("a", on("ch2", "c1", 5 * kMbps), t(4)).admitted());
  s = p.status(t(4));
  CHECK(s.origin_viewers == 0);
  CHECK(count_of(s.caches, "c1") == 1);
}

TEST_CASE(
    "head reservation: a newcomer cannot take a slot freed for the head; a lapse passes it on") {
  AdmissionPolicy p(limits(1));
  const AdmissionDecision b = a_holds_b_and_c_wait(p, 0, 1, 2);

  REQUIRE(p.release("a", t(5)));  // slot freed: reserved for b until t=20
  const AdmissionDecision n = p.request("n", on(), t(6));
  CHECK(n.kind == Kind::queued);
  CHECK(n.position == 3);
  CHECK(p.request("c", on(), t(7)).position == 2);
  CHECK(p.status(t(7)).active_viewers == 0);

  // b does not come back in time: the reservation passes to c.
  CHECK(p.request("n", on(), t(19)).position == 3);
  CHECK(p.request("c", on(), t(21)).admitted());
  const AdmissionStatus s = p.status(t(21));
  CHECK(s.counters.reservations_lapsed == 1);
  CHECK(s.active_viewers == 1);
  const AdmissionDecision b_late = p.request("b", on(), t(22));
  CHECK(b_late.ticket != b.ticket);
  CHECK(b_late.position == 2);  // behind n
}

TEST_CASE("estimated wait grows with position and follows the observed slot turnover") {
  AdmissionPolicy p(limits(2));
  std::deque<std::string> active = {"a0", "a1"};
  std::deque<std::string> waiting = {"q0", "q1", "q2"};
  for (const auto& v : active) REQUIRE(p.request(v, on(), t(0)).admitted());
  for (const auto& v : waiting) REQUIRE(p.request(v, on(), t(0)).kind == Kind::queued);

  const auto waits = [&](double now) {
    std::vector<std::optional<std::chrono::seconds>> out;
    for (const auto& v : waiting) {
      const AdmissionDecision d = p.request(v, on(), t(now));
      REQUIRE(d.kind == Kind::queued);
      CHECK(d.position == out.size() + 1);
      CHECK(d.retry_after ==
            std::clamp(d.estimated_wait.value_or(10s), std::chrono::seconds(1), 10s));
      out.push_back(d.estimated_wait);
    }
    return out;
  };
  // Nothing observed yet: unknown.
  CHECK(waits(0) == std::vector<std::optional<std::chrono::seconds>>(3));

  // One viewer leaves every `interval` seconds; the head takes its slot; a newcomer joins.
  double now = 0;
  int next = 3;
  const auto churn = [&](double interval, int steps) {
    for (int i = 0; i < steps; ++i) {
      now += interval;
      REQUIRE(p.release(active.front(), t(now)));
      active.pop_front();
      REQUIRE(p.request(waiting.front(), on(), t(now)).admitted());
      active.push_back(waiting.front());
      waiting.pop_front();
      waiting.push_back("q" + std::to_string(next++));
      REQUIRE(p.request(waiting.back(), on(), t(now)).position == 3);
      for (const auto& v : active) REQUIRE(p.request(v, on(), t(now)).admitted());
    }
  };

  churn(5, 120);  // 10 minutes, a free every 5 s
  const auto known_waits = [&](double at) {
    std::vector<std::chrono::seconds> known;
    for (const auto& wait : waits(at)) {
      REQUIRE(wait.has_value());
      known.push_back(*wait);
    }
    return known;
  };
  auto w = known_waits(now);
  CHECK(w[0] < w[1]);
  CHECK(w[1] < w[2]);
  CHECK(w[0] >= 4s);
  CHECK(w[0] <= 7s);
  CHECK(w[2] >= 12s);
  CHECK(w[2] <= 20s);

  churn(1, 300);  // then 5 minutes, a free every second
  w = known_waits(now);
  CHECK(w[0] >= 1s);
  CHECK(w[0] <= 2s);
  CHECK(w[2] >= 3s);
  CHECK(w[2] <= 4s);
  CHECK(p.status(t(now)).slot_free_rate_per_s.value_or(0) == doctest::Approx(1).epsilon(0.05));
}

TEST_CASE("measured cache egress corrects the BANDWIDTH-based traffic estimate") {
  AdmissionPolicy p(limits(0, 10));
  REQUIRE(p.request("a", on("ch1", "c1", 5 * kMbps), t(0)).admitted());
  REQUIRE(p.request("b", on("ch1", "c1", 5 * kMbps), t(0)).admitted());
  CHECK(p.request("c", on("ch1", "", 5 * kMbps), t(1)).position == 1);

  // The caches measure half of what their viewers' BANDWIDTH declares (it is a peak rate).
  p.set_measured_traffic_mbps(5.0, t(2));
  AdmissionStatus s = p.status(t(2));
  CHECK(s.correction == doctest::Approx(0.5));
  CHECK(s.traffic_estimate_mbps == doctest::Approx(5));
  REQUIRE(s.measured_cache_mbps.has_value());
  CHECK(*s.measured_cache_mbps == doctest::Approx(5));
  CHECK(s.reserved_slots == 1);
  CHECK(p.request("c", on("ch1", "", 5 * kMbps), t(3)).admitted());
  CHECK(p.request("d", on("ch1", "c1", 5 * kMbps), t(4)).admitted());  // 7.5 + 2.5 <= 10
  CHECK(p.request("e", on("ch1", "c1", 5 * kMbps), t(5)).position == 1);
  CHECK(p.status(t(5)).traffic_estimate_mbps == doctest::Approx(10));

  // An absurd reading is clamped; clearing it falls back to BANDWIDTH alone.
  p.set_measured_traffic_mbps(1000.0, t(6));
  CHECK(p.status(t(6)).correction == doctest::Approx(4));
  p.set_measured_traffic_mbps(std::nullopt, t(7));
  s = p.status(t(7));
  CHECK(s.correction == doctest::Approx(1));
  CHECK_FALSE(s.measured_cache_mbps.has_value());
  CHECK(s.traffic_estimate_mbps == doctest::Approx(20));               // over the limit...
  CHECK(p.request("a", on("ch1", "c1", 5 * kMbps), t(8)).admitted());  // ...nobody is cut off
}

TEST_CASE("queue positions stay exact under random arrivals, renewals and departures") {
  AdmissionLimits l = limits(0);
  l.ticket_grace = 24h;
  AdmissionPolicy p(l);
  p.set_emulation(true, t(0));  // everyone waits

  std::mt19937 rng(42);
  std::vector<std::string> model;  // queue in ticket order
  int next = 0;
  uint64_t last_ticket = 0;
  for (int op = 0; op < 20'000; ++op) {
    const auto dice = rng() % 10;
    if (model.empty() || dice < 4) {
      model.push_back("v" + std::to_string(next++));
      const AdmissionDecision d = p.request(model.back(), on(), t(0));
      REQUIRE(d.position == model.size());
      REQUIRE(d.ticket > last_ticket);
      last_ticket = d.ticket;
    } else if (dice < 7) {
      const std::size_t i = rng() % model.size();
      REQUIRE(p.release(model[i], t(0)));
      model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      const std::size_t i = rng() % model.size();
      REQUIRE(p.request(model[i], on(), t(0)).position == i + 1);
    }
  }
  CHECK(p.status(t(0)).queued_viewers == model.size());

  // Switching emulation off with room for 10 reserves slots for exactly the first 10.
  p.set_limits(
      [&] {
        AdmissionLimits m = l;
        m.max_streams = 10;
        return m;
      }(),
      t(1));
  p.set_emulation(false, t(1));
  REQUIRE(model.size() > 10);
  CHECK(p.request(model[10], on(), t(2)).position == 11);
  for (std::size_t i = 0; i < 10; ++i) CHECK(p.request(model[i], on(), t(2)).admitted());
  CHECK(p.request(model[10], on(), t(2)).position == 1);
}

TEST_CASE("100,000 viewers are admitted, refreshed, moved and expired with exact counts") {
  constexpr int kViewers = 100'000;
  AdmissionPolicy p(limits(kViewers));
  const std::vector<std::string> channels = {"ch0", "ch1", "ch2", "ch3", "ch4"};
  const std::vector<std::string> caches = {"c0", "c1", "c2", ""};
  const auto key = [](const char* prefix, int i) { return prefix + std::to_string(i); };

  for (int i = 0; i < kViewers; ++i) {
    REQUIRE(
        p.request(key("t:viewer-ticket-", i), on(channels[i % 5], caches[i % 4], 2 * kMbps), t(0))
            .admitted());
  }
  for (int i = 0; i < kViewers; ++i) {  // everyone moves to the next cache
    REQUIRE(
        p.request(key("t:viewer-ticket-", i), on(channels[i % 5], caches[(i + 1) % 4], 0), t(10))
            .admitted());
  }
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(p.request(key("v:late-", i), on(), t(11)).position == static_cast<uint64_t>(i) + 1);
  }
  AdmissionStatus s = p.status(t(11));
  CHECK(s.active_viewers == kViewers);
  CHECK(s.queued_viewers == 1000);
  CHECK(s.origin_viewers == kViewers / 4);
  CHECK(count_of(s.caches, "c1") == kViewers / 4);
  CHECK(count_of(s.channels, "ch3") == kViewers / 5);
  CHECK(s.declared_mbps == doctest::Approx(2.0 * kViewers));

  for (int i = 0; i < 1000; ++i)
    REQUIRE(p.request(key("v:late-", i), on(), t(35)).kind == Kind::queued);
  // At t=40 every early viewer has been idle for 30 s: all slots free, the queue gets in.
  for (int i = 0; i < 1000; ++i) REQUIRE(p.request(key("v:late-", i), on(), t(40)).admitted());
  s = p.status(t(40));
  CHECK(s.active_viewers == 1000);
  CHECK(s.queued_viewers == 0);
  CHECK(s.counters.slots_expired == kViewers);
  CHECK(s.counters.admitted == kViewers + 1000);
}

TEST_CASE("invalid viewer keys are refused and leave no state") {
  AdmissionPolicy p(limits(1));
  CHECK(p.request("", on(), t(0)).kind == Kind::bad_viewer_key);
  CHECK(p.check(std::string(kMaxViewerKeyBytes + 1, 'x'), "ch1", t(0)).kind ==
        Kind::bad_viewer_key);
  CHECK(p.request(std::string(kMaxViewerKeyBytes, 'x'), on(), t(0)).admitted());
  CHECK_FALSE(p.release("nobody", t(0)));
  CHECK(p.status(t(0)).active_viewers == 1);
}

TEST_CASE("time going backwards is taken as the latest time seen") {
  AdmissionPolicy p(limits(1));
  REQUIRE(p.request("a", on(), t(100)).admitted());
  CHECK(p.request("a", on(), t(50)).admitted());  // treated as t=100: no harm
  CHECK(p.request("b", on(), t(129)).kind == Kind::queued);
  CHECK(p.request("b", on(), t(130)).admitted());  // a idle since t=100
}

TEST_CASE("one address cannot hold more than max_anonymous_per_address anonymous viewers") {
  AdmissionLimits l = limits(0);  // no stream limit: only the per-address bound applies
  l.max_anonymous_per_address = 3;
  AdmissionPolicy p(l);
  const ViewerSource attacker{"198.51.100.7", true, ""};
  for (const char* v : {"v:a", "v:b", "v:c"}) CHECK(p.request(v, on(), t(0), attacker).admitted());
  const AdmissionDecision over = p.request("v:d", on(), t(0), attacker);
  CHECK(over.kind == Kind::refused);
  CHECK(over.refusal == AdmissionDecision::Refusal::address_viewers);
  CHECK(over.retry_after == 10s);
  CHECK(p.status(t(0)).active_viewers == 3);  // nothing recorded for the refused one
  // Viewers already counted keep refreshing; other addresses and ticket holders are not affected.
  CHECK(p.request("v:a", on(), t(1), attacker).admitted());
  CHECK(p.request("v:e", on(), t(1), ViewerSource{"203.0.113.9", true, ""}).admitted());
  CHECK(p.request("t:paying", on(), t(1), ViewerSource{"198.51.100.7", false, ""}).admitted());
  // An address not counted (exempt network: the caller passes none) has no bound.
  for (int i = 0; i < 10; ++i)
    CHECK(
        p.request("v:nat" + std::to_string(i), on(), t(1), ViewerSource{"", true, ""}).admitted());
  // A slot given back makes room for one more from that address; so does idling out.
  CHECK(p.release("v:b", t(2)));
  CHECK(p.request("v:d", on(), t(2), attacker).admitted());
  CHECK(p.request("v:f", on(), t(2), attacker).kind == Kind::refused);
  CHECK(p.request("v:f", on(), t(40), attacker).admitted());  // a, c, d went idle at 30 s
  const AdmissionStatus s = p.status(t(40));
  CHECK(s.counters.refused_address == 2);
}

TEST_CASE("one address cannot hold more than max_tickets_per_address queue tickets") {
  AdmissionLimits l = limits(1);
  l.max_tickets_per_address = 2;
  l.max_anonymous_per_address = 0;
  AdmissionPolicy p(l);
  const ViewerSource one{"198.51.100.7", false, ""};
  CHECK(p.request("t:first", on(), t(0), one).admitted());  // a slot is not a ticket
  CHECK(p.request("t:q1", on(), t(0), one).kind == Kind::queued);
  CHECK(p.request("t:q2", on(), t(0), one).kind == Kind::queued);
  const AdmissionDecision third = p.request("t:q3", on(), t(0), one);
  CHECK(third.kind == Kind::refused);
  CHECK(third.refusal == AdmissionDecision::Refusal::address_tickets);
  // Someone else queues behind at position 3: the refused one took no place.
  const AdmissionDecision other =
      p.request("t:other", on(), t(0), ViewerSource{"203.0.113.9", false, ""});
  CHECK(other.position == 3);
  // A ticket turning into a slot frees a ticket place for that address.
  CHECK(p.release("t:first", t(1)));
  CHECK(p.request("t:q1", on(), t(1), one).admitted());
  CHECK(p.request("t:q3", on(), t(1), one).kind == Kind::queued);
}

TEST_CASE("max_entries bounds admitted plus queued viewers; beyond it new viewers are refused") {
  AdmissionLimits l = limits(2);
  l.max_entries = 4;
  l.max_anonymous_per_address = 0;
  l.max_tickets_per_address = 0;
  AdmissionPolicy p(l);
  for (const char* v : {"a", "b", "c", "d"}) CHECK(p.request(v, on(), t(0)).kind != Kind::refused);
  const AdmissionDecision full = p.request("e", on(), t(0));
  CHECK(full.kind == Kind::refused);
  CHECK(full.refusal == AdmissionDecision::Refusal::full);
  CHECK(p.request("c", on(), t(1)).position == 1);  // known viewers keep renewing
  CHECK(p.release("d", t(1)));
  CHECK(p.request("e", on(), t(1)).kind == Kind::queued);
  CHECK(p.status(t(1)).counters.refused_full == 1);
}

TEST_CASE("each device of an account is a stream: with emulation on the second device waits") {
  AdmissionPolicy p(limits(0));
  const ViewerSource alice{"198.51.100.7", false, "u1"};
  CHECK(p.request("t:u1/s-phone", on(), t(0), alice).admitted());
  p.set_emulation(true, t(1));
  CHECK(p.request("t:u1/s-phone", on(), t(2), alice).admitted());  // never cut off
  const AdmissionDecision tablet = p.request("t:u1/s-tablet", on(), t(2), alice);
  CHECK(tablet.kind == Kind::queued);
  CHECK(tablet.position == 1);
  p.set_emulation(false, t(3));
  CHECK(p.request("t:u1/s-tablet", on(), t(4), alice).admitted());
  const AdmissionStatus s = p.status(t(4));
  CHECK(s.active_viewers == 2);
  CHECK(count_of(s.channels, "ch1") == 2);
}

TEST_CASE(
    "max_streams_per_account bounds an account's streams, admitted or queued; a device that stops "
    "makes room") {
  AdmissionLimits l = limits(2);
  l.max_streams_per_account = 3;
  AdmissionPolicy p(l);
  const ViewerSource account{"198.51.100.7", false, "u1"};
  CHECK(p.request("t:u1/a", on(), t(0), account).admitted());
  CHECK(p.request("t:u1/b", on(), t(0), account).admitted());
  CHECK(p.request("t:u1/c", on(), t(0), account).kind == Kind::queued);  // the stream limit
  const AdmissionDecision fourth = p.request("t:u1/d", on(), t(0), account);
  CHECK(fourth.kind == Kind::refused);
  CHECK(fourth.refusal == AdmissionDecision::Refusal::account_streams);
  CHECK(fourth.retry_after == 10s);
  // Nothing recorded for the refused device; another account queues behind at position 2.
  CHECK(p.request("t:u2/a", on(), t(0), ViewerSource{"203.0.113.9", false, "u2"}).position == 2);
  // Known devices keep refreshing and renewing.
  CHECK(p.request("t:u1/a", on(), t(1), account).admitted());
  CHECK(p.request("t:u1/c", on(), t(1), account).position == 1);
  // A device given back, or gone idle, frees its place in the account's bound.
  CHECK(p.release("t:u1/c", t(2)));
  CHECK(p.request("t:u1/d", on(), t(2), account).kind == Kind::queued);
  CHECK(p.request("t:u1/e", on(), t(2), account).kind == Kind::refused);
  CHECK(p.request("t:u1/e", on(), t(40), account).admitted());  // all idle by 40 s
  CHECK(p.status(t(40)).counters.refused_account == 2);
}

TEST_CASE("streams without an account (anonymous, tickets that name none) are not bounded by it") {
  AdmissionLimits l = limits(0);
  l.max_streams_per_account = 1;
  l.max_anonymous_per_address = 0;
  AdmissionPolicy p(l);
  for (int i = 0; i < 5; ++i) {
    CHECK(p.request("t:ticket" + std::to_string(i), on(), t(0), ViewerSource{"", false, ""})
              .admitted());
  }
  CHECK(p.request("t:u9/a", on(), t(0), ViewerSource{"", false, "u9"}).admitted());
  CHECK(p.request("t:u9/b", on(), t(0), ViewerSource{"", false, "u9"}).kind == Kind::refused);
  l.max_streams_per_account = 0;  // 0 = unlimited
  p.set_limits(l, t(1));
  CHECK(p.request("t:u9/b", on(), t(1), ViewerSource{"", false, "u9"}).admitted());
  CHECK(p.status(t(1)).active_viewers == 7);
}

TEST_CASE("limits validation names the offending config key") {
  CHECK_FALSE(validate_admission_limits(AdmissionLimits{}).has_value());
  AdmissionLimits l;
  l.max_traffic_mbps = -1;
  REQUIRE(validate_admission_limits(l).has_value());
  CHECK(validate_admission_limits(l)->find("limits.max_traffic_mbps") != std::string::npos);
  l = AdmissionLimits{};
  l.head_reservation = 5s;
  CHECK(validate_admission_limits(l)->find("queue.head_reservation_s") != std::string::npos);
  l = AdmissionLimits{};
  l.ticket_grace = 5s;
  CHECK(validate_admission_limits(l)->find("queue.ticket_grace_s") != std::string::npos);
  l = AdmissionLimits{};
  l.idle_timeout = 0s;
  CHECK(validate_admission_limits(l)->find("limits.idle_timeout_s") != std::string::npos);
  l = AdmissionLimits{};
  l.max_streams = 2'000'000;  // over the default max_entries
  CHECK(validate_admission_limits(l)->find("limits.max_entries") != std::string::npos);
}

}  // namespace
}  // namespace admission
