// HLS content steering (RFC 8216bis, EXT-X-CONTENT-STEERING and the steering
// manifest) as pure functions. A viewer's multivariant playlist lists its variants
// on one pathway (its cache node's), with PATHWAY-ID, and names the steering manifest,
// which orders the pathways and offers the others as clones of the listed one
// (PATHWAY-CLONES: the same URIs with a HOST and query PARAMS replaced). A player
// without steering (ffmpeg, native players, Media3 before 1.11) sees only the
// listed pathway's variants, so it neither probes nor picks another host.
// steered_master() can still list several pathways (each one's copy in turn); Media3
// rejects a master whose rendition group spans two pathways, whose pathways offer
// different variants, or where two identical variants (or renditions) of one pathway
// have different URIs: rendition groups are renamed per pathway and look-alikes get
// stable ids. Standard library only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hls/rewrite.h"

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

// What steered_master() makes of one pathway's copy of a multivariant playlist, worked out once
// per playlist Template (hls/rewrite.h) for every rendering of it: the lines that go once, the
// variants and renditions with their groups renamed and PATHWAY-ID and stable ids added, with the
// pathway id, the server URI and the template's URIs left open. Filling them costs O(output): no
// line is split or parsed again. Immutable once made: any thread may render it.
class SteeredShape {
 public:
  // nullopt when steered_master() of a single copy leaves any rendering of `tmpl` as it is,
  // whatever its URIs (not a multivariant playlist, no complete variant, steered by the origin).
  static std::optional<SteeredShape> of(const Template& tmpl);

  // steered_master({{id, text}}, server_uri, id) for `text` the template the shape was made of
  // rendered with `uris` (render_slot_texts()): the same bytes, or nullopt where that is nullopt
  // (an invalid id; a server URI that is empty or holds '"' or a line break; a URI that is empty
  // or holds "PATHWAY-ID=").
  std::optional<std::string> render(const Template& tmpl, const SlotTexts& uris,
                                    std::string_view id, std::string_view server_uri) const;

 private:
  // One piece of the output: bytes of the template's source, of texts_, a slot's URI, the
  // pathway id or the server URI.
  struct Piece {
    enum class Kind : std::uint8_t { source, text, slot, pathway, server_uri };
    Kind kind = Kind::source;
    std::uint32_t begin = 0;  // source, text: offset; slot: its index
    std::uint32_t size = 0;
  };
  class Recorder;  // steering.cc: builds the pieces

  std::vector<Piece> pieces_;
  std::string texts_;  // the text the steering adds (tags, attributes, group suffixes)
  std::size_t source_bytes_ = 0;
  std::size_t slots_ = 0;
};

// A multivariant playlist of one variant: the media playlist at `uri` (no line break), with
// BANDWIDTH=`bandwidth`. What a bare media playlist is served as (on the viewer's pathway),
// so that steered_master() can offer it with steering.
std::string one_variant_master(std::string_view uri, std::uint64_t bandwidth);

// A pathway that the steering manifest makes from one the master lists (an entry of
// PATHWAY-CLONES): the base pathway's variants and renditions under `id`, their URIs with the
// host set to `host` (host[:port]; players differ on the port: Media3 replaces the authority,
// hls.js and video.js set the URL's hostname, which a value with a port leaves as it was) and
// the query parameters `params` set, replacing those of the same name.
struct PathwayClone {
  std::string id;
  std::string base_id;
  std::string host;
  std::vector<std::pair<std::string, std::string>> params;
};

// The steering manifest: {"VERSION":1,"TTL":<ttl_s>,"PATHWAY-PRIORITY":[<priority>]} and,
// when `clones` is not empty, "PATHWAY-CLONES":[{"BASE-ID":..,"ID":..,"URI-REPLACEMENT":
// {"HOST":..,"PARAMS":{..}}},..] (HOST left out when empty; PARAMS always present, as
// video.js reads it unguarded). Ids must be valid; strings are JSON-escaped.
std::string steering_manifest(int ttl_s, const std::vector<std::string>& priority,
                              const std::vector<PathwayClone>& clones = {});

}  // namespace hls
