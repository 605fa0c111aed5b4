// Stable segment URIs per viewer (DESIGN.md, "Browsers"): a chunk that a viewer's
// previous copy of a playlist listed keeps its host in the next copy while that
// host is usable; only newly listed chunks follow the cache choice. Players that
// compare a segment's URI between refreshes (hls.js: "media sequence mismatch")
// then see no change when the choice moves between usable nodes (a node coming
// back, an overloaded one, a viewer's network). A dead host's chunks move at once:
// that is content steering's case (hls/steering.h), where a pathway's own node keeps
// its listed segments even dead (KeptHost). Pure; standard library only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "balancer/sources/rewrite_plan.h"  // chunk_hash

namespace balancer {

// What one viewer's previous copy listed: each chunk (a hash of its origin target)
// with the destination it was given. Small: a live playlist lists a few chunks.
struct ListedChunks {
  std::vector<std::string> hosts;                    // destination ids ("" = origin)
  std::vector<std::pair<uint64_t, uint8_t>> chunks;  // chunk hash → index into hosts
};

// A host that keeps the chunks it listed even when it is not usable (a steering pathway's
// own node), or only those flagged in `only` (per chunk of the next copy; null: all): the
// ones a player compares between copies (segments). Also those flagged in `while_playing`
// when `playing` (ListingTable::update sets it: the viewer's previous copy of this playlist
// was served within `playing_within`, so it plays it): the ones a player already holds and
// fetches again only when their URI changes (maps: VHS then appends the init again and drops
// the rest of the segment); a viewer coming back to the playlist later gets them on the next
// host. Other chunks move like any other.
struct KeptHost {
  std::string_view host;
  const std::vector<bool>* only = nullptr;
  const std::vector<bool>* while_playing = nullptr;
  std::chrono::steady_clock::duration playing_within{};
  bool playing = false;
};

// The destination of every chunk of the next copy, as indexes into `next.hosts`
// (`next` is rebuilt; `current` is always hosts[0]): a chunk hash listed in
// `previous` under another host that `usable` accepts (or that `kept` keeps) keeps that
// host; every other chunk gets `current`. At most 255 hosts are tracked (more keep
// `current`).
std::vector<uint8_t> keep_listed_hosts(const ListedChunks& previous,
                                       const std::vector<uint64_t>& chunks,
                                       std::string_view current,
                                       const std::function<bool(std::string_view host)>& usable,
                                       ListedChunks& next, const KeptHost& kept = {});

// What each viewer's last copy of each media playlist listed, for every event loop
// (a viewer's requests may reach any loop). Keyed by viewer key + requested cache +
// playlist (a viewer asking for another cache starts afresh); 16
// shards, each with its own mutex held for one lookup and keep_listed_hosts.
// Bounded: when a shard is full, entries unseen for `idle` go; if still full, a
// new key gets no stickiness. Any thread.
class ListingTable {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  ListingTable(size_t max_entries, std::chrono::steady_clock::duration idle)
      : max_(max_entries / kShards + 1), idle_(idle) {}

  // keep_listed_hosts against the key's previous listing, stored as the key's new
  // one; returns the destination index per chunk and fills `hosts` (hosts[0] =
  // current). Empty result (all `current`) when the shard is full.
  std::vector<uint8_t> update(const std::string& key, const std::vector<uint64_t>& chunks,
                              std::string_view current,
                              const std::function<bool(std::string_view host)>& usable,
                              TimePoint now, std::vector<std::string>& hosts,
                              const KeptHost& kept = {});
  size_t size() const;

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    ListedChunks listed;
    TimePoint seen;
  };
  struct alignas(64) Shard {  // a cache line of its own: loops lock different shards at once
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry> entries;
  };
  size_t max_;
  std::chrono::steady_clock::duration idle_;
  std::array<Shard, kShards> shards_;
};

}  // namespace balancer
