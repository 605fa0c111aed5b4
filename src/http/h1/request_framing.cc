#include "http/h1/request_framing.h"

#include <array>

#include "core/ascii.h"

namespace http {
namespace {

// A set of bytes as a table: one load per character (every request's header names and Host
// value go through these).
using ByteSet = std::array<bool, 256>;

constexpr ByteSet byte_set(std::string_view extra) {
  ByteSet set{};
  for (int c = '0'; c <= '9'; ++c) set[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) set[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) set[static_cast<size_t>(c)] = true;
  for (char c : extra) set[static_cast<unsigned char>(c)] = true;
  return set;
}

// tchar (RFC 9110 §5.6.2).
constexpr ByteSet kTchar = byte_set("!#$%&'*+-.^_`|~");
// RFC 3986 host [":" port] characters: unreserved, pct-encoded, sub-delims, ":",
// and the brackets of an IP literal. Structure is not checked: routing never
// depends on Host, this only keeps what a proxy could read differently out.
constexpr ByteSet kHostChar = byte_set("-._~%!$&'()*+,;=:[]");

bool in(const ByteSet& set, char c) {
  return set[static_cast<unsigned char>(c)];
}

// 1*DIGIT that fits in int64_t (what strtoll reads without saturating),
// around optional whitespace (SP, HTAB: strtoll skips those too).
bool parse_length(std::string_view s, uint64_t& out) {
  s = core::trim_ows(s);
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (static_cast<uint64_t>(INT64_MAX) - static_cast<uint64_t>(c - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

struct ProblemText {
  std::string_view code;
  std::string_view message;
};

constexpr std::array<ProblemText, kFramingProblemCount> kProblems = {{
    {"none", ""},
    {"bad_header_name",
     "A header field name must be a token, with no whitespace before the colon (RFC 9112 section "
     "5.1)."},
    {"repeated_content_length",
     "The request carries more than one Content-Length field (RFC 9112 section 6.3)."},
    {"bad_content_length",
     "Content-Length must be a decimal number of digits only (RFC 9110 section 8.6)."},
    {"bad_transfer_encoding",
     "The only transfer coding accepted is a single \"chunked\", on HTTP/1.1 (RFC 9112 section "
     "6.1)."},
    {"content_length_with_transfer_encoding",
     "The request carries both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)."},
    {"head_with_body", "A HEAD request must not carry a body."},
    {"missing_host", "An HTTP/1.1 request must carry a Host field (RFC 9112 section 3.2)."},
    {"repeated_host", "The request carries more than one Host field (RFC 9112 section 3.2)."},
    {"bad_host", "The Host field is not a valid host and port (RFC 9112 section 3.2)."},
}};

}  // namespace

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!in(kTchar, c)) return false;
  }
  return true;
}

std::string_view framing_problem_code(FramingProblem problem) {
  return kProblems[static_cast<size_t>(problem)].code;
}

std::string_view framing_problem_message(FramingProblem problem) {
  return kProblems[static_cast<size_t>(problem)].message;
}

RequestFramingCheck::RequestFramingCheck(std::string_view method, int version_major,
                                         int version_minor)
    : head_(method == "HEAD"),
      http11_(version_major > 1 || (version_major == 1 && version_minor >= 1)) {}

void RequestFramingCheck::field(std::string_view name, std::string_view value) {
  if (found_ != FramingProblem::none) return;
  if (!is_token(name)) {
    found_ = FramingProblem::bad_header_name;
  } else if (core::iequals(name, "Content-Length")) {
    uint64_t length = 0;
    if (++content_lengths_ > 1) {
      found_ = FramingProblem::repeated_content_length;
    } else if (!parse_length(value, length)) {
      found_ = FramingProblem::bad_content_length;
    } else {
      content_length_zero_ = length == 0;
    }
  } else if (core::iequals(name, "Transfer-Encoding")) {
    // Several fields make one list (RFC 9110 §5.3): two fields are never one "chunked".
    chunked_ = ++transfer_encodings_ == 1 && core::iequals(value, "chunked");
    if (!chunked_ || !http11_) found_ = FramingProblem::bad_transfer_encoding;
  } else if (core::iequals(name, "Host")) {
    if (++hosts_ > 1) {
      found_ = FramingProblem::repeated_host;
    } else {
      for (char c : value) {
        if (!in(kHostChar, c)) {
          found_ = FramingProblem::bad_host;
          break;
        }
      }
    }
  }
}

FramingProblem RequestFramingCheck::problem() const {
  if (found_ != FramingProblem::none) return found_;
  if (content_lengths_ > 0 && transfer_encodings_ > 0)
    return FramingProblem::content_length_with_transfer_encoding;
  if (head_ && (chunked_ || !content_length_zero_)) return FramingProblem::head_with_body;
  if (http11_ && hosts_ == 0) return FramingProblem::missing_host;
  return FramingProblem::none;
}

FramingProblem check_request_framing(std::string_view method, int version_major, int version_minor,
                                     std::span<const HeaderField> fields) {
  RequestFramingCheck check(method, version_major, version_minor);
  for (const HeaderField& f : fields) check.field(f.name, f.value);
  return check.problem();
}

}  // namespace http
