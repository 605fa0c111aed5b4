// Stable segment URIs per viewer: a chunk listed before keeps its host while that host
// is usable; new chunks follow the choice; a dead host's chunks move.
#include "balancer/stable_links.h"

#include <doctest/doctest.h>

namespace balancer {
namespace {

std::vector<uint64_t> hashes(std::initializer_list<const char*> targets) {
  std::vector<uint64_t> out;
  for (const char* t : targets) out.push_back(chunk_hash(t));
  return out;
}

std::vector<std::string> hosts_of(const std::vector<uint8_t>& indexes, const ListedChunks& next) {
  std::vector<std::string> out;
  for (uint8_t i : indexes) out.push_back(next.hosts.at(i));
  return out;
}

const auto all_usable = [](std::string_view) { return true; };

}  // namespace

TEST_CASE("stable links: listed chunks keep their usable host, new ones follow the choice") {
  ListedChunks first, second, third;
  auto a = keep_listed_hosts({}, hashes({"/s1.ts", "/s2.ts", "/s3.ts"}), "b", all_usable, first);
  CHECK(hosts_of(a, first) == std::vector<std::string>{"b", "b", "b"});
  // The choice moves to a (its node came back); b is still usable.
  auto b =
      keep_listed_hosts(first, hashes({"/s2.ts", "/s3.ts", "/s4.ts"}), "a", all_usable, second);
  CHECK(hosts_of(b, second) == std::vector<std::string>{"b", "b", "a"});
  CHECK(second.hosts.size() == 2);
  auto c =
      keep_listed_hosts(second, hashes({"/s3.ts", "/s4.ts", "/s5.ts"}), "a", all_usable, third);
  CHECK(hosts_of(c, third) == std::vector<std::string>{"b", "a", "a"});
  ListedChunks fourth;
  auto d =
      keep_listed_hosts(third, hashes({"/s4.ts", "/s5.ts", "/s6.ts"}), "a", all_usable, fourth);
  CHECK(hosts_of(d, fourth) == std::vector<std::string>{"a", "a", "a"});
  CHECK(fourth.hosts.size() == 1);
}

TEST_CASE("stable links: an unusable host's chunks move; origin (\"\") is a host like the others") {
  ListedChunks first, second;
  keep_listed_hosts({}, hashes({"/s1.ts", "/s2.ts"}), "", all_usable, first);
  int asked = 0;
  auto moved = keep_listed_hosts(
      first, hashes({"/s1.ts", "/s2.ts", "/s3.ts"}), "a",
      [&](std::string_view host) {
        ++asked;
        return host != "";
      },
      second);
  CHECK(hosts_of(moved, second) == std::vector<std::string>{"a", "a", "a"});
  CHECK(asked == 1);  // once per previous host
  ListedChunks third;
  auto kept = keep_listed_hosts(second, hashes({"/s2.ts", "/s3.ts"}), "", all_usable, third);
  CHECK(hosts_of(kept, third) == std::vector<std::string>{"a", "a"});
}

TEST_CASE("stable links: another variant's chunks are all new") {
  ListedChunks first, second;
  keep_listed_hosts({}, hashes({"/v0/s1.ts", "/v0/s2.ts"}), "b", all_usable, first);
  auto other =
      keep_listed_hosts(first, hashes({"/v1/s1.ts", "/v1/s2.ts"}), "a", all_usable, second);
  CHECK(hosts_of(other, second) == std::vector<std::string>{"a", "a"});
}

}  // namespace balancer

namespace balancer {

TEST_CASE("listing table: per key, bounded; idle keys make room, live ones do not") {
  using namespace std::chrono_literals;
  ListingTable table(16, 60s);  // two entries per shard (16 / 16 + 1)
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  std::vector<std::string> hosts;
  const auto chunks = std::vector<uint64_t>{chunk_hash("/s1.ts")};
  auto usable = [](std::string_view) { return true; };
  table.update("v1\n/p.m3u8", chunks, "b", usable, t0, hosts);
  auto kept = table.update("v1\n/p.m3u8", chunks, "a", usable, t0 + 1s, hosts);
  REQUIRE(kept.size() == 1);
  CHECK(hosts.at(kept[0]) == "b");
  // Fill every shard with live keys; a new key then gets no stickiness (all "current").
  for (int i = 0; i < 400; ++i)
    table.update("k" + std::to_string(i), chunks, "b", usable, t0 + 2s, hosts);
  CHECK(table.size() <= 32);
  // An hour later the idle keys give way.
  for (int i = 0; i < 400; ++i)
    table.update("n" + std::to_string(i), chunks, "b", usable, t0 + 2h, hosts);
  CHECK(table.size() <= 32);
  CHECK(table.update("n399", chunks, "a", usable, t0 + 2h, hosts).size() <= 1);
}

}  // namespace balancer
