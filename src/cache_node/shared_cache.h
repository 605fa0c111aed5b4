// What every loop of a cache node shares: the chunk store, the fetches in
// progress (one per chunk for the whole process: fetch-once across loops) and
// the remembered origin 404s. A Flight is one upstream fetch, kept in the shared
// coalesced-fetch table (common/coalesced_fetch.h) while it runs; the loop that
// started it owns the transfer and publishes its progress here, and every loop
// with waiters on it (a subscriber) is told to look again through its post().
// Any thread, unless noted.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache_node/chunk_body.h"
#include "cache_node/chunk_store.h"
#include "common/clock.h"
#include "common/coalesced_fetch.h"

namespace cache_node {

// A copy of a flight's progress, taken under its lock.
struct FlightProgress {
  enum class End { running, stored, failed, not_found };
  bool head_known = false;
  int status = 0;  // upstream status
  ChunkMeta meta;
  std::optional<uint64_t> content_length;
  size_t bytes = 0;  // body bytes received so far
  End end = End::running;
  int fail_status = 0;
  std::string fail_code, fail_message;
};

class Flight {
 public:
  Flight(std::string key, size_t owner_loop) : key_(std::move(key)), owner_(owner_loop) {}
  const std::string& key() const { return key_; }
  size_t owner() const { return owner_; }
  // Appended by the owner loop only; readable by any.
  const std::shared_ptr<ChunkBody>& body() const { return body_; }

  FlightProgress progress() const;
  // Owner loop.
  void set_head(int status, ChunkMeta meta, std::optional<uint64_t> content_length);
  void set_meta_size(uint64_t size);
  void end(FlightProgress::End how, int status = 0, std::string code = {}, std::string message = {});

  // Adds `loop` to the loops told about progress; false if it was already there.
  bool subscribe(size_t loop);
  std::vector<size_t> subscribers() const;

 private:
  const std::string key_;
  const size_t owner_;
  const std::shared_ptr<ChunkBody> body_ = std::make_shared<ChunkBody>();
  mutable std::mutex mutex_;
  FlightProgress progress_;  // bytes is read from body_ at copy time
  std::vector<size_t> subscribers_;
};

class SharedCache {
 public:
  SharedCache(std::unique_ptr<ChunkStore> store, const common::Clock& clock);

  ChunkStore& store() { return *store_; }
  const ChunkStore& store() const { return *store_; }

  // The hit path: the store alone.
  std::optional<StoreHit> find(const std::string& key) { return store_->find(key); }

  struct Lookup {
    enum class Kind { hit, negative, joined, started };
    Kind kind = Kind::started;
    std::optional<StoreHit> hit;     // hit
    std::shared_ptr<Flight> flight;  // joined, started (subscribed by `loop` already)
  };
  // Atomically: a stored chunk, a remembered 404, the fetch in progress (joined),
  // or a new flight owned by `loop` that the caller must start.
  Lookup find_or_start(const std::string& key, size_t loop);

  // Owner loop, at the end of a flight: stores a complete body (if any) and
  // forgets the flight in one step, so no lookup sees neither; a 404 is remembered
  // for `negative_ttl`.
  void finish(const Flight& flight, const ChunkMeta* stored_meta, std::optional<common::SteadyTime::duration> negative_ttl);

  size_t inflight() const;
  // Drops remembered 404s whose time has passed.
  void expire_negative();

 private:
  std::unique_ptr<ChunkStore> store_;
  const common::Clock& clock_;
  mutable std::mutex mutex_;  // guards flights_ and negative_; taken before the store's
  // No waiters in the table: the loops waiting subscribe to the Flight itself,
  // which they hear from many times (progress), not once.
  common::CoalescedFetches<std::monostate, std::shared_ptr<Flight>> flights_;
  std::unordered_map<std::string, common::SteadyTime> negative_;  // 404 remembered until
};

}  // namespace cache_node
