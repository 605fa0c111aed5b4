// The cache node's data directory is a 4 MiB tmpfs and viewers ask for 12 chunks of 1 MiB:
// the disk fills after a few. Every chunk must still be served whole (from memory), the
// node must keep running and say why its writes fail, and what it left on disk must be a
// consistent index: no record pointing to a missing or short file. After a restart on the
// same full disk, every chunk is still served whole.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>

#include "support/balancer_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/fault_support.h"
#include "support/generated_body.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

constexpr int kChunks = 12;
constexpr size_t kChunkBytes = 1 << 20;

std::string chunk_name(int i) {
  return "full" + std::to_string(i) + ".ts";
}
std::string chunk_target(int i) {
  return "/o/demo/gen/1M/" + chunk_name(i);
}

double metric_of(const CacheNodeProcess& node, const std::string& series) {
  return series_value(http_get(node.url("/metrics")).body, series).value_or(-1);
}

}  // namespace

TEST_CASE(
    "disk full on the data dir: chunks are served whole from memory, write errors are named, the "
    "index stays intact") {
  TempDir dir;
  TmpfsMount disk(dir.file("data"), "4m");
  if (!disk.mounted()) {
    MESSAGE("skipped: no tmpfs for the data directory (" << disk.why() << ")");
    return;
  }
  TestOrigin origin;
  auto node = std::make_unique<CacheNodeProcess>(
      disk.path(), origin.base_url(), std::vector<std::string>{"signing.required=false"});
  std::vector<std::string> hashes;
  for (int i = 0; i < kChunks; ++i)
    hashes.push_back(sha256_hex(generated_body(chunk_name(i), kChunkBytes)));

  // Each chunk once (a miss), then again (a hit): whole and exact both times.
  int whole_first = 0, whole_second = 0, hits = 0;
  for (int i = 0; i < kChunks; ++i) {
    const HttpResponse r = http_get(node->url(chunk_target(i)), {}, 20s);
    whole_first += r.status == 200 && sha256_hex(r.body) == hashes[i] ? 1 : 0;
  }
  REQUIRE(wait_until([&] { return json_integer(node->health(), "pending_writes") == 0; }, 20s));
  for (int i = 0; i < kChunks; ++i) {
    const HttpResponse r = http_get(node->url(chunk_target(i)), {}, 20s);
    whole_second += r.status == 200 && sha256_hex(r.body) == hashes[i] ? 1 : 0;
    hits += r.header("X-Cache") == std::optional<std::string>("HIT") ? 1 : 0;
  }
  const double writes = metric_of(*node, "cache_disk_writes_total");
  const double write_errors = metric_of(*node, "cache_disk_write_errors_total");
  const int64_t disk_chunks = json_integer(node->health(), "disk_chunks").value_or(-1);
  const int64_t used = disk.used_bytes();
  const std::string log = node->process().stderr_text();
  int64_t origin_fetches = 0;
  for (int i = 0; i < kChunks; ++i) origin_fetches += origin.count("/gen/1M/" + chunk_name(i));
  MESSAGE(kChunks << " chunks of 1 MiB on a 4 MiB data dir: " << whole_first
                  << " whole on the miss, " << whole_second << " whole on the second request ("
                  << hits << " hits); disk writes " << writes << " ok, " << write_errors
                  << " failed; " << disk_chunks << " chunks on disk, " << used / 1024
                  << " KiB of the tmpfs used; " << origin_fetches << " origin fetches");
  CHECK(whole_first == kChunks);
  CHECK(whole_second == kChunks);
  CHECK(hits == kChunks);
  CHECK(origin_fetches == kChunks);
  CHECK(node->process().running());
  CHECK(writes >= 1);
  CHECK(write_errors >= kChunks - 4);
  CHECK(writes + write_errors == kChunks);
  CHECK(disk_chunks == static_cast<int64_t>(writes));
  // The log says what failed and why.
  CHECK(log.find("disk write failed") != std::string::npos);
  CHECK(log.find("No space left on device") != std::string::npos);
  // A failed write leaves nothing behind: the space goes to the next chunk.
  CHECK(used < static_cast<int64_t>((writes + 1) * kChunkBytes));

  node->stop();
  const ChunkIndexCheck index = check_chunk_index(disk.path());
  MESSAGE("index after a clean stop: " << index.summary());
  CHECK(index.intact());
  CHECK(index.entries == static_cast<size_t>(writes));
  CHECK(index.orphan_files == 0);
  CHECK(index.tmp_files == 0);

  // Restart on the same (full) disk: the chunks on disk are hits, the others come again
  // from origin, all whole.
  node->start();
  int whole_after = 0, disk_hits = 0;
  for (int i = 0; i < kChunks; ++i) {
    const HttpResponse r = http_get(node->url(chunk_target(i)), {}, 20s);
    whole_after += r.status == 200 && sha256_hex(r.body) == hashes[i] ? 1 : 0;
    disk_hits += r.header("X-Cache") == std::optional<std::string>("HIT") ? 1 : 0;
  }
  REQUIRE(wait_until([&] { return json_integer(node->health(), "pending_writes") == 0; }, 20s));
  node->stop();
  const ChunkIndexCheck again = check_chunk_index(disk.path());
  MESSAGE("after a restart: " << whole_after << " whole, " << disk_hits
                              << " hits from disk; index: " << again.summary());
  CHECK(whole_after == kChunks);
  CHECK(disk_hits == static_cast<int>(writes));
  CHECK(again.intact());
}
