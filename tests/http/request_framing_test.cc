// Strict HTTP/1.x framing and Host rules (RFC 9112 §6.3, §6.1, §3.2): every
// request head a proxy and a lenient reader (evhttp, which served HTTP/1 before) could
// frame differently is refused, the ordinary forms are accepted. Fields are given as
// http1_connection.cc passes them (a leading tab kept).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http/h1/request_framing.h"

using http::FramingProblem;
using http::HeaderField;

namespace {

struct Case {
  const char* what;
  const char* method;
  int major;
  int minor;
  std::vector<HeaderField> fields;
  FramingProblem expected;
};

const HeaderField kHost{"Host", "example.com"};

}  // namespace

TEST_CASE("request framing: the table of accepted and refused heads") {
  using P = FramingProblem;
  // clang-format off
  const std::vector<Case> cases = {
      // Accepted: what curl, browsers, players and proxies send.
      {"GET with Host", "GET", 1, 1, {kHost}, P::none},
      {"Host with port and IPv6 literal", "GET", 1, 1, {{"Host", "[::1]:8080"}}, P::none},
      {"empty Host (RFC 9112 3.2 allows it)", "GET", 1, 1, {{"Host", ""}}, P::none},
      {"single Content-Length", "POST", 1, 1, {kHost, {"Content-Length", "5"}}, P::none},
      {"Content-Length 0", "POST", 1, 1, {kHost, {"content-length", "0"}}, P::none},
      {"leading zeros are digits", "POST", 1, 1, {kHost, {"Content-Length", "005"}}, P::none},
      {"tab before the length (OWS; evhttp keeps it, strtoll skips it)", "POST", 1, 1,
       {kHost, {"Content-Length", "\t5"}}, P::none},
      {"largest 63-bit length", "POST", 1, 1, {kHost, {"Content-Length", "9223372036854775807"}}, P::none},
      {"Transfer-Encoding: chunked", "POST", 1, 1, {kHost, {"Transfer-Encoding", "chunked"}}, P::none},
      {"chunked in capitals", "POST", 1, 1, {kHost, {"transfer-encoding", "CHUNKED"}}, P::none},
      {"HTTP/1.0 without Host", "GET", 1, 0, {}, P::none},
      {"HTTP/1.0 with a length and no Host", "POST", 1, 0, {{"Content-Length", "3"}}, P::none},
      {"HEAD with Content-Length 0", "HEAD", 1, 1, {kHost, {"Content-Length", "0"}}, P::none},
      {"HEAD without a body", "HEAD", 1, 1, {kHost}, P::none},
      {"other fields are not judged by value", "GET", 1, 1, {kHost, {"X-Any", " a\tb "}, {"Accept", ""}}, P::none},
      {"token characters in names", "GET", 1, 1, {kHost, {"X-A!#$%&'*+.^_`|~1", "v"}}, P::none},

      // Different Content-Length values (first wins in evhttp, the rest is read as a request).
      {"two different lengths", "POST", 1, 1, {kHost, {"Content-Length", "5"}, {"Content-Length", "40"}},
       P::repeated_content_length},
      {"two identical lengths (our choice: refused)", "POST", 1, 1,
       {kHost, {"Content-Length", "5"}, {"content-length", "5"}}, P::repeated_content_length},

      // Non-digit lengths.
      {"plus sign", "POST", 1, 1, {kHost, {"Content-Length", "+5"}}, P::bad_content_length},
      {"hexadecimal", "POST", 1, 1, {kHost, {"Content-Length", "0x5"}}, P::bad_content_length},
      {"negative", "POST", 1, 1, {kHost, {"Content-Length", "-1"}}, P::bad_content_length},
      {"list in one field", "POST", 1, 1, {kHost, {"Content-Length", "5, 5"}}, P::bad_content_length},
      {"empty", "POST", 1, 1, {kHost, {"Content-Length", ""}}, P::bad_content_length},
      {"vertical tab (strtoll would skip it)", "POST", 1, 1, {kHost, {"Content-Length", "\v5"}},
       P::bad_content_length},
      {"folded into two numbers", "POST", 1, 1, {kHost, {"Content-Length", "5 5"}}, P::bad_content_length},
      {"beyond 63 bits", "POST", 1, 1, {kHost, {"Content-Length", "9223372036854775808"}}, P::bad_content_length},
      {"far beyond 64 bits", "POST", 1, 1, {kHost, {"Content-Length", "99999999999999999999999"}},
       P::bad_content_length},

      // Transfer-Encoding other than a single final chunked.
      {"identity, chunked", "POST", 1, 1, {kHost, {"Transfer-Encoding", "identity, chunked"}},
       P::bad_transfer_encoding},
      {"gzip, chunked", "POST", 1, 1, {kHost, {"Transfer-Encoding", "gzip, chunked"}}, P::bad_transfer_encoding},
      {"chunked, identity", "POST", 1, 1, {kHost, {"Transfer-Encoding", "chunked, identity"}},
       P::bad_transfer_encoding},
      {"identity", "POST", 1, 1, {kHost, {"Transfer-Encoding", "identity"}}, P::bad_transfer_encoding},
      {"chunked in two fields", "POST", 1, 1,
       {kHost, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}, P::bad_transfer_encoding},
      {"gzip field then chunked field", "POST", 1, 1,
       {kHost, {"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}}, P::bad_transfer_encoding},
      {"leading tab evhttp keeps", "POST", 1, 1, {kHost, {"Transfer-Encoding", "\tchunked"}},
       P::bad_transfer_encoding},
      {"chunked with a parameter", "POST", 1, 1, {kHost, {"Transfer-Encoding", "chunked;x=1"}},
       P::bad_transfer_encoding},
      {"chunked on HTTP/1.0", "POST", 1, 0, {{"Transfer-Encoding", "chunked"}}, P::bad_transfer_encoding},
      {"both Content-Length and chunked", "POST", 1, 1,
       {kHost, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
       P::content_length_with_transfer_encoding},
      {"chunked then Content-Length", "POST", 1, 1,
       {kHost, {"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}},
       P::content_length_with_transfer_encoding},

      // Whitespace before the colon: evhttp keeps it in the name.
      {"space before the colon", "POST", 1, 1, {kHost, {"Content-Length ", "5"}}, P::bad_header_name},
      {"tab before the colon", "POST", 1, 1, {kHost, {"Transfer-Encoding\t", "chunked"}}, P::bad_header_name},
      {"space before the colon on Host", "GET", 1, 1, {{"Host ", "example.com"}}, P::bad_header_name},
      {"space inside a name", "GET", 1, 1, {kHost, {"X Y", "1"}}, P::bad_header_name},
      {"empty name (line starting with a colon)", "GET", 1, 1, {kHost, {"", "x"}}, P::bad_header_name},
      {"separator in a name", "GET", 1, 1, {kHost, {"X(Y)", "1"}}, P::bad_header_name},

      // HEAD: evhttp reads no body, so one would be read as the next request.
      {"HEAD with a length", "HEAD", 1, 1, {kHost, {"Content-Length", "5"}}, P::head_with_body},
      {"HEAD chunked", "HEAD", 1, 1, {kHost, {"Transfer-Encoding", "chunked"}}, P::head_with_body},

      // Host.
      {"HTTP/1.1 without Host", "GET", 1, 1, {}, P::missing_host},
      {"HTTP/1.1 with other fields but no Host", "POST", 1, 1, {{"Content-Length", "0"}}, P::missing_host},
      {"two Host fields", "GET", 1, 1, {kHost, {"host", "evil.example"}}, P::repeated_host},
      {"two identical Host fields", "GET", 1, 1, {kHost, kHost}, P::repeated_host},
      {"two Host fields on HTTP/1.0", "GET", 1, 0, {kHost, kHost}, P::repeated_host},
      {"Host with a space", "GET", 1, 1, {{"Host", "a b"}}, P::bad_host},
      {"Host with a path", "GET", 1, 1, {{"Host", "a/b"}}, P::bad_host},
      {"Host with userinfo", "GET", 1, 1, {{"Host", "user@a"}}, P::bad_host},
  };
  // clang-format on
  for (const Case& c : cases) {
    INFO(c.what, " (", c.method, " HTTP/", c.major, ".", c.minor, ")");
    FramingProblem got = http::check_request_framing(c.method, c.major, c.minor, c.fields);
    CHECK(http::framing_problem_code(got) == http::framing_problem_code(c.expected));
  }
}

TEST_CASE("request framing: every byte, in a header name and in Host, against the RFC's sets") {
  using P = FramingProblem;
  auto alnum = [](int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  const std::string tchar_marks = "!#$%&'*+-.^_`|~";     // RFC 9110 5.6.2
  const std::string host_marks = "-._~%!$&'()*+,;=:[]";  // RFC 3986, with port and brackets
  for (int c = 1; c < 256; ++c) {
    INFO("byte ", c);
    const std::string byte(1, static_cast<char>(c));
    const bool tchar = alnum(c) || tchar_marks.find(static_cast<char>(c)) != std::string::npos;
    const bool host = alnum(c) || host_marks.find(static_cast<char>(c)) != std::string::npos;
    const std::string name = "X-" + byte;
    const std::string host_value = "a" + byte + "b";
    const std::vector<HeaderField> named = {kHost, {name, "v"}};
    const std::vector<HeaderField> hosted = {{"Host", host_value}};
    CHECK(http::check_request_framing("GET", 1, 1, named) ==
          (tchar ? P::none : P::bad_header_name));
    CHECK(http::check_request_framing("GET", 1, 1, hosted) == (host ? P::none : P::bad_host));
  }
}

TEST_CASE("request framing: the first problem in arrival order is the one reported") {
  std::vector<HeaderField> fields = {
      {"Content-Length ", "5"}, {"Content-Length", "+1"}, {"Host", "a"}, {"Host", "b"}};
  CHECK(http::check_request_framing("POST", 1, 1, fields) == FramingProblem::bad_header_name);
  http::RequestFramingCheck check("GET", 1, 1);
  CHECK(check.problem() == FramingProblem::missing_host);
  check.field("Host", "a");
  CHECK(check.problem() == FramingProblem::none);
  check.field("Host", "b");
  check.field("X Y", "1");
  CHECK(check.problem() == FramingProblem::repeated_host);
}

TEST_CASE("request framing: every problem has a snake_case code and a message") {
  for (size_t i = 1; i < http::kFramingProblemCount; ++i) {
    auto problem = static_cast<FramingProblem>(i);
    std::string_view code = http::framing_problem_code(problem);
    INFO(code);
    CHECK(!code.empty());
    CHECK(code.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos);
    CHECK(!http::framing_problem_message(problem).empty());
  }
  CHECK(http::framing_problem_code(FramingProblem::none) == "none");
  CHECK(http::framing_problem_code(FramingProblem::bad_host) == "bad_host");
}
