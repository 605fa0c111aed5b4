#include "cache_node/store/chunk_body.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace cache_node {

void ChunkBody::expect(size_t total) {
  std::lock_guard lock(mutex_);
  expected_ = total;
}

void ChunkBody::append(std::string_view bytes) {
  std::lock_guard lock(mutex_);
  while (!bytes.empty()) {
    if (size_ == capacity_) {
      // Geometric growth up to max_block_: the unused tail of the last block is
      // never more than the body so far; a known length is met exactly.
      size_t want = std::max({kFirstBlock, size_, bytes.size()});
      if (expected_ > size_) want = expected_ - size_;
      want = std::min(want, max_block_);
      auto block = std::make_shared<Block>();
      block->data.reset(new char[want]);
      block->capacity = want;
      starts_.push_back(capacity_);
      blocks_.push_back(std::move(block));
      capacity_ += want;
    }
    Block& last = *blocks_.back();
    size_t used = size_ - starts_.back();
    size_t n = std::min(bytes.size(), last.capacity - used);
    memcpy(last.data.get() + used, bytes.data(), n);
    size_ += n;
    bytes.remove_prefix(n);
  }
}

void ChunkBody::finish() {
  std::lock_guard lock(mutex_);
  if (blocks_.empty() || size_ == capacity_) return;
  size_t used = size_ - starts_.back();
  if (used == 0) {
    capacity_ -= blocks_.back()->capacity;
    blocks_.pop_back();
    starts_.pop_back();
    return;
  }
  auto exact = std::make_shared<Block>();
  exact->data.reset(new char[used]);
  exact->capacity = used;
  memcpy(exact->data.get(), blocks_.back()->data.get(), used);
  capacity_ -= blocks_.back()->capacity - used;
  blocks_.back() = std::move(exact);
}

size_t ChunkBody::allocated_bytes() const {
  std::lock_guard lock(mutex_);
  return capacity_ + kBodyOverhead + blocks_.size() * kBlockOverhead;
}

void ChunkBody::add_to(http::BodyBuffer& out, size_t from, size_t to) const {
  std::lock_guard lock(mutex_);
  if (from >= to) return;
  size_t index = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), from) -
                                     starts_.begin()) -
                 1;
  while (from < to) {
    const std::shared_ptr<Block>& block = blocks_[index];
    size_t offset = from - starts_[index];
    size_t n = std::min(to - from, block->capacity - offset);
    // The buffer keeps the block alive until it has sent these bytes.
    out.append_reference(block->data.get() + offset, n, block);
    from += n;
    ++index;
  }
}

std::string ChunkBody::copy() const {
  std::string out;
  out.reserve(size());
  for_each_span([&](const char* data, size_t n) { out.append(data, n); });
  return out;
}

}  // namespace cache_node
