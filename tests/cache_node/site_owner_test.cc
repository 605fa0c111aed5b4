// Rendezvous ownership of chunks among a site's nodes: every node computes the
// same owner, chunks spread evenly, and removing a node moves only its chunks.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "cache_node/rules/site_owner.h"

using namespace cache_node;

namespace {
std::string chunk_key(int i) {
  return "/demo/live/720p/seg" + std::to_string(i) + ".ts";
}
}  // namespace

TEST_CASE("site owner: the same list gives the same owner, whatever the order of the list") {
  const std::vector<std::string> nodes = {"venue-a", "venue-b", "venue-c"};
  const std::vector<std::string> reversed = {"venue-c", "venue-b", "venue-a"};
  for (int i = 0; i < 200; ++i) {
    CHECK(nodes[site_owner(nodes, chunk_key(i))] == reversed[site_owner(reversed, chunk_key(i))]);
  }
}

TEST_CASE("site owner: 3000 chunks spread over 3 nodes within 10 % of a third each") {
  const std::vector<std::string> nodes = {"venue-a", "venue-b", "venue-c"};
  std::map<size_t, int> owned;
  for (int i = 0; i < 3000; ++i) ++owned[site_owner(nodes, chunk_key(i))];
  REQUIRE(owned.size() == 3);
  for (const auto& [node, count] : owned) {
    INFO("node " << nodes[node] << " owns " << count);
    CHECK(count > 900);
    CHECK(count < 1100);
  }
}

TEST_CASE("site owner: removing a node moves only the chunks it owned") {
  const std::vector<std::string> four = {"n1", "n2", "n3", "n4"};
  const std::vector<std::string> three = {"n1", "n2", "n4"};
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string before = four[site_owner(four, chunk_key(i))];
    const std::string after = three[site_owner(three, chunk_key(i))];
    if (before != "n3") {
      CHECK(before == after);
    } else {
      ++moved;
    }
  }
  CHECK(moved > 400);  // n3 owned about a quarter
  CHECK(moved < 600);
}

TEST_CASE("site owner: one node owns everything; the score depends on both id and key") {
  CHECK(site_owner({"only"}, chunk_key(1)) == 0);
  CHECK(rendezvous_score("ab", "c") != rendezvous_score("a", "bc"));
  CHECK(rendezvous_score("n1", chunk_key(1)) != rendezvous_score("n1", chunk_key(2)));
}
