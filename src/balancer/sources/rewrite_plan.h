// What each URI of a source playlist is, once per source version (DESIGN.md flow 1): a
// playlist, a key or a chunk on one of the channel's origins (and its target there), or
// anything else, left as the source wrote it. The fetch loop plans it when it builds a version
// (version_builder.h); the serving loops render each viewer's copy from it
// (viewers/playlist_mapper.h). Pure: any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hls/rewrite.h"

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
// makes it part of a chunk's key or its origin fetch (cache_node/rules/query_policy.h).
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

// A stable 64-bit hash (FNV-1a) of a chunk's origin target.
uint64_t chunk_hash(std::string_view origin_target);

}  // namespace balancer
