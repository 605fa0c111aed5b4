// The order in which a thread may hold the cache node's locks, checked on every
// acquisition in every build: while holding a lock of some rank, a thread may
// take only locks of a higher rank, and never two of one rank (two flights, two
// bodies). Taking one out of order aborts naming both ranks, so a would-be
// deadlock fails the first test that reaches it instead of hanging a node
// under load. The check is one thread-local word: no cost worth counting next
// to the mutex itself.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/enum_names.h"

namespace cache_node {

// Outermost first: a thread takes them in this order only.
enum class LockRank : uint8_t {
  shared_cache,  // SharedCache: the flight table and the remembered 404s
  chunk_store,   // ChunkStore: its two tiers and queued writes (taken under the table)
  flight,        // Flight: one fetch's progress and subscribers (taken under the table)
  chunk_body,    // ChunkBody: one body's block list (under a flight or the store)
};

namespace lock_order {

// Indexed by LockRank: its last enumerator, chunk_body, must stay last.
inline constexpr const char* kRankNames[] = {"shared_cache", "chunk_store", "flight", "chunk_body"};
static_assert(std::size(kRankNames) == core::enum_count(LockRank::chunk_body));

inline const char* name(LockRank rank) {
  return core::enum_name(rank, kRankNames);
}

// The ranks this thread holds, one bit each.
inline thread_local uint32_t held = 0;

[[noreturn]] inline void violated(LockRank taking, uint32_t held_ranks) {
  for (unsigned r = 0; r < 32; ++r) {
    if ((held_ranks >> r & 1) != 0 && r >= static_cast<unsigned>(taking)) {
      fprintf(stderr, "cache_node: lock order violated: taking %s while holding %s\n", name(taking),
              name(static_cast<LockRank>(r)));
    }
  }
  std::abort();
}

}  // namespace lock_order

// A mutex of one rank (BasicLockable: use it with std::lock_guard).
template <LockRank Rank>
class RankedMutex {
 public:
  void lock() {
    // Any bit at or above this rank means a lock of the same or an inner rank is held.
    if (lock_order::held >= kBit) lock_order::violated(Rank, lock_order::held);
    mutex_.lock();
    lock_order::held |= kBit;
  }
  void unlock() {
    lock_order::held &= ~kBit;
    mutex_.unlock();
  }

 private:
  static constexpr uint32_t kBit = uint32_t{1} << static_cast<unsigned>(Rank);
  std::mutex mutex_;
};

}  // namespace cache_node
