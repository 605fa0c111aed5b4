// ChunkStore on a real LMDB in a temp dir: persistence, partial-write recovery,
// bounded tiers, and the block body's zero-copy references.
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "cache_node/chunk_body.h"
#include "cache_node/chunk_store.h"
#include "common/handles.h"
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
  common::BodyBuffer out;
  body->add_to(out, 990, 2010);
  evbuffer* native = static_cast<evbuffer*>(out.native());
  std::string got(evbuffer_get_length(native), '\0');
  evbuffer_copyout(native, got.data(), got.size());
  CHECK(got == bytes.substr(990, 1020));
}

TEST_CASE("chunk store: chunks survive a reopen; memory and disk hits agree") {
  balancer::test::TempDir dir;
  common::EventBasePtr base(event_base_new());
  common::MetricsRegistry metrics;
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

TEST_CASE("chunk store: partial writes and unindexed or short files are never served after restart") {
  balancer::test::TempDir dir;
  common::EventBasePtr base(event_base_new());
  common::MetricsRegistry metrics;
  std::string root = dir.path() + "/s";
  std::string victim_path;
  {
    // A one-byte memory tier makes every find() a disk hit that names its file.
    auto store = ChunkStore::open(*base, {root, 1, 1 << 20}, metrics);
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

TEST_CASE("chunk store: both tiers stay within their byte limits, dropping the oldest") {
  balancer::test::TempDir dir;
  common::EventBasePtr base(event_base_new());
  common::MetricsRegistry metrics;
  auto store = ChunkStore::open(*base, {dir.path() + "/s", 25000, 35000}, metrics);
  REQUIRE(store.ok());
  for (int i = 0; i < 10; ++i) {
    (*store)->put("demo/" + std::to_string(i), meta_of(10000), body_of(std::string(10000, char('a' + i))));
    CHECK((*store)->memory_used() <= 25000);
    REQUIRE(settle(base.get(), **store));
    CHECK((*store)->disk_used() <= 35000);
  }
  CHECK((*store)->find("demo/9").has_value());
  CHECK((*store)->find("demo/7").has_value());
  CHECK_FALSE((*store)->find("demo/0").has_value());
  CHECK_FALSE((*store)->find("demo/5").has_value());
  // Evicted files are deleted from disk too (by the writer thread).
  common::EventBasePtr base2(event_base_new());
  store->reset();
  auto reopened = ChunkStore::open(*base2, {dir.path() + "/s", 25000, 35000}, metrics);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->disk_entries() == 3);
  CHECK((*reopened)->disk_used() <= 35000);
}

TEST_CASE("chunk store: a disk writer that falls behind makes new chunks memory-only instead of queueing them") {
  balancer::test::TempDir dir;
  common::EventBasePtr base(event_base_new());
  common::MetricsRegistry metrics;
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
