// The HTTP/2 front end (nghttp2) beside the HTTP/1 transport: internal to http_server.cc,
// http_exchange.cc and http1_connection.cc. Loop thread only.
//
// HTTP/1 (http1_connection.h) accepts every connection and hands it over to
// Http2Connection::take_over when it turns out to be HTTP/2 (http/transport/protocol_choice.h):
// over TLS once the handshake agreed on h2 by ALPN, and on a plain listener with h2c when the
// client's first bytes are the HTTP/2 connection preface (prior knowledge, RFC 9113 §3.3). The
// Http2Connection then owns the connection's Transport (http/transport/transport.h: the socket, and
// over TLS the session the HTTP/1 connection made) and serves each stream as an HttpExchange
// through the same routes, limits and access log.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/handles.h"
#include "http/server/body_buffer.h"
#include "http/server/http_exchange.h"
#include "http/server/idle_eviction.h"
#include "http/server/request_state.h"
#include "http/transport/transport.h"

namespace http {

class HttpServer;
struct RequestState;
class Http2Connection;

// Bytes of a response body queued for DATA frames. Frames reference these bytes
// (NGHTTP2_DATA_FLAG_NO_COPY) and keep the whole body alive until they are sent.
struct Http2Body {
  core::EvbufferPtr bytes{evbuffer_new()};
};

// One request/response stream, owned by its connection. An exchange reaches it
// through RequestState::h2 until the stream closes.
// One stream, and the front end of its exchange (request_state.h): HttpExchange
// reads the request and sends the reply through it.
struct Http2Stream final : ExchangeFrontEnd {
  Http2Connection* connection = nullptr;
  int32_t id = 0;
  // Request.
  std::vector<HttpHeader> request_headers;  // lower-case names, pseudo-headers apart
  std::string method, path;
  std::string request_body;
  size_t header_bytes = 0;           // decoded name + value + 4 per field, counted past the limit
  bool header_list_refused = false;  // over the limit: fields no longer kept, reply 431
  bool body_too_large = false;
  std::shared_ptr<RequestState> state;  // once dispatched
  // Response.
  std::vector<HttpHeader> response_headers;
  bool submitted = false;      // HEADERS submitted
  bool body_complete = false;  // every body byte is queued
  bool deferred = false;       // the data source waits for bytes
  std::shared_ptr<Http2Body> body;
  uint64_t body_framed = 0;  // bytes of `body` already in DATA frames

  std::optional<std::string> request_header(const char* name) const override;
  std::vector<HttpHeader> request_headers_with_prefix(std::string_view prefix) const override;
  std::string request_body_bytes() const override { return request_body; }
  void add_response_header(std::string_view name, std::string_view value) override;
  void remove_response_header(const char* name) override;
  bool has_response_header(const char* name) const override;
  // Response head (+ body). `body` empty and `has_body` false: HEADERS with END_STREAM.
  void send_reply(int status, BodyBuffer body, bool has_body) override;
  void start_reply(int status) override;  // HEADERS now, DATA as send_body() brings bytes
  void send_body(BodyBuffer bytes) override;
  void end_reply() override;
  void abort_reply() override;  // RST_STREAM

 private:
  void submit_head(int status, bool with_body);
};

class Http2Connection final : public IdleConnection {
 public:
  // Output queued in this process per connection before frames wait for the socket:
  // enough to keep a fast client's window busy, small enough that slow clients cost
  // little (body bytes are references, not copies, either way).
  static constexpr size_t kOutputBound = 256 * 1024;

  // Serves a connection the HTTP/1 connection (http1_connection.h) found to be HTTP/2: owns
  // `transport` (over TLS, its handshake done), and frees itself and it when the connection
  // ends (or with the server). `early`: the bytes the HTTP/1 connection had already read (the
  // preface in the clear), taken first; bytes the TLS session read ahead are read next. Null
  // when the loop cannot watch the socket (the transport is closed).
  static Http2Connection* take_over(HttpServer& server, Transport transport, std::string remote_ip,
                                    std::string_view early);
  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Queues frames and sends what the window and the output bound allow.
  void flush();
  // Stop taking streams: GOAWAY with the last stream id (server drain).
  void shut_down();
  // The server is going away: forget every stream without calling back into it.
  void detach();

  nghttp2_session* session() { return session_; }
  HttpServer& server() { return server_; }
  // IdleConnection: in the server's idle list while no stream is open; evicted with a GOAWAY.
  IdleCandidate idle_candidate(ConnectionLimits& limits) const override;
  void evict() override;

 private:
  Http2Connection(HttpServer& server, Transport transport, std::string remote_ip);
  bool start();  // events, session, settings, timers; false when the loop cannot watch
  // Bytes read from the connection (the client preface first).
  void receive(const char* bytes, size_t size);
  void on_readable();
  // Writes what `out_` holds as far as the socket takes it (bounded per turn); the write
  // watch is armed while bytes wait for the socket. False once the connection failed.
  bool write_out();
  void watch_writes(bool on);
  // What nghttp2's send callbacks answer at the output bound (NGHTTP2_ERR_WOULDBLOCK),
  // remembering that frames wait.
  int blocked();
  friend struct Http2Stream;
  friend struct Http2Callbacks;
  void dispatch(Http2Stream& stream);
  void stream_closed(Http2Stream& stream);
  void close_soon();
  void set_idle(bool idle);
  void linger();
  void count_reset();
  void refuse_header_list(bool abusive);
  void on_writable();
  void on_timer();
  void reply_frame_sent();
  bool held_by_client() const;
  void close_stalled();
  size_t buffered() const;

  HttpServer& server_;
  Transport transport_;
  nghttp2_session* session_ = nullptr;
  std::string remote_ip_;
  core::EventPtr read_event_;
  core::EventPtr write_event_;
  bool write_watched_ = false;
  bool send_blocked_ = false;  // nghttp2 stopped at the output bound: more to send once it drains
  bool closing_ = false;
  bool detached_ = false;
  bool in_flush_ = false;
  bool in_recv_ = false;
  bool flush_again_ = false;
  bool finishing_ = false;  // close when the output is written
  bool goaway_sent_ = false;
  bool lingering_ = false;          // GOAWAY written: reading and dropping until the close
  bool served_ = false;             // a stream of this connection's has been answered
  ConnectionSlot* slot_ = nullptr;  // its place in the table, kept by the server
  double reset_tokens_ = 200;
  std::chrono::steady_clock::time_point reset_refill_;
  core::EventPtr close_event_;
  core::EventPtr idle_timer_;
  // A request frame arrived or a reply frame left (the idle rule).
  std::chrono::steady_clock::time_point last_progress_;
  // A reply's HEADERS or DATA frame left (the stall rule: nothing the client sends counts).
  std::chrono::steady_clock::time_point last_reply_sent_;
  std::unordered_set<Http2Stream*> streams_;
  // Frames made by one round of flush(), handed to `out_` together at its end.
  core::EvbufferPtr staged_{evbuffer_new()};
  // What waits for the socket (the transport writes from its front).
  core::EvbufferPtr out_{evbuffer_new()};
};

}  // namespace http
