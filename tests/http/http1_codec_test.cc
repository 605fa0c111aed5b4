// The HTTP/1 codec (http/h1/http1_codec.h) fed strings, no socket: every head a proxy could
// frame differently (the smuggling table of docs/http.md, "Request framing") ends the reading
// with its refusal and nothing behind it is read as a request; pipelined requests with bodies
// by length and chunked come out one by one, whatever pieces their bytes arrive in; limits,
// 100-continue, versions and keep-alive as the connection acts on them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http/h1/http1_codec.h"
#include "support/smuggling_cases.h"

namespace {

using http::FramingProblem;
using http::Http1Codec;
using http::Http1Request;
using Step = Http1Codec::Step;
using balancer::test::kParserRefusal;
using balancer::test::smuggled_request;
using balancer::test::smuggling_cases;
using balancer::test::SmugglingCase;
using balancer::test::with_path;

Http1Codec::Limits limits() {
  Http1Codec::Limits l;
  l.max_header_bytes = 2048;
  l.max_body_bytes = 1024;
  return l;
}

// What the codec made of one request: its head's method and target, the framing problem,
// the body (or the refusal's code), as the connection would see it.
struct Read {
  Step step = Step::more;
  std::string method, target, body, code;
  FramingProblem framing = FramingProblem::none;
  bool leave_input = false;
  bool keep_alive = true;
  size_t body_bytes = 0;
  int status = 0;
};

// A codec and the request it is reading, as a connection holds them.
struct Reader {
  Http1Codec codec;
  Http1Request request;
};

// Reads requests from the codec until it wants more bytes or stops (a refusal, or a request
// whose end is in doubt), as the connection does: after such a one nothing more is read.
std::vector<Read> read_all(Reader& reader) {
  std::vector<Read> out;
  Http1Codec& codec = reader.codec;
  Http1Request& request = reader.request;
  for (;;) {
    Read r;
    Step step = codec.read(request, limits());
    if (step == Step::head) step = codec.read(request, limits());
    if (step == Step::more) return out;
    r.step = step;
    r.method = std::string(request.parsed.head.method);
    r.target = std::string(request.parsed.head.target);
    r.framing = request.framing;
    r.leave_input = request.leave_input;
    r.keep_alive = request.keep_alive;
    r.body = request.body;
    r.body_bytes = request.body_bytes;
    if (step == Step::refused) {
      r.code = std::string(request.refusal.code);
      r.status = request.refusal.status;
    }
    out.push_back(r);
    request.clear(0);
    if (r.leave_input) return out;
  }
}

std::vector<Read> read_all(const std::string& bytes) {
  Reader reader;
  reader.codec.input() = bytes;
  return read_all(reader);
}

}  // namespace

TEST_CASE("http1 codec: every smuggling head stops the reading; what follows is never a request") {
  for (const SmugglingCase& c : smuggling_cases()) {
    INFO(std::string(c.what));
    // Whole, and a byte at a time: the same single outcome.
    for (bool bytewise : {false, true}) {
      const std::string bytes = with_path(c.head, "/") + c.body + smuggled_request("/");
      Reader reader;
      std::vector<Read> reads;
      if (bytewise) {
        for (char byte : bytes) {
          reader.codec.input().push_back(byte);
          for (Read& r : read_all(reader)) reads.push_back(r);
          if (!reads.empty()) break;
        }
      } else {
        reader.codec.input() = bytes;
        reads = read_all(reader);
      }
      REQUIRE(reads.size() == 1);
      const Read& r = reads[0];
      CHECK(r.leave_input);
      CHECK(r.body.empty());
      if (c.code == kParserRefusal) {
        CHECK(r.step == Step::refused);
        CHECK(r.status == 400);
        CHECK(r.code == kParserRefusal);
      } else {
        // The request goes to the server (which answers its framing problem 400), body unread.
        CHECK(r.step == Step::request);
        CHECK(http::framing_problem_code(r.framing) == c.code);
        CHECK(r.body_bytes == 0);
      }
      CHECK(r.target.find("smuggled") == std::string::npos);
    }
  }
}

