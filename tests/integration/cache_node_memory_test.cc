// A cache node's memory under a flood of tiny objects, and the query policy
// that keeps a new query string from being a new origin fetch. Real cache_node
// and test_origin processes; the node's own figures are checked against the
// process's resident memory (/proc/<pid>/status).
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// Resident memory of `pid` in bytes: `field` of /proc/<pid>/status ("VmRSS", "RssAnon").
int64_t proc_status_bytes(int pid, const std::string& field) {
  return proc_status_kib(pid, field) * 1024;
}

// GETs `targets` one after another on one kept-alive HTTP/1.1 connection (the
// test client must not be what limits the rate); returns how many answered 200
// with a body of `body_size`.
size_t get_all_on_one_connection(int port, const std::vector<std::string>& targets,
                                 size_t body_size) {
  int fd = connect_loopback(port, 5s);
  if (fd < 0) return 0;
  size_t ok = 0;
  std::string buffer;
  char chunk[16384];
  for (const auto& target : targets) {
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size()))
      break;
    size_t head_end = std::string::npos;
    size_t length = 0;
    bool complete = false;
    for (int reads = 0; reads < 1000 && !complete; ++reads) {
      if (head_end == std::string::npos &&
          (head_end = buffer.find("\r\n\r\n")) != std::string::npos) {
        auto at = buffer.find("Content-Length: ");
        length = at < head_end ? std::stoul(buffer.substr(at + 16)) : 0;
      }
      if (head_end != std::string::npos && buffer.size() >= head_end + 4 + length) {
        complete = true;
        break;
      }
      ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    if (!complete) break;
    if (buffer.rfind("HTTP/1.1 200", 0) == 0 && length == body_size) ++ok;
    buffer.erase(0, head_end + 4 + length);
  }
  close(fd);
  return ok;
}

// Floods a node whose memory tier is `memory_mb` and holds `max_entries` chunks
// with 20,000 distinct 300-byte chunks, more than either limit lets it hold (4 clients,
// kept-alive connections), and checks that what /health says the node holds and what
// its resident memory grew by agree, within the margin docs/cache_node.md states, and
// that the limits hold. Under a sanitizer, where RSS says nothing, the flood and the
// entry bound are a quarter, the memory tier half the size: each limit is reached all
// the same, in a quarter of the time (a minute or two less per pass).
void flood_and_compare(int memory_mb, size_t max_entries) {
  TempDir dir;
  TestOrigin origin;
  if (!servers_sanitizer().empty()) {
    memory_mb /= 2;
    max_entries /= 4;
  }
  const size_t objects = servers_sanitizer().empty() ? 20000 : 5000;
  constexpr size_t kBodySize = 300;
  const int64_t limit = static_cast<int64_t>(memory_mb) << 20;
  CacheNodeProcess node(dir.file("data"), origin.base_url(),
                        {"storage.memory_mb=" + std::to_string(memory_mb),
                         "storage.max_entries=" + std::to_string(max_entries)});
  const int pid = node.process().pid();
  auto signer = signing::UrlSigner::create({kSigningKey});
  REQUIRE(signer.ok());
  const int64_t expires = static_cast<int64_t>(time(nullptr)) + 600;
  // Warm the node (first fetch, client and allocator set-up) before the baseline.
  REQUIRE(get_all_on_one_connection(node.port(), {signer->sign("/o/demo/gen/300/warm.ts", expires)},
                                    kBodySize) == 1);
  const int64_t rss_before = proc_status_bytes(pid, "VmRSS");
  const int64_t anon_before = proc_status_bytes(pid, "RssAnon");
  const int64_t used_before = node.health_number("memory_used_bytes");
  REQUIRE(rss_before > 0);

  constexpr size_t kClients = 4;
  std::vector<std::vector<std::string>> targets(kClients);
  for (size_t i = 0; i < objects; ++i) {
    targets[i % kClients].push_back(
        signer->sign("/o/demo/gen/300/flood/" + std::to_string(i) + ".ts", expires));
  }
  std::atomic<size_t> ok{0};
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (size_t c = 0; c < kClients; ++c) {
    clients.emplace_back(
        [&, c] { ok += get_all_on_one_connection(node.port(), targets[c], kBodySize); });
  }
  for (auto& t : clients) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  REQUIRE(ok.load() == objects);

  const int64_t rss_after = proc_status_bytes(pid, "VmRSS");
  const int64_t anon_after = proc_status_bytes(pid, "RssAnon");
  const int64_t used = node.health_number("memory_used_bytes");
  const int64_t memory_chunks = node.health_number("memory_chunks");
  const int64_t disk_chunks = node.health_number("disk_chunks");
  MESSAGE("memory_mb=", memory_mb, " max_entries=", max_entries, ": ", objects, " objects of ",
          kBodySize, " B in ", seconds, " s; VmRSS ", rss_before >> 10, " KiB -> ", rss_after >> 10,
          " KiB, RssAnon ", anon_before >> 10, " KiB -> ", anon_after >> 10,
          " KiB, memory_used_bytes ", used_before, " -> ", used, ", memory chunks ", memory_chunks,
          ", disk chunks ", disk_chunks);
  CHECK(memory_chunks <= static_cast<int64_t>(max_entries));
  CHECK(disk_chunks <= static_cast<int64_t>(max_entries));
  // Within one small entry of the limit (read between an insert and its eviction). Once
  // under ASan 824 bytes over, once under TSan 0.6 MB: the disk index (the TSan case for
  // certain) outgrew an empty memory tier, before the disk tier gave way to it
  // (chunk_store_test).
  CHECK(used <= limit + (64 << 10));
  // What the node says it holds and what the process grew by agree within the
  // stated margin (docs/cache_node.md): a quarter of the growth, at least 8 MiB
  // (allocator slack per loop thread, connections, the disk writer's queue).
  const int64_t grew = rss_after - rss_before;
  const int64_t accounted = used - used_before;
  const int64_t margin = std::max<int64_t>(grew / 4, 8ll << 20);
  CHECK(accounted > 0);
  if (!servers_sanitizer().empty()) {
    // Sanitizer builds: the system allocator plus shadow memory, redzones and quarantine
    // make RSS say nothing about what the node holds; the counts and limits above still hold.
    MESSAGE("sanitizer build: RSS agreement not checked (grew ", grew, ", accounted ", accounted,
            ")");
    (void)margin;
  } else {
    CHECK(std::llabs(grew - accounted) <= margin);
    CHECK(grew <= limit + margin);
  }
}

}  // namespace

