// RFC 9213 (Targeted HTTP Cache Control): `CDN-Cache-Control` addresses the CDN caches between
// an origin and its viewers apart from browsers, with the directives of Cache-Control written as
// a Structured Field Dictionary (RFC 8941). The node is such a cache: when an upstream response
// carries a valid, non-empty `CDN-Cache-Control`, its directives replace those of
// `Cache-Control` and `Expires` for the node's own decisions (storing, lifetime, stale use);
// otherwise those two decide as before. The field itself is relayed like any other end-to-end
// header, so a cache further down (a child node, another CDN) can act on it too: RFC 9213 asks
// no cache to remove it. Pure, standard library only; any thread.
#pragma once

#include <optional>
#include <string_view>

#include "cache_node/rules/freshness.h"

namespace cache_node {

// The directives of a `CDN-Cache-Control` value (every line joined with ", "), or nullopt when
// the field is to be ignored: empty, not a valid Dictionary (RFC 8941 §4.2.2: lowercase keys,
// no space before '=', no trailing comma, ...), or a directive the node reads with a value of
// the wrong type (max-age="60", no-store=3: the origin meant something the node cannot tell, so
// Cache-Control decides). Read: max-age, s-maxage, stale-if-error, stale-while-revalidate
// (Integers ≥ 0, capped at 2^31), no-store, must-revalidate, proxy-revalidate, immutable
// (Boolean true; ?0 is absent), no-cache and private (Boolean, or a String naming fields,
// which counts as the plain directive). Other members and parameters are ignored.
std::optional<CacheDirectives> parse_targeted_cache_control(std::string_view value);

}  // namespace cache_node
