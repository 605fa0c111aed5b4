// One HTTP request and its response, as a handler sees it, whatever protocol
// front end carries it (HTTP/1.x through http/h1/http1_connection.h, HTTP/2 through nghttp2;
// both implement ExchangeFrontEnd, http/server/request_state.h). No libevent type appears
// here. Loop thread only: the loop that received the request.
//
// A handler receives an HttpExchange. It replies at once, or moves the exchange
// somewhere (e.g. a list of waiters) and replies later. An exchange destroyed
// without a reply answers 500, so no request is ever left hanging.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/server/body_buffer.h"

namespace http {

struct HttpHeader {
  std::string name;
  std::string value;
};

struct RequestState;

class HttpExchange {
 public:
  explicit HttpExchange(std::shared_ptr<RequestState> state);
  HttpExchange(HttpExchange&&) noexcept;
  HttpExchange& operator=(HttpExchange&&) noexcept;
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;
  ~HttpExchange();  // answers 500 if nothing was sent

  // Request. Valid until the reply is finished or the client is gone.
  const std::string& method() const;  // "GET", "HEAD", ...
  bool is_head() const { return method() == "HEAD"; }
  const std::string& target() const;  // raw path + "?" + query, as received
  const std::string& path() const;    // raw (still percent-encoded) path
  const std::string& query() const;   // raw query without "?", or empty
  // Decoded value of the first query parameter `name`.
  std::optional<std::string> query_param(std::string_view name) const;
  // First request header `name` (case-insensitive), or nullopt.
  std::optional<std::string> header(const char* name) const;
  // Every request header whose name starts with `prefix` (case-insensitive), in the order sent.
  std::vector<HttpHeader> headers_with_prefix(std::string_view prefix) const;
  std::string body() const;
  const std::string& remote_ip() const;
  // The client as every per-address limit and share counts it: its IPv4 address, or its IPv6
  // address's network of server.ipv6_prefix_length bits ("2001:db8:1::/64";
  // core::address_group_key). Exemptions by network are checked against remote_ip().
  std::string remote_network() const;
  std::chrono::steady_clock::time_point started() const;

  // Response. Headers must be added before reply()/start().
  void add_header(std::string_view name, std::string_view value);
  // Sends a complete reply. For HEAD, the body is not sent but Content-Length is.
  void reply(int status, std::string_view body, std::string_view content_type = "application/json");
  // Sends a complete reply whose body is moved out of `body` (may hold references and file
  // segments).
  void reply(int status, BodyBuffer body, size_t length, std::string_view content_type);
  // {"error":{"code","message"}} with the given status.
  void reply_error(int status, std::string_view code, std::string_view message);
  // Streaming: status line + headers (Content-Length should be set by the caller when
  // known, else chunked is used), then send()* and end(). Over HTTP/1 the head leaves with
  // the first body bytes or the end, in one write.
  void start(int status);
  void send(const char* data, size_t n);
  void send(BodyBuffer data);
  void end();
  // Closes the connection at once (a stream that cannot be completed): the
  // client sees a truncated body instead of waiting for bytes that never come.
  void abort();

  bool replied() const;  // reply(), start() or end() happened
  bool finished() const;
  bool closed() const;  // the client went away; further sends are dropped
  // Called once if the client goes away before the reply is finished.
  void on_close(std::function<void()> fn);
  // A short note for the access log line (e.g. "HIT", "MISS").
  void set_log_note(std::string note);
  // False when no access log line will be written (notes need not be built).
  bool logs_access() const;
  // True when a file segment in a reply body goes to the socket with sendfile
  // (BodyBuffer::append_file with send_file = true); false when the front end
  // must read the bytes itself (TLS encrypts them in this process).
  bool sends_files() const;
  // The request arrived over TLS.
  bool secure() const;
  // Bytes of response body queued so far (for metrics).
  uint64_t body_bytes_sent() const;
  bool valid() const { return state_ != nullptr; }

 private:
  void settle();  // the no-reply guard
  std::shared_ptr<RequestState> state_;
};

using Handler = std::function<void(HttpExchange&)>;

}  // namespace http
