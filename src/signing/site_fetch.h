// Proof that a chunk request comes from another node of the same site (the header
// X-Site-Fetch). The nodes of a site share a key (`site_key`); a node asking its chunk's owner
// sends "<its node id> <expires unix> <proof>", where
//   proof = base64url(HMAC-SHA256(site key,
//                     "site-fetch-to\n<node id>\n<receiver id>\n<expires>\n<target>"))
// <receiver id> is the id of the node asked (the owner), which each node verifies with its own
// id, and <target> is the request target as sent (path and query). A viewer who sees one such
// request can replay it only to that node, for that chunk and until it expires (to the node it
// was sent to, it asks nothing that node was not already asked); one who sends the header on its
// own proves nothing. Comparison is constant-time.
//
// Pure (no clock: callers pass `now`); any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace signing {

// How long a proof holds after it is made: a sibling's request reaches its owner in far less.
inline constexpr int64_t kSiteFetchProofLifetimeS = 60;

// The header's value for `node_id` asking `receiver_id` for `target` at `now_unix`.
std::string site_fetch_header(std::string_view key, std::string_view node_id,
                              std::string_view receiver_id, std::string_view target,
                              int64_t now_unix);

// The id of the node that made `header` for `target`, addressed to `receiver_id` (the
// verifying node's own id), when its proof holds under `key` at `now_unix`; nullopt when it is
// malformed, does not match (another receiver included), or has expired.
std::optional<std::string> verify_site_fetch(std::string_view header, std::string_view key,
                                             std::string_view receiver_id, std::string_view target,
                                             int64_t now_unix);

}  // namespace signing
