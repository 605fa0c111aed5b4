// HTTP/1 request heads (src/http/h1/http1_head.h): what players, browsers, curl and proxies send
// is read into views of the bytes; a head still arriving is incomplete at every byte; what a
// proxy could read differently is refused; the size limit holds whatever the bytes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http/h1/http1_head.h"

using http::HeadStatus;
using http::parse_http1_head;

namespace {

constexpr size_t kLimit = 16 * 1024;

struct Refusal {
  const char* what;
  std::string bytes;
};

}  // namespace

TEST_CASE("http1 head: a player's request is read into views of the bytes") {
  const std::string bytes =
      "GET /hls/live/files/v0/index.m3u8?viewer=v1&_HLS_msn=12 HTTP/1.1\r\n"
      "Host: balancer.example:8080\r\n"
      "User-Agent: ExoPlayerLib/2.19.1\r\n"
      "Accept-Encoding:gzip\r\n"
      "CMCD-Request:  bl=2100,mtp=48000 \t\r\n"
      "Empty:\r\n"
      "\r\n"
      "GET /next HTTP/1.1\r\n";  // a pipelined request after it is not part of this head
  const auto parsed = parse_http1_head(bytes, kLimit);
  REQUIRE(parsed.status == HeadStatus::complete);
  const auto& head = parsed.head;
  CHECK(head.method == "GET");
  CHECK(head.target == "/hls/live/files/v0/index.m3u8?viewer=v1&_HLS_msn=12");
  CHECK(head.major == 1);
  CHECK(head.minor == 1);
  CHECK(head.size == bytes.find("GET /next"));
  REQUIRE(head.fields.size() == 5);
  CHECK(head.fields[0].name == "Host");
  CHECK(head.fields[0].value == "balancer.example:8080");
  CHECK(head.fields[2].name == "Accept-Encoding");
  CHECK(head.fields[2].value == "gzip");
  CHECK(head.fields[3].value ==
        "bl=2100,mtp=48000");  // whitespace around a value is not part of it
  CHECK(head.fields[4].name == "Empty");
  CHECK(head.fields[4].value.empty());
  // Views into the caller's bytes, not copies.
  CHECK(head.target.data() == bytes.data() + 4);
  CHECK(head.fields[1].value.data() >= bytes.data());
  CHECK(head.fields[1].value.data() < bytes.data() + head.size);
}

TEST_CASE("http1 head: bare LF line ends and empty lines before the request line are accepted") {
  const std::string bytes = "\r\n\nHEAD /health HTTP/1.0\nHost: a\n\n";
  const auto parsed = parse_http1_head(bytes, kLimit);
  REQUIRE(parsed.status == HeadStatus::complete);
  CHECK(parsed.head.method == "HEAD");
  CHECK(parsed.head.target == "/health");
  CHECK(parsed.head.minor == 0);
  CHECK(parsed.head.size == bytes.size());
  REQUIRE(parsed.head.fields.size() == 1);
  CHECK(parsed.head.fields[0].value == "a");
  // The version is read, not judged: the transport answers one it does not serve.
  const auto two = parse_http1_head("GET / HTTP/2.0\r\n\r\n", kLimit);
  REQUIRE(two.status == HeadStatus::complete);
  CHECK(two.head.major == 2);
}

TEST_CASE("http1 head: every prefix of a head is incomplete, the whole of it complete") {
  const std::string bytes =
      "POST /api/v1/login HTTP/1.1\r\nHost: api.example\r\nContent-Length: 27\r\n"
      "Content-Type: application/json\r\n\r\n";
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of ", n, " bytes");
    CHECK(parse_http1_head(std::string_view(bytes).substr(0, n), kLimit).status ==
          HeadStatus::incomplete);
  }
  const auto parsed = parse_http1_head(bytes, kLimit);
  REQUIRE(parsed.status == HeadStatus::complete);
  CHECK(parsed.head.size == bytes.size());
  CHECK(parsed.head.fields.size() == 3);
}

