// The state of one request on the evhttp server, shared by its HttpExchange
// handle and the server. Internal to http_server.cc and http_exchange.cc.
#pragma once

#include <event2/http.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/http_server.h"
#include "common/request_framing.h"

namespace common {

struct Http2Stream;

// Per-request state shared by the exchange handle and the server. The server
// forgets it once the reply is finished or the connection is gone.
struct RequestState {
  HttpServer* server = nullptr;
  evhttp_request* req = nullptr;  // null once the client is gone
  evhttp_connection* conn = nullptr;
  std::chrono::steady_clock::time_point start;
  std::string method, target, path, query, remote_ip, note;
  int status = 0;
  // HTTP/1.x head that RFC 9112 says to refuse: answered 400, connection closed.
  FramingProblem framing = FramingProblem::none;
  uint64_t body_bytes = 0;
  bool tls = false;            // arrived over TLS: body bytes are encrypted here (no sendfile)
  bool direct_write = false;   // evhttp's socket is the connection's: small replies may be written at once
  Http2Stream* h2 = nullptr;   // an HTTP/2 stream's exchange (req and conn stay null); null once it closed
  bool streaming = false;
  bool finished = false;
  // Set by add_header: saves rescanning the header list when replying.
  bool has_content_type = false;
  bool has_content_length = false;
  // Replying from the no-reply guard, maybe as the loop shuts down: leave the
  // write to evhttp (write_now's deferred callback needs one more loop turn).
  bool settling = false;
  bool closed = false;
  std::function<void()> on_close;

  void finish() {
    if (finished) return;
    finished = true;
    server->request_finished(*this);
  }
};

}  // namespace common
