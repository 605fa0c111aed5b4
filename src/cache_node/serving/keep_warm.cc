#include "cache_node/serving/keep_warm.h"

namespace cache_node {

bool KeepWarm::polled(const std::string& key, WarmObject object, int64_t lifetime_ms,
                      uint64_t viewer_reads, int64_t now_ms) {
  if (lifetime_ms <= 0 || lifetime_ms > kKeepWarmMaxLifetimeMs) return false;
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_objects_) return false;
    it = entries_.emplace(key, Entry{}).first;
  }
  Entry& entry = it->second;
  entry.object = std::move(object);  // the newest viewer's signature
  entry.lifetime_ms = lifetime_ms;
  entry.last_read_ms = now_ms;
  entry.reads_seen = viewer_reads;
  schedule(key, entry, now_ms + lifetime_ms);
  return true;
}

std::vector<std::string> KeepWarm::due(int64_t now_ms) const {
  std::vector<std::string> keys;
  for (const auto& [due_ms, key] : schedule_) {
    if (due_ms > now_ms) break;
    keys.push_back(key);
  }
  return keys;
}

std::optional<int64_t> KeepWarm::next_due_ms() const {
  if (schedule_.empty()) return std::nullopt;
  return schedule_.begin()->first;
}

const WarmObject* KeepWarm::turn(const std::string& key, std::optional<uint64_t> viewer_reads,
                                 int64_t now_ms, int64_t window_ms) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  Entry& entry = it->second;
  // A count that moved says a viewer read it since the last look (the count is the key's,
  // carried across its copies, so a refreshed copy does not reset it).
  if (viewer_reads && *viewer_reads != entry.reads_seen) {
    entry.last_read_ms = now_ms;
    entry.reads_seen = *viewer_reads;
  }
  if (!viewer_reads || now_ms - entry.last_read_ms >= window_ms) {
    forget(key);
    return nullptr;
  }
  schedule(key, entry, now_ms + entry.lifetime_ms);
  return &entry.object;
}

void KeepWarm::due_at(const std::string& key, int64_t due_ms) {
  if (auto it = entries_.find(key); it != entries_.end()) schedule(key, it->second, due_ms);
}

void KeepWarm::forget(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  schedule_.erase({it->second.due_ms, key});
  entries_.erase(it);
}

void KeepWarm::schedule(const std::string& key, Entry& entry, int64_t due_ms) {
  schedule_.erase({entry.due_ms, key});
  entry.due_ms = due_ms;
  schedule_.emplace(due_ms, key);
}

}  // namespace cache_node
