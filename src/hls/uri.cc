#include "hls/uri.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace hls {
namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 section 5.2.3: what a relative path is merged onto, the base's path up to and with
// its last '/' ("/" for a base with an authority and no path).
std::string_view base_directory(const UriParts& base) {
  if (base.authority && base.path.empty()) return "/";
  const size_t slash = base.path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : base.path.substr(0, slash + 1);
}

}  // namespace

void append_percent_encoded(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('%');
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xF]);
}

bool is_valid_scheme(std::string_view scheme) {
  if (scheme.empty() || !is_alpha(scheme[0])) return false;
  for (char c : scheme) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// Index of the first byte of `text` (from `pos`) that is one of `set`, or npos.
// A plain loop: string_view::find_first_of calls memchr once per byte.
static size_t find_any(std::string_view text, std::string_view set, size_t pos = 0) {
  for (size_t i = pos; i < text.size(); ++i) {
    for (char c : set) {
      if (text[i] == c) return i;
    }
  }
  return std::string_view::npos;
}

UriParts split_uri(std::string_view ref) {
  UriParts parts;
  size_t first = find_any(ref, ":/?#");
  if (first != std::string_view::npos && ref[first] == ':' &&
      is_valid_scheme(ref.substr(0, first))) {
    parts.scheme = ref.substr(0, first);
    ref.remove_prefix(first + 1);
  }
  if (ref.size() >= 2 && ref[0] == '/' && ref[1] == '/') {
    size_t end = find_any(ref, "/?#", 2);
    if (end == std::string_view::npos) end = ref.size();
    parts.authority = ref.substr(2, end - 2);
    ref.remove_prefix(end);
  }
  size_t hash = ref.find('#');
  if (hash != std::string_view::npos) {
    parts.fragment = ref.substr(hash + 1);
    ref = ref.substr(0, hash);
  }
  size_t question = ref.find('?');
  if (question != std::string_view::npos) {
    parts.query = ref.substr(question + 1);
    ref = ref.substr(0, question);
  }
  parts.path = ref;
  return parts;
}

bool is_absolute_uri(std::string_view uri) {
  return split_uri(uri).scheme.has_value();
}

std::string remove_dot_segments(std::string_view path) {
  // Work on a mutable copy: rules B and C replace a prefix of the input by "/",
  // which is done by overwriting one byte and advancing.
  std::string in(path);
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  const size_t n = in.size();
  auto starts = [&](std::string_view p) { return std::string_view(in).substr(i).starts_with(p); };
  auto rest_is = [&](std::string_view p) { return std::string_view(in).substr(i) == p; };
  auto pop_segment = [&] {
    size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (i < n) {
    if (starts("../")) {
      i += 3;
    } else if (starts("./")) {
      i += 2;
    } else if (starts("/./")) {
      i += 2;
    } else if (rest_is("/.")) {
      in[i + 1] = '/';
      i += 1;
    } else if (starts("/../")) {
      i += 3;
      pop_segment();
    } else if (rest_is("/..")) {
      in[i + 2] = '/';
      i += 2;
      pop_segment();
    } else if (rest_is(".") || rest_is("..")) {
      i = n;
    } else {
      size_t end = in.find('/', in[i] == '/' ? i + 1 : i);
      if (end == std::string::npos) end = n;
      out.append(in, i, end - i);
      i = end;
    }
  }
  return out;
}

namespace {

// A "." or ".." segment starts the path or follows a '/': a path with neither needs no
// remove_dot_segments (most playlists' URIs), and is used as it is.
bool may_have_dot_segments(std::string_view path) {
  return path.starts_with('.') || path.find("/.") != std::string_view::npos;
}

}  // namespace

std::optional<std::string> resolve_uri(std::string_view base, std::string_view reference) {
  return resolve_uri(split_uri(base), reference);
}

std::optional<std::string> resolve_uri(const UriParts& b, std::string_view reference) {
  if (!b.scheme) return std::nullopt;
  const UriParts r = split_uri(reference);

  std::string_view scheme;
  std::optional<std::string_view> authority;
  // The path is `path_head` + `path_tail`, or `cleaned` when it had dot segments.
  std::string_view path_head;
  std::string_view path_tail;
  std::optional<std::string> cleaned;
  std::optional<std::string_view> query;
  auto take_path = [&](std::string_view path) {
    if (may_have_dot_segments(path)) {
      cleaned = remove_dot_segments(path);
    } else {
      path_tail = path;
    }
  };
  if (r.scheme) {
    scheme = *r.scheme;
    authority = r.authority;
    take_path(r.path);
    query = r.query;
  } else {
    scheme = *b.scheme;
    if (r.authority) {
      authority = r.authority;
      take_path(r.path);
      query = r.query;
    } else {
      authority = b.authority;
      if (r.path.empty()) {
        path_tail = b.path;
        query = r.query ? r.query : b.query;
      } else if (r.path.front() == '/') {
        take_path(r.path);
        query = r.query;
      } else {
        // Merged with the base's directory. Joining a directory that ends in '/' to a path
        // that starts with neither '.' nor '/' makes no dot segment.
        const std::string_view directory = base_directory(b);
        if (may_have_dot_segments(directory) || may_have_dot_segments(r.path)) {
          std::string merged(directory);
          merged.append(r.path);
          cleaned = remove_dot_segments(merged);
        } else {
          path_head = directory;
          path_tail = r.path;
        }
        query = r.query;
      }
    }
  }

  // RFC 3986 section 5.3.
  std::string out;
  const size_t base_size = b.scheme->size() + (b.authority ? b.authority->size() : 0) +
                           b.path.size() + (b.query ? b.query->size() : 0);
  out.reserve(scheme.size() + base_size + reference.size() + 8);
  out.append(scheme).push_back(':');
  if (authority) out.append("//").append(*authority);
  if (cleaned) {
    out.append(*cleaned);
  } else {
    out.append(path_head).append(path_tail);
  }
  if (query) out.append("?").append(*query);
  if (r.fragment) out.append("#").append(*r.fragment);
  return out;
}

namespace {

// What each byte is in a playlist's URI, looked up rather than compared (every URI of every
// playlist is checked twice: these checks were a quarter of a parse).
enum class UriByte : uint8_t {
  forbidden = 1,  // a control character, DEL or a backslash: the URI is refused
  escaped = 2,    // non-ASCII, space, " < > ` { }: written percent-encoded
};
constexpr std::array<uint8_t, 256> kUriBytes = [] {
  std::array<uint8_t, 256> table{};
  for (size_t c = 0; c < 0x20; ++c) table[c] = static_cast<uint8_t>(UriByte::forbidden);
  table[0x7F] = static_cast<uint8_t>(UriByte::forbidden);
  table['\\'] = static_cast<uint8_t>(UriByte::forbidden);
  for (size_t c = 0x80; c < table.size(); ++c) table[c] = static_cast<uint8_t>(UriByte::escaped);
  for (unsigned char c : {' ', '"', '<', '>', '`', '{', '}'})
    table[c] = static_cast<uint8_t>(UriByte::escaped);
  return table;
}();

bool is(UriByte kind, char ch) {
  return (kUriBytes[static_cast<unsigned char>(ch)] & static_cast<uint8_t>(kind)) != 0;
}
bool needs_uri_escape(char ch) {
  return is(UriByte::escaped, ch);
}
bool any_of_kind(UriByte kind, std::string_view text) {
  for (char ch : text) {
    if (is(kind, ch)) return true;
  }
  return false;
}

}  // namespace

bool has_forbidden_uri_chars(std::string_view text) {
  return any_of_kind(UriByte::forbidden, text);
}

UriBytesFound find_uri_bytes(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  uint8_t found = 0;
  size_t i = 0;
  // Eight lookups a step: one loop test per eight bytes (URIs with signed queries are long).
  for (; i + 8 <= n; i += 8) {
    found |= kUriBytes[bytes[i]] | kUriBytes[bytes[i + 1]] | kUriBytes[bytes[i + 2]] |
             kUriBytes[bytes[i + 3]] | kUriBytes[bytes[i + 4]] | kUriBytes[bytes[i + 5]] |
             kUriBytes[bytes[i + 6]] | kUriBytes[bytes[i + 7]];
  }
  for (; i < n; ++i) found |= kUriBytes[bytes[i]];
  return {(found & static_cast<uint8_t>(UriByte::forbidden)) != 0,
          (found & static_cast<uint8_t>(UriByte::escaped)) != 0};
}

void escape_uri_chars_in_place(std::string& text) {
  // The common case, nothing to escape, keeps the string as it is.
  if (!any_of_kind(UriByte::escaped, text)) return;
  text = escape_uri_chars(std::string_view(text));
}

std::string escape_uri_chars(std::string_view text) {
  // Most URIs need none: copied whole, not a character at a time.
  const auto first = std::find_if(text.begin(), text.end(), needs_uri_escape);
  std::string out(text.begin(), first);
  if (first == text.end()) return out;
  out.reserve(text.size() + 8);
  for (auto it = first; it != text.end(); ++it) {
    if (needs_uri_escape(*it)) {
      append_percent_encoded(out, static_cast<unsigned char>(*it));
    } else {
      out.push_back(*it);
    }
  }
  return out;
}

std::string percent_encode_component(std::string_view text) {
  std::string out;
  append_percent_encoded_component(out, text);
  return out;
}

void append_percent_encoded_component(std::string& out, std::string_view text) {
  auto unreserved = [](char ch) {
    return is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~';
  };
  // Ids and most values are unreserved throughout: appended whole up to the first that is not.
  size_t plain = 0;
  while (plain < text.size() && unreserved(text[plain])) ++plain;
  out.append(text.substr(0, plain));
  if (plain == text.size()) return;
  out.reserve(out.size() + (text.size() - plain) * 3);
  for (char ch : text.substr(plain)) {
    if (unreserved(ch)) {
      out.push_back(ch);
    } else {
      append_percent_encoded(out, static_cast<unsigned char>(ch));
    }
  }
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]);
      int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view uri, std::string_view name) {
  const UriParts parts = split_uri(uri);
  if (!parts.query) return std::nullopt;
  std::string_view q = *parts.query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::optional<std::string> key = percent_decode(pair.substr(0, eq), true);
    if (!key || *key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    return percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

}  // namespace hls
