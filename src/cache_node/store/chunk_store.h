// Two-tier chunk storage: a bounded memory tier (LRU) in front of a bounded disk
// tier (LRU) whose index lives in LMDB so the cache survives restarts. Files are
// written on a worker thread (write, fsync, rename, then the index commit), so a
// chunk killed mid-download or mid-write is never indexed, and the loop never
// waits on the disk. Every public method may be called from any thread (one
// mutex); disk-write completions run on the loop given to open().
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache_node/store/chunk_body.h"
#include "cache_node/store/lock_order.h"
#include "cache_node/store/lru_index.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/worker.h"
#include "stores/lmdb.h"

namespace cache_node {

struct ChunkMeta {
  uint64_t size = 0;
  int64_t stored_at = 0;  // unix seconds the body was received (recency after a restart)
  std::string content_type;
  std::string etag;
  std::string last_modified;
  std::string cache_control;
  std::string expires;
  // The upstream's Date, sent with the copy (empty: the node's clock gives one).
  std::string origin_date;
  // The other end-to-end headers kept with the copy (kept_response_header in
  // http_semantics.h), one "Name: value" a line, each line ended by '\n'.
  std::string kept_headers;
  bool last_modified_is_ours = false;  // the store time stood in for a missing Last-Modified
  // Freshness (cache_node/rules/freshness.h), unix milliseconds: Age counts from
  // vouched_ms; fresh while now < fresh_until_ms; stale, it may answer for a
  // failing upstream while now < stale_until_ms.
  int64_t vouched_ms = 0;
  int64_t fresh_until_ms = 0;
  int64_t stale_until_ms = 0;
  // While now < refresh_grace_until_ms a stale copy answers at once during its refresh.
  int64_t refresh_grace_until_ms = 0;
};

struct StoreOptions {
  std::string dir;  // holds index/, chunks/, tmp/
  // What the store holds in memory at most: the memory tier's bodies as
  // allocated, with each entry's key, metadata and index nodes, and the disk
  // tier's index (memory_entry_cost, disk_index_cost below).
  uint64_t memory_bytes = 256ull << 20;
  uint64_t disk_bytes = 4ull << 30;
  // Entries per tier at most: a flood of tiny objects is bounded by count too.
  size_t max_entries = 100000;
  // Bytes queued for the disk writer at most (0 = a quarter of memory_bytes, at
  // least 16 MiB). A
  // chunk over it is kept in memory only: a slow disk cannot pin unbounded memory.
  uint64_t max_pending_write_bytes = 0;
  // Disk writes queued at most: a flood of tiny chunks outruns fsync, and each
  // queued write holds its job and body. Over it, chunks are kept in memory only.
  size_t max_pending_writes = 1024;
  // Index entries written before freshness was recorded load with vouched_ms
  // from stored_at and no deadlines; this fills them in (from the key and what
  // the entry kept), or returns false to drop the entry. Unset: they load stale.
  std::function<bool(const std::string& key, ChunkMeta& meta)> upgrade_legacy = nullptr;
};

struct StoreHit {
  ChunkMeta meta;
  std::shared_ptr<const ChunkBody> memory;  // set for a memory hit
  std::string disk_path;                    // set for a disk hit
};

// What one memory-tier entry holds in memory: the body's blocks as allocated,
// its key (twice: list and map), metadata strings and index nodes.
uint64_t memory_entry_cost(const std::string& key, const ChunkMeta& meta, const ChunkBody* body);
// What one disk-tier entry holds in memory: its key, metadata, file name, nodes.
uint64_t disk_index_cost(const std::string& key, const ChunkMeta& meta, const std::string& file);

class ChunkStore {
 public:
  // Opens (creating) the store, loads the index, drops files that the index does
  // not vouch for (partial writes) and index entries whose file is gone or short.
  static core::Result<std::unique_ptr<ChunkStore>> open(event_base& base, StoreOptions options,
                                                        core::MetricsRegistry& metrics);
  ~ChunkStore();  // finishes queued disk writes

  // Who reads: a viewer's request, or the node for itself (a refresh it starts, a prefetch).
  enum class ReadBy { viewer, node };
  std::optional<StoreHit> find(const std::string& key, ReadBy by = ReadBy::viewer);
  // How many times viewers have read `key` from the memory tier, across its copies (a
  // refreshed copy carries the count on); nullopt when the memory tier does not hold it.
  std::optional<uint64_t> viewer_reads(const std::string& key) const;
  // Keeps a complete chunk in memory and writes it to disk in the background.
  void put(const std::string& key, const ChunkMeta& meta, std::shared_ptr<const ChunkBody> body);
  // Replaces the metadata of the stored copy of `key` (after the upstream said
  // 304); the body stays. The index entry is rewritten in the background.
  // Copies of another size are left alone.
  void refresh(const std::string& key, const ChunkMeta& meta);
  // Drops the stored copy of `key` from both tiers (file and index entry in the
  // background). No-op when nothing is stored.
  void erase(const std::string& key);

