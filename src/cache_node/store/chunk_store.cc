#include "cache_node/store/chunk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "cache_node/log_tag.h"
#include "core/answer_here.h"
#include "core/log.h"

namespace cache_node {
namespace {

constexpr core::CounterFamily kCacheEvictions{"cache_evictions_total", "Chunks evicted", "tier"};
constexpr core::CounterFamily kCacheEntryLimitEvictions{
    "cache_entry_limit_evictions_total", "Chunks evicted because the tier held storage.max_entries",
    "tier"};

std::string file_name_for(const std::string& key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 20; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// Index record: one field per line; header values never contain newlines.
// v1 (before freshness was kept): size, stored_at, content type, ETag,
// Last-Modified, Cache-Control, file. v2 adds Expires, a flags word (bit 0:
// Last-Modified is the store time) and the three freshness deadlines. v3 adds the
// refresh grace deadline, the upstream's Date and then the kept headers, one a line. Records of
// every version are read.
std::string encode(const ChunkMeta& m, const std::string& file) {
  std::ostringstream out;
  out << "v3\n"
      << m.size << "\n"
      << m.stored_at << "\n"
      << m.content_type << "\n"
      << m.etag << "\n"
      << m.last_modified << "\n"
      << m.cache_control << "\n"
      << file << "\n"
      << m.expires << "\n"
      << (m.last_modified_is_ours ? 1 : 0) << "\n"
      << m.vouched_ms << "\n"
      << m.fresh_until_ms << "\n"
      << m.stale_until_ms << "\n"
      << m.refresh_grace_until_ms << "\n"
      << m.origin_date;
  if (!m.kept_headers.empty())
    out << "\n" << std::string_view(m.kept_headers).substr(0, m.kept_headers.size() - 1);
  return out.str();
}

enum class Decoded { bad, v1, v2, v3 };

Decoded decode(std::string_view text, ChunkMeta& m, std::string& file) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    fields.emplace_back(
        text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  Decoded version = Decoded::bad;
  if (fields.size() == 8 && fields[0] == "v1") version = Decoded::v1;
  if (fields.size() == 13 && fields[0] == "v2") version = Decoded::v2;
  if (fields.size() >= 15 && fields[0] == "v3") version = Decoded::v3;
  if (version == Decoded::bad) return version;
  auto number = [](const std::string& field, auto& out) {
    char* end = nullptr;
    errno = 0;
    if constexpr (std::is_unsigned_v<std::remove_reference_t<decltype(out)>>) {
      out = strtoull(field.c_str(), &end, 10);
    } else {
      out = strtoll(field.c_str(), &end, 10);
    }
    return !field.empty() && *end == '\0' && errno == 0;
  };
  if (!number(fields[1], m.size) || !number(fields[2], m.stored_at)) return Decoded::bad;
  m.content_type = fields[3];
  m.etag = fields[4];
  m.last_modified = fields[5];
  m.cache_control = fields[6];
  file = fields[7];
  if (file.empty() || file.find('/') != std::string::npos) return Decoded::bad;
  if (version == Decoded::v1) {
    // Freshness was not recorded: Age counts from the store time, no deadline yet.
    m.vouched_ms = m.stored_at * 1000;
    return version;
  }
  m.expires = fields[8];
  int flags = 0;
  if (!number(fields[9], flags) || !number(fields[10], m.vouched_ms) ||
      !number(fields[11], m.fresh_until_ms) || !number(fields[12], m.stale_until_ms)) {
    return Decoded::bad;
  }
  m.last_modified_is_ours = (flags & 1) != 0;
  m.refresh_grace_until_ms = m.fresh_until_ms;
  if (version == Decoded::v3) {
    if (!number(fields[13], m.refresh_grace_until_ms)) return Decoded::bad;
    m.origin_date = fields[14];
    for (size_t i = 15; i < fields.size(); ++i) {
      if (fields[i].find(':') == std::string::npos) return Decoded::bad;
      m.kept_headers += fields[i];
      m.kept_headers += '\n';
    }
  }
  return version;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  closedir(d);
  return out;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Writer thread: `body` into `tmp`, fsynced, renamed to `final_path`, the rename
// made durable in `dir`. What failed ("write: No space left on device"), empty
// when done; on failure no file is left.
std::string write_file_durably(const ChunkBody& body, const std::string& tmp,
                               const std::string& final_path, const std::string& dir) {
  std::string error;
  auto failed = [&error](const char* step) {
    error = std::string(step) + ": " + std::generic_category().message(errno);
  };
  int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0640);
  if (fd < 0) {
    failed("create");
    return error;
  }
  body.for_each_span([&](const char* data, size_t n) {
    if (error.empty() && !write_all(fd, data, n)) failed("write");
  });
  if (error.empty() && fsync(fd) != 0) failed("fsync");
  close(fd);
  if (error.empty() && rename(tmp.c_str(), final_path.c_str()) != 0) failed("rename");
  if (!error.empty()) {
    unlink(tmp.c_str());
    return error;
  }
  // Make the rename durable before the index vouches for the file.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return error;
}

// Heap bytes behind a string copy: none while it fits the small-string buffer,
// else its length and terminator rounded to the allocator's 16-byte classes.
uint64_t string_heap(const std::string& s) {
  return s.size() < 16 ? 0 : (s.size() + 1 + 15) / 16 * 16;
}

uint64_t meta_heap(const ChunkMeta& m) {
  return string_heap(m.content_type) + string_heap(m.etag) + string_heap(m.last_modified) +
         string_heap(m.cache_control) + string_heap(m.expires) + string_heap(m.origin_date) +
         string_heap(m.kept_headers);
}

// An index entry's nodes: the list node (its entry: key, size, metadata and the
// value's own fields, two links) and the hash map's node (key, iterator, link,
// cached hash) with its bucket slot.
constexpr uint64_t kListNode =
    sizeof(std::string) + sizeof(uint64_t) + sizeof(ChunkMeta) + 2 * sizeof(void*);
constexpr uint64_t kMapNode = sizeof(std::string) + 4 * sizeof(void*);
// A queued disk write besides its body: the job, its captured key, paths and metadata.
constexpr uint64_t kPendingWriteOverhead = 1024;

}  // namespace

uint64_t memory_entry_cost(const std::string& key, const ChunkMeta& meta, const ChunkBody* body) {
  const uint64_t body_bytes = body != nullptr ? body->allocated_bytes() : 0;
  return body_bytes + kListNode + sizeof(std::shared_ptr<const ChunkBody>) + kMapNode +
         2 * string_heap(key) + meta_heap(meta);
}

uint64_t disk_index_cost(const std::string& key, const ChunkMeta& meta, const std::string& file) {
  return kListNode + sizeof(std::string) + kMapNode + 2 * string_heap(key) + meta_heap(meta) +
         string_heap(file);
}

ChunkStore::ChunkStore(event_base& base, StoreOptions options, stores::LmdbEnv env,
                       core::MetricsRegistry& metrics)
    : options_(std::move(options)),
      env_(std::move(env)),
      memory_(options_.memory_bytes, options_.max_entries),
      disk_(options_.disk_bytes, options_.max_entries),
      poster_(base),
      disk_writes_(metrics.counter("cache_disk_writes_total", "Chunks written to disk")),
      disk_write_errors_(
          metrics.counter("cache_disk_write_errors_total", "Chunk disk writes that failed")),
      disk_writes_skipped_(
          metrics.counter("cache_disk_writes_skipped_total",
                          "Chunks kept in memory only because the disk writer was behind")),
      evictions_memory_(kCacheEvictions.in(metrics, "memory")),
      evictions_disk_(kCacheEvictions.in(metrics, "disk")),
      entry_limit_evictions_memory_(kCacheEntryLimitEvictions.in(metrics, "memory")),
      entry_limit_evictions_disk_(kCacheEntryLimitEvictions.in(metrics, "disk")),
      writer_(std::make_unique<core::WorkerThread>()) {}

ChunkStore::~ChunkStore() {
  writer_.reset();
}

std::string ChunkStore::file_path(const std::string& file) const {
  return options_.dir + "/chunks/" + file;
}

core::Result<std::unique_ptr<ChunkStore>> ChunkStore::open(event_base& base, StoreOptions options,
                                                           core::MetricsRegistry& metrics) {
  if (mkdir(options.dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return core::Error{"storage_error",
                       "cannot create data_dir " + options.dir + ": " + strerror(errno)};
  }
  for (const char* sub : {"/chunks", "/tmp", "/index"}) {
    std::string path = options.dir + sub;
    if (mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
      return core::Error{"storage_error", "cannot create " + path + ": " + strerror(errno)};
    }
  }
  auto env = stores::LmdbEnv::open(options.dir + "/index", size_t{1} << 30);
  if (!env) return env.error();
  std::unique_ptr<ChunkStore> store(
      new ChunkStore(base, std::move(options), std::move(env).value(), metrics));
  auto status = store->load_index();
  if (!status) return status.error();
  return store;
}

core::Status ChunkStore::load_index() {
  // Anything in tmp/ is a write that never completed.
  for (const auto& name : list_dir(options_.dir + "/tmp"))
    unlink((options_.dir + "/tmp/" + name).c_str());

  auto txn = stores::LmdbTxn::begin(env_, false);
  if (!txn) return txn.error();
  int rc = mdb_dbi_open(txn->get(), "chunks", MDB_CREATE, &dbi_);
  if (rc != 0) return stores::lmdb_error("mdb_dbi_open", rc);

  struct Loaded {
    std::string key;
    ChunkMeta meta;
    std::string file;
  };
  std::vector<Loaded> loaded;
  std::vector<std::string> stale;
  auto walked = stores::for_each_record(
      *txn, dbi_, {}, [&](std::string_view key, std::string_view value) -> core::Result<bool> {
        Loaded item;
        item.key = std::string(key);
        struct stat st {};
        Decoded decoded = decode(value, item.meta, item.file);
        if (decoded == Decoded::bad || stat(file_path(item.file).c_str(), &st) != 0 ||
            static_cast<uint64_t>(st.st_size) != item.meta.size) {
          stale.push_back(item.key);
          return true;
        }
        if (decoded == Decoded::v1 && options_.upgrade_legacy &&
            !options_.upgrade_legacy(item.key, item.meta)) {
          stale.push_back(item.key);  // its file goes with the unreferenced ones below
          return true;
        }
        loaded.push_back(std::move(item));
        return true;
      });
  if (!walked) return walked;
  for (const auto& key : stale) {
    MDB_val dk = stores::mdb_val(key);
    mdb_del(txn->get(), dbi_, &dk, nullptr);
  }
  auto committed = txn->commit();
  if (!committed) return committed;

  std::sort(loaded.begin(), loaded.end(),
            [](const Loaded& a, const Loaded& b) { return a.meta.stored_at > b.meta.stored_at; });
  std::unordered_set<std::string> referenced;
  for (auto& item : loaded) {
    referenced.insert(item.file);
    uint64_t size = item.meta.size;
    disk_insert(item.key, size, DiskEntry{std::move(item.meta), std::move(item.file)},
                /*oldest=*/true);
  }
  // Files without an index entry were renamed but never committed.
  size_t orphans = 0;
  for (const auto& name : list_dir(options_.dir + "/chunks")) {
    if (!referenced.count(name)) {
      unlink(file_path(name).c_str());
      ++orphans;
    }
  }
  LOG_INFO(kLog, "store loaded: ", disk_.size(), " chunk(s), ", disk_.used_bytes(),
           " bytes on disk; dropped ", stale.size(), " stale index entr(ies) and ", orphans,
           " orphan file(s)");
  evict_disk(0);
  return {};
}

uint64_t ChunkStore::memory_used() const {
  std::lock_guard lock(mutex_);
  return memory_.used_bytes() + disk_index_memory_ + pending_writes_ * kPendingWriteOverhead;
}
size_t ChunkStore::memory_entries() const {
  std::lock_guard lock(mutex_);
  return memory_.size();
}
uint64_t ChunkStore::disk_used() const {
  std::lock_guard lock(mutex_);
  return disk_.used_bytes();
}
size_t ChunkStore::disk_entries() const {
  std::lock_guard lock(mutex_);
  return disk_.size();
}
size_t ChunkStore::pending_writes() const {
  std::lock_guard lock(mutex_);
  return pending_writes_;
}

std::optional<StoreHit> ChunkStore::find(const std::string& key, ReadBy by) {
  std::lock_guard lock(mutex_);
  if (auto* m = memory_.touch(key)) {
    if (by == ReadBy::viewer) ++m->viewer_reads;
    return StoreHit{m->meta, m->body, {}};
  }
  if (auto* d = disk_.touch(key)) return StoreHit{d->meta, nullptr, file_path(d->file)};
  return std::nullopt;
}

std::optional<uint64_t> ChunkStore::viewer_reads(const std::string& key) const {
  std::lock_guard lock(mutex_);
  const MemoryEntry* m = memory_.peek(key);
  return m ? std::optional<uint64_t>(m->viewer_reads) : std::nullopt;
}

void ChunkStore::evict_disk(uint64_t reserve) {
  while (true) {
    const bool for_count = disk_.over_entries();
    auto victim = disk_.evict_one(reserve);
    if (!victim) break;
    evictions_disk_.inc();
    if (for_count) entry_limit_evictions_disk_.inc();
    disk_forget(*victim);
    post_delete(victim->key, victim->value.file);
  }
  // The disk index is memory too: the memory tier makes room for it.
  evict_memory();
}

void ChunkStore::evict_memory() {
  while (true) {
    const bool for_count = memory_.over_entries();
    if (!memory_.evict_one(disk_index_memory_ + pending_writes_ * kPendingWriteOverhead)) break;
    evictions_memory_.inc();
    if (for_count) entry_limit_evictions_memory_.inc();
  }
  // The memory tier has nothing left to give and the disk index (memory too) is still past
  // the budget: the index gives way, its oldest chunks leaving the disk.
  while (memory_.size() == 0 &&
         disk_index_memory_ + pending_writes_ * kPendingWriteOverhead > memory_.max_bytes()) {
    auto victim = disk_.evict_oldest();
    if (!victim) break;
    evictions_disk_.inc();
    disk_forget(*victim);
    post_delete(victim->key, victim->value.file);
  }
}

void ChunkStore::disk_insert(const std::string& key, uint64_t size, DiskEntry entry, bool oldest) {
  if (auto old = disk_.erase(key)) disk_forget(*old);
  disk_index_memory_ += disk_index_cost(key, entry.meta, entry.file);
  if (oldest) {
    disk_.insert_oldest(key, size, std::move(entry));
  } else {
    disk_.insert(key, size, std::move(entry));
  }
}

void ChunkStore::disk_forget(const LruIndex<DiskEntry>::Entry& entry) {
  disk_index_memory_ -= disk_index_cost(entry.key, entry.value.meta, entry.value.file);
}

void ChunkStore::post_delete(const std::string& key, const std::string& file) {
  std::string path = file_path(file);
  writer_->post([this, path, key] {
    unlink(path.c_str());
    auto txn = stores::LmdbTxn::begin(env_, false);
    if (!txn) return;
    MDB_val k = stores::mdb_val(key);
    mdb_del(txn->get(), dbi_, &k, nullptr);
    (void)txn->commit();
  });
}

void ChunkStore::post_index_update(const std::string& key, const ChunkMeta& meta,
                                   const std::string& file) {
  writer_->post([this, key, record = encode(meta, file)] {
    auto txn = stores::LmdbTxn::begin(env_, false);
    if (!txn) return;
    MDB_val k = stores::mdb_val(key), existing;
    // Only an entry that exists: a write that failed or an erase since leaves none.
    if (mdb_get(txn->get(), dbi_, &k, &existing) != 0) return;
    MDB_val v = stores::mdb_val(record);
    if (mdb_put(txn->get(), dbi_, &k, &v, 0) == 0) (void)txn->commit();
  });
}

void ChunkStore::refresh(const std::string& key, const ChunkMeta& meta) {
  std::lock_guard lock(mutex_);
  if (auto* m = memory_.touch(key); m != nullptr && m->meta.size == meta.size) {
    std::shared_ptr<const ChunkBody> body = m->body;
    const uint64_t cost = memory_entry_cost(key, meta, body.get());
    memory_.insert(key, cost, MemoryEntry{meta, std::move(body), m->viewer_reads});
    evict_memory();
  }
  if (auto p = pending_.find(key); p != pending_.end() && p->second.meta.size == meta.size) {
    p->second.meta = meta;
    post_index_update(key, meta, file_name_for(key));  // runs after the queued write
  }
  if (auto* d = disk_.touch(key); d != nullptr && d->meta.size == meta.size) {
    disk_index_memory_ += disk_index_cost(key, meta, d->file);
    disk_index_memory_ -= disk_index_cost(key, d->meta, d->file);
    d->meta = meta;
    post_index_update(key, meta, d->file);
  }
}

void ChunkStore::erase(const std::string& key) {
  std::lock_guard lock(mutex_);
  memory_.erase(key);
  bool pending = pending_.erase(key) > 0;
  std::optional<LruIndex<DiskEntry>::Entry> on_disk = disk_.erase(key);
  if (on_disk) disk_forget(*on_disk);
  // Queued after any pending write of this key, so that write's file goes too.
  if (on_disk || pending) post_delete(key, on_disk ? on_disk->value.file : file_name_for(key));
}

// ---- put: memory, then disk in the background ----

void ChunkStore::put(const std::string& key, const ChunkMeta& meta,
                     std::shared_ptr<const ChunkBody> body) {
  std::lock_guard lock(mutex_);
  keep_in_memory(key, meta, body);
  const bool outdated = forget_disk_copy(key);
  evict_memory();
  // A queued write holds its body until written: counted at what it holds.
  const uint64_t pending_cost = body->allocated_bytes() + kPendingWriteOverhead;
  if (!admit_disk_write(meta.size, pending_cost)) {
    // Kept in memory only: an older file of this key must not outlive it.
    if (outdated) post_delete(key, file_name_for(key));
    return;
  }
  queue_disk_write(key, meta, std::move(body), pending_cost);
}

void ChunkStore::keep_in_memory(const std::string& key, const ChunkMeta& meta,
                                const std::shared_ptr<const ChunkBody>& body) {
  const uint64_t cost = memory_entry_cost(key, meta, body.get());
  if (cost <= memory_.max_bytes()) {
    const MemoryEntry* older = memory_.peek(key);
    memory_.insert(key, cost, MemoryEntry{meta, body, older ? older->viewer_reads : 0});
  } else {
    memory_.erase(key);  // an older copy must not shadow this one
  }
}

bool ChunkStore::forget_disk_copy(const std::string& key) {
  bool outdated = pending_.erase(key) > 0;
  if (auto old = disk_.erase(key)) {
    disk_forget(*old);
    outdated = true;
  }
  return outdated;
}

bool ChunkStore::admit_disk_write(uint64_t size, uint64_t pending_cost) {
  const uint64_t max_pending = options_.max_pending_write_bytes > 0
                                   ? options_.max_pending_write_bytes
                                   : std::max<uint64_t>(options_.memory_bytes / 4, 16ull << 20);
  // One write is always allowed to queue, whatever it holds.
  const bool queue_full =
      pending_writes_ > 0 && (pending_write_bytes_ + pending_cost > max_pending ||
                              pending_writes_ >= options_.max_pending_writes);
  if (queue_full) disk_writes_skipped_.inc();
  return size <= disk_.max_bytes() && !queue_full;
}

void ChunkStore::queue_disk_write(const std::string& key, const ChunkMeta& meta,
                                  std::shared_ptr<const ChunkBody> body, uint64_t pending_cost) {
  evict_disk(meta.size);
  std::string file = file_name_for(key);
  std::string tmp = options_.dir + "/tmp/" + file + "." + std::to_string(++write_counter_);
  std::string final_path = file_path(file);
  std::string chunks_dir = options_.dir + "/chunks";
  ++pending_writes_;
  pending_write_bytes_ += pending_cost;
  evict_memory();  // room for this write's share of the memory budget (kPendingWriteOverhead)
  const uint64_t id = write_counter_;
  pending_[key] = PendingWrite{id, meta};
  // No guard: the store joins its writer before it goes, and its poster goes with it.
  core::run_there_answer_here(
      *writer_, poster_, core::LifetimeWatch::forever(),
      [this, key, meta, body = std::move(body), file, tmp, final_path, chunks_dir] {
        std::string error = write_file_durably(*body, tmp, final_path, chunks_dir);
        if (error.empty()) {
          error = write_index_record(key, encode(meta, file));
          // Renamed but not indexed: nothing vouches for the file, and on a full disk
          // its space is what the next chunk needs (an older copy's entry, if any, now
          // names a missing file and is dropped at the next start).
          if (!error.empty()) unlink(final_path.c_str());
        }
        return error;
      },
      [this, key, meta, file, id, pending_cost](std::string error) {
        finish_disk_write(key, meta, file, error, id, pending_cost);
      });
}

std::string ChunkStore::write_index_record(const std::string& key, const std::string& record) {
  auto txn = stores::LmdbTxn::begin(env_, false);
  if (!txn) return "index: " + txn.error().message;
  MDB_val k = stores::mdb_val(key), v = stores::mdb_val(record);
  if (int rc = mdb_put(txn->get(), dbi_, &k, &v, 0); rc != 0)
    return std::string("index: mdb_put: ") + mdb_strerror(rc);
  if (auto committed = txn->commit(); !committed) return "index: " + committed.error().message;
  return {};
}

void ChunkStore::finish_disk_write(const std::string& key, const ChunkMeta& meta,
                                   const std::string& file, const std::string& error, uint64_t id,
                                   uint64_t pending_cost) {
  std::lock_guard lock(mutex_);
  --pending_writes_;
  pending_write_bytes_ -= pending_cost;
  auto pending = pending_.find(key);
  const bool latest = pending != pending_.end() && pending->second.id == id;
  ChunkMeta current = latest ? std::move(pending->second.meta) : meta;
  if (latest) pending_.erase(pending);
  if (!error.empty()) {
    disk_write_errors_.inc();
    LOG_WARN_LIMITED(kLog, "disk write failed for a chunk (", meta.size,
                     " bytes; served from memory only): ", error);
    return;
  }
  disk_writes_.inc();
  // Erased or stored again since: that later operation owns the file now.
  if (!latest) return;
  disk_insert(key, meta.size, DiskEntry{std::move(current), file});
  evict_disk(0);
}

}  // namespace cache_node
