#include <doctest/doctest.h>

#include "cache_node/store/lru_index.h"

TEST_CASE("lru: evicts least recently used entries until under the byte budget") {
  cache_node::LruIndex<int> lru(100);
  lru.insert("a", 40, 1);
  lru.insert("b", 40, 2);
  CHECK_FALSE(lru.evict_one().has_value());
  REQUIRE(lru.touch("a") != nullptr);  // a is now newest
  lru.insert("c", 40, 3);              // 120 > 100
  auto victim = lru.evict_one();
  REQUIRE(victim.has_value());
  CHECK(victim->key == "b");
  CHECK_FALSE(lru.evict_one().has_value());
  CHECK(lru.used_bytes() == 80);
  CHECK(lru.size() == 2);
}

TEST_CASE("lru: a reserve makes room before an insert; replace updates bytes") {
  cache_node::LruIndex<int> lru(100);
  lru.insert("a", 60, 1);
  auto victim = lru.evict_one(50);
  REQUIRE(victim.has_value());
  CHECK(victim->key == "a");
  lru.insert("b", 30, 1);
  lru.insert("b", 50, 2);
  CHECK(lru.used_bytes() == 50);
  CHECK(*lru.peek("b") == 2);
  lru.insert_oldest("old", 10, 9);
  lru.insert("big", 45, 3);  // 105
  CHECK(lru.evict_one()->key == "old");
  CHECK(lru.erase("b").has_value());
  CHECK_FALSE(lru.erase("b").has_value());
  CHECK(lru.used_bytes() == 45);
}

TEST_CASE("lru: the entry bound evicts the least recently used even when the bytes fit") {
  cache_node::LruIndex<int> lru(1000, 3);
  for (int i = 0; i < 3; ++i) lru.insert("k" + std::to_string(i), 1, i);
  CHECK_FALSE(lru.over_entries());
  CHECK_FALSE(lru.evict_one().has_value());
  lru.touch("k0");
  lru.insert("k3", 1, 3);
  CHECK(lru.over_entries());
  auto victim = lru.evict_one();
  REQUIRE(victim.has_value());
  CHECK(victim->key == "k1");
  CHECK_FALSE(lru.over_entries());
  CHECK_FALSE(lru.evict_one().has_value());
  CHECK(lru.size() == 3);
}
