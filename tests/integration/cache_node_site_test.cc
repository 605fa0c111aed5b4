// Site sharding on real cache nodes: three nodes of one site agree on an owner
// per chunk (rendezvous hashing over site_nodes); a herd spread over the three
// costs origin one fetch per chunk, and killing the owner mid-herd still gives
// every viewer of the other nodes a byte-exact body. A request that names a
// sibling is believed only with the site's proof (signing/site_fetch.h).
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <thread>

#include "cache_node/rules/site_owner.h"
#include "signing/site_fetch.h"
#include "support/cache_node_fixture.h"
#include "support/generated_body.h"
#include "support/herd.h"
#include "support/sockets.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kPrefetchKey = "prefetch-key-integration-0001";
const std::string kSiteKey = "site-key-integration-00001";

struct Site {
  static constexpr size_t kNodes = 3;
  TempDir dir;
  TestOrigin origin;
  std::vector<std::string> ids = {"venue-a", "venue-b", "venue-c"};
  std::array<int, kNodes> ports{};
  std::vector<std::unique_ptr<CacheNodeProcess>> nodes;

  // `tap_port` > 0: the first node reaches the second through that port (a listener of the
  // test's, as a wiretap on their link sees its requests); the other nodes' lists are true.
  explicit Site(int tap_port = 0) {
    // Each node is named in its siblings' config before it starts.
    for (auto& port : ports) {
      port = free_loopback_port();
      REQUIRE(port > 0);
    }
    for (size_t i = 0; i < kNodes; ++i) {
      std::vector<std::string> overrides = {"signing.required=false",
                                            "node_id=\"" + ids[i] + "\"",
                                            "prefetch.keys=[\"" + kPrefetchKey + "\"]",
                                            "listen.port=" + std::to_string(ports[i]),
                                            "site_owner_wait_ms=2000",
                                            "site_key=\"" + kSiteKey + "\""};
      for (size_t j = 0; j < kNodes; ++j) {
        const int port = tap_port > 0 && i == 0 && j == 1 ? tap_port : ports[j];
        overrides.push_back("site_nodes." + ids[j] +
                            ".url=\"http://127.0.0.1:" + std::to_string(port) + "\"");
      }
      nodes.push_back(std::make_unique<CacheNodeProcess>(dir.file("data-" + ids[i]),
                                                         origin.base_url(), overrides));
    }
  }
  // The node owning `path` of origin "demo" (the key the nodes hash: origin id + path + kept
  // query).
  size_t owner_of(const std::string& path_and_query) const {
    return cache_node::site_owner(ids, "demo" + path_and_query);
  }
  // An object of the origin: its `path` ("/gen/4K/x.ts", no query) and the node that owns it.
  struct Object {
    std::string path;
    size_t owner;
  };
  Object object(const std::string& path) const { return {path, owner_of(path)}; }
  int64_t metric(size_t node, const std::string& series) const {
    std::string text = http_get(nodes[node]->url("/metrics")).body;
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::strtoll(text.c_str() + at + series.size() + 2, nullptr, 10);
  }
};

