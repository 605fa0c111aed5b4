// What every loop of a cache node shares: the chunk store, the fetches in
// progress (one per chunk for the whole process: fetch-once across loops) and
// the remembered origin 404s. A Flight is one upstream fetch, kept in the shared
// coalesced-fetch table (http/client/coalesced_fetch.h) while it runs; the loop that
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

#include "cache_node/store/chunk_body.h"
#include "cache_node/store/chunk_store.h"
#include "cache_node/store/lock_order.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "http/client/coalesced_fetch.h"

namespace cache_node {

// A copy of a flight's progress, taken under its lock.
struct FlightProgress {
  // revalidated: the upstream said 304, the stored copy answers with `meta`
  // refreshed; stale: the upstream failed and the stale copy answers (its own
  // `meta`). Both only for a flight that revalidates a stored copy.
  enum class End { running, stored, failed, not_found, revalidated, stale };
  bool head_known = false;
  int status = 0;  // upstream status
  ChunkMeta meta;
  std::optional<uint64_t> content_length;
  size_t bytes = 0;  // body bytes received so far
  End end = End::running;
  int fail_status = 0;
  std::string fail_code, fail_message;
  std::string fail_retry_after;  // sent with a relayed 429/503 (the origin's, or a default)
};

// One upstream fetch of one chunk, published in the table by find_or_start.
// Key, owner loop and stale copy: immutable after publish. Progress and
// subscribers: any loop, under its lock. Body: appended by the owner loop only,
// read by any. The owner loop's Flights (flights.h) runs the transfer.
class Flight {
 public:
  Flight(std::string key, size_t owner_loop, std::optional<StoreHit> stale = std::nullopt)
      : key_(std::move(key)), owner_(owner_loop), stale_(std::move(stale)) {}
  const std::string& key() const { return key_; }
  size_t owner() const { return owner_; }
  // The stored copy this flight revalidates (a conditional request), or null
  // for a miss. Fixed at creation; any thread.
  const StoreHit* stale() const { return stale_ ? &*stale_ : nullptr; }
  // Appended by the owner loop only; readable by any.
  const std::shared_ptr<ChunkBody>& body() const { return body_; }

  FlightProgress progress() const;
  // Owner loop.
  void set_head(int status, ChunkMeta meta, std::optional<uint64_t> content_length);
  void set_meta_size(uint64_t size);
  void end(FlightProgress::End how, int status = 0, std::string code = {}, std::string message = {},
           std::string retry_after = {});
  // Ends with the stored copy answering (revalidated or stale), described by `meta`.
  void end_from_store(FlightProgress::End how, ChunkMeta meta);

  // Adds `loop` to the loops told about progress; false if it was already there.
  bool subscribe(size_t loop);
  std::vector<size_t> subscribers() const;

 private:
  const std::string key_;
  const size_t owner_;
  const std::optional<StoreHit> stale_;
  const std::shared_ptr<ChunkBody> body_ = std::make_shared<ChunkBody>();
  mutable RankedMutex<LockRank::flight> mutex_;  // taken under the table's, never the store's
  FlightProgress progress_;                      // bytes is read from body_ at copy time
  std::vector<size_t> subscribers_;
};

class SharedCache {
 public:
  // `max_negative`: remembered 404s at most; `negative_refused` counts the 404s
  // not remembered because that many already are.
  SharedCache(std::unique_ptr<ChunkStore> store, const core::Clock& clock, size_t max_negative,
              core::Counter& negative_refused);

  ChunkStore& store() { return *store_; }
  const ChunkStore& store() const { return *store_; }

  // The hit path: the store alone. The caller serves the copy only while it is
  // fresh (now < meta.fresh_until_ms), else asks find_or_start().
  std::optional<StoreHit> find(const std::string& key,
                               ChunkStore::ReadBy by = ChunkStore::ReadBy::viewer) {
    return store_->find(key, by);
  }

  struct Lookup {
    // revalidate: a stored copy went stale; a new flight owned by `loop`
    // carries it (Flight::stale()) and the caller starts a conditional fetch.
    enum class Kind { hit, negative, joined, started, revalidate };
    Kind kind = Kind::started;
    std::optional<StoreHit> hit;     // hit
    std::shared_ptr<Flight> flight;  // joined, started, revalidate (subscribed by `loop` already)
    // joined, revalidate: the stored (stale) copy, which may answer at once while it is
    // refreshed (ChunkMeta::refresh_grace_until_ms).
    std::optional<StoreHit> stale;
  };
  // Atomically: a fresh stored chunk, a remembered 404, the fetch in progress
  // (joined), or a new flight owned by `loop` that the caller must start (a
  // miss, or the revalidation of a stale copy). Freshness on the injected clock.
  // `by`: whose read of a stored copy it is (ChunkStore::viewer_reads counts the viewers').
  Lookup find_or_start(const std::string& key, size_t loop,
                       ChunkStore::ReadBy by = ChunkStore::ReadBy::viewer);

  // What the end of a flight does to the stored copy of its key.
  enum class StoreUpdate {
    none,     // nothing (a failure; a body that may not be stored, with no copy before)
    put,      // store the flight's complete body with `meta`
    refresh,  // keep the stored body, replace its metadata with `meta` (a 304)
    erase,    // drop the stored copy (the upstream said 404/410 or no-store)
  };
  // Owner loop, at the end of a flight: updates the store and forgets the flight
  // in one step, so no lookup sees neither; a 404 is remembered for `negative_ttl`.
  void finish(const Flight& flight, StoreUpdate update, const ChunkMeta* meta,
              std::optional<core::SteadyTime::duration> negative_ttl);

  size_t inflight() const;
  // Drops remembered 404s whose time has passed.
  void expire_negative();
  size_t negative_entries() const;
  void set_max_negative(size_t max_negative);

 private:
  std::unique_ptr<ChunkStore> store_;
  const core::Clock& clock_;
  // Guards flights_ and negative_; the outermost lock: the store's and a
  // flight's are taken under it (lock_order.h checks the order).
  mutable RankedMutex<LockRank::shared_cache> mutex_;
  // No waiters in the table: the loops waiting subscribe to the Flight itself,
  // which they hear from many times (progress), not once.
  http::CoalescedFetches<std::monostate, std::shared_ptr<Flight>> flights_;
  std::unordered_map<std::string, core::SteadyTime> negative_;  // 404 remembered until
  size_t max_negative_;
  core::Counter& negative_refused_;
};

}  // namespace cache_node