TEST_CASE("http1 head: what a proxy could read differently is refused, with a reason") {
  const std::vector<Refusal> refusals = {
      {"space before the colon", "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n"},
      {"folded line (obs-fold)", "GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n"},
      {"tab-folded line", "GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n"},
      {"bare CR inside a value", "GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n"},
      {"bare CR at a line's end", "GET / HTTP/1.1\rHost: a\r\n\r\n"},
      {"bare CR before the request line", "\rGET / HTTP/1.1\r\n\r\n"},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 28)},
      {"control in a value", "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n"},
      {"DEL in a value", "GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n"},
      {"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n"},
      {"empty field name", "GET / HTTP/1.1\r\n: v\r\n\r\n"},
      {"non-token field name", "GET / HTTP/1.1\r\nX(A): v\r\n\r\n"},
      {"two spaces after the method", "GET  / HTTP/1.1\r\n\r\n"},
      {"no version", "GET /\r\n\r\n"},
      {"space inside the target", "GET /a b HTTP/1.1\r\n\r\n"},
      {"tab as a separator", "GET\t/ HTTP/1.1\r\n\r\n"},
      {"control in the target", "GET /a\x01 HTTP/1.1\r\n\r\n"},
      {"non-token method", "G(T / HTTP/1.1\r\n\r\n"},
      {"lower-case protocol", "GET / http/1.1\r\n\r\n"},
      {"two-digit version", "GET / HTTP/1.10\r\n\r\n"},
      {"trailing space after the version", "GET / HTTP/1.1 \r\n\r\n"},
  };
  for (const Refusal& r : refusals) {
    INFO(r.what);
    const auto parsed = parse_http1_head(r.bytes, kLimit);
    CHECK(parsed.status == HeadStatus::malformed);
    CHECK_FALSE(parsed.error.empty());
  }
}

TEST_CASE("http1 head: an absolute-form target becomes its path and query, Host its authority") {
  const std::string bytes =
      "GET http://node.example:8081/o/demo/seg1.ts?sig=abc HTTP/1.1\r\n"
      "Host: elsewhere.example\r\n"
      "Accept: */*\r\n\r\n";
  const auto parsed = parse_http1_head(bytes, kLimit);
  REQUIRE(parsed.status == HeadStatus::complete);
  CHECK(parsed.head.target == "/o/demo/seg1.ts?sig=abc");
  REQUIRE(parsed.head.fields.size() == 2);
  CHECK(parsed.head.fields[0].value == "node.example:8081");  // RFC 9112 §3.2.2: not the one sent
  CHECK(parsed.head.fields[1].value == "*/*");
  // Still views into the bytes.
  CHECK(parsed.head.target.data() == bytes.data() + bytes.find("/o/"));
  CHECK(parsed.head.fields[0].value.data() == bytes.data() + bytes.find("node.example"));

  struct Case {
    const char* bytes;
    const char* target;
    const char* host;  // "" for none
  };
  for (const Case& c : {
           Case{"GET HTTPS://[::1]:443/a HTTP/1.1\r\nHost: x\r\n\r\n", "/a", "[::1]:443"},
           Case{"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", "/", "h"},
           Case{"GET http://h:80 HTTP/1.1\r\nHost: h\r\n\r\n", "/", "h:80"},
           Case{"GET http://a%2Db.example/ HTTP/1.1\r\nHost: q\r\n\r\n", "/", "a%2Db.example"},
           Case{"GET http://h//x?y=1 HTTP/1.0\r\n\r\n", "//x?y=1", ""},
           // Not absolute-form: left as sent, for the server to answer (origin-form or 400).
           Case{"GET /http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", "/http://h/x", "h"},
           Case{"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", "ftp://h/x", "h"},
           Case{"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", "h"},
       }) {
    INFO(c.bytes);
    const auto p = parse_http1_head(c.bytes, kLimit);
    REQUIRE(p.status == HeadStatus::complete);
    CHECK(p.head.target == c.target);
    if (*c.host != '\0') {
      REQUIRE(p.head.fields.size() == 1);
      CHECK(p.head.fields[0].value == c.host);
    }
  }
  // Host rules still hold: none on HTTP/1.1, two, or an invalid one (kept for the check).
  auto framing = [](const char* head) {
    const auto p = parse_http1_head(head, kLimit);
    REQUIRE(p.status == HeadStatus::complete);
    return http::check_request_framing(p.head.method, p.head.major, p.head.minor, p.head.fields);
  };
  CHECK(framing("GET http://h/ HTTP/1.1\r\n\r\n") == http::FramingProblem::missing_host);
  CHECK(framing("GET http://h/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") ==
        http::FramingProblem::repeated_host);
  CHECK(framing("GET http://h/ HTTP/1.1\r\nHost: a/b@c\r\n\r\n") == http::FramingProblem::bad_host);
  CHECK(framing("GET http://h/ HTTP/1.1\r\nHost: other\r\n\r\n") == http::FramingProblem::none);
}

