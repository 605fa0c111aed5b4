// Text cut into lines or fields, for tests that read playlists, metrics and records.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace balancer::test {

// The pieces of `text` between `separator`s: n separators make n + 1 pieces, empty ones
// included ("a\n\nb\n" gives "a", "", "b", "").
inline std::vector<std::string> split_fields(std::string_view text, char separator) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    const size_t end = text.find(separator, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// The lines of `text`, without their '\n' nor a '\r' before it; a last line needs no '\n',
// and nothing after a last '\n' is a line ("a\r\n\nb\n" gives "a", "", "b").
inline std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out = split_fields(text, '\n');
  if (out.back().empty()) out.pop_back();
  for (auto& line : out) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
  }
  return out;
}

}  // namespace balancer::test
