// HTTP/1.x request heads (RFC 9112 §2.2, §3, §5), parsed from the bytes as they arrived: the
// request line and the header fields as views into those bytes, nothing copied. The first
// piece of an HTTP/1 transport of our own (docs/architecture.md, "Request framing"); the framing
// of a parsed head is then checked by RequestFramingCheck (http/request_framing.h).
//
// Strict where a lenient reading could differ from a proxy's (request smuggling): a head
// this refuses is answered 400 and its connection closed. Refused: a bare CR; a control
// character in the request line or in a field (HTAB allowed in values); a method or field
// name that is not a token; whitespace between a field name and its colon (§5.1); a line
// folded onto the previous one (obs-fold, §5.2); a request line that is not exactly method,
// target and version with one space between. Accepted, as §2.2 allows: a bare LF as a line's
// end, and empty lines before the request line. The version is read ("HTTP/" digit "." digit),
// not judged: the transport answers a version it does not serve (505).
//
// Pure; any thread.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "http/request_framing.h"

namespace common {

struct Http1Head {
  std::string_view method;
  std::string_view target;  // as sent (still percent-encoded)
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

}  // namespace common
