// The cache node's URL scheme, as pure functions:
//   /o/<origin_id>/<path on origin>[?query]
// A request names a configured origin and a path on it. Validation refuses
// anything that could reach another host or escape the origin's path.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace cache_node {

inline constexpr std::string_view kChunkPrefix = "/o/";

struct ChunkRequest {
  std::string origin_id;
  std::string origin_path;  // raw (percent-encoded) path on the origin, starting with "/"
  std::string query;        // raw query without signature parameters, or empty
  // The parameters of `query` the origin's query policy keeps (query_policy.h):
  // part of the cache key and of the origin fetch. The parser keeps them all.
  std::string kept_query;
  // Cache key: origin id + path + kept query; the signature is never part of it.
  std::string cache_key() const;
};

// Parses an unsigned request target (signature parameters already removed).
// Errors (code "bad_request", for a 400): not under /o/, an empty or invalid
// origin id, control characters, or a path and query that
// core::check_servable_origin_target refuses (the rule the balancer follows
// before signing a chunk link): empty path, malformed percent-encoding, NUL,
// backslash, "." or ".." segments (also when encoded), empty segments, an
// absolute or scheme-relative URL in the path.
core::Result<ChunkRequest> parse_chunk_request(std::string_view unsigned_target);

}  // namespace cache_node
