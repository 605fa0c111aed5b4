// What every part of the cache node reads: the running config with what is
// derived from it (published on reload, read through a per-loop Reader), and
// the names it logs and answers under.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cache_node/cache_node.h"
#include "cache_node/log_tag.h"
#include "http/client/coalesced_fetch.h"
#include "signing/url_signing.h"

namespace cache_node {

// How chunk fetches name what failed (http/client/coalesced_fetch.h).
inline constexpr http::UpstreamWording kChunkWording{"chunk", "object_too_large",
                                                     "this cache node"};

// The config every loop reads, with what is derived from it.
struct RuntimeConfig {
  CacheNodeConfig config;
  std::optional<signing::UrlSigner> signer;
  // config.site_nodes as two parallel lists (site_owner.h takes the ids); empty
  // when the site is not sharded.
  std::vector<std::string> site_ids, site_urls;
  size_t self_index = 0;  // this node's place in site_ids
};

}  // namespace cache_node
