// Two-tier chunk storage: a bounded memory tier (LRU) in front of a bounded disk
// tier (LRU) whose index lives in LMDB so the cache survives restarts. Files are
// written on a worker thread (write, fsync, rename, then the index commit), so a
// chunk killed mid-download or mid-write is never indexed, and the loop never
// waits on the disk. Every public method may be called from any thread (one
// mutex); disk-write completions run on the loop given to open().
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache_node/chunk_body.h"
#include "cache_node/lru_index.h"
#include "common/lmdb.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/worker.h"

namespace cache_node {

struct ChunkMeta {
  uint64_t size = 0;
  int64_t stored_at = 0;  // unix seconds, for Age
  std::string content_type;
  std::string etag;
  std::string last_modified;
  std::string cache_control;
};

struct StoreOptions {
  std::string dir;  // holds index/, chunks/, tmp/
  uint64_t memory_bytes = 256ull << 20;
  uint64_t disk_bytes = 4ull << 30;
  // Bytes queued for the disk writer at most (0 = a quarter of memory_bytes, at
  // least 16 MiB). A
  // chunk over it is kept in memory only: a slow disk cannot pin unbounded memory.
  uint64_t max_pending_write_bytes = 0;
};

struct StoreHit {
  ChunkMeta meta;
  std::shared_ptr<const ChunkBody> memory;  // set for a memory hit
  std::string disk_path;                    // set for a disk hit
};

class ChunkStore {
 public:
  // Opens (creating) the store, loads the index, drops files that the index does
  // not vouch for (partial writes) and index entries whose file is gone or short.
  static common::Result<std::unique_ptr<ChunkStore>> open(event_base& base, StoreOptions options,
                                                          common::MetricsRegistry& metrics);
  ~ChunkStore();  // finishes queued disk writes

  std::optional<StoreHit> find(const std::string& key);
  // Keeps a complete chunk in memory and writes it to disk in the background.
  void put(const std::string& key, const ChunkMeta& meta, std::shared_ptr<const ChunkBody> body);

  uint64_t memory_used() const;
  uint64_t disk_used() const;
  const StoreOptions& options() const { return options_; }
  size_t disk_entries() const;
  size_t pending_writes() const;

 private:
  struct MemoryEntry {
    ChunkMeta meta;
    std::shared_ptr<const ChunkBody> body;
  };
  struct DiskEntry {
    ChunkMeta meta;
    std::string file;
  };
  ChunkStore(event_base& base, StoreOptions options, common::LmdbEnv env, common::MetricsRegistry& metrics);
  common::Status load_index();
  void evict_disk(uint64_t reserve);
  std::string file_path(const std::string& file) const;

  StoreOptions options_;
  mutable std::mutex mutex_;  // guards the two LRU indexes and the counters below
  common::LmdbEnv env_;
  MDB_dbi dbi_ = 0;
  LruIndex<MemoryEntry> memory_;
  LruIndex<DiskEntry> disk_;
  size_t pending_writes_ = 0;
  uint64_t pending_write_bytes_ = 0;
  uint64_t write_counter_ = 0;
  common::LoopPoster poster_;
  common::Counter& disk_writes_;
  common::Counter& disk_write_errors_;
  common::Counter& disk_writes_skipped_;
  common::Counter& evictions_memory_;
  common::Counter& evictions_disk_;
  // Last member: destroyed first, so queued jobs finish while the rest still exists.
  std::unique_ptr<common::WorkerThread> writer_;
};

}  // namespace cache_node
