// Active viewer counts per channel and per cache, with idle expiry on a fake clock.
#include "balancer/viewer_tracker.h"

#include <doctest/doctest.h>

namespace balancer {
namespace {

using namespace std::chrono_literals;
using TP = ViewerTracker::TimePoint;
TP at(int seconds) {
  return TP(std::chrono::hours(1)) + std::chrono::seconds(seconds);
}

TEST_CASE("viewers count once, move between channels and caches, and expire when idle") {
  ViewerTracker t(30s);
  t.seen("v:a", "demo", "venue-a", at(0));
  t.seen("v:a", "demo", "venue-a", at(1));
  t.seen("v:b", "demo", "", at(1));
  CHECK(t.total() == 2);
  CHECK(t.on_channel("demo") == 2);
  CHECK(t.on_cache("venue-a") == 1);
  CHECK(t.on_cache("") == 1);
  t.seen("v:a", "sport", "", at(10));  // walked out of the venue, changed channel
  CHECK(t.on_channel("demo") == 1);
  CHECK(t.on_channel("sport") == 1);
  CHECK(t.on_cache("venue-a") == 0);
  CHECK(t.on_cache("") == 2);
  t.expire(at(35));  // b last seen at 1
  CHECK(t.total() == 1);
  CHECK(t.on_channel("demo") == 0);
  t.expire(at(41));
  CHECK(t.total() == 0);
  CHECK(t.on_cache("") == 0);
}

TEST_CASE("viewers beyond the bound are not tracked") {
  ViewerTracker t(30s, 2);
  t.seen("v:a", "demo", "", at(0));
  t.seen("v:b", "demo", "", at(0));
  t.seen("v:c", "demo", "", at(0));
  CHECK(t.total() == 2);
  CHECK(t.untracked() == 1);
}

}  // namespace
}  // namespace balancer
