#include "cache_node/serving/chunk_request.h"

#include "core/url.h"
#include "signing/playback_ticket.h"

namespace cache_node {
namespace {

core::Error bad(std::string message) {
  return core::Error{"bad_request", std::move(message)};
}

// Origin ids are written in the channel id alphabet (1..64 of [A-Za-z0-9_-]).
bool valid_origin_id(std::string_view id) {
  return signing::valid_channel_id(id);
}

}  // namespace

std::string ChunkRequest::cache_key() const {
  std::string key = origin_id;
  key += origin_path;
  if (!kept_query.empty()) key.append("?").append(kept_query);
  return key;
}

core::Result<ChunkRequest> parse_chunk_request(std::string_view target) {
  if (target.substr(0, kChunkPrefix.size()) != kChunkPrefix)
    return bad("Chunk URLs start with /o/<origin>/.");
  std::string_view rest = target.substr(kChunkPrefix.size());
  auto q = rest.find('?');
  std::string_view path_part = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
  auto hash = query.find('#');
  if (hash != std::string_view::npos) query = query.substr(0, hash);

  auto slash = path_part.find('/');
  if (slash == std::string_view::npos) return bad("The URL names an origin but no path on it.");
  std::string_view origin_id = path_part.substr(0, slash);
  std::string_view origin_path = path_part.substr(slash);  // starts with '/'
  if (!valid_origin_id(origin_id)) return bad("The origin id is not valid.");
  for (char c : rest) {  // the fragment too
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("Control characters are not accepted.");
  }
  // The balancer signs only what this accepts: one rule on both sides.
  if (auto servable = core::check_servable_origin_target(origin_path, query); !servable)
    return servable.error();
  ChunkRequest out;
  out.origin_id.assign(origin_id);
  out.origin_path.assign(origin_path);
  out.query.assign(query);
  out.kept_query = out.query;
  return out;
}

}  // namespace cache_node
