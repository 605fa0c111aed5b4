#include "hls/steering.h"

namespace hls {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string json_list(const std::vector<std::string>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += '"' + ids[i] + '"';  // valid_pathway_id: nothing to escape
  }
  return out + "]";
}

}  // namespace

bool valid_pathway_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char ch : id) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> add_content_steering(std::string_view master,
                                                std::string_view server_uri) {
  if (server_uri.empty() || server_uri.find_first_of("\"\r\n") != std::string_view::npos)
    return std::nullopt;
  std::string_view body = master;
  if (starts_with(body, "\xEF\xBB\xBF")) body.remove_prefix(3);
  if (!starts_with(body, "#EXTM3U")) return std::nullopt;
  bool variants = false;
  for (size_t start = 0; start < body.size();) {
    size_t nl = body.find('\n', start);
    std::string_view line =
        body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (starts_with(line, "#EXT-X-CONTENT-STEERING") ||
        line.find("PATHWAY-ID=") != std::string_view::npos) {
      return std::nullopt;
    }
    if (starts_with(line, "#EXT-X-STREAM-INF:")) variants = true;
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  if (!variants) return std::nullopt;
  // Right after the #EXTM3U line, with that line's own ending.
  size_t first_end = body.find('\n');
  if (first_end == std::string_view::npos) return std::nullopt;  // variants need more than one line
  const bool crlf = first_end > 0 && body[first_end - 1] == '\r';
  const size_t insert_at = master.size() - body.size() + first_end + 1;
  std::string out;
  out.reserve(master.size() + server_uri.size() + 64);
  out.append(master.substr(0, insert_at));
  out.append("#EXT-X-CONTENT-STEERING:SERVER-URI=\"").append(server_uri).append("\",PATHWAY-ID=\"");
  out.append(kDefaultPathway).append(crlf ? "\"\r\n" : "\"\n");
  out.append(master.substr(insert_at));
  return out;
}

std::string steering_manifest(int ttl_s, const std::vector<std::string>& priority,
                              const std::vector<std::string>& clones, std::string_view reload_uri) {
  std::string out = "{\"VERSION\":1,\"TTL\":" + std::to_string(ttl_s);
  if (!reload_uri.empty()) {
    out += ",\"RELOAD-URI\":\"";
    for (char ch : reload_uri) {
      if (static_cast<unsigned char>(ch) < 0x20) continue;  // a URI has none; never break the JSON
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  out += ",\"PATHWAY-PRIORITY\":" + json_list(priority);
  out += ",\"PATHWAY-CLONES\":[";
  for (size_t i = 0; i < clones.size(); ++i) {
    if (i) out += ',';
    out += "{\"BASE-ID\":\"" + std::string(kDefaultPathway) + "\",\"ID\":\"" + clones[i] +
           "\",\"URI-REPLACEMENT\":{\"PARAMS\":{\"pathway\":\"" + clones[i] + "\"}}}";
  }
  return out + "]}\n";
}

}  // namespace hls
