// Stable segment URIs per viewer: a chunk listed before keeps its host while that host
// is usable; new chunks follow the choice; a dead host's chunks move.
#include "balancer/viewers/stable_links.h"

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
  // All on the current host: the next copy lists everything there, and remembers it.
  ListedChunks fifth, sixth;
  auto e =
      keep_listed_hosts(fourth, hashes({"/s5.ts", "/s6.ts", "/s7.ts"}), "a", all_usable, fifth);
  CHECK(hosts_of(e, fifth) == std::vector<std::string>{"a", "a", "a"});
  CHECK(fifth.chunks.size() == 3);
  CHECK(fifth.chunks.front().first == chunk_hash("/s5.ts"));
  // ... so that a move to b still keeps a's chunks on a.
  auto f = keep_listed_hosts(fifth, hashes({"/s6.ts", "/s7.ts", "/s8.ts"}), "b", all_usable, sixth);
  CHECK(hosts_of(f, sixth) == std::vector<std::string>{"a", "a", "b"});
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

TEST_CASE(
    "stable links: a kept host keeps its listed chunks while not usable, or only those flagged; "
    "the others move") {
  // A steering pathway's node a died: its listed segments (flagged) stay on it, as players
  // compare them; its listed map, parts and hint move to b with the new chunks.
  const auto only_b = [](std::string_view host) { return host == "b"; };
  ListedChunks first, second, third;
  keep_listed_hosts({}, hashes({"/init.mp4", "/s1.m4s", "/s2.0.m4s", "/s2.1.m4s"}), "a", all_usable,
                    first);
  const std::vector<bool> segments = {false, true, false, false, false};
  auto moved = keep_listed_hosts(
      first, hashes({"/init.mp4", "/s1.m4s", "/s2.0.m4s", "/s2.1.m4s", "/s2.2.m4s"}), "b", only_b,
      second, {"a", &segments});
  CHECK(hosts_of(moved, second) == std::vector<std::string>{"b", "a", "b", "b", "b"});
  // The next copy: the segment still on a, what moved stays on b (where it was listed).
  const std::vector<bool> segments_next = {false, true, true, false, false};
  auto next = keep_listed_hosts(
      second, hashes({"/init.mp4", "/s1.m4s", "/s2.m4s", "/s2.1.m4s", "/s3.0.m4s"}), "b", only_b,
      third, {"a", &segments_next});
  CHECK(hosts_of(next, third) == std::vector<std::string>{"b", "a", "b", "b", "b"});
  // Without flags every chunk a listed stays on it; without a kept host all of them move.
  ListedChunks fourth, fifth;
  CHECK(hosts_of(keep_listed_hosts(first, hashes({"/s1.m4s", "/s2.0.m4s"}), "b", only_b, fourth,
                                   {"a", nullptr}),
                 fourth) == std::vector<std::string>{"a", "a"});
  CHECK(hosts_of(keep_listed_hosts(first, hashes({"/s1.m4s", "/s2.0.m4s"}), "b", only_b, fifth),
                 fifth) == std::vector<std::string>{"b", "b"});
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

TEST_CASE("listing table: the same chunks listed again on one host keep the listing, seen anew") {
  using namespace std::chrono_literals;
  ListingTable table(16, 60s);  // two entries per shard
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  std::vector<std::string> hosts;
  const auto chunks = std::vector<uint64_t>{chunk_hash("/s1.ts"), chunk_hash("/s2.ts")};
  auto usable = [](std::string_view) { return true; };
  table.update("v1\n/p.m3u8", chunks, "b", usable, t0, hosts);
  // A viewer polling a playlist that has not changed: every poll is the same listing.
  for (int i = 1; i <= 3; ++i) {
    auto again = table.update("v1\n/p.m3u8", chunks, "b", usable, t0 + i * 50s, hosts);
    CHECK(again == std::vector<uint8_t>{0, 0});
    CHECK(hosts == std::vector<std::string>{"b"});
  }
  // 170 s after the first listing but 20 s after the last poll the key is not idle: a crowd of
  // new keys cannot push it out, and its chunks stay on "b" when the viewer's host changes.
  for (int i = 0; i < 400; ++i)
    table.update("k" + std::to_string(i), chunks, "b", usable, t0 + 170s, hosts);
  auto moved = table.update("v1\n/p.m3u8", chunks, "a", usable, t0 + 171s, hosts);
  REQUIRE(moved.size() == 2);
  CHECK(hosts.at(moved[0]) == "b");
  CHECK(hosts.at(moved[1]) == "b");
}

TEST_CASE(
    "listing table: a dead kept host keeps the maps of a playlist the viewer plays; one it comes "
    "back to gets them on the next host") {
  using namespace std::chrono_literals;
  ListingTable table(16, 60s);
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  std::vector<std::string> hosts;
  auto only_b = [](std::string_view host) { return host == "b"; };
  const std::vector<bool> segments = {false, true, false};
  const std::vector<bool> maps = {true, false, false};
  const KeptHost kept{"a", &segments, &maps, 2s};
  const auto before = hashes({"/init.mp4", "/s1.m4s", "/s2.0.m4s"});
  const auto after = hashes({"/init.mp4", "/s1.m4s", "/s2.1.m4s"});
  // Reloaded within 2 s of its previous copy (the player holds the init): the map stays on a,
  // and stays there on the next reload.
  table.update("v1\na\n/low.m3u8", before, "a", only_b, t0, hosts);
  auto playing = table.update("v1\na\n/low.m3u8", after, "b", only_b, t0 + 1s, hosts, kept);
  REQUIRE(playing.size() == 3);
  CHECK(std::vector<std::string>{hosts.at(playing[0]), hosts.at(playing[1]),
                                 hosts.at(playing[2])} == std::vector<std::string>{"a", "a", "b"});
  auto still = table.update("v1\na\n/low.m3u8", after, "b", only_b, t0 + 2s, hosts, kept);
  REQUIRE(still.size() == 3);
  CHECK(hosts.at(still[0]) == "a");
  // Another rendition last listed 3 s before (a switch back to it): its map moves to b, its
  // listed segment stays on a.
  table.update("v1\na\n/high.m3u8", before, "a", only_b, t0, hosts);
  auto back = table.update("v1\na\n/high.m3u8", after, "b", only_b, t0 + 3s, hosts, kept);
  REQUIRE(back.size() == 3);
  CHECK(std::vector<std::string>{hosts.at(back[0]), hosts.at(back[1]), hosts.at(back[2])} ==
        std::vector<std::string>{"b", "a", "b"});
}

}  // namespace balancer