TEST_CASE("http1 head: a malformed absolute-form target is refused, with a reason") {
  for (const char* bytes : {
           "GET http://user:pw@h/x HTTP/1.1\r\nHost: h\r\n\r\n",  // userinfo
           "GET http://@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",  // empty host
           "GET http:// HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://:80/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h:/x HTTP/1.1\r\nHost: h\r\n\r\n",  // empty port
           "GET http://h:65536/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h:8o/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h:1:2/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h:000080/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://[::1/x HTTP/1.1\r\nHost: h\r\n\r\n",  // unclosed literal
           "GET http://[zz]/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://[::1]x/y HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h%zz/x HTTP/1.1\r\nHost: h\r\n\r\n",  // bad pct-encoding
           "GET http://h\"/x HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",  // a query without a path
           "GET http://h#f HTTP/1.1\r\nHost: h\r\n\r\n",
       }) {
    INFO(bytes);
    const auto parsed = parse_http1_head(bytes, kLimit);
    CHECK(parsed.status == HeadStatus::malformed);
    CHECK_FALSE(parsed.error.empty());
  }
}

TEST_CASE("http1 head: no complete head within the limit is too large, however it arrives") {
  const std::string line = "X-Long: " + std::string(100, 'v') + "\r\n";
  std::string bytes = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (bytes.size() < 2000) bytes += line;
  // Still arriving, past the limit: too large (the transport stops reading).
  CHECK(parse_http1_head(bytes, 1024).status == HeadStatus::too_large);
  CHECK(parse_http1_head(bytes, 4096).status == HeadStatus::incomplete);
  // Complete, but longer than the limit.
  bytes += "\r\n";
  CHECK(parse_http1_head(bytes, 1024).status == HeadStatus::too_large);
  CHECK(parse_http1_head(bytes, bytes.size() - 1).status == HeadStatus::too_large);
  CHECK(parse_http1_head(bytes, bytes.size()).status == HeadStatus::complete);
  // Empty lines count toward the limit.
  CHECK(parse_http1_head(std::string(64, '\n'), 64).status == HeadStatus::too_large);
  CHECK(parse_http1_head(std::string(63, '\n'), 64).status == HeadStatus::incomplete);
}

TEST_CASE("http1 head: a parsed head's fields feed the framing check") {
  const auto parsed = parse_http1_head(
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      kLimit);
  REQUIRE(parsed.status == HeadStatus::complete);
  CHECK(http::check_request_framing(parsed.head.method, parsed.head.major, parsed.head.minor,
                                    parsed.head.fields) ==
        http::FramingProblem::content_length_with_transfer_encoding);
}

TEST_CASE("http1 head: the end of a head is found from where a search stopped") {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
  CHECK(http::http1_head_end(head, 0) == head.size() - 4);
  // Searching again from a little before the new bytes finds the same end.
  for (size_t from = 0; from + 4 <= head.size() - 4; ++from) {
    CHECK(http::http1_head_end(head, from) == head.size() - 4);
  }
  CHECK(http::http1_head_end("GET / HTTP/1.1\r\nHost: a\r\n", 0) == std::string::npos);
  CHECK(http::http1_head_end("GET / HTTP/1.1\nHost: a\n\n", 0) == 24);
}

