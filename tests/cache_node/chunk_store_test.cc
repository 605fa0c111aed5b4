// ChunkStore on a real LMDB in a temp dir: persistence, partial-write recovery,
// bounded tiers, and the block body's zero-copy references.
#include <dirent.h>
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "cache_node/store/chunk_body.h"
#include "cache_node/store/chunk_store.h"
#include "core/handles.h"
#include "stores/lmdb.h"
#include "support/process.h"

using namespace cache_node;

namespace {

std::shared_ptr<ChunkBody> body_of(const std::string& bytes, size_t block = 1000) {
  auto body = std::make_shared<ChunkBody>(block);
  body->append(bytes);
  return body;
}

ChunkMeta meta_of(size_t size) {
  ChunkMeta m;
  m.size = size;
  m.stored_at = 1000;
  m.content_type = "video/mp2t";
  m.etag = "\"e\"";
  return m;
}

// Lets the store's background writes report back on the loop.
bool settle(event_base* base, ChunkStore& store) {
  return balancer::test::wait_until(
      [&] {
        event_base_loop(base, EVLOOP_NONBLOCK);
        return store.pending_writes() == 0;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(2));
}

// What every store test opens its store with (a doctest fixture): a temp dir (the store in
// <dir>/s), a loop for the background writes, a metrics registry.
struct StoreEnv {
  balancer::test::TempDir dir;
  core::EventBasePtr base{event_base_new()};
  core::MetricsRegistry metrics;
  std::string root = dir.path() + "/s";
};

// Records as an older version wrote them, put straight into the LMDB index under `root`, and
// each one's chunk file (five bytes) beside: (key, record, file name).
struct RawRecord {
  std::string key, record, file;
};
void put_raw_records(const std::string& root, const std::vector<RawRecord>& records) {
  auto env = stores::LmdbEnv::open(root + "/index", size_t{1} << 30);
  REQUIRE(env.ok());
  auto txn = stores::LmdbTxn::begin(*env, false);
  REQUIRE(txn.ok());
  MDB_dbi dbi = 0;
  REQUIRE(mdb_dbi_open(txn->get(), "chunks", MDB_CREATE, &dbi) == 0);
  for (const auto& r : records) {
    MDB_val k = stores::mdb_val(r.key), v = stores::mdb_val(r.record);
    REQUIRE(mdb_put(txn->get(), dbi, &k, &v, 0) == 0);
    std::ofstream(root + "/chunks/" + r.file) << "12345";
  }
  REQUIRE(txn->commit().ok());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("chunk body: appends across blocks and hands out exact byte ranges") {
  std::string bytes;
  for (int i = 0; i < 2500; ++i) bytes.push_back(static_cast<char>(i * 7));
  auto body = body_of(bytes.substr(0, 999));
  body->append(bytes.substr(999));
  CHECK(body->size() == 2500);
  CHECK(body->copy() == bytes);
  http::BodyBuffer out;
  body->add_to(out, 990, 2010);
  evbuffer* native = static_cast<evbuffer*>(out.native());
  std::string got(evbuffer_get_length(native), '\0');
  evbuffer_copyout(native, got.data(), got.size());
  CHECK(got == bytes.substr(990, 1020));
}

TEST_CASE(
    "chunk body: holds about its bytes, not a block: exact when the length is known, cut when "
    "complete") {
  ChunkBody unknown;  // no announced length: starts small, grows with the body
  unknown.append(std::string(300, 'a'));
  CHECK(unknown.allocated_bytes() < ChunkBody::kDefaultMaxBlock);
  unknown.finish();
  CHECK(unknown.size() == 300);
  CHECK(unknown.allocated_bytes() == 300 + ChunkBody::kBodyOverhead + ChunkBody::kBlockOverhead);
  CHECK(unknown.copy() == std::string(300, 'a'));

  ChunkBody announced;
  announced.expect(5000);
  for (int i = 0; i < 5; ++i) announced.append(std::string(1000, char('a' + i)));
  CHECK(announced.allocated_bytes() == 5000 + ChunkBody::kBodyOverhead + ChunkBody::kBlockOverhead);

  // A large body without a length: growth is geometric, the unused tail never
  // more than the body so far, none once complete.
  ChunkBody large(64 * 1024);
  std::string bytes;
  for (int i = 0; i < 300000; ++i) bytes.push_back(static_cast<char>(i * 13));
  for (size_t at = 0; at < bytes.size(); at += 7000) {
    large.append(std::string_view(bytes).substr(at, 7000));
    CHECK(large.allocated_bytes() <= 2 * large.size() + 16 * 1024 + 64 * ChunkBody::kBlockOverhead);
  }
  http::BodyBuffer held;  // a reader referencing the last block while it is cut
  large.add_to(held, 290000, 300000);
  large.finish();
  CHECK(large.copy() == bytes);
  CHECK(large.allocated_bytes() - ChunkBody::kBodyOverhead <
        bytes.size() + 16 * ChunkBody::kBlockOverhead);
  evbuffer* native = static_cast<evbuffer*>(held.native());
  std::string got(evbuffer_get_length(native), '\0');
  evbuffer_copyout(native, got.data(), got.size());
  CHECK(got == bytes.substr(290000));
  http::BodyBuffer after;
  large.add_to(after, 1000, 299999);
  native = static_cast<evbuffer*>(after.native());
  got.assign(evbuffer_get_length(native), '\0');
  evbuffer_copyout(native, got.data(), got.size());
  CHECK(got == bytes.substr(1000, 298999));
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: memory used counts what entries hold, not body bytes, and max_entries bounds the "
    "count") {
  StoreOptions options{dir.path() + "/s", 1 << 20, 0};  // no disk tier: memory only
  options.max_entries = 50;
  auto store = ChunkStore::open(*base, options, metrics);
  REQUIRE(store.ok());
  for (int i = 0; i < 200; ++i) {
    auto body = std::make_shared<ChunkBody>();
    body->append(std::string(100, 'x'));
    body->finish();
    (*store)->put("demo/live/tiny-" + std::to_string(i) + ".ts?session=" + std::to_string(i),
                  meta_of(100), body);
  }
  CHECK((*store)->memory_entries() == 50);
  // Each entry costs its body, its key twice, its metadata and the index nodes.
  const uint64_t used = (*store)->memory_used();
  CHECK(used > 50 * 100 * 4);
  CHECK(used < 50 * 2048);
  CHECK(metrics.counter("cache_entry_limit_evictions_total", "", "tier=\"memory\"").value() == 150);
  CHECK((*store)->find("demo/live/tiny-199.ts?session=199").has_value());
  CHECK_FALSE((*store)->find("demo/live/tiny-0.ts?session=0").has_value());
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: viewers' reads are counted per key across its copies, the node's own are not") {
  StoreOptions options{dir.path() + "/s", 1 << 20, 0};  // no disk tier: memory only
  auto store = ChunkStore::open(*base, options, metrics);
  REQUIRE(store.ok());
  const std::string key = "demo/live/index.m3u8";
  CHECK_FALSE((*store)->viewer_reads(key).has_value());
  (*store)->put(key, meta_of(5), body_of("abcde"));
  CHECK((*store)->viewer_reads(key) == std::optional<uint64_t>(0));
  CHECK((*store)->find(key).has_value());
  CHECK((*store)->find(key, ChunkStore::ReadBy::viewer).has_value());
  CHECK((*store)->find(key, ChunkStore::ReadBy::node).has_value());
  CHECK((*store)->viewer_reads(key) == std::optional<uint64_t>(2));
  // A 304's refresh and a new body keep the count: it is the key's, not the copy's.
  ChunkMeta refreshed = meta_of(5);
  refreshed.fresh_until_ms = 5000;
  (*store)->refresh(key, refreshed);
  CHECK((*store)->viewer_reads(key) == std::optional<uint64_t>(2));
  (*store)->put(key, meta_of(6), body_of("abcdef"));
  CHECK((*store)->find(key).has_value());
  CHECK((*store)->viewer_reads(key) == std::optional<uint64_t>(3));
  (*store)->erase(key);
  CHECK_FALSE((*store)->viewer_reads(key).has_value());
}

TEST_CASE_FIXTURE(StoreEnv, "chunk store: chunks survive a reopen; memory and disk hits agree") {
  std::string bytes(5000, 'q');
  {
    auto store = ChunkStore::open(*base, {dir.path() + "/s", 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/a.ts", meta_of(bytes.size()), body_of(bytes));
    auto hit = (*store)->find("demo/a.ts");
    REQUIRE(hit.has_value());
    CHECK(hit->memory != nullptr);
    REQUIRE(settle(base.get(), **store));
    CHECK((*store)->disk_entries() == 1);
  }
  auto reopened = ChunkStore::open(*base, {dir.path() + "/s", 1 << 20, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  auto hit = (*reopened)->find("demo/a.ts");
  REQUIRE(hit.has_value());
  CHECK(hit->memory == nullptr);
  CHECK(hit->meta.etag == "\"e\"");
  CHECK(hit->meta.content_type == "video/mp2t");
  CHECK(read_file(hit->disk_path) == bytes);
  CHECK_FALSE((*reopened)->find("demo/other.ts").has_value());
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: partial writes and unindexed or short files are never served after restart") {
  std::string victim_path;
  {
    // A memory tier that holds the disk index but no 3000-byte body: every find() is a
    // disk hit that names its file.
    auto store = ChunkStore::open(*base, {root, 2048, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/good.ts", meta_of(3000), body_of(std::string(3000, 'g')));
    (*store)->put("demo/cut.ts", meta_of(3000), body_of(std::string(3000, 'c')));
    REQUIRE(settle(base.get(), **store));
    victim_path = (*store)->find("demo/cut.ts")->disk_path;
  }
  // As if killed mid-write: a temp file, an orphan file, and a truncated indexed file.
  std::ofstream(root + "/tmp/deadbeef.7") << "partial";
  std::ofstream(root + "/chunks/orphan0000") << "never indexed";
  REQUIRE(truncate(victim_path.c_str(), 100) == 0);
  auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
  REQUIRE(store.ok());
  CHECK((*store)->find("demo/good.ts").has_value());
  CHECK_FALSE((*store)->find("demo/cut.ts").has_value());
  struct stat st {};
  CHECK(stat((root + "/tmp/deadbeef.7").c_str(), &st) != 0);
  CHECK(stat((root + "/chunks/orphan0000").c_str(), &st) != 0);
  CHECK((*store)->disk_entries() == 1);
}

TEST_CASE_FIXTURE(StoreEnv,
                  "chunk store: both tiers stay within their byte limits, dropping the oldest") {
  auto store = ChunkStore::open(*base, {dir.path() + "/s", 25000, 35000}, metrics);
  REQUIRE(store.ok());
  for (int i = 0; i < 10; ++i) {
    (*store)->put("demo/" + std::to_string(i), meta_of(10000),
                  body_of(std::string(10000, char('a' + i))));
    CHECK((*store)->memory_used() <= 25000);
    REQUIRE(settle(base.get(), **store));
    CHECK((*store)->disk_used() <= 35000);
  }
  CHECK((*store)->find("demo/9").has_value());
  CHECK((*store)->find("demo/7").has_value());
  CHECK_FALSE((*store)->find("demo/0").has_value());
  CHECK_FALSE((*store)->find("demo/5").has_value());
  // Evicted files are deleted from disk too (by the writer thread).
  core::EventBasePtr base2(event_base_new());
  store->reset();
  auto reopened = ChunkStore::open(*base2, {dir.path() + "/s", 25000, 35000}, metrics);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->disk_entries() == 3);
  CHECK((*reopened)->disk_used() <= 35000);
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: a disk writer that falls behind makes new chunks memory-only instead of queueing "
    "them") {
  StoreOptions options{dir.path() + "/s", 1 << 20, 1 << 20};
  options.max_pending_write_bytes = 5000;
  auto store = ChunkStore::open(*base, options, metrics);
  REQUIRE(store.ok());
  // Nothing runs the loop, so no write completes: the first is queued, the next two are not.
  (*store)->put("demo/a.ts", meta_of(4000), body_of(std::string(4000, 'a')));
  (*store)->put("demo/b.ts", meta_of(4000), body_of(std::string(4000, 'b')));
  (*store)->put("demo/c.ts", meta_of(4000), body_of(std::string(4000, 'c')));
  CHECK((*store)->pending_writes() == 1);
  CHECK(metrics.counter("cache_disk_writes_skipped_total", "").value() == 2);
  // All three are served from memory meanwhile.
  for (const char* key : {"demo/a.ts", "demo/b.ts", "demo/c.ts"}) {
    auto hit = (*store)->find(key);
    REQUIRE(hit.has_value());
    CHECK(hit->memory != nullptr);
  }
  REQUIRE(settle(base.get(), **store));
  CHECK((*store)->disk_entries() == 1);
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: the disk index counts against the memory budget and gives way when nothing else "
    "can") {
  constexpr uint64_t kBudget = 8 << 10;
  auto store = ChunkStore::open(*base, {dir.path() + "/s", kBudget, 1 << 20}, metrics);
  REQUIRE(store.ok());
  // 200 tiny chunks, each written before the next: the disk's byte limit is far away, but
  // 200 index entries hold more than the memory budget.
  for (int i = 0; i < 200; ++i) {
    const std::string key = "demo/live/tiny-" + std::to_string(i) + ".ts";
    (*store)->put(key, meta_of(10), body_of(std::string(10, 'x')));
    REQUIRE(settle(base.get(), **store));
    INFO("after chunk ", i, ": ", (*store)->disk_entries(), " on disk, ",
         (*store)->memory_entries(), " in memory");
    CHECK((*store)->memory_used() <= kBudget);
    CHECK((*store)->find(key).has_value());  // the newest is kept
  }
  CHECK((*store)->disk_entries() < 100);
  CHECK(metrics.counter("cache_evictions_total", "", "tier=\"disk\"").value() > 100);
  CHECK_FALSE((*store)->find("demo/live/tiny-0.ts").has_value());  // the oldest went first
}

TEST_CASE_FIXTURE(StoreEnv, "chunk store: freshness deadlines survive a reopen") {
  ChunkMeta meta = meta_of(100);
  meta.cache_control = "max-age=5";
  meta.expires = "Thu, 01 Jan 2026 00:00:05 GMT";
  meta.last_modified = "Thu, 01 Jan 2026 00:00:00 GMT";
  meta.last_modified_is_ours = true;
  meta.vouched_ms = 1767225600123;
  meta.fresh_until_ms = 1767225605123;
  meta.stale_until_ms = 1767225635123;
  {
    auto store = ChunkStore::open(*base, {dir.path() + "/s", 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/f.ts", meta, body_of(std::string(100, 'f')));
    REQUIRE(settle(base.get(), **store));
  }
  auto reopened = ChunkStore::open(*base, {dir.path() + "/s", 1 << 20, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  auto hit = (*reopened)->find("demo/f.ts");
  REQUIRE(hit.has_value());
  CHECK(hit->meta.expires == meta.expires);
  CHECK(hit->meta.last_modified_is_ours);
  CHECK(hit->meta.vouched_ms == meta.vouched_ms);
  CHECK(hit->meta.fresh_until_ms == meta.fresh_until_ms);
  CHECK(hit->meta.stale_until_ms == meta.stale_until_ms);
  CHECK(hit->meta.cache_control == "max-age=5");
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: the upstream's Date and kept headers survive a reopen; v2 records still load") {
  ChunkMeta meta = meta_of(100);
  meta.origin_date = "Thu, 01 Jan 2026 00:00:00 GMT";
  meta.fresh_until_ms = 1767225605000;
  meta.refresh_grace_until_ms = 1767225615000;
  meta.kept_headers = "Content-Encoding: gzip\nVary: Accept-Encoding\nLink: <a.m4s>; rel=preload\n";
  {
    auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/k.m3u8", meta, body_of(std::string(100, 'k')));
    ChunkMeta bare = meta_of(100);
    (*store)->put("demo/bare.ts", bare, body_of(std::string(100, 'b')));
    REQUIRE(settle(base.get(), **store));
  }
  // A record exactly as the previous version wrote it (v2, thirteen fields).
  put_raw_records(root,
                  {{"demo/v2.ts",
                    "v2\n5\n1767225600\nvideo/mp2t\n\"e\"\nThu, 01 Jan 2026 00:00:00 "
                    "GMT\nmax-age=9\nlegacy0009\n\n0\n1767225600000\n4102444800000\n4102444800000",
                    "legacy0009"}});
  auto reopened = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  auto hit = (*reopened)->find("demo/k.m3u8");
  REQUIRE(hit.has_value());
  CHECK(hit->meta.origin_date == meta.origin_date);
  CHECK(hit->meta.refresh_grace_until_ms == meta.refresh_grace_until_ms);
  CHECK(hit->meta.kept_headers == meta.kept_headers);
  auto bare = (*reopened)->find("demo/bare.ts");
  REQUIRE(bare.has_value());
  CHECK(bare->meta.kept_headers.empty());
  CHECK(bare->meta.origin_date.empty());
  auto old = (*reopened)->find("demo/v2.ts");
  REQUIRE(old.has_value());
  CHECK(old->meta.cache_control == "max-age=9");
  CHECK(old->meta.fresh_until_ms == 4102444800000);
  CHECK(old->meta.kept_headers.empty());
  CHECK(old->meta.refresh_grace_until_ms == old->meta.fresh_until_ms);  // v2: no grace recorded
}

TEST_CASE(
    "chunk store: index entries written before freshness was kept still load, through the "
    "upgrade") {
  balancer::test::TempDir dir;
  const std::string root = dir.path() + "/s";
  for (const char* sub : {"", "/index", "/chunks", "/tmp"})
    REQUIRE(mkdir((root + sub).c_str(), 0750) == 0);
  // Records exactly as the previous version wrote them (v1, eight fields).
  auto v1 = [](const std::string& key, const std::string& cache_control, const std::string& file) {
    return RawRecord{key,
                     "v1\n5\n1767225600\nvideo/mp2t\n\"e\"\nThu, 01 Jan 2026 00:00:00 GMT\n" +
                         cache_control + "\n" + file,
                     file};
  };
  put_raw_records(
      root, {v1("demo/old.ts", "max-age=100", "legacy0001"), v1("demo/plain.ts", "", "legacy0002"),
             v1("demo/secret.ts", "private", "legacy0003")});
  core::EventBasePtr base(event_base_new());
  core::MetricsRegistry metrics;
  SUBCASE("without an upgrade: loaded with no deadline (stale), Age from the store time") {
    auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    auto hit = (*store)->find("demo/old.ts");
    REQUIRE(hit.has_value());
    CHECK(hit->meta.size == 5);
    CHECK(hit->meta.etag == "\"e\"");
    CHECK(hit->meta.vouched_ms == 1767225600000);
    CHECK(hit->meta.fresh_until_ms == 0);
    CHECK((*store)->disk_entries() == 3);
  }
  SUBCASE("with an upgrade: it fills the deadlines in or drops the entry (and its file)") {
    StoreOptions options{root, 1 << 20, 1 << 20};
    std::vector<std::string> asked;
    options.upgrade_legacy = [&](const std::string& key, ChunkMeta& meta) {
      asked.push_back(key);
      meta.fresh_until_ms = meta.vouched_ms + 1000;
      return meta.cache_control != "private";
    };
    auto store = ChunkStore::open(*base, options, metrics);
    REQUIRE(store.ok());
    CHECK(asked.size() == 3);
    auto hit = (*store)->find("demo/old.ts");
    REQUIRE(hit.has_value());
    CHECK(hit->meta.fresh_until_ms == 1767225601000);
    CHECK(hit->meta.cache_control == "max-age=100");
    CHECK((*store)->find("demo/plain.ts").has_value());
    CHECK_FALSE((*store)->find("demo/secret.ts").has_value());
    struct stat st {};
    CHECK(stat((root + "/chunks/legacy0003").c_str(), &st) != 0);
    CHECK(stat((root + "/chunks/legacy0001").c_str(), &st) == 0);
  }
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: refresh replaces the metadata and keeps the body, in both tiers and across a "
    "reopen") {
  ChunkMeta fresher = meta_of(3000);
  fresher.etag = "\"e2\"";
  fresher.vouched_ms = 5000;
  fresher.fresh_until_ms = 6000;
  {
    auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/settled.ts", meta_of(3000), body_of(std::string(3000, 's')));
    REQUIRE(settle(base.get(), **store));
    (*store)->refresh("demo/settled.ts", fresher);
    // Refreshed while its disk write is still queued: the write lands with the new metadata.
    (*store)->put("demo/pending.ts", meta_of(3000), body_of(std::string(3000, 'p')));
    (*store)->refresh("demo/pending.ts", fresher);
    // Another size is another body: left alone.
    ChunkMeta other_size = fresher;
    other_size.size = 7;
    (*store)->refresh("demo/settled.ts", other_size);
    REQUIRE(settle(base.get(), **store));
    for (const char* key : {"demo/settled.ts", "demo/pending.ts"}) {
      auto hit = (*store)->find(key);
      REQUIRE(hit.has_value());
      CHECK(hit->meta.etag == "\"e2\"");
      CHECK(hit->meta.fresh_until_ms == 6000);
      CHECK(hit->meta.size == 3000);
      CHECK(hit->memory->copy().size() == 3000);
    }
  }
  // A memory tier that holds the disk index but no body: what is found comes from disk.
  auto reopened = ChunkStore::open(*base, {root, 2048, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  for (const char* key : {"demo/settled.ts", "demo/pending.ts"}) {
    auto hit = (*reopened)->find(key);
    REQUIRE(hit.has_value());
    CHECK(hit->meta.etag == "\"e2\"");
    CHECK(hit->meta.vouched_ms == 5000);
    CHECK(read_file(hit->disk_path).size() == 3000);
  }
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: erase drops a copy from both tiers, also one whose disk write is still queued") {
  {
    auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/settled.ts", meta_of(100), body_of(std::string(100, 's')));
    (*store)->put("demo/kept.ts", meta_of(100), body_of(std::string(100, 'k')));
    REQUIRE(settle(base.get(), **store));
    (*store)->erase("demo/settled.ts");
    (*store)->put("demo/pending.ts", meta_of(100), body_of(std::string(100, 'p')));
    (*store)->erase("demo/pending.ts");
    (*store)->erase("demo/never.ts");  // nothing stored: no-op
    REQUIRE(settle(base.get(), **store));
    CHECK_FALSE((*store)->find("demo/settled.ts").has_value());
    CHECK_FALSE((*store)->find("demo/pending.ts").has_value());
    CHECK((*store)->disk_entries() == 1);
  }
  auto reopened = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->disk_entries() == 1);
  CHECK((*reopened)->find("demo/kept.ts").has_value());
  CHECK_FALSE((*reopened)->find("demo/pending.ts").has_value());
  // Nothing left behind but the kept chunk's file.
  size_t files = 0;
  if (DIR* d = opendir((root + "/chunks").c_str())) {
    while (dirent* e = readdir(d)) files += e->d_name[0] != '.';
    closedir(d);
  }
  CHECK(files == 1);
}

TEST_CASE_FIXTURE(
    StoreEnv,
    "chunk store: a disk write that fails keeps the chunk in memory, counts the error and leaves "
    "nothing") {
  auto count_files = [](const std::string& path) {
    size_t files = 0;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) files += e->d_name[0] != '.';
      closedir(d);
    }
    return files;
  };
  {
    auto store = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
    REQUIRE(store.ok());
    (*store)->put("demo/kept.ts", meta_of(100), body_of(std::string(100, 'k')));
    REQUIRE(settle(base.get(), **store));
    // The temp file cannot be created: tmp/ is not a directory any more (as root,
    // permissions would not stop the writer).
    REQUIRE(rmdir((root + "/tmp").c_str()) == 0);
    std::ofstream(root + "/tmp") << "in the way";
    (*store)->put("demo/no_tmp.ts", meta_of(3000), body_of(std::string(3000, 't')));
    REQUIRE(settle(base.get(), **store));
    REQUIRE(unlink((root + "/tmp").c_str()) == 0);
    REQUIRE(mkdir((root + "/tmp").c_str(), 0750) == 0);
    // Written, but the rename into chunks/ fails: the temp file goes.
    const std::string chunks = root + "/chunks";
    REQUIRE(rename(chunks.c_str(), (root + "/chunks.away").c_str()) == 0);
    std::ofstream(chunks) << "in the way";
    (*store)->put("demo/no_rename.ts", meta_of(3000), body_of(std::string(3000, 'r')));
    REQUIRE(settle(base.get(), **store));
    REQUIRE(unlink(chunks.c_str()) == 0);
    REQUIRE(rename((root + "/chunks.away").c_str(), chunks.c_str()) == 0);

    CHECK(metrics.counter("cache_disk_write_errors_total", "").value() == 2);
    CHECK(metrics.counter("cache_disk_writes_total", "").value() == 1);
    CHECK((*store)->disk_entries() == 1);
    for (const char* key : {"demo/no_tmp.ts", "demo/no_rename.ts"}) {
      auto hit = (*store)->find(key);
      REQUIRE(hit.has_value());
      CHECK(hit->memory != nullptr);
      CHECK(hit->memory->size() == 3000);
    }
    CHECK(count_files(root + "/tmp") == 0);
    CHECK(count_files(chunks) == 1);
  }
  auto reopened = ChunkStore::open(*base, {root, 1 << 20, 1 << 20}, metrics);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->disk_entries() == 1);
  CHECK((*reopened)->find("demo/kept.ts").has_value());
  CHECK_FALSE((*reopened)->find("demo/no_tmp.ts").has_value());
  CHECK_FALSE((*reopened)->find("demo/no_rename.ts").has_value());
}
