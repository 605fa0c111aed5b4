// A chunk's bytes in fixed-size blocks that never move once written, so that
// every waiter and every hit can reference them in its output buffer without a
// copy (BodyBuffer::append_reference), even while the download is still appending.
// One thread appends (the loop that owns the download); any thread may read the
// bytes appended so far: the block list is guarded by a mutex, and bytes below
// size() never change.
#pragma once

#include "common/body_buffer.h"

#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace cache_node {

class ChunkBody {
 public:
  explicit ChunkBody(size_t block_size = 256 * 1024) : block_size_(block_size) {}

  void append(std::string_view bytes);
  size_t size() const {
    std::lock_guard lock(mutex_);
    return size_;
  }

  // Adds bytes [from, to) to `out` as references (no copy). Requires to <= size().
  void add_to(common::BodyBuffer& out, size_t from, size_t to) const;
  // Calls fn(data, n) for each stored span in order (for writing to disk).
  template <class Fn>
  void for_each_span(Fn&& fn) const {
    std::lock_guard lock(mutex_);
    size_t left = size_;
    for (const auto& b : blocks_) {
      size_t n = left < block_size_ ? left : block_size_;
      fn(b->data.get(), n);
      left -= n;
    }
  }
  std::string copy() const;  // tests and small bodies

 private:
  struct Block {
    std::unique_ptr<char[]> data;
  };
  size_t block_size_;
  mutable std::mutex mutex_;  // guards size_ and blocks_ (not the bytes below size_)
  size_t size_ = 0;
  std::vector<std::shared_ptr<Block>> blocks_;
};

}  // namespace cache_node
