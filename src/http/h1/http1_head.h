// HTTP/1.x request heads (RFC 9112 §2.2, §3, §5), parsed from the bytes as they arrived: the
// request line and the header fields as views into those bytes, nothing copied. The first
// piece of an HTTP/1 transport of our own (docs/http.md, "Request framing"); the framing
// of a parsed head is then checked by RequestFramingCheck (http/h1/request_framing.h).
//
// Strict where a lenient reading could differ from a proxy's (request smuggling): a head
// this refuses is answered 400 and its connection closed. Refused: a bare CR; a control
// character in the request line or in a field (HTAB allowed in values); a method or field
// name that is not a token; whitespace between a field name and its colon (§5.1); a line
// folded onto the previous one (obs-fold, §5.2); a request line that is not exactly method,
// target and version with one space between; an absolute-form target (§3.2.2) whose scheme is
// http or https but whose authority is not a host and port (userinfo, an empty host, a bad
// port) or whose path is missing before a query. Accepted, as §2.2 allows: a bare LF as a line's
// end, and empty lines before the request line. The version is read ("HTTP/" digit "." digit),
// not judged: the codec (http1_codec.h) refuses a version it does not serve (505).
//
// Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/ascii.h"
#include "http/h1/request_framing.h"

namespace http {

struct Http1Head {
  std::string_view method;
  // As sent (still percent-encoded); of an absolute-form target ("http://host:port/p?q",
  // §3.2.2), its path and query ("/" for an empty path), and every Host field's value is then
  // the target's authority instead of the one sent (a Host value that is invalid is kept, so
  // the framing check refuses it).
  std::string_view target;
  int major = 0;
  int minor = 0;
  // In the order sent; names as sent, values without the whitespace around them.
  std::vector<HeaderField> fields;
  size_t size = 0;  // bytes from the start through the empty line that ends the head
};

enum class HeadStatus {
  complete,    // `head` holds it
  incomplete,  // the empty line has not arrived yet: read more
  too_large,   // no complete head within the limit (answer 431)
  malformed,   // answer 400 and close (`error` says why)
};

struct HeadParse {
  HeadStatus status = HeadStatus::incomplete;
  Http1Head head;          // when complete
  std::string_view error;  // when malformed: a sentence for the 400's message
};

// The head at the start of `bytes`. At most `max_bytes` of them may make the head, empty
// lines before the request line included.
HeadParse parse_http1_head(std::string_view bytes, size_t max_bytes);
// The same into `out`, whose field list keeps its capacity (a connection parsing one head
// after another allocates none).
void parse_http1_head(std::string_view bytes, size_t max_bytes, HeadParse& out);

// One past the LF of the first empty line at or after `from` that follows a line end (where a
// head ends), or npos. A transport reading a head as it arrives searches only the bytes
// that are new (from a little before them: the line end may have come in pieces) and parses
// once this finds the end, so a head sent a byte at a time is not read again and again.
size_t http1_head_end(std::string_view bytes, size_t from);

// A request body in the chunked transfer coding (RFC 9112 §7.1), decoded as its bytes
// arrive. Chunk extensions are skipped and trailer fields read and dropped. Refused: a chunk
// size that is not 1 to 15 hex digits, data not followed by its line end, a control
// character or bare CR in a size or trailer line, a line longer than 4 KiB, trailers longer
// than 16 KiB. Pure; one body per decoder.
class ChunkedBodyDecoder {
 public:
  enum class Status { more, complete, malformed, too_large };
  // Decodes what it can of `bytes` (what arrived after the bytes used before), appending the
  // data to `body`, which may grow to `max_body` bytes and no further. `used` is set to the
  // bytes of `bytes` taken: once complete, the rest belongs to the next request; with
  // `more`, the caller passes the unused rest again with what arrives next.
  Status feed(std::string_view bytes, std::string& body, size_t max_body, size_t& used);
  std::string_view error() const { return error_; }

 private:
  enum class Part { size_line, data, data_end, trailer };
  Status refuse(std::string_view why);
  Part part_ = Part::size_line;
  uint64_t remaining_ = 0;  // data bytes of the current chunk still to come
  size_t trailer_bytes_ = 0;
  std::string_view error_;
};

// Each comma-separated token of a field value (Connection, Transfer-Encoding), trimmed.
template <typename Fn>
void for_each_token(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    fn(core::trim_ows(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace http
