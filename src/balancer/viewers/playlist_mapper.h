// Where each URI of a source playlist leads in a viewer's copy (DESIGN.md flow 1),
// as pure functions:
//   - a playlist on the channel's origin → back to the balancer:
//       <balancer>/hls/<channel>/<path on origin>[?origin query]&<viewer params>
//   - a key on the channel's origin → <balancer>/key/<channel>/<path>[?query]&<viewer params>
//   - a chunk on the channel's origin → the chosen cache node, signed:
//       <cache url>/o/<origin id>/<path>[?query]&bexp=..&bsig=..
//     or, with no usable cache, the chunk's absolute origin URL; a chunk whose
//     path or query the cache node would refuse (core::check_servable_origin_target:
//     an empty or dot segment, say) always keeps its absolute origin URL;
//   - anything else (another host, a path outside the origin's base URL, a
//     non-HTTP scheme such as data: or skd:, EXT-X-SESSION-DATA, steering) is
//     left absolute, pointing where the source meant: the balancer never
//     proxies a host it was not configured with.
// <balancer> is "" (path-absolute links, the default) or the configured public URL.
//
// A RewritePlan is computed once per source version; rendering a viewer's copy
// then costs O(output). Loop thread or any thread: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hls/rewrite.h"
#include "signing/url_signing.h"

namespace balancer {

// The target ("/path[?query]", fragment dropped) of `uri` on the origin whose base
// URL is `origin_base` ("http://host[:port][/prefix]", no trailing slash), or
// nullopt when `uri` is not under that base. Scheme and host compare
// case-insensitively; a default port (80/443) may be written or omitted.
std::optional<std::string> origin_target_of(std::string_view uri, std::string_view origin_base);

// A chunk target as signed and as the cache node will see it: empty query
// parameters and signature parameters (bexp, bsig) removed, no empty "?"
// (signing::canonical_unsigned_target, the form UrlSigner signs and verifies).
std::string normalize_chunk_target(std::string_view target);

struct SlotTarget {
  enum class Kind : uint8_t { playlist, key, chunk, passthrough };
  Kind kind = Kind::passthrough;
  std::string origin_target;  // playlist/key/chunk: target on the origin; passthrough: ""
  // A chunk of a restarted live run: "brun=<run id>" (live_restart.h), already
  // in origin_target and added to the origin URL of a link straight to origin.
  std::string run;
  // The cache node's name for the origin it lies on when that is not the playlist's own (a
  // channel's other source, kept listed after a switch); "": ChunkDestination::origin_id.
  std::string origin_id;
};

struct RewritePlan {
  std::vector<SlotTarget> slots;  // one per template slot
  size_t chunk_slots = 0;         // number of slots of kind chunk
  // chunk_hash of each chunk slot's origin_target, in slot order: what a viewer's listing
  // (stable_links.h) records, hashed once per version instead of once per request.
  std::vector<uint64_t> chunk_hashes;
  // When each chunk slot's target was first listed by this playlist (unix seconds, in slot
  // order), so that its signed link expires a fixed time after that and reads the same in
  // every version that lists it (players match parts, hints and rendition reports by URI);
  // empty: not known (links then expire counted from the request).
  std::vector<int64_t> chunk_first_listed;
  // A Low-Latency HLS playlist's PART-TARGET in milliseconds (0: none). The cache node links
  // of its parts and preload hints carry it, signed (kPartTargetParameter), so that the node
  // remembers a hinted part's 404 for at most that long: the part is due within one.
  int64_t part_target_ms = 0;
};

// "bpt=<PART-TARGET ms>" on the signed node links of EXT-X-PART and EXT-X-PRELOAD-HINT URIs
// (the same value on a part and its hint, so the two URIs stay one). The cache node never
// makes it part of a chunk's key or its origin fetch (cache_node/query_policy.h).
inline constexpr std::string_view kPartTargetParameter = "bpt";

// An origin besides the playlist's own whose URIs are the channel's too (its other sources).
struct OtherOrigin {
  std::string base;  // base URL, no trailing slash
  std::string id;    // the cache node's name for it
};

RewritePlan plan_rewrite(const hls::Template& tmpl, std::string_view origin_base,
                         const std::vector<OtherOrigin>& others = {});

// Recomputes plan.chunk_hashes from the chunk slots' targets (after they changed).
void hash_chunks(RewritePlan& plan);

// Per chunk slot, in slot order: whether it is a segment's URI line (EXTINF) rather than a
// part, a preload hint or a map.
std::vector<bool> segment_chunks(const hls::Template& tmpl, const RewritePlan& plan);
// Per chunk slot, in slot order: whether it is a map's URI (EXT-X-MAP).
std::vector<bool> map_chunks(const hls::Template& tmpl, const RewritePlan& plan);

// Where chunk links lead for one response.
struct ChunkDestination {
  std::string cache_url;                       // public base URL of the cache node; "" = origin
  std::string origin_id;                       // the cache node's name for the channel's origin
  const signing::UrlSigner* signer = nullptr;  // required when cache_url is set
  int64_t now_unix = 0;
  int64_t lifetime_s = 0;  // a signed link is good for this long (see link_expiry)
};

// How long a map's (EXT-X-MAP) signed link is good for, whatever signing.chunk_url_lifetime_s
// says. A map is listed for as long as the stream runs, so at the chunk lifetime its link would
// change every lifetime (link_expiry), and VHS fetches a map whose URI changed and appends it
// again before the parts that follow: Chromium then dropped the rest of the segment, a stall at
// each change (one a minute after a channel's first viewer, at the default 120 s). An init
// section carries no media; its link first changes half a day after it was first listed.
inline constexpr int64_t kMapLinkLifetimeS = 86400;

// When a chunk's signed link expires: `lifetime_s` after the chunk was first listed, moved on
// by whole lifetimes while less than half of one would be left at `now_unix`. A chunk listed
// for less than half a lifetime keeps one link; a longer-listed one changes it once per
// lifetime, never holding an expired one. Unknown `first_listed` (< 0): counted from now.
int64_t link_expiry(int64_t first_listed, int64_t now_unix, int64_t lifetime_s);

// The replacement for every chunk slot, in slot order (plan.chunk_slots entries),
// already escaped for its slot (hls::escape_replacement): computed once per
// second and destination, appended as is to every viewer's copy.
std::vector<std::string> chunk_links(const hls::Template& tmpl, const RewritePlan& plan,
                                     const ChunkDestination& destination);

struct ViewerLinks {
  std::string_view balancer_base;  // "" or e.g. "https://balancer.example"
  std::string_view channel;
  std::string_view viewer_query;                          // already encoded; may be empty
  const std::vector<std::string>* chunk_links = nullptr;  // from chunk_links(); required if chunks
};

// The viewer's copy of the playlist: O(output), never re-parses.
std::string render_for_viewer(const hls::Template& tmpl, const RewritePlan& plan,
                              const ViewerLinks& links);

}  // namespace balancer
