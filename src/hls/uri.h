// URI helpers for playlist rewriting: RFC 3986 reference resolution and the small
// percent-encoding utilities the parser and its users need.
// All functions are pure and may be called from any thread. They never throw
// except std::bad_alloc.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hls {

// The five components of a URI reference, split as in RFC 3986 Appendix B.
// Views point into the string given to split_uri(); the caller keeps it alive.
// A component that is absent is nullopt (an empty query "a?" is present and empty).
struct UriParts {
  std::optional<std::string_view> scheme;
  std::optional<std::string_view> authority;
  std::string_view path;
  std::optional<std::string_view> query;
  std::optional<std::string_view> fragment;
};

// Splits a URI reference into its components. Never fails. A prefix before ':'
// that is not a valid scheme (e.g. "a b:c") is taken as part of a relative path.
UriParts split_uri(std::string_view reference);

// True if `scheme` matches ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool is_valid_scheme(std::string_view scheme);

// True if `uri` starts with a valid scheme followed by ':'.
bool is_absolute_uri(std::string_view uri);

// RFC 3986 section 5.2.4. Returns the path without "." and ".." segments.
std::string remove_dot_segments(std::string_view path);

// Resolves `reference` against `base` per RFC 3986 section 5.2 (strict parser,
// remove_dot_segments, recomposition per 5.3). The base's fragment is ignored.
// Returns nullopt when `base` is not an absolute URI. No characters are encoded
// or decoded: the result is the textual resolution only.
std::optional<std::string> resolve_uri(std::string_view base, std::string_view reference);
// The same against a base split once (split_uri() of a string the caller keeps alive), for the
// many references of one playlist.
std::optional<std::string> resolve_uri(const UriParts& base, std::string_view reference);

// True if `text` contains a byte that can never appear in a URI reference we are
// willing to forward: ASCII control characters (0x00-0x1F, 0x7F) or a backslash
// (which browsers reinterpret as '/' and other clients do not).
bool has_forbidden_uri_chars(std::string_view text);

// Both checks of a reference's bytes in one pass: a forbidden byte (has_forbidden_uri_chars), a
// byte escape_uri_chars would percent-encode.
struct UriBytesFound {
  bool forbidden = false;
  bool escaped = false;
};
UriBytesFound find_uri_bytes(std::string_view text);

// Percent-encodes the bytes that RFC 3986 does not allow but that real playlists
// contain: space, '"', '<', '>', '`', '{', '}' and every byte >= 0x80 (so UTF-8
// is encoded byte by byte, as browsers do). Everything else, including '%', is
// copied unchanged. Never fails.
std::string escape_uri_chars(std::string_view text);
// The same in `text`, which keeps its storage when nothing needs escaping.
void escape_uri_chars_in_place(std::string& text);

// Percent-encodes every byte except RFC 3986 unreserved characters
// (ALPHA / DIGIT / "-" / "." / "_" / "~"). Handy to embed a URI in a query
// parameter or a path segment. Never fails.
std::string percent_encode_component(std::string_view text);
// The same, appended to `out` (no string of its own).
void append_percent_encoded_component(std::string& out, std::string_view text);

// Appends `c` as "%XX" (upper-case hex digits, RFC 3986 §2.1).
void append_percent_encoded(std::string& out, unsigned char c);

// Decodes %XX escapes (hex digits of either case); with `plus_as_space`, '+' is
// decoded to ' ' (application/x-www-form-urlencoded). Returns nullopt when a '%'
// is not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space = false);

// Looks up the first query parameter named `name` (compared after decoding) in
// `uri`'s query and returns its value decoded as URLSearchParams does ('+' is a
// space). Returns nullopt when there is no query, no such parameter, or its
// name/value has a malformed escape. A parameter without '=' has an empty value.
std::optional<std::string> query_param(std::string_view uri, std::string_view name);

}  // namespace hls