namespace {

using http::ChunkedBodyDecoder;

// The body decoded from `bytes` given in pieces of `piece` bytes (each call gets what it left
// unused plus the next piece), and what the last call said.
struct Decoded {
  ChunkedBodyDecoder::Status status = ChunkedBodyDecoder::Status::more;
  std::string body;
  std::string rest;  // bytes after the body
};
Decoded decode_in_pieces(const std::string& bytes, size_t piece, size_t max_body = 1 << 20) {
  ChunkedBodyDecoder decoder;
  Decoded out;
  std::string unused;
  for (size_t at = 0; at < bytes.size() && out.status == ChunkedBodyDecoder::Status::more;
       at += piece) {
    unused += bytes.substr(at, piece);
    size_t used = 0;
    out.status = decoder.feed(unused, out.body, max_body, used);
    REQUIRE(used <= unused.size());
    unused.erase(0, used);
    if (out.status == ChunkedBodyDecoder::Status::complete) {
      out.rest = unused + bytes.substr(std::min(bytes.size(), at + piece));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("http1 chunked body: decoded the same however the bytes arrive") {
  const std::string body =
      "5\r\nhello\r\n1A;name=value;x\r\n" + std::string(26, 'z') + "\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
    INFO(piece);
    const Decoded decoded = decode_in_pieces(body, piece);
    CHECK(decoded.status == ChunkedBodyDecoder::Status::complete);
    CHECK(decoded.body == "hello" + std::string(26, 'z'));
    CHECK(decoded.rest == "NEXT");
  }
  // Bare LF line ends, upper-case hex, whitespace before an extension.
  const Decoded lf = decode_in_pieces("A \t;e\nabcdefghij\n0\n\n", 4);
  CHECK(lf.status == ChunkedBodyDecoder::Status::complete);
  CHECK(lf.body == "abcdefghij");
  const Decoded incomplete = decode_in_pieces("5\r\nhel", 2);
  CHECK(incomplete.status == ChunkedBodyDecoder::Status::more);
  CHECK(incomplete.body == "hel");
}

TEST_CASE("http1 chunked body: refusals and the size limit") {
  std::string long_trailers = "0\r\n";
  for (int i = 0; i < 20; ++i) long_trailers += "X-T: " + std::string(1000, 'v') + "\r\n";
  const std::vector<Refusal> refusals = {
      {"no size", "\r\nabc\r\n0\r\n\r\n"},
      {"not hex", "g\r\nabc\r\n0\r\n\r\n"},
      {"a sign", "+5\r\nhello\r\n0\r\n\r\n"},
      {"16 hex digits", "0000000000000005\r\nhello\r\n0\r\n\r\n"},
      {"junk after the size", "5 x\r\nhello\r\n0\r\n\r\n"},
      {"data longer than its size", "3\r\nhello\r\n0\r\n\r\n"},
      {"a bare CR in a size line", "5\rX\r\nhello\r\n0\r\n\r\n"},
      {"a control in a trailer", "0\r\nX: \x01\r\n\r\n"},
      {"a size line that never ends", "5" + std::string(5000, ' ')},
      {"trailers too long", long_trailers},
  };
  for (const Refusal& r : refusals) {
    INFO(r.what);
    const Decoded decoded = decode_in_pieces(r.bytes, 5);
    CHECK(decoded.status == ChunkedBodyDecoder::Status::malformed);
  }
  ChunkedBodyDecoder decoder;
  std::string body;
  size_t used = 0;
  CHECK(decoder.feed("5\r\nhello\r\n0\r\n\r\n", body, 4, used) ==
        ChunkedBodyDecoder::Status::too_large);
  ChunkedBodyDecoder refused;
  CHECK(refused.feed("zz\r\n", body, 4, used) == ChunkedBodyDecoder::Status::malformed);
  CHECK_FALSE(refused.error().empty());
  // Fifteen hex digits is the most a size may have.
  ChunkedBodyDecoder big;
  body.clear();
  CHECK(big.feed("00000000000000a\r\n0123456789\r\n0\r\n\r\n", body, 100, used) ==
        ChunkedBodyDecoder::Status::complete);
  CHECK(body == "0123456789");
}
