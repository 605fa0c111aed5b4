// Checks most parse tests share: a parse whose rewrite is checked as well, a
// rejection with its code and line, and the facts of one URI slot.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/hls_test_support.h"

namespace hls_test {

// Parses with the fixed playlist URL, REQUIREs success, checks the rewrite
// properties of the result against `text`, and returns the playlist.
inline hls::Playlist parse_checked(std::string_view text, const hls::ParseOptions& options = {}) {
  hls::Playlist pl = parse_ok(text, options);
  check_rewrite_properties(pl, text, options);
  return pl;
}

// parse_checked for a playlist that must parse without a single warning.
inline hls::Playlist parse_clean(std::string_view text) {
  hls::Playlist pl = parse_checked(text);
  CHECK(warning_codes(pl) == std::vector<std::string>{});
  return pl;
}

// Parses, REQUIREs failure, and checks the issue's code and line; returns the
// issue for the checks of its message.
inline hls::Issue check_rejected(std::string_view text, std::string_view code, std::size_t line,
                                 const hls::ParseOptions& options = {}) {
  hls::Issue issue = parse_error(text, options);
  CHECK(issue.code == code);
  CHECK(issue.line == line);
  return issue;
}

// REQUIREs that `items` holds `count` elements; returns `items` for the checks
// of each one.
template <typename Items>
const Items& require_size(const Items& items, std::size_t count) {
  REQUIRE(items.size() == count);
  return items;
}
template <typename Items>
const Items& require_size(const Items&& items, std::size_t count) = delete;  // would dangle

// The slot at `index`, which must be set and within the playlist's slots.
inline const hls::UriSlot& slot_at(const hls::Playlist& pl, std::optional<std::size_t> index) {
  REQUIRE(index.has_value());
  REQUIRE(*index < pl.tmpl.slots().size());
  return pl.tmpl.slots()[*index];
}

// What a test expects of one URI slot; a field left empty is not checked.
struct SlotFacts {
  std::optional<hls::Role> role = std::nullopt;
  std::optional<bool> quoted = std::nullopt;
  std::optional<std::string_view> tag = std::nullopt;
  std::optional<std::string_view> attribute = std::nullopt;
  std::optional<std::string_view> original = std::nullopt;
  std::optional<std::string_view> uri = std::nullopt;
  std::optional<std::size_t> line = std::nullopt;
};

inline void check_slot(const hls::UriSlot& slot, const SlotFacts& expected) {
  INFO("slot on line ", slot.line, ": ", slot.uri);
  if (expected.role) CHECK(slot.role == *expected.role);
  if (expected.quoted) CHECK(slot.quoted == *expected.quoted);
  if (expected.tag) CHECK(slot.tag == *expected.tag);
  if (expected.attribute) CHECK(slot.attribute == *expected.attribute);
  if (expected.original) CHECK(slot.original == *expected.original);
  if (expected.uri) CHECK(slot.uri == *expected.uri);
  if (expected.line) CHECK(slot.line == *expected.line);
}

}  // namespace hls_test
