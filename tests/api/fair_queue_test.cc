// The fair queue on an injected clock: keys served round-robin, a per-key cap,
// a full queue where a quiet key displaces the heaviest key's newest entry (and
// equals do not churn), delayed entries that keep their place, bounded memory.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "api/fair_queue.h"

using api::FairQueue;
using api::FairQueueLimits;
using namespace std::chrono_literals;

namespace {

using Queue = FairQueue<std::string>;

FairQueueLimits limits(size_t capacity, size_t per_key) {
  FairQueueLimits l;
  l.capacity = capacity;
  l.per_key = per_key;
  l.demand_half_life = 10s;
  l.max_idle_keys = 1000;
  return l;
}

std::vector<std::string> drain(Queue& q, core::SteadyTime now) {
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    auto job = q.pop(now);
    if (!job) break;
    out.push_back(*job);
  }
  return out;
}

}  // namespace

TEST_CASE("keys are served in turn, each in its own order") {
  core::FakeClock clock;
  Queue q(limits(100, 10));
  const auto now = clock.now();
  for (int i = 0; i < 3; ++i)
    CHECK(q.push("a", "a" + std::to_string(i), now, now).admission == Queue::Admission::queued);
  CHECK(q.push("b", "b0", now, now).admission == Queue::Admission::queued);
  CHECK(q.push("c", "c0", now, now).admission == Queue::Admission::queued);
  CHECK(q.size() == 5);
  CHECK(drain(q, now) == std::vector<std::string>{"a0", "b0", "c0", "a1", "a2"});
  CHECK(q.size() == 0);
}

TEST_CASE("a key uses free room beyond per_key, but a full queue keeps it to its share") {
  core::FakeClock clock;
  Queue q(limits(3, 2));
  const auto now = clock.now();
  // One address alone (a venue behind one NAT address) may fill the queue.
  CHECK(q.push("a", "1", now, now).admission == Queue::Admission::queued);
  CHECK(q.push("a", "2", now, now).admission == Queue::Admission::queued);
  CHECK(q.push("a", "3", now, now).admission == Queue::Admission::queued);
  // Full, and at its share: refused.
  CHECK(q.push("a", "4", now, now).admission == Queue::Admission::key_full);
  // Another address gets in, in place of the first one's newest entry.
  auto in = q.push("b", "1", now, now);
  CHECK(in.admission == Queue::Admission::queued);
  REQUIRE(in.displaced.has_value());
  CHECK(*in.displaced == "3");
  CHECK(drain(q, now) == std::vector<std::string>{"1", "1", "2"});
}

TEST_CASE("a full queue lets a quiet key in by displacing the heaviest key's newest entry") {
  core::FakeClock clock;
  Queue q(limits(4, 4));
  const auto now = clock.now();
  for (int i = 0; i < 4; ++i)
    REQUIRE(q.push("spray", "s" + std::to_string(i), now, now).admission ==
            Queue::Admission::queued);
  auto in = q.push("user", "u", now, now);
  CHECK(in.admission == Queue::Admission::queued);
  REQUIRE(in.displaced.has_value());
  CHECK(*in.displaced == "s3");
  CHECK(q.size() == 4);
  CHECK(drain(q, now) == std::vector<std::string>{"s0", "u", "s1", "s2"});
}

TEST_CASE(
    "a spray from many keys cannot keep a quiet key out, and equals do not displace each other") {
  core::FakeClock clock;
  Queue q(limits(16, 4));
  auto now = clock.now();
  // 100 addresses, each served a little recently, keep the queue full.
  for (int round = 0; round < 3; ++round) {
    for (int a = 0; a < 100; ++a) (void)q.push("10.0.0." + std::to_string(a), "spray", now, now);
    for (int i = 0; i < 16; ++i) (void)q.pop(now);
  }
  for (int a = 0; a < 100; ++a) (void)q.push("10.0.0." + std::to_string(a), "spray", now, now);
  REQUIRE(q.size() == 16);
  // A sprayer asking as often as the others is refused, not swapped in.
  int refused = 0;
  for (int a = 0; a < 100; ++a) {
    auto r = q.push("10.0.0." + std::to_string(a), "again", now, now);
    if (r.admission == Queue::Admission::queue_full) ++refused;
    if (r.displaced) CHECK(*r.displaced == "spray");
  }
  CHECK(refused > 0);
  auto user = q.push("192.0.2.1", "user", now, now);
  CHECK(user.admission == Queue::Admission::queued);
  CHECK(user.displaced.has_value());
  // Further sprayers do not push the user out again.
  for (int a = 0; a < 100; ++a) {
    auto r = q.push("10.0.0." + std::to_string(a), "late", now, now);
    if (r.displaced) CHECK(*r.displaced != "user");
  }
  // The user's entry comes within one round of the keys queued.
  auto order = drain(q, now);
  size_t at = 0;
  while (at < order.size() && order[at] != "user") ++at;
  CHECK(at < 16);
}

TEST_CASE("a delayed entry is not served before its time and keeps its key's place") {
  core::FakeClock clock;
  Queue q(limits(10, 4));
  const auto now = clock.now();
  CHECK(q.push("slow", "late", now + 2s, now).admission == Queue::Admission::queued);
  CHECK(q.push("fast", "f", now, now).admission == Queue::Admission::queued);
  CHECK(q.push("slow", "next", now, now).admission == Queue::Admission::queued);
  CHECK(drain(q, now) == std::vector<std::string>{"next", "f"});
  REQUIRE(q.next_ready().has_value());
  CHECK(*q.next_ready() == now + 2s);
  clock.advance(1s);
  CHECK_FALSE(q.pop(clock.now()).has_value());
  clock.advance(1s);
  CHECK(q.pop(clock.now()) == std::optional<std::string>("late"));
  CHECK_FALSE(q.next_ready().has_value());
}

TEST_CASE("keys that were only served are forgotten, so memory stays bounded") {
  core::FakeClock clock;
  FairQueueLimits l = limits(8, 2);
  l.max_idle_keys = 100;
  Queue q(l);
  for (int i = 0; i < 10000; ++i) {
    const auto now = clock.now();
    (void)q.push("k" + std::to_string(i), "x", now, now);
    (void)q.pop(now);
    CHECK(q.keys() <= 8 + 100 + 1);
  }
  clock.advance(600s);
  auto now = clock.now();
  (void)q.push("z", "x", now, now);
  CHECK(q.keys() <= 8 + 100 + 1);
  CHECK(q.take_all().size() == 1);
}
