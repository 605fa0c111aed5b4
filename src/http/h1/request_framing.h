// Strict HTTP/1.x request framing (RFC 9112 §6) and Host rules (§3.2), as a pure
// function of a parsed request head (http/h1/http1_head.h). A proxy in front of us and this
// server must agree on where each request ends; where the RFC lets a recipient choose
// between repairing and refusing, this refuses, and the server answers 400 and
// closes the connection (so bytes after a refused head are never read as a
// request: no request smuggling).
//
// Decisions, each a refusal unless said otherwise:
// - a field name that is not a token (RFC 9110 §5.1), notably whitespace before
//   the colon ("Content-Length : 5", which a lenient reader stores as a field named
//   "Content-Length " and ignores);
// - more than one Content-Length field, even with identical values (§6.3 allows
//   either; the one-field list form "5, 5" is refused too, as nginx does);
// - a Content-Length that is not 1*DIGIT around optional whitespace ("+5",
//   "0x5", "-1", "5, 5", an empty value) or does not fit in 63 bits;
// - Transfer-Encoding other than exactly one field "chunked" (case-insensitive,
//   no whitespace around it): "identity, chunked", "gzip, chunked" (we decode no
//   other coding), "chunked" twice, "chunked, identity"; any Transfer-Encoding
//   on HTTP/1.0 (§6.1);
// - Content-Length together with Transfer-Encoding (§6.1 lets a server refuse);
// - a HEAD request with a body (Content-Length other than 0, or chunked): many readers
//   read no body for HEAD, so its bytes would be taken for the next request;
// - no Host on HTTP/1.1 or later, more than one Host, or a Host value with a
//   character outside RFC 3986's host and port ("a b", "a/b", "u@h"). An empty
//   Host is allowed (§3.2). HTTP/1.0 without Host is accepted.
//
// Values are taken with leading spaces and trailing whitespace removed, a leading tab kept
// (http1_connection.cc passes it on). A tab before a Transfer-Encoding value is refused:
// whether a proxy reads the body as chunked then depends on the proxy
// (docs/http.md, "Request framing").
//
// HTTP/2 requests are not checked here: nghttp2 frames them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace http {

enum class FramingProblem : uint8_t {
  none,
  bad_header_name,
  repeated_content_length,
  bad_content_length,
  bad_transfer_encoding,
  content_length_with_transfer_encoding,
  head_with_body,
  missing_host,
  repeated_host,
  bad_host,
};
inline constexpr size_t kFramingProblemCount = 10;

// The snake_case code (JSON error code and metric label) and a sentence for the
// error message. "none" for FramingProblem::none.
std::string_view framing_problem_code(FramingProblem problem);
std::string_view framing_problem_message(FramingProblem problem);

// A token (RFC 9110 §5.6.2): one or more tchar. Methods and field names are tokens.
bool is_token(std::string_view s);

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// Checks one request head field by field, without allocating: construct, feed
// every field in arrival order, then read problem(). The first problem found is
// kept. Any thread; the views must outlive the calls that pass them.
class RequestFramingCheck {
 public:
  // `method` as on the request line ("GET", "HEAD", ...); version HTTP/major.minor.
  RequestFramingCheck(std::string_view method, int version_major, int version_minor);
  void field(std::string_view name, std::string_view value);
  FramingProblem problem() const;

 private:
  bool head_ = false;
  bool http11_ = true;  // HTTP/1.1 or later: Host required, Transfer-Encoding allowed
  FramingProblem found_ = FramingProblem::none;
  int content_lengths_ = 0;
  bool content_length_zero_ = true;  // the (single) Content-Length is 0, or absent
  int transfer_encodings_ = 0;
  bool chunked_ = false;  // the (single) Transfer-Encoding is "chunked"
  int hosts_ = 0;
};

// The whole check at once (tests, callers with a list at hand).
FramingProblem check_request_framing(std::string_view method, int version_major, int version_minor,
                                     std::span<const HeaderField> fields);

}  // namespace http
