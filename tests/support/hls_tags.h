// The tag names of a playlist's text, for tests and fuzz targets that check a rewrite kept
// every tag in place. Header-only, no dependencies (the fuzz targets include it too).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hls_test {

// Names of the tags ("#EXT..." lines after leading blanks), in order.
inline std::vector<std::string> tag_sequence(std::string_view text) {
  std::vector<std::string> tags;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t b = line.find_first_not_of(" \t");
    if (b != std::string_view::npos && line.substr(b).starts_with("#EXT")) {
      line = line.substr(b);
      tags.emplace_back(line.substr(0, line.find(':')));
    }
    if (end == text.size()) break;
    pos = end + (text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n' ? 2 : 1);
  }
  return tags;
}

}  // namespace hls_test
