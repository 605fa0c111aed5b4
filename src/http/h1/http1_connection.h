// HTTP/1.x on a plain socket or over TLS, the servers' one HTTP/1 path (docs/http.md,
// "The HTTP/1 transport"): one object per accepted connection, which
// does the TLS handshake through its Transport (http/transport/transport.h), feeds what it reads
// to its Http1Codec (http/h1/http1_codec.h: heads, framing, bodies by Content-Length or
// chunked, refusals), hands each request to HttpServer::dispatch as an HttpExchange,
// and carries its reply as the exchange's front end (http/server/request_state.h). Requests on
// one connection are served one at a time, in order (keep-alive and pipelining). A TLS client
// that agrees on h2 by ALPN is handed to an Http2Connection after the handshake; on a plain
// listener with h2c, so is a client whose first bytes are HTTP/2's connection preface (prior
// knowledge). An "Upgrade: h2c" request is served as HTTP/1.1 (no 101).
//
// Why not libevent's evhttp (which served HTTP/1 before): per request it allocates and frees ~50
// blocks (request, URI parts, header lists), drops and re-arms the read watch (a system call),
// parses the URI for a callback table we do not use and searches its header lists by name; together
// about two thirds of the balancer's user time on a small reply. Here the read watch stays armed,
// the head is read into views of one copy of its bytes, and a small reply leaves in one writev.
//
// Internal to http_server.cc and http_exchange.cc. Loop thread only.
#pragma once

#include <event2/event.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/handles.h"
#include "http/h1/http1_codec.h"
#include "http/server/connection_limits.h"
#include "http/server/idle_eviction.h"
#include "http/server/request_state.h"
#include "http/transport/transport.h"

namespace http {

class HttpServer;
class TlsContext;

class Http1Connection final : public ExchangeFrontEnd, public IdleConnection {
 public:
  // Serves the accepted, non-blocking socket `fd` (owned from now on), over TLS with `tls`.
  // With `http2`, a client that asks for HTTP/2 goes to an Http2Connection: over TLS by
  // taking h2 in ALPN, in the clear by starting with the connection preface (h2c with prior
  // knowledge). Registers itself with `server`, which deletes it if it is destroyed
  // first. Null if the loop cannot watch the socket (`fd` is closed). `slot` is the
  // connection's place under the server's connection limits, held until the close (or
  // handed to the Http2Connection that takes over).
  //
  // Over TLS the session is made only once the client's first record (its ClientHello) is
  // here whole: until then the connection holds no OpenSSL state (a session with its
  // read and handshake buffers is ~40 KB; a client sending half a ClientHello and nothing
  // more held all of it until the timeout).
  static Http1Connection* open(HttpServer& server, evutil_socket_t fd, const sockaddr* peer,
                               const TlsContext* tls = nullptr, bool http2 = false,
                               ConnectionSlot slot = {});
  ~Http1Connection() override;
  Http1Connection(const Http1Connection&) = delete;
  Http1Connection& operator=(const Http1Connection&) = delete;

  // The server is going away: the request in progress (if any) is told its client is gone,
  // without calling back into the server.
  void detach();
  // Its turn in the server's deferred list (HttpServer::defer): the rest of a pipeline, or
  // the delete of a closed connection.
  void run_deferred();

  // IdleConnection: in the server's idle list while it waits for a request (idle_eviction.h).
  IdleCandidate idle_candidate(ConnectionLimits& limits) const override;
  void evict() override;

  // ExchangeFrontEnd: the request in progress and its reply.
  std::optional<std::string> request_header(const char* name) const override;
  std::vector<HttpHeader> request_headers_with_prefix(std::string_view prefix) const override;
  std::string request_body_bytes() const override { return req().body; }
  void add_response_header(std::string_view name, std::string_view value) override;
  void remove_response_header(const char* name) override;
  bool has_response_header(const char* name) const override;
  void send_reply(int status, BodyBuffer body, bool has_body) override;
  void start_reply(int status) override;
  void send_body(BodyBuffer bytes) override;
  void end_reply() override;
  void abort_reply() override;

 private:
  enum class Phase : uint8_t {
    head,       // waiting for (the rest of) a request head
    body,       // the head is read; its body is arriving
    handling,   // dispatched: the reply is not complete
    flushing,   // the reply is complete, part of it still in `out_`
    lingering,  // the last reply is written and our side shut: reading until the client closes
  };

  Http1Connection(HttpServer& server, Transport transport, std::string remote_ip);
  bool watch();  // creates the events; false when the loop cannot
  // TLS before the session exists: true once the client's first record is here whole and
  // the session is made (or the connection is closing); false to wait for more bytes, which
  // the socket reports only once there are enough (SO_RCVLOWAT), so waiting costs no wake-ups.
  bool hello_arrived();

