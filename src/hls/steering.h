// HLS content steering (RFC 8216bis, EXT-X-CONTENT-STEERING and the steering
// manifest) as pure functions. A viewer's multivariant playlist lists its variants
// once per pathway (a cache node, or origin), each with PATHWAY-ID and that
// pathway's URIs, and names the steering manifest, which only orders the
// pathways. Listing every pathway (instead of cloning one in the manifest) is the
// form every player applies: Shaka Player applies only a clone's HOST, never its
// PARAMS, and video.js finds no pathway without PATHWAY-ID. Media3 rejects a
// master whose rendition group spans two pathways, whose pathways offer different
// variants, or where two identical variants (or renditions) of one pathway have
// different URIs: rendition groups are renamed per pathway and look-alikes get
// stable ids. Standard library only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hls {

// Pathway ids: 1-64 of [A-Za-z0-9._-] (the spec's PATHWAY-ID characters).
bool valid_pathway_id(std::string_view id);

// One pathway's copy of a multivariant playlist: the same source playlist
// rendered with that pathway's URIs.
struct PathwayCopy {
  std::string id;
  std::string_view master;
};

// The multivariant playlist offering every pathway of `copies`, in that order:
// the tags that are not per variant once (from the first copy, every byte kept,
// a BOM and CRLF line ends too), with
// #EXT-X-CONTENT-STEERING:SERVER-URI="<server_uri>",PATHWAY-ID="<start>" right
// after #EXTM3U (`start`: the pathway steering players begin with, one of the
// ids; players without steering play the first copy); then, per pathway, its EXT-X-MEDIA,
// EXT-X-STREAM-INF (with its URI line) and EXT-X-I-FRAME-STREAM-INF lines, each variant given
// PATHWAY-ID="<id>" and every rendition group id G renamed "G@<id>".
// STABLE-VARIANT-ID="v<n>" (STABLE-RENDITION-ID="r<n>") is added to the variants
// (renditions) that lack one when two of them could be taken for one
// (same BANDWIDTH; same TYPE and NAME). nullopt (leave the playlist as it is)
// when `server_uri` is empty or holds a '"' or a line break, an id is invalid or
// repeated, `start` is none of them, the copies differ in shape, the playlist is not a multivariant
// one (no EXT-X-STREAM-INF), or it has EXT-X-CONTENT-STEERING or PATHWAY-ID already (the origin
// steers it).
std::optional<std::string> steered_master(const std::vector<PathwayCopy>& copies,
                                          std::string_view server_uri, std::string_view start);

// A multivariant playlist of one variant: the media playlist at `uri` (no line break), with
// BANDWIDTH=`bandwidth`. What a bare media playlist is served as, one per pathway, so that
// steered_master() can offer it on every pathway.
std::string one_variant_master(std::string_view uri, std::uint64_t bandwidth);

// The steering manifest: {"VERSION":1,"TTL":<ttl_s>,"PATHWAY-PRIORITY":[<priority>]}.
// Ids must be valid.
std::string steering_manifest(int ttl_s, const std::vector<std::string>& priority);

}  // namespace hls
