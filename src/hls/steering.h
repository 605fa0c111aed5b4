// HLS content steering (RFC 8216bis, EXT-X-CONTENT-STEERING and the steering
// manifest) by pathway cloning, as pure functions. A viewer's multivariant
// playlist keeps its variants once (the default pathway ".", whose chunk links
// follow the balancer's cache choice: what players without steering get) and
// gains the EXT-X-CONTENT-STEERING tag. The steering manifest clones "." once per
// pathway (a cache node, or origin) with URI-REPLACEMENT PARAMS pathway=<id>, and
// says which pathway to prefer now. A player that supports steering (hls.js,
// AVPlayer) moves between pathways by switching to another clone's media
// playlist, whose chunk links always lead to that pathway's host: a segment's URI
// never changes within one media playlist (hls.js treats that as an error, fatal
// on a single-variant stream). Standard library only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hls {

// The id of the default pathway (variants without PATHWAY-ID).
inline constexpr std::string_view kDefaultPathway = ".";

// Pathway ids: 1-64 of [A-Za-z0-9._-] (the spec's PATHWAY-ID characters).
bool valid_pathway_id(std::string_view id);

// A copy of the multivariant playlist `master` with
// #EXT-X-CONTENT-STEERING:SERVER-URI="<server_uri>",PATHWAY-ID="." right after
// #EXTM3U; every other byte is kept (CRLF, a BOM). nullopt (leave the playlist as
// it is) when `server_uri` is empty or holds a '"' or a line break, the playlist
// is not a multivariant one (no EXT-X-STREAM-INF), or it already has
// EXT-X-CONTENT-STEERING or PATHWAY-ID attributes (the origin steers it).
std::optional<std::string> add_content_steering(std::string_view master,
                                                std::string_view server_uri);

// The steering manifest:
// {"VERSION":1,"TTL":<ttl_s>,"PATHWAY-PRIORITY":[<priority>],"PATHWAY-CLONES":[
//   {"BASE-ID":".","ID":"<p>","URI-REPLACEMENT":{"PARAMS":{"pathway":"<p>"}}}, ...]}
// with one clone per id of `clones` (every pathway the viewer may be steered to,
// so a clone stays the same from one manifest to the next), and
// "RELOAD-URI":"<reload_uri>" when `reload_uri` is not empty. Ids must be valid.
std::string steering_manifest(int ttl_s, const std::vector<std::string>& priority,
                              const std::vector<std::string>& clones,
                              std::string_view reload_uri = {});

}  // namespace hls