  // Memory held: the memory tier's entries at their cost, the disk tier's index
  // and the queued disk writes' jobs (what /health reports as memory_used_bytes).
  // Not counted: bodies evicted from memory whose write is still queued (at most
  // max_pending_write_bytes, while the disk is behind).
  uint64_t memory_used() const;
  size_t memory_entries() const;
  uint64_t disk_used() const;
  const StoreOptions& options() const { return options_; }
  size_t disk_entries() const;
  size_t pending_writes() const;

 private:
  struct MemoryEntry {
    ChunkMeta meta;
    std::shared_ptr<const ChunkBody> body;
    uint64_t viewer_reads = 0;
  };
  struct DiskEntry {
    ChunkMeta meta;
    std::string file;
  };
  // A disk write queued for a key: only the latest one for the key enters the
  // disk tier when it completes, with the latest metadata (refresh() updates it).
  struct PendingWrite {
    uint64_t id = 0;
    ChunkMeta meta;
  };
  ChunkStore(event_base& base, StoreOptions options, stores::LmdbEnv env,
             core::MetricsRegistry& metrics);
  core::Status load_index();

  // put()'s steps, under the mutex: the memory tier takes the chunk if it can
  // ever fit (else an older copy there goes); an older copy on disk or queued
  // for it is forgotten (true if there was one); the write is admitted if the
  // chunk fits the disk tier and the write queue has room (a refusal counted);
  // room is made on disk and the write queued.
  void keep_in_memory(const std::string& key, const ChunkMeta& meta,
                      const std::shared_ptr<const ChunkBody>& body);
  bool forget_disk_copy(const std::string& key);
  bool admit_disk_write(uint64_t size, uint64_t pending_cost);
  void queue_disk_write(const std::string& key, const ChunkMeta& meta,
                        std::shared_ptr<const ChunkBody> body, uint64_t pending_cost);
  // Writer thread: the index entry of `key`; what failed, empty when committed.
  std::string write_index_record(const std::string& key, const std::string& record);
  // Loop thread, when write `id` ended: the disk tier takes it if it is still
  // the latest for `key`, with the latest metadata.
  void finish_disk_write(const std::string& key, const ChunkMeta& meta, const std::string& file,
                         const std::string& error, uint64_t id, uint64_t pending_cost);
  void evict_disk(uint64_t reserve);
  void evict_memory();
  // Index bookkeeping of the disk tier's memory cost; under the mutex.
  void disk_insert(const std::string& key, uint64_t size, DiskEntry entry, bool oldest = false);
  void disk_forget(const LruIndex<DiskEntry>::Entry& entry);
  // Deletes `file` and the index entry of `key` on the writer thread.
  void post_delete(const std::string& key, const std::string& file);
  // Rewrites the index entry of `key` (if there is one) on the writer thread.
  void post_index_update(const std::string& key, const ChunkMeta& meta, const std::string& file);
  std::string file_path(const std::string& file) const;

  StoreOptions options_;
  // Guards the two LRU indexes and the counters below; taken under the shared
  // cache's lock, never under a flight's (lock_order.h).
  mutable RankedMutex<LockRank::chunk_store> mutex_;
  stores::LmdbEnv env_;
  MDB_dbi dbi_ = 0;
  LruIndex<MemoryEntry> memory_;
  LruIndex<DiskEntry> disk_;
  std::unordered_map<std::string, PendingWrite> pending_;
  size_t pending_writes_ = 0;
  uint64_t pending_write_bytes_ = 0;  // at the bodies' cost, not their length
  uint64_t disk_index_memory_ = 0;    // the disk tier's entries in memory
  uint64_t write_counter_ = 0;
  core::LoopPoster poster_;
  core::Counter& disk_writes_;
  core::Counter& disk_write_errors_;
  core::Counter& disk_writes_skipped_;
  core::Counter& evictions_memory_;
  core::Counter& evictions_disk_;
  core::Counter& entry_limit_evictions_memory_;
  core::Counter& entry_limit_evictions_disk_;
  // Last member: destroyed first, so queued jobs finish while the rest still exists.
  std::unique_ptr<core::WorkerThread> writer_;
};

}  // namespace cache_node