TEST_CASE("http1 codec: pipelined requests by length and chunked come out in order, any pieces") {
  const std::string get = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string bytes = get + "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nAAAAA" +
                            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                            "3\r\nBBB\r\n2;ext=1\r\nCC\r\n0\r\nTrailer: x\r\n\r\n" + get;
  for (size_t piece : {bytes.size(), size_t{1}, size_t{2}, size_t{7}, size_t{64}}) {
    INFO("pieces of " << piece);
    Reader reader;
    std::vector<Read> reads;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      reader.codec.input().append(bytes, at, piece);
      for (Read& r : read_all(reader)) reads.push_back(r);
    }
    REQUIRE(reads.size() == 4);
    CHECK(reads[0].target == "/a");
    CHECK(reads[1].method == "POST");
    CHECK(reads[1].body == "AAAAA");
    CHECK(reads[1].body_bytes == 5);
    CHECK(reads[2].target == "/c");
    CHECK(reads[2].body == "BBBCC");
    CHECK(reads[3].target == "/a");
    for (const Read& r : reads) {
      CHECK(r.step == Step::request);
      CHECK_FALSE(r.leave_input);
      CHECK(r.keep_alive);
    }
    CHECK(reader.codec.input().empty());
  }
}

TEST_CASE("http1 codec: heads it cannot read are refused with the status and code to answer") {
  auto only = [](const std::string& bytes) {
    std::vector<Read> reads = read_all(bytes);
    REQUIRE(reads.size() == 1);
    return reads[0];
  };
  Read large = only("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(13000, 'x') + "\r\n\r\n");
  CHECK(large.status == 431);
  CHECK(large.code == "headers_too_large");
  Read malformed = only("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n");
  CHECK(malformed.status == 400);
  CHECK(malformed.code == "bad_request");
  Read version = only("GET /v HTTP/2.0\r\nHost: a\r\n\r\n");
  CHECK(version.status == 505);
  CHECK(version.code == "http_version_not_supported");
  Read chunked = only("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  CHECK(chunked.status == 400);
  CHECK(chunked.code == "bad_chunked_body");
  for (const Read& r : {large, malformed, version, chunked}) {
    CHECK(r.step == Step::refused);
    CHECK(r.leave_input);
  }
  // An incomplete head within the limit waits.
  CHECK(read_all("GET / HTTP/1.1\r\nHost: a\r\n").empty());
}

TEST_CASE("http1 codec: a body over the limit is counted past it, unread; the input is left") {
  Read by_length = read_all("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\nAAA")[0];
  CHECK(by_length.step == Step::request);
  CHECK(by_length.body_bytes == 1025);
  CHECK(by_length.leave_input);
  const std::string big = "800\r\n" + std::string(0x800, 'A') + "\r\n0\r\n\r\n";
  Read chunked =
      read_all("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + big)[0];
  CHECK(chunked.step == Step::request);
  CHECK(chunked.body_bytes == 1025);
  CHECK(chunked.leave_input);
}

TEST_CASE("http1 codec: 100-continue is asked for only when the body is still to come") {
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  {
    Http1Codec codec;
    codec.input() = head;
    Http1Request request;
    REQUIRE(codec.read(request, limits()) == Step::head);
    CHECK(request.continue_expected);
    CHECK(codec.read(request, limits()) == Step::more);
    codec.input() += "abc";
    REQUIRE(codec.read(request, limits()) == Step::request);
    CHECK(request.body == "abc");
  }
  {
    Http1Codec codec;
    codec.input() = head + "abc";
    Http1Request request;
    REQUIRE(codec.read(request, limits()) == Step::head);
    CHECK_FALSE(request.continue_expected);  // the body is here already
  }
  {
    Http1Codec codec;  // over the limit: refused without asking for the body
    codec.input() =
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n";
    Http1Request request;
    REQUIRE(codec.read(request, limits()) == Step::head);
    CHECK_FALSE(request.continue_expected);
  }
}

TEST_CASE("http1 codec: keep-alive by version and Connection, as the connection acts on it") {
  CHECK(read_all("GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0].keep_alive);
  CHECK_FALSE(read_all("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")[0].keep_alive);
  CHECK_FALSE(read_all("GET / HTTP/1.0\r\n\r\n")[0].keep_alive);
  CHECK(read_all("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")[0].keep_alive);
}
