// The cache node's locks (lock_order.h): taken outermost first they nest; an
// outer lock taken under an inner one, or two of one rank, abort the process
// (checked in a forked child) instead of risking a deadlock under load.
#include <doctest/doctest.h>

#include <functional>
#include <mutex>

#include "cache_node/store/lock_order.h"
#include "support/child_end.h"

using namespace cache_node;

namespace {

// Runs `body` in a child process; true if the child was killed by SIGABRT.
bool aborts(const std::function<void()>& body) {
  return balancer::test::run_in_child(body) == balancer::test::ChildEnd::aborted;
}

// Whether a child that takes a lock of rank `First`, then one of rank `Second`, aborts.
template <LockRank First, LockRank Second>
bool aborts_locking() {
  return aborts([] {
    RankedMutex<First> first;
    RankedMutex<Second> second;
    std::lock_guard a(first);
    std::lock_guard b(second);
  });
}

}  // namespace

TEST_CASE(
    "lock order: the cache node's locks nest outermost first, and are free again once released") {
  RankedMutex<LockRank::shared_cache> table;
  RankedMutex<LockRank::chunk_store> store;
  RankedMutex<LockRank::flight> flight;
  RankedMutex<LockRank::chunk_body> body;
  {
    std::lock_guard a(table);
    std::lock_guard b(store);
    std::lock_guard c(body);
  }
  {
    std::lock_guard a(table);
    std::lock_guard b(flight);
    std::lock_guard c(body);
  }
  CHECK(lock_order::held == 0);
  // Released: any one may be taken first again.
  { std::lock_guard c(body); }
  { std::lock_guard b(store); }
  CHECK(lock_order::held == 0);
}

TEST_CASE("lock order: an outer lock taken under an inner one aborts") {
  CHECK(aborts_locking<LockRank::chunk_store, LockRank::shared_cache>());
  CHECK(aborts_locking<LockRank::flight, LockRank::chunk_store>());
  // Two of one rank: two flights held at once could deadlock with another thread.
  CHECK(aborts_locking<LockRank::flight, LockRank::flight>());
  // The same order in the child passes.
  CHECK_FALSE(aborts_locking<LockRank::shared_cache, LockRank::chunk_store>());
}
