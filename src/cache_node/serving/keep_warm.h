// Keeping polled objects warm: a short-lived object that viewers poll (a live playlist served
// through the node, with a lifetime of a second or so) is refreshed by the node itself as it
// expires, for a while after a viewer last read it. Without this, the first viewers after a
// break in the requests find a copy past its refresh grace and all wait for the origin
// (docs/measurements.md, "A hot object after a break"). This header holds the pure table:
// which objects are kept, when each is due, and when one is let go. The loop that owns it
// (NodeLoop) starts the refreshes. Time comes in as an argument. Its loop only.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache_node/serving/chunk_request.h"

namespace cache_node {

// Only objects that live this long at most are kept warm: a live playlist, not a segment.
inline constexpr int64_t kKeepWarmMaxLifetimeMs = 10'000;
// Objects kept warm per loop at most: over it, new ones are not taken.
inline constexpr size_t kKeepWarmMaxObjects = 1'000;

// What is kept of an object to refresh it: the viewer's request, as it named the chunk.
struct WarmObject {
  ChunkRequest request;
  std::string signed_suffix;  // the viewer's signature, passed upstream as its request's was
};

class KeepWarm {
 public:
  explicit KeepWarm(size_t max_objects = kKeepWarmMaxObjects) : max_objects_(max_objects) {}

  // A viewer's request found the stored copy of `key` stale and started its refresh: the
  // object is polled. Kept warm when its lifetime is at most kKeepWarmMaxLifetimeMs and there
  // is room (an object already kept is renewed); due again a lifetime from now.
  // `viewer_reads`: the store's count of viewer reads of the key so far. False when not taken.
  bool polled(const std::string& key, WarmObject object, int64_t lifetime_ms, uint64_t viewer_reads,
              int64_t now_ms);

  // The keys due at `now_ms`, the earliest first.
  std::vector<std::string> due(int64_t now_ms) const;
  std::optional<int64_t> next_due_ms() const;

  // A due object's turn. `viewer_reads`: the store's count of viewer reads of the key now
  // (nullopt when its memory tier no longer holds it). Returns the object to refresh, due
  // again a lifetime from now; or null when it is let go: no longer held in memory, or read
  // by no viewer for `window_ms` (0: nothing is kept).
  const WarmObject* turn(const std::string& key, std::optional<uint64_t> viewer_reads,
                         int64_t now_ms, int64_t window_ms);
  // The refresh was not needed: the copy is fresh until `due_ms` (another fetch refreshed it).
  void due_at(const std::string& key, int64_t due_ms);
  void forget(const std::string& key);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    WarmObject object;
    int64_t lifetime_ms = 0;
    int64_t due_ms = 0;
    int64_t last_read_ms = 0;  // when a viewer was last known to have read it
    uint64_t reads_seen = 0;   // the store's count of viewer reads at the last look
  };
  void schedule(const std::string& key, Entry& entry, int64_t due_ms);

  const size_t max_objects_;
  std::unordered_map<std::string, Entry> entries_;
  std::set<std::pair<int64_t, std::string>> schedule_;  // (due_ms, key), one per entry
};

}  // namespace cache_node
