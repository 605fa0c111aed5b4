// A chunk's bytes in blocks that never move once written, so that every waiter
// and every hit can reference them in its output buffer without a copy
// (BodyBuffer::append_reference), even while the download is still appending.
// One thread appends (the loop that owns the download); any thread may read the
// bytes appended so far: the block list is guarded by a mutex, and bytes below
// size() never change.
//
// Memory follows the data: blocks grow with the body (a small one first, each
// next one as large as the body so far, up to max_block), a known length sizes
// them exactly, and finish() replaces the last block by one of exactly the bytes
// it holds, so a stored 300-byte chunk holds about 300 bytes, not a block.
#pragma once

#include "cache_node/store/lock_order.h"
#include "http/server/body_buffer.h"

#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace cache_node {

class ChunkBody {
 public:
  static constexpr size_t kDefaultMaxBlock = 256 * 1024;
  static constexpr size_t kFirstBlock = 16 * 1024;
  // What one body costs besides its blocks' bytes: the object and its control
  // block, and per block the block, its control block and its vector slots
  // (allocator rounding included, measured on x86-64).
  static constexpr size_t kBodyOverhead = 160;
  static constexpr size_t kBlockOverhead = 96;

  explicit ChunkBody(size_t max_block = kDefaultMaxBlock) : max_block_(max_block) {}

  // The length the upstream announced: blocks are sized for it (a body that
  // turns out longer still grows).
  void expect(size_t total);
  void append(std::string_view bytes);
  // The body is complete: the last block is cut to the bytes it holds. Readers
  // holding references keep the old block alive; the bytes are the same.
  void finish();
  size_t size() const {
    std::lock_guard lock(mutex_);
    return size_;
  }
  // Bytes held: the blocks' capacities plus the overheads above.
  size_t allocated_bytes() const;

  // Adds bytes [from, to) to `out` as references (no copy). Requires to <= size().
  void add_to(http::BodyBuffer& out, size_t from, size_t to) const;
  // Calls fn(data, n) for each stored span in order (for writing to disk).
  template <class Fn>
  void for_each_span(Fn&& fn) const {
    std::lock_guard lock(mutex_);
    size_t left = size_;
    for (const auto& b : blocks_) {
      size_t n = left < b->capacity ? left : b->capacity;
      fn(b->data.get(), n);
      left -= n;
    }
  }
  std::string copy() const;  // tests and small bodies

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t capacity = 0;
  };
  const size_t max_block_;
  // Guards everything below (not the bytes below size_); the innermost lock.
  mutable RankedMutex<LockRank::chunk_body> mutex_;
  size_t size_ = 0;
  size_t expected_ = 0;  // announced length, 0 = unknown
  size_t capacity_ = 0;  // sum of the blocks' capacities
  // Every block but the last is full; starts_[i] is the offset of blocks_[i].
  std::vector<std::shared_ptr<Block>> blocks_;
  std::vector<size_t> starts_;
};

}  // namespace cache_node
