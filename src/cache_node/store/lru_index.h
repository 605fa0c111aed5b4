// An LRU index bounded by total bytes and by its number of entries: O(1)
// find/touch/insert/erase, eviction from the least recently used end. Pure; the
// caller decides what eviction means.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace cache_node {

template <class Value>
class LruIndex {
 public:
  struct Entry {
    std::string key;
    uint64_t bytes;
    Value value;
  };

  explicit LruIndex(uint64_t max_bytes, size_t max_entries = SIZE_MAX)
      : max_bytes_(max_bytes), max_entries_(max_entries) {}

  // Looks up `key` and marks it most recently used.
  Value* touch(const std::string& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->value;
  }
  // Looks up without changing recency.
  const Value* peek(const std::string& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second->value;
  }
  // Inserts or replaces `key` as most recently used.
  void insert(const std::string& key, uint64_t bytes, Value value) {
    erase(key);
    order_.push_front(Entry{key, bytes, std::move(value)});
    map_[key] = order_.begin();
    used_ += bytes;
  }
  // Inserts as least recently used (loading a persisted index oldest-first keeps order).
  void insert_oldest(const std::string& key, uint64_t bytes, Value value) {
    erase(key);
    order_.push_back(Entry{key, bytes, std::move(value)});
    map_[key] = std::prev(order_.end());
    used_ += bytes;
  }
  std::optional<Entry> erase(const std::string& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    Entry e = std::move(*it->second);
    used_ -= e.bytes;
    order_.erase(it->second);
    map_.erase(it);
    return e;
  }
  // Removes and returns the least recently used entry while over budget
  // (budget = max_bytes - reserve, or more than max_entries), else nullopt.
  std::optional<Entry> evict_one(uint64_t reserve = 0) {
    if (order_.empty() || (used_ + reserve <= max_bytes_ && !over_entries())) return std::nullopt;
    Entry e = std::move(order_.back());
    map_.erase(e.key);
    order_.pop_back();
    used_ -= e.bytes;
    return e;
  }
  // The least recently used entry, whatever this index's own limits: another budget
  // needs the room. nullopt when empty.
  std::optional<Entry> evict_oldest() {
    if (order_.empty()) return std::nullopt;
    Entry e = std::move(order_.back());
    map_.erase(e.key);
    order_.pop_back();
    used_ -= e.bytes;
    return e;
  }
  uint64_t used_bytes() const { return used_; }
  uint64_t max_bytes() const { return max_bytes_; }
  void set_max_bytes(uint64_t max_bytes) { max_bytes_ = max_bytes; }
  size_t size() const { return map_.size(); }
  size_t max_entries() const { return max_entries_; }
  // More entries than allowed: the next evict_one() is for the count.
  bool over_entries() const { return map_.size() > max_entries_; }

 private:
  uint64_t max_bytes_;
  size_t max_entries_;
  uint64_t used_ = 0;
  std::list<Entry> order_;
  std::unordered_map<std::string, typename std::list<Entry>::iterator> map_;
};

}  // namespace cache_node
