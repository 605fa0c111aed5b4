// The in-process backend (make_local_admission) asked from two threads (two event loops) at
// once: the limits and the FIFO queue stay exact for the whole process (one admission whatever
// the number of loops). It answers inline, so each call's decision is known when it returns.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "admission/admission.h"
#include "core/event_loop.h"

namespace admission {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint(std::chrono::hours(1));

// One event loop per thread, as in the servers (the in-process backend does not run them).
core::EventLoop& loop_of(int thread) {
  static core::EventLoop loops[2] = {core::EventLoop(0), core::EventLoop(1)};
  return loops[thread];
}

AdmissionDecision request(Admission& a, int thread, const std::string& viewer) {
  std::optional<AdmissionDecision> out;
  a.request(loop_of(thread), viewer, StreamInfo{"ch1", "c1", 0}, {}, kT0,
            [&](const AdmissionDecision& d) { out = d; });
  REQUIRE(out.has_value());  // answered inline
  return *out;
}

AdmissionDecision check(Admission& a, int thread, const std::string& viewer) {
  std::optional<AdmissionDecision> out;
  a.check(loop_of(thread), viewer, "", {}, kT0, [&](const AdmissionDecision& d) { out = d; });
  REQUIRE(out.has_value());
  return *out;
}

bool release(Admission& a, int thread, const std::string& viewer) {
  std::optional<bool> out;
  a.release(loop_of(thread), viewer, kT0,
            [&](std::optional<bool> released) { out = released.value_or(false); });
  REQUIRE(out.has_value());
  return *out;
}

EmulationSwitch switch_emulation(Admission& a, std::optional<bool> want) {
  std::optional<EmulationSwitch> out;
  a.switch_emulation(loop_of(0), want, kT0, [&](std::optional<EmulationSwitch> s) { out = s; });
  REQUIRE(out.has_value());
  return *out;
}

struct Arrival {
  std::string viewer;
  AdmissionDecision decision;
};

// Runs `per_thread` new viewers from each of two threads ("a<i>", "b<i>"),
// released together, and returns what each was told, per thread in order.
std::vector<std::vector<Arrival>> arrive_from_two_threads(Admission& admission, int per_thread) {
  std::vector<std::vector<Arrival>> seen(2);
  std::atomic<bool> go{false};
  auto run = [&](int thread) {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < per_thread; ++i) {
      std::string viewer = std::string(thread == 0 ? "a" : "b") + std::to_string(i);
      seen[thread].push_back({viewer, request(admission, thread, viewer)});
    }
  };
  std::thread a(run, 0), b(run, 1);
  go = true;
  a.join();
  b.join();
  return seen;
}

// A local admission whose only limit is `max_streams`.
std::unique_ptr<Admission> local_admission_of(uint32_t max_streams) {
  AdmissionLimits limits;
  limits.max_streams = max_streams;
  return make_local_admission(limits);
}

}  // namespace

TEST_CASE(
    "two threads arriving at once: exact counts, every queue position once, FIFO per thread") {
  std::unique_ptr<Admission> owned = local_admission_of(100);
  Admission& admission = *owned;
  constexpr int kPerThread = 2000;
  auto seen = arrive_from_two_threads(admission, kPerThread);

  std::vector<std::string> admitted;
  std::map<uint64_t, std::string> by_position;  // position when queued → viewer
  std::set<uint64_t> tickets;
  for (const auto& thread : seen) {
    uint64_t last_position = 0;
    for (const auto& arrival : thread) {
      if (arrival.decision.admitted()) {
        admitted.push_back(arrival.viewer);
        continue;
      }
      REQUIRE(arrival.decision.kind == AdmissionDecision::Kind::queued);
      // A thread's later arrival is always behind its earlier one.
      CHECK(arrival.decision.position > last_position);
      last_position = arrival.decision.position;
      CHECK(by_position.emplace(arrival.decision.position, arrival.viewer).second);
      CHECK(tickets.insert(arrival.decision.ticket).second);
    }
  }
  CHECK(admitted.size() == 100);
  REQUIRE(by_position.size() == 2 * kPerThread - 100);
  // Positions are exactly 1..N: each arrival went to the tail of one queue.
  CHECK(by_position.begin()->first == 1);
  CHECK(by_position.rbegin()->first == by_position.size());

  AdmissionStatus status = admission.status(kT0);
  CHECK(status.active_viewers == 100);
  CHECK(status.queued_viewers == by_position.size());

  SUBCASE("renewals from both threads keep every ticket and position") {
    std::atomic<int> moved{0};
    auto renew = [&](int thread) {
      for (const auto& arrival : seen[thread]) {
        if (arrival.decision.admitted()) continue;
        AdmissionDecision again = check(admission, thread, arrival.viewer);
        if (again.kind != AdmissionDecision::Kind::queued ||
            again.ticket != arrival.decision.ticket ||
            again.position != arrival.decision.position) {
          ++moved;
        }
      }
    };
    std::thread a(renew, 0), b(renew, 1);
    a.join();
    b.join();
    CHECK(moved == 0);
  }

  SUBCASE("slots freed from both threads go to the head of the queue, in queue order") {
    constexpr size_t kFreed = 40;
    std::atomic<int> released{0};
    auto free_half = [&](size_t parity) {
      for (size_t i = parity; i < kFreed; i += 2) {
        released += release(admission, static_cast<int>(parity), admitted[i]) ? 1 : 0;
      }
    };
    std::thread a(free_half, 0), b(free_half, 1);
    a.join();
    b.join();
    CHECK(released == kFreed);
    // A newcomer does not jump the queue although slots are free (they are reserved).
    AdmissionDecision newcomer = request(admission, 0, "late");
    CHECK(newcomer.kind == AdmissionDecision::Kind::queued);
    CHECK(newcomer.position == by_position.size() + 1);
    // The first kFreed in the queue are admitted when they renew (asked last to
    // first: the reservation, not the order of renewal, decides).
    std::vector<std::string> head;
    for (const auto& [position, viewer] : by_position) {
      if (head.size() == kFreed) break;
      head.push_back(viewer);
    }
    for (auto it = head.rbegin(); it != head.rend(); ++it) {
      CAPTURE(*it);
      CHECK(check(admission, 0, *it).admitted());
    }
    // Everyone behind moved up by exactly kFreed.
    auto next = std::next(by_position.begin(), kFreed);
    AdmissionDecision behind = check(admission, 0, next->second);
    CHECK(behind.kind == AdmissionDecision::Kind::queued);
    CHECK(behind.position == next->first - kFreed);
    CHECK(admission.status(kT0).active_viewers == 100);
  }
}

TEST_CASE(
    "two threads switching overload emulation and arriving: no one is admitted while it is on") {
  std::unique_ptr<Admission> owned = local_admission_of(1000);
  Admission& admission = *owned;
  CHECK(switch_emulation(admission, true).changed);
  auto seen = arrive_from_two_threads(admission, 500);
  for (const auto& thread : seen) {
    for (const auto& arrival : thread) CHECK_FALSE(arrival.decision.admitted());
  }
  CHECK(switch_emulation(admission, std::nullopt).on == false);  // toggled off
  // Off: admissions resume in queue order, so the first arrival overall is admitted.
  AdmissionStatus status = admission.status(kT0);
  CHECK(status.queued_viewers == 1000);
  CHECK(status.reserved_slots == 1000);
}
}  // namespace admission
