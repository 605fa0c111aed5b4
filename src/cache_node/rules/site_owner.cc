#include "cache_node/rules/site_owner.h"

#include <cassert>

namespace cache_node {

namespace {

// FNV-1a over the bytes, then a splitmix64 finalizer: FNV alone leaves keys that
// differ in their last bytes with close scores, the finalizer spreads them.
uint64_t fnv1a(uint64_t hash, std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t rendezvous_score(std::string_view node_id, std::string_view key) {
  uint64_t hash = fnv1a(0xcbf29ce484222325ull, node_id);
  hash = fnv1a(hash ^ 0xff, key);  // a separator: ("ab","c") and ("a","bc") differ
  return mix(hash);
}

size_t site_owner(const std::vector<std::string>& node_ids, std::string_view key) {
  assert(!node_ids.empty());
  size_t best = 0;
  uint64_t best_score = 0;
  for (size_t i = 0; i < node_ids.size(); ++i) {
    uint64_t score = rendezvous_score(node_ids[i], key);
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace cache_node
