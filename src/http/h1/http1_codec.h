// The HTTP/1 request codec: bytes in, requests out, no socket (docs/http.md, "The HTTP/1
// codec"). The connection (http1_connection.h) appends what its Transport read to input() and
// calls read() while it is ready for a request; read() reads a head (parse_http1_head,
// http1_head.h), checks its framing (RequestFramingCheck, request_framing.h) before any body,
// then reads the body by Content-Length or chunked, and says what to do next. Requests are read
// one at a time, in order: after a request, input() holds the bytes that follow it (a
// pipeline), read when the connection asks for the next.
//
// What a head that cannot be read gets, and where a request whose end is in doubt stops:
// - a head past the limit: 431 `headers_too_large`; malformed: 400 `bad_request`; a version
//   other than 1.x: 505 `http_version_not_supported` (refused: answer, read nothing more);
// - a head whose framing is refused (`framing`, smuggling): the request, without its body,
//   and nothing after its head is ever read as a request (`leave_input`);
// - a Content-Length over the body limit: the request, counted past the limit (the server
//   answers 413), its body not read;
// - a chunked body that is malformed: 400 `bad_chunked_body` (refused); one over the limit:
//   as a Content-Length over it.
//
// Pure: a string in, views and facts out. Loop thread of its connection (or any one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/h1/http1_head.h"
#include "http/h1/request_framing.h"

namespace http {

// Why a request cannot be read (Http1Codec::Step::refused).
struct Http1Refusal {
  int status = 0;
  std::string_view code;
  std::string message;
  std::string_view method, target;  // of a head read whole (505), into its request's bytes
  bool after_head = false;          // the head was read (a bad chunked body): its request exists
};

// One request as the codec reads it: its head's bytes and parse, the facts the connection acts
// on, its body, and what the codec decided. Kept apart from the codec (whose state between
// requests is its input alone), so a connection between requests can give it back to its
// loop's spares and stay small.
struct Http1Request {
  std::string head_bytes;  // the head's bytes: `parsed`'s views point into them
  HeadParse parsed;
  FramingProblem framing = FramingProblem::none;
  uint64_t content_length = 0;
  size_t header_bytes = 0;  // as counted against the server's limits (HttpServer::dispatch)
  ChunkedBodyDecoder chunked;
  std::string body;
  int minor_version = 1;
  bool keep_alive = true;         // HTTP/1.1 unless "Connection: close"; 1.0 when asked
  bool keep_alive_asked = false;  // HTTP/1.0 with "Connection: keep-alive"
  bool expect_continue = false;
  bool chunked_request = false;
  // With Step::head: the client waits for "100 Continue" before it sends the body.
  bool continue_expected = false;
  // With Step::request or refused: the request was not read to its end (its body left unread,
  // its framing in doubt, or refused): nothing after it may be read as a request, and the
  // close should wait for the client to stop sending.
  bool leave_input = false;
  // With Step::request: the body's bytes as the server counts them (past the limit: max + 1).
  size_t body_bytes = 0;
  Http1Refusal refusal;  // with Step::refused

  // As new, its buffers' storage kept (each cut back to `keep_bytes`).
  void clear(size_t keep_bytes);
};

class Http1Codec {
 public:
  struct Limits {
    size_t max_header_bytes = 8192;  // the configured limit (the 431's message names it)
    size_t max_body_bytes = 1 << 20;
    // The most bytes a head may take: room above the configured limit, so that a head a little
    // over it is read and answered with the exact limit that applies (414 or 431, by
    // HttpServer::dispatch).
    size_t head_limit() const { return max_header_bytes * 2 + 8192; }
  };

  enum class Step {
    more,     // wait for more bytes
    head,     // a head is read (request.parsed.head, .framing, .keep_alive): read() again for
              // the rest; request.continue_expected says to send "100 Continue" first
    request,  // the request is complete: dispatch it, counting request.body_bytes
    refused,  // cannot be read: answer request.refusal and close; nothing more is read
  };

  // The connection's bytes not read yet: append what arrives; after a request, the pipeline's
  // next bytes. A connection may swap its storage in and out while idle.
  std::string& input() { return input_; }
  const std::string& input() const { return input_; }

  // The next step of reading `request` from input(): a head, then the request (after its body),
  // or a refusal. `request` is the same object from a head to its request.
  Step read(Http1Request& request, const Limits& limits);

  // Between a head and its request (the body is arriving).
  bool in_body() const { return in_body_; }

 private:
  Step read_head(Http1Request& request, const Limits& limits);
  // The head in request.parsed is complete: its bytes move out of input_.
  Step take_head(Http1Request& request, const Limits& limits);
  Step read_body(Http1Request& request, const Limits& limits);
  Step refuse(Http1Request& request, int status, std::string_view code, std::string message);
  Step complete(Http1Request& request, size_t body_bytes, bool leave_input);

  std::string input_;
  // Bytes of input_ already searched for a head's end (a head is at most a few tens of KiB;
  // 32 bits keep an idle connection, which holds this, within a 320-byte class).
  uint32_t head_searched_ = 0;
  bool in_body_ = false;
  bool head_told_ = false;  // Step::head given for the head in the request being read
};

}  // namespace http
