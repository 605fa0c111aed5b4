// UnsentReplies: a reply's bytes count for the process and for its address from hold() until
// its last reference goes; an address at its share is refused while the process has room, and
// a first reply always fits; a reply outliving its ledger's owner still counts down.
#include "balancer/viewers/unsent_replies.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using balancer::UnsentReplies;

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
  CHECK(unsent.room_for("10.0.0.1", 10000, 1000) == UnsentReplies::Room::address_full);
  CHECK(unsent.room_for("10.0.0.2", 10000, 1000) == UnsentReplies::Room::fits);
  CHECK(unsent.room_for("10.0.0.3", 10000, 1000) == UnsentReplies::Room::fits);
  // The process budget first: with it spent, every address is refused.
  CHECK(unsent.room_for("10.0.0.3", 1200, 1000) == UnsentReplies::Room::process_full);
  a1.reset();
  CHECK(unsent.held_by("10.0.0.1") == 500);
  CHECK(unsent.room_for("10.0.0.1", 10000, 1000) == UnsentReplies::Room::fits);
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
    CHECK(unsent.room_for("10.0.0.1", 100, 10) == UnsentReplies::Room::fits);
    kept = unsent.hold(std::string(50, 'x'), "10.0.0.1");
    CHECK(unsent.room_for("10.0.0.1", 100, 10) == UnsentReplies::Room::address_full);
  }
  CHECK(total == 50);
  kept.reset();
  CHECK(total == 0);
}
