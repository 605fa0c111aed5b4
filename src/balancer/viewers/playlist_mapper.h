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
// The RewritePlan (sources/rewrite_plan.h) is computed once per source version; rendering a
// viewer's copy then costs O(output). Loop thread or any thread: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/sources/rewrite_plan.h"
#include "hls/rewrite.h"
#include "signing/url_signing.h"

namespace balancer {

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
// What render_for_viewer() puts in each slot, kept apart in `out` (its buffers reused): for a
// copy laid out in another order (a steered master, hls::SteeredShape).
void render_viewer_slots(const hls::Template& tmpl, const RewritePlan& plan,
                         const ViewerLinks& links, hls::SlotTexts& out);

}  // namespace balancer
