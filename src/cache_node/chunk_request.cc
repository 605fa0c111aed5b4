#include "cache_node/chunk_request.h"

#include "common/url.h"

namespace cache_node {
namespace {

common::Error bad(std::string message) { return common::Error{"bad_request", std::move(message)}; }

bool valid_origin_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string ChunkRequest::cache_key() const {
  std::string key = origin_id;
  key += origin_path;
  if (!query.empty()) key.append("?").append(query);
  return key;
}

common::Result<ChunkRequest> parse_chunk_request(std::string_view target) {
  if (target.substr(0, kChunkPrefix.size()) != kChunkPrefix) return bad("Chunk URLs start with /o/<origin>/.");
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
  if (origin_path.size() < 2) return bad("The URL names an origin but no path on it.");
  if (origin_path.substr(0, 2) == "//") return bad("Absolute or scheme-relative URLs are not accepted.");
  for (char c : rest) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("Control characters are not accepted.");
  }
  auto decoded = common::percent_decode(origin_path);
  if (!decoded) return bad("The path has malformed percent-encoding or an encoded NUL.");
  if (decoded->find('\\') != std::string::npos) return bad("Backslashes are not accepted in paths.");
  if (decoded->find("://") != std::string::npos) return bad("Absolute URLs are not accepted in paths.");
  // "." and ".." (raw or encoded) could escape the origin's base path.
  if (common::has_dot_segment(*decoded)) return bad("Dot segments are not accepted in paths.");
  if (decoded->find("//") != std::string::npos) return bad("Empty path segments are not accepted.");
  if (!query.empty() && !common::percent_decode(query)) {
    return bad("The query has malformed percent-encoding or an encoded NUL.");
  }
  ChunkRequest out;
  out.origin_id.assign(origin_id);
  out.origin_path.assign(origin_path);
  out.query.assign(query);
  return out;
}

}  // namespace cache_node