namespace balancer {

TEST_CASE("stable links: a long sliding window is matched in linear time, hosts kept as before") {
  // 160,000 listed chunks sliding by 10 (the finding's playlist with the window lifted): a
  // linear search per chunk is 1.3e10 comparisons, seconds of a loop's time per refresh.
  constexpr int kChunks = 160000;
  std::vector<uint64_t> first_hashes, second_hashes;
  for (int i = 0; i < kChunks; ++i)
    first_hashes.push_back(chunk_hash("/s" + std::to_string(i) + ".ts"));
  for (int i = 10; i < kChunks + 10; ++i)
    second_hashes.push_back(chunk_hash("/s" + std::to_string(i) + ".ts"));
  ListedChunks first, second;
  keep_listed_hosts({}, first_hashes, "b", all_usable, first);
  const auto started = std::chrono::steady_clock::now();
  auto kept = keep_listed_hosts(first, second_hashes, "a", all_usable, second);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  REQUIRE(kept.size() == static_cast<size_t>(kChunks));
  CHECK(second.hosts == std::vector<std::string>{"a", "b"});
  size_t kept_b = 0, new_a = 0;
  for (int i = 0; i < kChunks; ++i)
    (i < kChunks - 10 ? kept_b : new_a) += kept[i] == (i < kChunks - 10 ? 1 : 0);
  CHECK(kept_b == kChunks - 10);  // listed before: b
  CHECK(new_a == 10);             // new: a
  CHECK(ms < 1000);               // linear: tens of ms; quadratic: about 6 s here
  // A gap (chunks missing in the middle) and a reordered listing still find their hosts.
  std::vector<uint64_t> gapped = {first_hashes[5], first_hashes[7], first_hashes[100],
                                  first_hashes[3]};
  ListedChunks third;
  auto found = keep_listed_hosts(first, gapped, "a", all_usable, third);
  CHECK(found == std::vector<uint8_t>{1, 1, 1, 1});
  MESSAGE("160,000 listed chunks matched in " << ms << " ms");
}

}  // namespace balancer