  void on_readable();
  // Reads what the client sent in this turn; over TLS the handshake and a write that waits
  // for a read come first.
  void read_turn();
  // Bytes the client sent (decrypted, over TLS).
  void received(const char* bytes, size_t size);
  // The client closed its sending side (EOF, or TLS close_notify).
  void peer_closed();
  // Moves the handshake on; true once it is done and HTTP/1 follows (false: waiting for the
  // socket, handed to HTTP/2, or closed).
  bool continue_handshake();
  // The connection is HTTP/2 (ALPN h2, or the preface in the clear): an Http2Connection takes
  // the socket, with the bytes already read, and this object goes.
  void hand_over_to_http2();
  // On a plain h2c listener, before the first request: false while the bytes read could
  // still be the start of HTTP/2's preface, or once the connection was handed over.
  bool past_http2_preface();
  void on_writable();
  void on_timer();
  // Reads and answers what the codec's input holds, request after request, while no reply is
  // outstanding (bounded: a long pipeline continues in the next loop turn).
  void serve_pending();
  Http1Codec::Limits limits() const;
  // One request from the codec: false to wait for more bytes (or the connection is closing).
  bool read_request();
  void on_head();     // the codec read a head: the request's state, 100 Continue
  void on_refused();  // the codec refused the request (req().refusal)
  void dispatch_request();
  // Answers a head that could not be read (431, 400, 505) and closes after the reply.
  void refuse(int status, std::string_view code, std::string_view message,
              std::string_view method = {}, std::string_view target = {});
  void new_state(std::string_view method, std::string_view target);

  // The status line and the response headers, with Date, Connection and the framing.
  evbuffer* out();  // out_, made if need be
  void queue_head(int status, std::string_view framing_header);
  void queue_body(BodyBuffer body);
  // Writes what `out_` holds as far as the socket takes it; then, if the reply is complete,
  // moves on (the next request, or the close).
  void flush();
  void watch_writes(bool on);
  void reply_written();
  void finish_request();
  void close_after_reply() { keep_alive_ = false; }
  // The same, with the request not read to its end (refused): the close waits for the client
  // to stop sending (linger()).
  void close_leaving_input() {
    keep_alive_ = false;
    leaving_input_ = true;
  }
  // The client is gone or the connection failed: the request in progress is abandoned, the
  // socket closed at once, and this object freed in a later turn.
  void close_now();
  void linger();
  void resume_reading();  // after a pause for a pipeline ahead of the replies
  void schedule_serve();
  void destroy_soon();
  // Into the server's idle list (at its newest end), or out of it.
  void set_idle(bool idle);

  HttpServer& server_;
  Transport transport_;  // the socket, and over TLS the session on it
  // (Flags placed where the layout has room: an idle connection's object fits the allocator's
  // 320-byte class.)
  bool keep_alive_ = true;
  bool leaving_input_ = false;
  bool reply_complete_ = false;
  bool reply_counted_ = false;  // the server counts it unflushed (HttpServer::reply_pending)
  std::string remote_ip_;
  core::EventPtr read_event_;
  core::EventPtr write_event_;  // made the first time a reply waits for the socket
  core::EventPtr timer_;
  core::EvbufferPtr out_;  // the reply's bytes: made for a request, freed when idle
  ConnectionSlot slot_;
  bool handshaking_ = false;
  bool offer_http2_ = false;
  bool preface_possible_ = false;  // plain h2c: the first bytes may still be HTTP/2's preface
  bool chunked_reply_ = false;
  bool body_allowed_ = true;
  bool head_held_ = false;  // a streamed reply's head waits in out_ for its first body bytes

  Phase phase_ = Phase::head;
  Http1Codec codec_;  // its input: bytes read and not yet used
  bool reading_paused_ = false;
  bool peer_done_ = false;  // the client closed its sending side (EOF read)
  bool write_watched_ = false;
  bool corked_ = false;  // the last reply's segments are held for the FIN
  bool in_serve_ = false;
  bool closed_ = false;
  bool destroying_ = false;
  bool deferred_ = false;  // in the server's deferred list: serve_pending() or the delete
  bool served_ = false;    // a request of this connection's has been dispatched
  // Milliseconds (the loop's clock) of the last byte read or written, for io_timeout_s.
  int64_t last_activity_ms_ = 0;
  int64_t linger_until_ms_ = 0;
  int64_t request_began_ms_ = 0;  // the first byte of the request being read arrived

  // The request in progress: its buffers live apart from the connection, taken when a request
  // begins and given back when the connection goes idle, so that an idle connection is small.
  // Given back to a few spares per loop thread, buffers and all: a busy loop allocates none
  // per request.
  struct Request : Http1Request {
    std::string response_headers;  // "Name: value\r\n" each
    std::string spare_input;       // the codec's input storage while the connection is idle

    // As new, its buffers' storage kept (each cut back to `keep_bytes`).
    void clear(size_t keep_bytes);
  };
  Request& req() {
    if (!request_) request_ = take_spare_request();
    return *request_;
  }
  static std::vector<std::unique_ptr<Request>>& spare_requests();  // this thread's
  static std::vector<core::EvbufferPtr>& spare_buffers();
  static std::unique_ptr<Request> take_spare_request();
  static void give_back(std::unique_ptr<Request> request);
  static core::EvbufferPtr take_spare_buffer();
  static void give_back(core::EvbufferPtr buffer);
  const Request& req() const;  // an empty one when no request is in progress
  std::unique_ptr<Request> request_;
  std::shared_ptr<RequestState> state_;
  // The reply.
};

}  // namespace http
