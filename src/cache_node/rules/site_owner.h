// Which node of a site owns a chunk (rendezvous hashing, pure). Every node of a
// site reads the same node list from its config and so agrees on one owner per
// chunk key without talking: the owner fetches the chunk from upstream, the
// others fetch it from the owner. Removing a node moves only the chunks it
// owned; adding one takes about 1/N of them. Any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cache_node {

// The score of `node_id` for `key`: a 64-bit hash of both, mixed so that every
// node's scores are independent. The highest score owns the key.
uint64_t rendezvous_score(std::string_view node_id, std::string_view key);

// The index in `node_ids` of the owner of `key` (ties, which need equal ids, go
// to the first). `node_ids` must not be empty.
size_t site_owner(const std::vector<std::string>& node_ids, std::string_view key);

}  // namespace cache_node
