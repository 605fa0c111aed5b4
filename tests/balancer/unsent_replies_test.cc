// UnsentReplies: a reply's bytes count for the process and for its address from hold() until
// its last reference goes; an address at its share is refused while the process has room, and
// a first reply always fits; the largest holders are refused first, so a small reply fits while
// many addresses hold copies; a reply outliving its ledger's owner still counts down.
#include "balancer/viewers/unsent_replies.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using balancer::UnsentReplies;

namespace {

// One loop's limits: the process budget is the loop's.
UnsentReplies::Limits one_loop(size_t budget, size_t share) {
  return {budget, budget, share};
}

}  // namespace

TEST_CASE("unsent replies: counted per process and per address until released") {
  std::atomic<size_t> total{0};
  UnsentReplies unsent(total);
  auto a1 = unsent.hold(std::string(600, 'a'), "10.0.0.1");
  auto a2 = unsent.hold(std::string(500, 'a'), "10.0.0.1");
  auto b1 = unsent.hold(std::string(100, 'b'), "10.0.0.2");
  CHECK(total == 1200);
  CHECK(unsent.held_by("10.0.0.1") == 1100);
  CHECK(unsent.held_by("10.0.0.2") == 100);
  CHECK(a1->body.size() == 600);
  // 10.0.0.1 is at its share of 1,000; 10.0.0.2 is not; a new address holds nothing.
  CHECK(unsent.room_for("10.0.0.1", 0, one_loop(10000, 1000)) == UnsentReplies::Room::address_full);
  CHECK(unsent.room_for("10.0.0.2", 0, one_loop(10000, 1000)) == UnsentReplies::Room::fits);
  CHECK(unsent.room_for("10.0.0.3", 0, one_loop(10000, 1000)) == UnsentReplies::Room::fits);
  // The process budget first: with it spent, every address is refused.
  CHECK(unsent.room_for("10.0.0.3", 0, one_loop(1200, 1000)) == UnsentReplies::Room::process_full);
  a1.reset();
  CHECK(unsent.held_by("10.0.0.1") == 500);
  CHECK(unsent.room_for("10.0.0.1", 0, one_loop(10000, 1000)) == UnsentReplies::Room::fits);
  a2.reset();
  b1.reset();
  CHECK(total == 0);
  CHECK(unsent.held_by("10.0.0.1") == 0);
}

TEST_CASE("unsent replies: a first reply fits whatever its size; a reply may outlive the ledger") {
  std::atomic<size_t> total{0};
  std::shared_ptr<const UnsentReplies::Reply> kept;
  {
    UnsentReplies unsent(total);
    CHECK(unsent.room_for("10.0.0.1", 0, one_loop(100, 10)) == UnsentReplies::Room::fits);
    kept = unsent.hold(std::string(50, 'x'), "10.0.0.1");
    CHECK(unsent.room_for("10.0.0.1", 0, one_loop(100, 10)) == UnsentReplies::Room::address_full);
  }
  CHECK(total == 50);
  kept.reset();
  CHECK(total == 0);
}

TEST_CASE("unsent replies: the largest holders refused first; what they leave free serves others") {
  std::atomic<size_t> total{0};
  UnsentReplies unsent(total);
  const UnsentReplies::Limits limits = one_loop(1000, 1000);
  constexpr size_t kCopy = 100;  // one non-reader's copy
  // Non-readers from ten addresses ask again and again, until every one is refused.
  std::vector<std::shared_ptr<const UnsentReplies::Reply>> held;
  for (int round = 0; round < 20; ++round) {
    for (int a = 0; a < 10; ++a) {
      const std::string address = "10.0.1." + std::to_string(a);
      if (unsent.room_for(address, kCopy, limits) == UnsentReplies::Room::fits)
        held.push_back(unsent.hold(std::string(kCopy, 'x'), address));
    }
  }
  CHECK(total < 1000);
  // What is free is at least the last copy handed out (and what its address holds).
  CHECK(1000 - total >= kCopy);
  // The holders are refused with 429's reason; another address's small reply fits, its large
  // one (all that is free) does not.
  CHECK(unsent.room_for("10.0.1.0", kCopy, limits) == UnsentReplies::Room::address_full);
  CHECK(unsent.room_for("10.0.2.1", 10, limits) == UnsentReplies::Room::fits);
  CHECK(unsent.room_for("10.0.2.1", 1000 - total, limits) == UnsentReplies::Room::process_full);
  // A holder is refused when its count with the reply passes half of what is free.
  held.clear();
  auto big = unsent.hold(std::string(400, 'x'), "10.0.3.1");
  CHECK(unsent.room_for("10.0.3.1", 0, limits) == UnsentReplies::Room::address_full);  // 400 > 300
  CHECK(unsent.room_for("10.0.3.2", 300, limits) == UnsentReplies::Room::fits);
  CHECK(unsent.room_for("10.0.3.2", 301, limits) == UnsentReplies::Room::process_full);
}