// One herd per node at once, all on `target`.
std::vector<HerdResult> herd_on_every_node(const Site& site, const std::string& target, int clients,
                                           size_t size) {
  std::vector<HerdResult> results(Site::kNodes);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < Site::kNodes; ++i) {
    threads.emplace_back([&, i] {
      HerdOptions options;
      options.url = site.nodes[i]->url(target);
      options.clients = clients;
      options.expect_size = size;
      results[i] = run_herd(options);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// A listener on 127.0.0.1 (port 0) that takes one connection and reads its request head: what
// a wiretap on a link between two nodes sees.
class RequestTap {
 public:
  RequestTap() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
  }
  ~RequestTap() {
    if (fd_ >= 0) ::close(fd_);
  }
  RequestTap(const RequestTap&) = delete;
  RequestTap& operator=(const RequestTap&) = delete;
  int port() const { return port_; }
  // The head of the first request within `limit` ("" if none); the connection is then closed.
  std::string next_head(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return std::string();
    const int conn = ::accept(fd_, nullptr, nullptr);
    if (conn < 0) return std::string();
    timeval timeout{5, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    RawRead read = read_raw(
        conn, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; });
    ::close(conn);
    return read.bytes.substr(0, read.bytes.find("\r\n\r\n"));
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The value of header `name` (exact case) in a request head, "" if absent.
std::string header_in_head(const std::string& head, const std::string& name) {
  const size_t at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return std::string();
  const size_t from = at + name.size() + 4;
  return head.substr(from, head.find("\r\n", from) - from);
}

// The wall clock in Unix seconds, as the site fetch header's stamp counts it.
int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("site: a herd spread over 3 nodes of one site costs origin one fetch per chunk") {
  Site site;
  constexpr size_t kSize = 256 << 10;
  std::array<int, Site::kNodes> owned{};
  for (int chunk = 0; chunk < 6; ++chunk) {
    const std::string name = "site" + std::to_string(chunk) + ".ts";
    const std::string path = "/gen/256K/" + name;
    // About half a second at origin: the three herds overlap its transfer.
    const std::string query = "?rate_kbps=4000";
    ++owned[site.owner_of(path + query)];
    auto herds = herd_on_every_node(site, "/o/demo" + path + query, 20, kSize);
    for (const auto& herd : herds) {
      REQUIRE(herd.setup_error.empty());
      CHECK(herd.ok_count() == 20);
      auto hashes = herd.hash_counts();
      REQUIRE(hashes.size() == 1);
      CHECK(hashes.begin()->first == body_hash(generated_body(name, kSize)));
    }
    CHECK(site.origin.count(path) == 1);
  }
  MESSAGE("chunks owned per node: " << owned[0] << ", " << owned[1] << ", " << owned[2]);
  int64_t sibling_fetches = 0, origin_fetches = 0, fallbacks = 0;
  for (size_t i = 0; i < Site::kNodes; ++i) {
    sibling_fetches += site.metric(i, "cache_sibling_fetches_total");
    origin_fetches += site.metric(i, "cache_origin_fetches_total");
    fallbacks += site.metric(i, "cache_sibling_fallbacks_total{reason=\"failed\"}") +
                 site.metric(i, "cache_sibling_fallbacks_total{reason=\"slow\"}");
  }
  CHECK(sibling_fetches == 12);  // the two other nodes asked the owner, once per chunk each
  CHECK(origin_fetches == 6);
  CHECK(fallbacks == 0);
}

TEST_CASE(
    "site: killing the owner mid-herd still gives the other nodes' viewers byte-exact bodies") {
  Site site;
  constexpr size_t kSize = 1 << 20;
  const std::string name = "owner-dies.ts";
  const std::string path = "/gen/1M/" + name;
  const std::string query = "?rate_kbps=4000";  // about two seconds at origin
  const size_t owner = site.owner_of(path + query);
  std::vector<size_t> others;
  for (size_t i = 0; i < Site::kNodes; ++i) {
    if (i != owner) others.push_back(i);
  }
  std::vector<HerdResult> results(others.size());
  std::vector<std::thread> threads;
  for (size_t k = 0; k < others.size(); ++k) {
    threads.emplace_back([&, k] {
      HerdOptions options;
      options.url = site.nodes[others[k]]->url("/o/demo" + path + query);
      options.clients = 20;
      options.expect_size = kSize;
      options.expect_hash = body_hash(generated_body(name, kSize));
      results[k] = run_herd(options);
    });
  }
  // Mid-body: both other nodes have bytes from the owner.
  const bool streaming = wait_until(
      [&] {
        for (size_t i : others) {
          if (site.metric(i, "cache_origin_bytes_total") <= 0) return false;
        }
        return true;
      },
      20s, 5ms);
  site.nodes[owner]->kill_hard();
  for (auto& t : threads) t.join();
  CHECK(streaming);
  for (size_t k = 0; k < others.size(); ++k) {
    REQUIRE(results[k].setup_error.empty());
    CHECK(results[k].ok_count() == 20);
    CHECK(site.metric(others[k], "cache_sibling_fallbacks_total{reason=\"failed\"}") == 1);
  }
  // The owner's fetch, then one per node that lost it.
  CHECK(site.origin.count(path) == 3);
}

TEST_CASE(
    "site: a node whose owner is down goes to origin at once, and a sibling's request is never "
    "sent on") {
  Site site;
  const auto [path, owner] = site.object("/gen/4K/down.ts");
  const size_t other = (owner + 1) % Site::kNodes;
  site.nodes[owner]->kill_hard();
  auto r = http_get(site.nodes[other]->url("/o/demo" + path), {}, 10s);
  CHECK(r.status == 200);
  CHECK(r.body == generated_body("down.ts", 4096));
  CHECK(site.metric(other, "cache_sibling_fallbacks_total{reason=\"failed\"}") == 1);
  // A request a sibling proved is fetched upstream by whoever gets it.
  const size_t third = (owner + 2) % Site::kNodes;
  const std::string other_path = "/gen/4K/marked.ts";
  const std::string target = "/o/demo" + other_path;
  const int64_t now = unix_seconds_now();
  auto marked = http_get(
      site.nodes[third]->url(target),
      {{"X-Site-Fetch",
        signing::site_fetch_header(kSiteKey, site.ids[other], site.ids[third], target, now)}});
  CHECK(marked.status == 200);
  CHECK(site.metric(third, "cache_sibling_fetches_total") == 0);
  CHECK(site.origin.count(other_path) == 1);
}

TEST_CASE(
    "site: a viewer naming a sibling is refused, so it cannot make every node fetch from origin") {
  Site site;
  const std::string path = "/gen/4K/forged.ts";
  const std::string target = "/o/demo" + path;
  const int64_t now = unix_seconds_now();
  for (size_t i = 0; i < Site::kNodes; ++i) {
    const std::string& self = site.ids[i];
    for (const std::string& forged :
         {std::string("venue-a"), "venue-a " + std::to_string(now + 60) + " xyz",
          signing::site_fetch_header(kSiteKey, "venue-a", self, "/o/demo/gen/4K/other.ts", now),
          signing::site_fetch_header("not-the-site-key-000000", "venue-b", self, target, now),
          signing::site_fetch_header(kSiteKey, "venue-x", self, target, now)}) {
      CAPTURE(forged);
      auto r = http_get(site.nodes[i]->url(target), {{"X-Site-Fetch", forged}});
      CHECK(r.status == 403);
      CHECK(r.body.find("site_fetch_refused") != std::string::npos);
    }
  }
  CHECK(site.origin.count(path) == 0);
  // The same request as a viewer's: one origin fetch for the site, by the owner.
  for (size_t i = 0; i < Site::kNodes; ++i)
    CHECK(http_get(site.nodes[i]->url(target)).status == 200);
  CHECK(site.origin.count(path) == 1);
}

TEST_CASE(
    "site: a prefetch named to each of the site's nodes costs origin one fetch; each then hits") {
  Site site;
  const auto [path, owner] = site.object("/gen/64K/prefetched.ts");
  // The owner last: its siblings' fetches for their prefetches reach it first.
  for (size_t k = 1; k <= Site::kNodes; ++k) {
    const size_t i = (owner + k) % Site::kNodes;
    if (i == owner) {
      CHECK(wait_until(
          [&] { return site.metric(owner, "cache_requests_total{result=\"miss\"}") == 1; }, 10s));
    }
    auto r = http_request("POST", site.nodes[i]->url("/prefetch"),
                          {{"Authorization", "Bearer " + kPrefetchKey}},
                          "{\"chunks\":[\"/o/demo" + path + "\"]}");
    CHECK(r.status == 202);
    // The owner has it, or is fetching it, for its siblings already.
    if (i == owner) CHECK(r.body.find("\"started\":0") != std::string::npos);
  }
  for (size_t i = 0; i < Site::kNodes; ++i) {
    if (i == owner) continue;
    CHECK(wait_until(
        [&] { return site.metric(i, "cache_prefetch_completed_total{result=\"stored\"}") == 1; },
        10s));
  }
  for (size_t i = 0; i < Site::kNodes; ++i) {
    auto viewer = http_get(site.nodes[i]->url("/o/demo" + path));
    CHECK(viewer.header("X-Cache") == std::optional<std::string>("HIT"));
    CHECK(viewer.body == generated_body("prefetched.ts", 64 << 10));
    // Siblings are not viewers: each node counts its own first viewer, the owner too.
    CHECK(site.metric(i, "cache_prefetch_first_viewers_total{result=\"hit\"}") == 1);
  }
  CHECK(site.origin.count(path) == 1);
}

TEST_CASE(
    "site: a proof captured on the link to the owner is refused at a third node and accepted at "
    "its addressee") {
  RequestTap tap;
  REQUIRE(tap.port() > 0);
  Site site(tap.port());
  // A chunk venue-b (node 1) owns: venue-a (node 0) asks for it through the tap.
  std::string path;
  for (int n = 0; n < 256 && path.empty(); ++n) {
    const std::string candidate = "/gen/4K/tapped" + std::to_string(n) + ".ts";
    if (site.owner_of(candidate) == 1) path = candidate;
  }
  REQUIRE_FALSE(path.empty());
  const std::string target = "/o/demo" + path;
  std::thread viewer([&] { CHECK(http_get(site.nodes[0]->url(target), {}, 10s).status == 200); });
  const std::string head = tap.next_head(10s);
  viewer.join();  // the tap closed without answering: venue-a went to origin
  INFO(head);
  const std::string captured = header_in_head(head, "X-Site-Fetch");
  REQUIRE_FALSE(captured.empty());
  // The request as sent (the node adds its own signature to the target).
  REQUIRE(head.rfind("GET " + target, 0) == 0);
  const std::string sent = head.substr(4, head.find(' ', 4) - 4);
  CHECK(site.origin.count(path) == 1);
  // Replayed to venue-c within its minute: refused, and origin is not asked.
  auto replayed = http_get(site.nodes[2]->url(sent), {{"X-Site-Fetch", captured}});
  CHECK(replayed.status == 403);
  CHECK(replayed.body.find("site_fetch_refused") != std::string::npos);
  CHECK(site.origin.count(path) == 1);
  // At venue-b, the node it names, the same request is a sibling's.
  auto addressed = http_get(site.nodes[1]->url(sent), {{"X-Site-Fetch", captured}});
  CHECK(addressed.status == 200);
  CHECK(addressed.body == generated_body(path.substr(path.rfind('/') + 1), 4096));
}
