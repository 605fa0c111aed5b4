#include "balancer/viewers/request_params.h"

#include <charconv>

#include "core/url.h"
#include "hls/uri.h"
#include "signing/playback_ticket.h"

namespace balancer {
namespace {

core::Error bad(std::string message) {
  return core::Error{"bad_request", std::move(message)};
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
  out.append(name).append("=");
  hls::append_percent_encoded_component(out, value);
}

// "<channel>/<path on the origin>" into out.channel and out.origin_target.
core::Status read_viewer_path(std::string_view path, std::string_view prefix, ViewerRequest& out) {
  size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash + 1 >= path.size()) {
    return bad("Expected " + std::string(prefix) +
               "<channel>/<path of the playlist on the origin>.");
  }
  out.channel.assign(path.substr(0, slash));
  if (!signing::valid_channel_id(out.channel)) return bad("The channel id is not valid.");
  std::string_view origin_path = path.substr(slash);
  if (origin_path.substr(0, 2) == "//") return bad("Empty path segments are not accepted.");
  // Checked as decoded; a path without escapes (nearly every request) is its own decoding.
  std::optional<std::string> decoded;
  std::string_view plain = origin_path;
  if (origin_path.find('%') != std::string_view::npos) {
    decoded = core::percent_decode(origin_path);
    if (!decoded) return bad("The path has malformed percent-encoding.");
    plain = *decoded;
  }
  if (plain.find('\\') != std::string_view::npos)
    return bad("Backslashes are not accepted in paths.");
  if (core::has_dot_segment(plain)) return bad("Dot segments are not accepted in paths.");
  out.origin_target.assign(origin_path);  // the origin's own parameters follow, in order
  return {};
}

// The query's parameters, one by one, into a ViewerRequest: the reserved ones (each at most
// once) into their fields, the origin's own appended to origin_target in order.
class ViewerQueryReader {
 public:
  ViewerQueryReader(ViewerRequest& out, bool key) : out_(out), key_(key) {}

  core::Status read(const core::QueryParam& param) {
    std::string_view name = param.name;
    core::Status status;
    std::string value;
    if (name == "cache") {
      status = reserved(param, seen_cache_, out_.cache);
      if (status && !out_.cache.empty() && !signing::valid_channel_id(out_.cache)) {
        return bad("The cache id is not valid.");
      }
    } else if (name == "pathway") {
      status = reserved(param, seen_pathway_, out_.pathway);
      if (status && !out_.pathway.empty() && out_.pathway != kDefaultPathway &&
          !signing::valid_channel_id(out_.pathway)) {
        return bad("The pathway id is not valid.");
      }
    } else if (name == "ticket") {
      status = reserved(param, seen_ticket_, out_.ticket);
    } else if (name == "viewer") {
      status = reserved(param, seen_viewer_, out_.viewer);
      if (status && !out_.viewer.empty() && !signing::valid_viewer_id(out_.viewer)) {
        return bad("The viewer id must be 1 to 128 printable characters without spaces.");
      }
    } else if (name == "_HLS_msn") {
      status = reserved(param, seen_msn_, value);
      if (status && !(out_.directives.msn = parse_number(value))) {
        return bad("_HLS_msn must be a non-negative integer.");
      }
    } else if (name == "_HLS_part") {
      status = reserved(param, seen_part_, value);
      if (status && !(out_.directives.part = parse_number(value))) {
        return bad("_HLS_part must be a non-negative integer.");
      }
    } else if (name == "_HLS_skip") {
      status = reserved(param, seen_skip_, out_.directives.skip);
      if (status && out_.directives.skip != "YES" && out_.directives.skip != "v2") {
        return bad("_HLS_skip must be YES or v2.");
      }
    } else if (key_ && name == kKeySourceParameter) {
      status = reserved(param, seen_key_origin_, out_.key_origin);
      if (status && !signing::valid_channel_id(out_.key_origin)) {
        return bad("The key's source is not a valid origin id.");
      }
    } else if (name == "CMCD") {
      // A player adds its report to every URL it asks for (hls.js, Shaka Player): read, never
      // sent to origin, where it would make each request a different source playlist.
      out_.cmcd = std::string(param.value);
    } else {
      if (param.text.find('%') != std::string_view::npos && !core::percent_decode(param.text))
        return bad("The query has malformed percent-encoding.");
      core::append_query(out_.origin_target, param.text);
    }
    return status;
  }

 private:
  // A reserved parameter's decoded value into `into`; an error when repeated or malformed.
  static core::Status reserved(const core::QueryParam& param, bool& seen, std::string& into) {
    std::string_view name = param.name;
    if (seen) return bad("The parameter '" + std::string(name) + "' is repeated.");
    seen = true;
    if (param.value.find_first_of("%+") == std::string_view::npos) {
      into.assign(param.value);  // nothing to decode: no copy made and dropped
      return {};
    }
    auto value = param.decoded_value();
    if (!value)
      return bad("The parameter '" + std::string(name) + "' has malformed percent-encoding.");
    into = std::move(*value);
    return {};
  }

  ViewerRequest& out_;
  bool key_ = false;  // a key URL: kKeySourceParameter is reserved
  bool seen_key_origin_ = false;
  bool seen_cache_ = false, seen_ticket_ = false, seen_viewer_ = false, seen_pathway_ = false;
  bool seen_msn_ = false, seen_part_ = false, seen_skip_ = false;
};

}  // namespace

core::Result<ViewerRequest> parse_viewer_request(std::string_view target, std::string_view prefix) {
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

  ViewerRequest out;
  if (auto status = read_viewer_path(path, prefix, out); !status) return status.error();
  ViewerQueryReader reader(out, prefix == kKeyPrefix);
  for (const core::QueryParam& param : core::QueryParams(query)) {
    if (auto status = reader.read(param); !status) return status.error();
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
