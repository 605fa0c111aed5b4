#include "hls/attribute_list.h"

#include <charconv>
#include <cmath>

namespace hls::detail {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

size_t skip_blanks(std::string_view text, size_t pos) {
  while (pos < text.size() && is_blank(text[pos])) ++pos;
  return pos;
}

}  // namespace

std::string_view trim_blanks(std::string_view text) {
  size_t b = 0;
  size_t e = text.size();
  while (b < e && is_blank(text[b])) ++b;
  while (e > b && is_blank(text[e - 1])) --e;
  return text.substr(b, e - b);
}

const Attribute* AttributeList::find(std::string_view name) const {
  for (const Attribute& a : attrs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::size_t AttributeList::count(std::string_view name) const {
  std::size_t n = 0;
  for (const Attribute& a : attrs) n += a.name == name ? 1 : 0;
  return n;
}

AttributeList parse_attribute_list(std::string_view text) {
  AttributeList list;
  // One allocation for the common lists (a part's three attributes took three, doubling).
  list.attrs.reserve(4);
  size_t pos = 0;
  const size_t n = text.size();
  auto fatal = [&](std::string_view why) {
    if (list.fatal_problem.empty()) list.fatal_problem = why;
  };
  auto minor = [&](std::string_view why) {
    if (list.minor_problem.empty()) list.minor_problem = why;
  };
  while (pos < n) {
    pos = skip_blanks(text, pos);
    if (pos >= n) break;
    size_t name_end = pos;
    while (name_end < n && text[name_end] != '=' && text[name_end] != ',' &&
           text[name_end] != '"') {
      ++name_end;
    }
    if (name_end == n) name_end = std::string_view::npos;
    if (name_end == std::string_view::npos || text[name_end] != '=') {
      // "NAME" with no '=': skip to the next comma (a quote here is a stray one).
      if (name_end != std::string_view::npos && text[name_end] == '"') {
        fatal("a quote inside an attribute name");
        return list;
      }
      if (pos != name_end) minor("an attribute without '='");
      if (name_end == std::string_view::npos) break;
      pos = name_end + 1;
      continue;
    }
    Attribute attr;
    attr.name = trim_blanks(text.substr(pos, name_end - pos));
    if (attr.name.empty()) minor("an attribute without a name");
    pos = skip_blanks(text, name_end + 1);
    if (pos < n && text[pos] == '"') {
      size_t close = text.find('"', pos + 1);
      if (close == std::string_view::npos) {
        fatal("an unterminated quoted string");
        return list;
      }
      attr.quoted = true;
      attr.value_pos = pos + 1;
      attr.value = text.substr(pos + 1, close - pos - 1);
      pos = skip_blanks(text, close + 1);
      if (pos < n && text[pos] != ',') {
        fatal("bytes after a closing quote");
        return list;
      }
    } else {
      size_t comma = text.find(',', pos);
      if (comma == std::string_view::npos) comma = n;
      attr.value_pos = pos;
      attr.value = trim_blanks(text.substr(pos, comma - pos));
      if (attr.value.find('"') != std::string_view::npos)
        minor("a stray quote in an unquoted value");
      pos = comma;
    }
    list.attrs.push_back(attr);
    if (pos < n) ++pos;  // the comma
  }
  return list;
}

std::optional<std::uint64_t> parse_decimal_integer(std::string_view text) {
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
  }
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_decimal_float(std::string_view text) {
  size_t digits = 0;
  size_t dots = 0;
  for (char c : text) {
    if (is_digit(c)) {
      ++digits;
    } else if (c == '.') {
      ++dots;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0 || dots > 1) return std::nullopt;
  double value = 0;
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<ParsedResolution> parse_resolution(std::string_view text) {
  size_t x = text.find_first_of("xX");
  if (x == std::string_view::npos) return std::nullopt;
  auto w = parse_decimal_integer(text.substr(0, x));
  auto h = parse_decimal_integer(text.substr(x + 1));
  if (!w || !h) return std::nullopt;
  return ParsedResolution{*w, *h};
}

std::optional<ParsedByteRange> parse_byte_range(std::string_view text) {
  size_t at = text.find('@');
  auto length = parse_decimal_integer(text.substr(0, at));
  if (!length) return std::nullopt;
  ParsedByteRange range;
  range.length = *length;
  if (at != std::string_view::npos) {
    auto offset = parse_decimal_integer(text.substr(at + 1));
    if (!offset) return std::nullopt;
    range.offset = *offset;
  }
  return range;
}

}  // namespace hls::detail
