// The balancer's viewer-facing URL scheme, as pure functions (docs/balancer.md):
//   /hls/<channel>/<path on origin>[?<origin query>&]cache=..&ticket=..|viewer=..[&pathway=..]
//        [&_HLS_msn=..]
//   /key/<channel>/<path on origin>[?<origin query>&]cache=..&ticket=..|viewer=..
// The reserved parameters (cache, ticket, viewer, pathway, the player's CMCD report and the
// LL-HLS delivery directives _HLS_msn, _HLS_part, _HLS_skip) are the viewer's; every other
// parameter belongs to the path on the origin and is kept in order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "balancer/sources/delivery_directives.h"
#include "core/result.h"

namespace balancer {

inline constexpr std::string_view kPlaylistPrefix = "/hls/";
inline constexpr std::string_view kKeyPrefix = "/key/";
// "bsrc=<origin id>" on the balancer's key links of a channel with several sources: the origin
// its key is fetched from (the source whose playlist listed it; the channel's first otherwise).
// Reserved on key URLs only.
inline constexpr std::string_view kKeySourceParameter = "bsrc";
// GET /steering/<channel>?cache=..&ticket=..|viewer=..: the content steering manifest.
inline constexpr std::string_view kSteeringPrefix = "/steering/";
// The pathway id of origin in content steering (cache ids are the others).
inline constexpr std::string_view kOriginPathway = "origin";
// The pathway of a viewer's default copy (links that follow the cache choice). Named in a URI
// only by the variant of a master the balancer makes for a bare media playlist, whose URI
// must differ from its master's.
inline constexpr std::string_view kDefaultPathway = ".";

struct ViewerRequest {
  std::string channel;        // channel id from the path
  std::string origin_target;  // "/<path on origin>[?<origin query>]", raw (still percent-encoded)
  std::string cache;          // requested cache id, or ""
  std::string ticket;         // playback ticket, or ""
  std::string viewer;         // anonymous viewer id, or ""
  // Content steering: the pathway (a cache id or "origin") whose variant copy this
  // playlist request comes from (hls/steering.h); "" outside steering; kDefaultPathway
  // for the default copy's variant of a made master (a media playlist, chunk links as
  // without a pathway). Not part of viewer_query: it belongs to one variant URI only.
  std::string pathway;
  // A steering pathway whose chunk host is fixed (a cache id or "origin").
  bool pinned_pathway() const { return !pathway.empty() && pathway != kDefaultPathway; }
  DeliveryDirectives directives;
  // "cache=..&ticket=..&viewer=.." as the viewer sent them (re-encoded), for the
  // links that lead back to the balancer; "" when none.
  std::string viewer_query;
  // A key URL's kKeySourceParameter (the origin id its key comes from), or "".
  std::string key_origin;
  // The player's CMCD report (the `CMCD` argument, still percent-encoded; the last one when
  // repeated), or nullopt. Never passed on: not to origin, not into links.
  std::optional<std::string> cmcd;
};

// Parses a request target under `prefix` (kPlaylistPrefix or kKeyPrefix).
// Errors (code "bad_request" → 400): no channel or path, a bad channel id, control
// characters, malformed percent-encoding, "." or ".." segments, a repeated or
// invalid reserved parameter, _HLS_part without _HLS_msn, delivery directives on
// a key URL, an invalid cache or viewer id.
core::Result<ViewerRequest> parse_viewer_request(std::string_view target, std::string_view prefix);

}  // namespace balancer
