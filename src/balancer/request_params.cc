#include "balancer/request_params.h"

#include <charconv>

#include "common/playback_ticket.h"
#include "common/url.h"
#include "hls/uri.h"

namespace balancer {
namespace {

common::Error bad(std::string message) {
  return common::Error{"bad_request", std::move(message)};
}

std::optional<uint64_t> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void append_param(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  if (!out.empty()) out += '&';
  out.append(name).append("=").append(hls::percent_encode_component(value));
}

}  // namespace

std::string DeliveryDirectives::query() const {
  std::string out;
  if (msn) out.append("_HLS_msn=").append(std::to_string(*msn));
  if (part) out.append(out.empty() ? "" : "&").append("_HLS_part=").append(std::to_string(*part));
  if (!skip.empty()) out.append(out.empty() ? "" : "&").append("_HLS_skip=").append(skip);
  return out;
}

common::Result<ViewerRequest> parse_viewer_request(std::string_view target,
                                                   std::string_view prefix) {
  if (target.substr(0, prefix.size()) != prefix)
    return bad("The URL is not under " + std::string(prefix) + ".");
  for (char c : target) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("Control characters are not accepted.");
  }
  std::string_view rest = target.substr(prefix.size());
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);

  size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash + 1 >= path.size()) {
    return bad("Expected " + std::string(prefix) +
               "<channel>/<path of the playlist on the origin>.");
  }
  ViewerRequest out;
  out.channel.assign(path.substr(0, slash));
  if (!common::valid_channel_id(out.channel)) return bad("The channel id is not valid.");
  std::string_view origin_path = path.substr(slash);
  if (origin_path.substr(0, 2) == "//") return bad("Empty path segments are not accepted.");
  auto decoded = common::percent_decode(origin_path);
  if (!decoded) return bad("The path has malformed percent-encoding.");
  if (decoded->find('\\') != std::string::npos)
    return bad("Backslashes are not accepted in paths.");
  if (common::has_dot_segment(*decoded)) return bad("Dot segments are not accepted in paths.");

  out.origin_target.assign(origin_path);  // the origin's own parameters follow, in order
  bool seen_cache = false, seen_ticket = false, seen_viewer = false, seen_pathway = false;
  bool seen_msn = false, seen_part = false, seen_skip = false;
  for (const common::QueryParam& param : common::QueryParams(query)) {
    std::string_view name = param.name;
    auto reserved = [&](bool& seen, std::string& into) -> common::Status {
      if (seen) return bad("The parameter '" + std::string(name) + "' is repeated.");
      seen = true;
      auto value = param.decoded_value();
      if (!value)
        return bad("The parameter '" + std::string(name) + "' has malformed percent-encoding.");
      into = std::move(*value);
      return {};
    };
    common::Status status;
    std::string value;
    if (name == "cache") {
      status = reserved(seen_cache, out.cache);
      if (status && !out.cache.empty() && !common::valid_channel_id(out.cache)) {
        return bad("The cache id is not valid.");
      }
    } else if (name == "pathway") {
      status = reserved(seen_pathway, out.pathway);
      if (status && !out.pathway.empty() && out.pathway != kDefaultPathway &&
          !common::valid_channel_id(out.pathway)) {
        return bad("The pathway id is not valid.");
      }
    } else if (name == "ticket") {
      status = reserved(seen_ticket, out.ticket);
    } else if (name == "viewer") {
      status = reserved(seen_viewer, out.viewer);
      if (status && !out.viewer.empty() && !common::valid_viewer_id(out.viewer)) {
        return bad("The viewer id must be 1 to 128 printable characters without spaces.");
      }
    } else if (name == "_HLS_msn") {
      status = reserved(seen_msn, value);
      if (status && !(out.directives.msn = parse_number(value))) {
        return bad("_HLS_msn must be a non-negative integer.");
      }
    } else if (name == "_HLS_part") {
      status = reserved(seen_part, value);
      if (status && !(out.directives.part = parse_number(value))) {
        return bad("_HLS_part must be a non-negative integer.");
      }
    } else if (name == "_HLS_skip") {
      status = reserved(seen_skip, out.directives.skip);
      if (status && out.directives.skip != "YES" && out.directives.skip != "v2") {
        return bad("_HLS_skip must be YES or v2.");
      }
    } else if (name == "CMCD") {
      // A player adds its report to every URL it asks for (hls.js, Shaka Player): read, never
      // sent to origin, where it would make each request a different source playlist.
      out.cmcd = std::string(param.value);
    } else {
      if (!common::percent_decode(param.text))
        return bad("The query has malformed percent-encoding.");
      common::append_query(out.origin_target, param.text);
    }
    if (!status) return status.error();
  }
  if (out.directives.part && !out.directives.msn) return bad("_HLS_part needs _HLS_msn.");
  if (prefix == kKeyPrefix && out.directives.any()) {
    return bad("Delivery directives (_HLS_*) apply to playlists only.");
  }
  append_param(out.viewer_query, "cache", out.cache);
  append_param(out.viewer_query, "ticket", out.ticket);
  append_param(out.viewer_query, "viewer", out.viewer);
  return out;
}

}  // namespace balancer
