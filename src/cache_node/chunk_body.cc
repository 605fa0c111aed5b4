#include "cache_node/chunk_body.h"

#include <cstring>
#include <string>

namespace cache_node {

void ChunkBody::append(std::string_view bytes) {
  std::lock_guard lock(mutex_);
  while (!bytes.empty()) {
    size_t used = size_ % block_size_;
    if (used == 0 && size_ / block_size_ == blocks_.size()) {
      auto block = std::make_shared<Block>();
      block->data.reset(new char[block_size_]);
      blocks_.push_back(std::move(block));
    }
    size_t n = std::min(bytes.size(), block_size_ - used);
    memcpy(blocks_.back()->data.get() + used, bytes.data(), n);
    size_ += n;
    bytes.remove_prefix(n);
  }
}

void ChunkBody::add_to(common::BodyBuffer& out, size_t from, size_t to) const {
  std::lock_guard lock(mutex_);
  while (from < to) {
    size_t index = from / block_size_;
    size_t offset = from % block_size_;
    size_t n = std::min(to - from, block_size_ - offset);
    // The buffer keeps the block alive until it has sent these bytes.
    const std::shared_ptr<Block>& block = blocks_[index];
    out.append_reference(block->data.get() + offset, n, block);
    from += n;
  }
}

std::string ChunkBody::copy() const {
  std::string out;
  out.reserve(size());
  for_each_span([&](const char* data, size_t n) { out.append(data, n); });
  return out;
}

}  // namespace cache_node
