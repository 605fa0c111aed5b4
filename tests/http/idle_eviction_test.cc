// choose_idle_victim: which idle connection makes room in a full table. The network holding the
// most connections goes first, then a connection never served, then the oldest; a viewer's few
// kept-alive connections go last.
#include "http/server/idle_eviction.h"

#include <doctest/doctest.h>

#include <vector>

namespace http {
namespace {

size_t victim_of(const std::vector<IdleCandidate>& oldest_first) {
  return choose_idle_victim(std::span<const IdleCandidate>(oldest_first));
}

TEST_CASE("idle eviction: nothing idle, no victim") {
  CHECK(victim_of({}) == 0);
}

TEST_CASE("idle eviction: among equals, the oldest") {
  CHECK(victim_of({{5, true}, {5, true}, {5, true}}) == 0);
  CHECK(victim_of({{1, false}, {1, false}}) == 0);
}

TEST_CASE("idle eviction: a flood's network before a viewer's, however old the viewer's") {
  // The viewer's kept-alive connection (its network: 1 connection) is the oldest idle.
  CHECK(victim_of({{1, true}, {64, true}, {64, false}, {2, false}}) == 2);
  CHECK(victim_of({{1, true}, {64, true}, {64, true}}) == 1);
}

TEST_CASE("idle eviction: within a network's count, never served before served") {
  CHECK(victim_of({{3, true}, {3, true}, {3, false}}) == 2);
  // A larger network still goes first, served or not.
  CHECK(victim_of({{3, false}, {4, true}}) == 1);
}

}  // namespace
}  // namespace http
