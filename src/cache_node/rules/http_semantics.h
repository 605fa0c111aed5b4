// HTTP caching semantics for stored objects, as pure functions: single byte
// ranges (RFC 9110 §14) and conditional requests (§13).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/ascii.h"

namespace cache_node {

using core::trim_ows;

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  uint64_t length() const { return last - first + 1; }
};

enum class RangeOutcome { none, satisfiable, unsatisfiable };
struct RangeDecision {
  RangeOutcome outcome = RangeOutcome::none;
  ByteRange range;
};

// Evaluates a Range header against an object of `size` bytes. Only one range is
// served; multiple ranges or unparsable values are ignored (a full 200), as RFC
// 9110 allows.
RangeDecision evaluate_range(std::optional<std::string_view> range_header, uint64_t size);

// True if the request's validators say the client's copy is current (→ 304):
// If-None-Match (weak comparison, "*" matches) takes precedence over
// If-Modified-Since.
bool not_modified(std::optional<std::string_view> if_none_match,
                  std::optional<std::string_view> if_modified_since, std::string_view etag,
                  std::string_view last_modified);

// If-Range: true if the range may be applied (no If-Range, or it matches).
bool if_range_allows(std::optional<std::string_view> if_range, std::string_view etag,
                     std::string_view last_modified);

// ASCII case-insensitive equality (header and directive names).
using core::iequals;

// Whether an upstream response header is stored with the copy and sent with it
// (RFC 9111 §3.1: a cache keeps the end-to-end fields). Not kept: hop-by-hop
// fields (RFC 9110 §7.6.1, and any that `connection`, the Connection field's value,
// names); fields the node keeps apart or computes for each reply (Content-Type,
// ETag, Last-Modified, Cache-Control, Expires, Date, Age, Content-Length,
// Content-Range, Accept-Ranges, X-Cache); Set-Cookie (a cookie is one viewer's,
// never to be shared); and the origin's Access-Control-* (the node's own CORS
// policy answers for every response). Names are case-insensitive.
bool kept_response_header(std::string_view name, std::string_view connection);

// Whether a 304 may replace the stored value of a header (RFC 9111 §3.2): not those
// that describe the stored body itself (Content-Encoding, Content-MD5, Content-Length,
// Content-Range) nor the validator it was selected by (ETag).
bool updated_by_304(std::string_view name);

// What one copy keeps at most of such headers: more is dropped (and counted), so a
// hostile origin cannot make each stored copy large.
inline constexpr size_t kMaxKeptHeaders = 24;
inline constexpr size_t kMaxKeptHeaderBytes = 4096;  // names, values and separators

// Origin answers other than 200 that reach the viewer as the origin sent them (status,
// headers kept as for a copy, body) without being stored: the other 2xx but 206 (the node
// asks for whole objects) and 3xx but 304 (a redirect the node does not follow itself).
bool relayed_as_is(int status);

// True if a Vary field value lists "*" (RFC 9110 §12.5.5): the response can
// never be known to match a later request, so a cache does not reuse it.
bool varies_on_everything(std::string_view vary);

// Parses an HTTP date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or the
// obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6
// 08:49:37 1994") forms, each exactly as RFC 9110 §5.6.7 writes it (fixed
// widths, case-sensitive names, "GMT"); nullopt for anything else.
std::optional<int64_t> parse_http_date(std::string_view text);
std::string format_http_date(int64_t unix_seconds);

}  // namespace cache_node
