// The state of one request, shared by its HttpExchange handle, the server and the
// protocol front end carrying it. Internal to http_server.cc, http_exchange.cc,
// http1_connection.cc and http2_connection.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1/request_framing.h"
#include "http/server/body_buffer.h"
#include "http/server/http_server.h"

namespace http {

// The Date header's text for now (both front ends; the text changes once a second).
const char* http_date(const core::Clock& clock);
// The reason phrase of an HTTP/1 status line ("Status" for a code without one here).
const char* reason_phrase(int status);

// What a protocol front end does for one exchange: the request's headers and body, and
// carrying the response. HttpExchange keeps what the protocols share (defaults such as
// Content-Length, HEAD, status and byte counts, the order of calls); HTTP/1
// (http1_connection.h) and HTTP/2 (an nghttp2 stream, http2_connection.h) each implement this
// once.
// Loop thread only.
class ExchangeFrontEnd {
 public:
  virtual ~ExchangeFrontEnd() = default;
  virtual std::optional<std::string> request_header(const char* name) const = 0;
  // Every request header whose name starts with `prefix` (ASCII case-insensitive), in order:
  // one pass over the headers, however many names a caller looks for.
  virtual std::vector<HttpHeader> request_headers_with_prefix(std::string_view prefix) const = 0;
  virtual std::string request_body_bytes() const = 0;
  virtual void add_response_header(std::string_view name, std::string_view value) = 0;
  virtual void remove_response_header(const char* name) = 0;
  virtual bool has_response_header(const char* name) const = 0;
  // The whole reply: `status`, the headers added and `body` (`has_body`: it holds bytes).
  virtual void send_reply(int status, BodyBuffer body, bool has_body) = 0;
  // A streamed reply: the head now, then send_body()* and end_reply().
  virtual void start_reply(int status) = 0;
  virtual void send_body(BodyBuffer bytes) = 0;
  virtual void end_reply() = 0;
  // Ends the exchange's transport at once (connection or stream): the client sees a cut body.
  virtual void abort_reply() = 0;

  // The handler gave the response's Date (a cache sending a stored response's own);
  // otherwise the front end adds the current time's.
  bool date_given = false;
};

// Per-request state shared by the exchange handle and the server. The server
// forgets it once the reply is finished or the connection is gone.
struct RequestState {
  HttpServer* server = nullptr;
  // Who carries the exchange: an HTTP/1 connection, an HTTP/2 stream, or null once the client
  // (or the stream) is gone.
  ExchangeFrontEnd* front = nullptr;
  std::chrono::steady_clock::time_point start;
  std::string method, target, path, query, remote_ip, note;
  int status = 0;
  // HTTP/1.x head that RFC 9112 says to refuse: answered 400, connection closed.
  FramingProblem framing = FramingProblem::none;
  uint64_t body_bytes = 0;
  bool tls = false;    // arrived over TLS: body bytes are encrypted here (no sendfile)
  bool http2 = false;  // arrived as an HTTP/2 stream (no sendfile: DATA frames)
  // Arrived on a connection of the operator's reserve (ConnectionSlot::operator_only): only
  // HttpServerOptions::operator_paths are served, and the connection closes after the reply.
  bool operator_only = false;
  bool streaming = false;
  bool finished = false;
  // Set by add_header: saves rescanning the header list when replying.
  bool has_content_type = false;
  bool has_content_length = false;
  bool closed = false;
  std::function<void()> on_close;

  RequestState() = default;
  RequestState(const RequestState&) = delete;  // shared: exchange, server and front end
  RequestState& operator=(const RequestState&) = delete;

  // Every field as a new state's, the strings' storage kept (up to `keep_bytes` each): a spare
  // for the next request (release_request_state). A field added above is reset here too.
  void clear(size_t keep_bytes) {
    server = nullptr;
    front = nullptr;
    start = {};
    for (std::string* text : {&method, &target, &path, &query, &remote_ip, &note}) {
      text->clear();
      if (text->capacity() > keep_bytes) std::string().swap(*text);
    }
    status = 0;
    framing = FramingProblem::none;
    body_bytes = 0;
    tls = http2 = operator_only = streaming = finished = false;
    has_content_type = has_content_length = closed = false;
    on_close = nullptr;
  }

  // The request target as received, and its path and query (without a "#fragment").
  void set_target(std::string_view received) {
    target.assign(received);
    const size_t query_at = received.find('?');
    path.assign(received.substr(0, query_at));
    query.clear();
    if (query_at != std::string_view::npos) {
      const std::string_view rest = received.substr(query_at + 1);
      query.assign(rest.substr(0, rest.find('#')));
    }
  }

  void finish() {
    if (finished) return;
    finished = true;
    server->request_finished(*this);
  }
};

// A state for a new exchange: one that a finished exchange left on this thread (every field as
// a new one's, its strings' storage kept), or a new one. Spares save the state's allocation and
// its strings' on every request of a busy loop.
std::shared_ptr<RequestState> take_request_state();
// Drops `state`; when this was its last holder and its exchange is finished, it is kept as a
// spare for take_request_state (a bounded number per thread).
void release_request_state(std::shared_ptr<RequestState>& state);

}  // namespace http
