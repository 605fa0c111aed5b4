// Internal to the hls library: tokenizer for attribute lists (RFC 8216 section 4.2)
// and the scalar value parsers used by the playlist parser. Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace hls::detail {

// One NAME=VALUE pair. Views point into the text given to parse_attribute_list().
struct Attribute {
  std::string_view name;
  std::string_view value;  // without the surrounding quotes
  bool quoted = false;
  std::size_t value_pos = 0;  // offset of value's first byte in the parsed text
};

// The attributes of one tag, in source order, plus what was irregular about it.
struct AttributeList {
  std::vector<Attribute> attrs;
  // Irregularities that make the position of a quoted value ambiguous between
  // clients (unterminated quote, bytes after a closing quote): fatal in tags that
  // carry a URI, where we must know exactly which bytes the client will fetch.
  std::string_view fatal_problem;
  // Irregularities that leave every quoted value unambiguous (a stray '"' inside
  // an unquoted value, a pair without '='): tolerated with a warning.
  std::string_view minor_problem;

  // First attribute called `name`, or nullptr.
  const Attribute* find(std::string_view name) const;
  std::size_t count(std::string_view name) const;
};

// Splits `text` (what follows "TAG:") into attributes. Never fails; problems are
// reported in the returned struct. Spaces and tabs before a name and around '='
// are skipped (seen in real playlists: "URI=\"a\", IV=0x...").
AttributeList parse_attribute_list(std::string_view text);

// decimal-integer: 1*DIGIT fitting in 64 bits. nullopt otherwise.
std::optional<std::uint64_t> parse_decimal_integer(std::string_view text);

// decimal-floating-point without sign or exponent: DIGITs with at most one '.',
// at least one digit, finite. nullopt otherwise.
std::optional<double> parse_decimal_float(std::string_view text);

// decimal-resolution "<width>x<height>".
struct ParsedResolution {
  std::uint64_t width = 0;
  std::uint64_t height = 0;
};
std::optional<ParsedResolution> parse_resolution(std::string_view text);

// "<length>[@<offset>]" as in EXT-X-BYTERANGE and the BYTERANGE attribute.
struct ParsedByteRange {
  std::uint64_t length = 0;
  std::optional<std::uint64_t> offset;
};
std::optional<ParsedByteRange> parse_byte_range(std::string_view text);

// Removes leading and trailing spaces and tabs.
std::string_view trim_blanks(std::string_view text);

}  // namespace hls::detail