TEST_CASE(
    "a flood of tiny distinct objects: the entry bound holds and memory_used_bytes follows the "
    "process's memory") {
  flood_and_compare(/*memory_mb=*/32, /*max_entries=*/10000);
}

TEST_CASE(
    "a flood of tiny distinct objects: the byte limit holds, counting what entries hold, not body "
    "bytes") {
  flood_and_compare(/*memory_mb=*/8, /*max_entries=*/100000);
}

TEST_CASE(
    "an idle keep-alive connection holds under 1 KiB after its request: no request buffers, no "
    "reply buffer, no spare events") {
  NodeOnOrigin n({"server.max_connections_per_address=0"});
  const std::string request = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
  auto answered = [](const std::string& bytes) { return !split_responses(bytes).empty(); };
  // One connection first: what every server holds once it has answered (routes, health).
  const int first = connect_loopback(n.node.port(), 5s);
  REQUIRE(first >= 0);
  REQUIRE(send(first, request.data(), request.size(), MSG_NOSIGNAL) > 0);
  REQUIRE(answered(read_raw(first, answered).bytes));
  close(first);
  const int64_t before = proc_status_bytes(n.node.pid(), "VmRSS");
  constexpr int kConnections = 2000;
  std::vector<int> fds;
  for (int i = 0; i < kConnections; ++i) {
    const int fd = connect_loopback(n.node.port(), 5s);
    REQUIRE(fd >= 0);
    fds.push_back(fd);
    REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) > 0);
  }
  int ok = 0;
  for (int fd : fds) ok += answered(read_raw(fd, answered).bytes) ? 1 : 0;
  const int64_t held = proc_status_bytes(n.node.pid(), "VmRSS") - before;
  for (int fd : fds) close(fd);
  CHECK(ok == kConnections);
  const int64_t per_connection = held / kConnections;
  MESSAGE("resident memory per idle keep-alive connection: ", per_connection, " bytes");
  if (!servers_sanitizer().empty()) {
    MESSAGE("sanitizer build: redzones and shadow memory, the bound not checked");
  } else {
    // 2,183 bytes before the request's buffers, the reply's evbuffer and two of four events
    // were made per request or on need; nginx holds ~520 on the same measure.
    CHECK(per_connection < 1024);
  }
}

TEST_CASE(
    "query policy: 1,000 query strings on one chunk path are one origin fetch by default, 1,000 "
    "with keep") {
  TempDir dir;
  TestOrigin origin;
  constexpr int kQueries = 1000;
  const std::string path = "/gen/2K/query.ts";
  auto run = [&](const std::string& data, const std::string& policy_override) {
    CacheNodeProcess node(dir.file(data), origin.base_url(),
                          {policy_override, "signing.required=false"});
    std::vector<std::string> targets;
    for (int i = 0; i < kQueries; ++i)
      targets.push_back("/o/demo" + path + "?session=" + std::to_string(i));
    CHECK(get_all_on_one_connection(node.port(), targets, 2048) == kQueries);
    auto r = http_get(node.url("/o/demo" + path + "?session=last"));
    CHECK(r.body == generated_body("query.ts", 2048));
    return r;
  };
  REQUIRE(origin.reset());
  auto ignored = run("data-default", "origins.demo.query=null");  // the default policy
  CHECK(origin.count(path) == 1);
  CHECK(origin.count(path + "?session=0") == 0);  // fetched without the query
  CHECK(ignored.header("X-Cache") == std::optional<std::string>("HIT"));

  REQUIRE(origin.reset());
  run("data-keep", "origins.demo.query=\"keep\"");
  CHECK(origin.count(path) == kQueries + 1);
  CHECK(origin.count(path + "?session=0") == 1);

  // The balancer's run marker stays in the key under the default policy.
  REQUIRE(origin.reset());
  {
    CacheNodeProcess node(dir.file("data-brun"), origin.base_url(),
                          {"origins.demo.query=null", "signing.required=false"});
    CHECK(http_get(node.url("/o/demo" + path + "?brun=1&session=a")).status == 200);
    CHECK(http_get(node.url("/o/demo" + path + "?session=b&brun=1")).header("X-Cache") ==
          std::optional<std::string>("HIT"));
    CHECK(http_get(node.url("/o/demo" + path + "?brun=2")).header("X-Cache") ==
          std::optional<std::string>("MISS"));
    CHECK(origin.count(path + "?brun=1") == 1);
    CHECK(origin.count(path + "?brun=2") == 1);
  }
}
