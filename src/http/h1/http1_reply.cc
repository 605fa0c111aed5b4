// Http1Connection's second half: what the exchange reads of the request, the reply it builds
// (head, fixed or chunked body), writing it out (plain or as TLS records), and what follows a
// reply: the next request, a lingering close, the I/O timeout. The first half
// (http1_connection.cc) accepts, reads, hands the bytes to the codec and its requests on, and
// closes.
#include <event2/buffer.h>
#include <event2/event.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include "core/ascii.h"
#include "http/h1/http1_connection.h"
#include "http/h1/turn_clock.h"
#include "http/server/http_server.h"

namespace http {
namespace {

// Spares kept per loop thread: enough for the requests a loop has in progress at once in a
// burst, each buffer cut back to a few KiB (a large body's bytes are not kept).
constexpr size_t kSpares = 64;
constexpr size_t kSpareBufferBytes = 4096;
// After the last reply of a connection that closes: how long the client's remaining bytes are
// read and dropped (so that the kernel does not answer them with a reset that could destroy
// the reply before the client read it).
constexpr int64_t kLingerMs = 2000;
// Buffers above this size are released after a request, even with the next one already read.
constexpr size_t kKeptBufferBytes = 16 * 1024;

// (Not find_first_of: it searches the set once per character of `s`.)
bool has_line_break(std::string_view s) {
  return std::memchr(s.data(), '\r', s.size()) != nullptr ||
         std::memchr(s.data(), '\n', s.size()) != nullptr;
}

}  // namespace

// ---- the request, for the exchange ----

std::optional<std::string> Http1Connection::request_header(const char* name) const {
  const std::string_view wanted(name);
  for (const HeaderField& field : req().parsed.head.fields) {
    if (core::iequals(field.name, wanted)) return std::string(field.value);
  }
  return std::nullopt;
}

std::vector<HttpHeader> Http1Connection::request_headers_with_prefix(
    std::string_view prefix) const {
  std::vector<HttpHeader> out;
  for (const HeaderField& field : req().parsed.head.fields) {
    if (field.name.size() >= prefix.size() &&
        core::iequals(field.name.substr(0, prefix.size()), prefix))
      out.push_back({std::string(field.name), std::string(field.value)});
  }
  return out;
}

// ---- the reply ----

void Http1Connection::add_response_header(std::string_view name, std::string_view value) {
  // A line break would end the field (or the head) early: such a field is dropped, as evhttp
  // dropped it.
  if (name.empty() || has_line_break(name) || has_line_break(value)) return;
  if (core::iequals(name, "Connection")) {
    for_each_token(value, [&](std::string_view token) {
      if (core::iequals(token, "close")) close_after_reply();
    });
  }
  req().response_headers.append(name).append(": ").append(value).append("\r\n");
}

void Http1Connection::remove_response_header(const char* name) {
  const std::string_view wanted(name);
  size_t at = 0;
  while (at < req().response_headers.size()) {
    const size_t end = req().response_headers.find("\r\n", at) + 2;
    const size_t colon = req().response_headers.find(':', at);
    if (core::iequals(std::string_view(req().response_headers).substr(at, colon - at), wanted)) {
      req().response_headers.erase(at, end - at);
    } else {
      at = end;
    }
  }
}

bool Http1Connection::has_response_header(const char* name) const {
  const std::string_view wanted(name);
  for (size_t at = 0; at < req().response_headers.size();) {
    const size_t colon = req().response_headers.find(':', at);
    if (core::iequals(std::string_view(req().response_headers).substr(at, colon - at), wanted))
      return true;
    at = req().response_headers.find("\r\n", colon) + 2;
  }
  return false;
}

std::vector<std::unique_ptr<Http1Connection::Request>>& Http1Connection::spare_requests() {
  thread_local std::vector<std::unique_ptr<Request>> spares;
  return spares;
}

std::vector<core::EvbufferPtr>& Http1Connection::spare_buffers() {
  thread_local std::vector<core::EvbufferPtr> spares;
  return spares;
}

std::unique_ptr<Http1Connection::Request> Http1Connection::take_spare_request() {
  auto& spares = spare_requests();
  if (spares.empty()) return std::make_unique<Request>();
  std::unique_ptr<Request> request = std::move(spares.back());
  spares.pop_back();
  return request;
}

void Http1Connection::give_back(std::unique_ptr<Request> request) {
  auto& spares = spare_requests();
  if (request == nullptr || spares.size() >= kSpares) return;
  request->clear(kSpareBufferBytes);
  spares.push_back(std::move(request));
}

void Http1Connection::Request::clear(size_t keep_bytes) {
  Http1Request::clear(keep_bytes);
  for (std::string* buffer : {&response_headers, &spare_input}) {
    buffer->clear();
    if (buffer->capacity() > keep_bytes) std::string().swap(*buffer);
  }
}

core::EvbufferPtr Http1Connection::take_spare_buffer() {
  auto& spares = spare_buffers();
  if (spares.empty()) {
    core::EvbufferPtr buffer(evbuffer_new());
    if (buffer == nullptr) throw std::bad_alloc();  // as any allocation of ours would
    return buffer;
  }
  core::EvbufferPtr buffer = std::move(spares.back());
  spares.pop_back();
  return buffer;
}

void Http1Connection::give_back(core::EvbufferPtr buffer) {
  auto& spares = spare_buffers();
  if (buffer != nullptr && spares.size() < kSpares) spares.push_back(std::move(buffer));
}

evbuffer* Http1Connection::out() {
  if (out_ == nullptr) {
    out_ = take_spare_buffer();
  }
  return out_.get();
}

void Http1Connection::queue_head(int status, std::string_view framing_header) {
  thread_local std::string head;
  head.clear();
  char status_text[16];
  const auto [status_end, ignored] = std::to_chars(status_text, status_text + 4, status);
  head.append("HTTP/1.1 ")
      .append(status_text, status_end)
      .append(" ")
      .append(reason_phrase(status))
      .append("\r\n")
      .append(req().response_headers);
  if (!date_given) head.append("Date: ").append(http_date(server_.clock())).append("\r\n");
  if (server_.draining()) close_after_reply();
  if (!keep_alive_) {
    if (!has_response_header("Connection")) head.append("Connection: close\r\n");
  } else if (req().minor_version == 0) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append(framing_header).append("\r\n");
  evbuffer_add(out(), head.data(), head.size());
}

void Http1Connection::queue_body(BodyBuffer body) {
  evbuffer_add_buffer(out(), static_cast<evbuffer*>(body.native()));
}

void Http1Connection::send_reply(int status, BodyBuffer body, bool has_body) {
  if (closed_ || phase_ != Phase::handling) {
    server_.reply_flushed();  // HttpExchange::reply counted it; nothing will be written
    return;
  }
  queue_head(status, {});
  if (has_body) queue_body(std::move(body));
  reply_counted_ = true;  // HttpExchange::reply counted it
  reply_complete_ = true;
  phase_ = Phase::flushing;
  flush();
}

void Http1Connection::start_reply(int status) {
  if (closed_ || phase_ != Phase::handling) return;
  body_allowed_ = state_ != nullptr && state_->method != "HEAD" && status >= 200 && status != 204 &&
                  status != 304;
  std::string_view framing;
  if (body_allowed_ && !(state_ != nullptr && state_->has_content_length)) {
    if (req().minor_version >= 1) {
      chunked_reply_ = true;
      framing = "Transfer-Encoding: chunked\r\n";
    } else {
      close_after_reply();  // HTTP/1.0: the close ends the body
    }
  }
  // The head waits for the first body bytes or the end, to leave in one write with them: a
  // cache node starts a waiter's reply when the origin's head arrives and its body a moment
  // later, and one segment a part is half the cost of two.
  queue_head(status, framing);
  head_held_ = true;
}

void Http1Connection::send_body(BodyBuffer bytes) {
  if (closed_ || phase_ != Phase::handling || !body_allowed_) return;
  auto* data = static_cast<evbuffer*>(bytes.native());
  const size_t size = evbuffer_get_length(data);
  if (size == 0) return;  // an empty chunk would end a chunked body
  if (chunked_reply_) {
    char size_line[24];
    const int n = snprintf(size_line, sizeof size_line, "%zx\r\n", size);
    evbuffer_add(out(), size_line, static_cast<size_t>(n));
    evbuffer_add_buffer(out(), data);
    evbuffer_add(out(), "\r\n", 2);
  } else {
    evbuffer_add_buffer(out(), data);
  }
  flush();
}

void Http1Connection::end_reply() {
  if (closed_ || phase_ != Phase::handling) return;
  if (chunked_reply_) evbuffer_add(out(), "0\r\n\r\n", 5);
  server_.reply_pending();
  reply_counted_ = true;
  reply_complete_ = true;
  phase_ = Phase::flushing;
  flush();
}

void Http1Connection::abort_reply() {
  close_now();
}

// ---- writing ----

void Http1Connection::on_writable() {
  if (handshaking_) {
    if (continue_handshake()) read_turn();  // the client may have sent its request already
    return;
  }
  if (transport_.take_read_wants_write()) {
    read_turn();
    if (closed_) return;
  }
  flush();
}

void Http1Connection::flush() {
  if (closed_ || handshaking_) return;
  head_held_ = false;
  evbuffer* out = this->out();
  if (!keep_alive_ && reply_complete_ && !corked_) {
    // The connection's last reply: its end, TLS's close_notify and the FIN leave in one
    // segment (the close or shutdown in linger() sends what the cork holds) instead of
    // three, each with its own ACK. About 10 us less of CPU per short TLS connection.
    transport_.cork();
    corked_ = true;
  }
  for (int i = 0; i < kTurnWrites && evbuffer_get_length(out) > 0; ++i) {
    size_t n = 0;
    const Transport::Io io = transport_.write(out, n);
    if (io == Transport::Io::failed) {
      close_now();  // the client is gone
      return;
    }
    if (io != Transport::Io::done) break;
    last_activity_ms_ = loop_ms(server_.event_loop());
  }
  if (evbuffer_get_length(out) > 0) {
    // (A write that waits for a read, over TLS, is retried when the socket is readable.)
    watch_writes(!transport_.write_wants_read());
    return;
  }
  watch_writes(transport_.read_wants_write());
  if (reply_complete_ && phase_ == Phase::flushing) reply_written();
}

void Http1Connection::watch_writes(bool on) {
  if (on == write_watched_) return;
  if (on) {
    // Made the first time the socket is full: most connections never wait to write, and an
    // idle one should cost little.
    if (!write_event_) {
      auto on_write = [](evutil_socket_t, short, void* arg) {
        static_cast<Http1Connection*>(arg)->on_writable();
      };
      write_event_.reset(
          event_new(server_.event_loop(), transport_.fd(), EV_WRITE | EV_PERSIST, on_write, this));
      if (!write_event_) {
        close_now();  // out of memory: the reply cannot wait for the socket
        return;
      }
    }
    event_add(write_event_.get(), nullptr);
  } else {
    event_del(write_event_.get());
  }
  write_watched_ = on;
}

void Http1Connection::reply_written() {
  if (reply_counted_) {
    reply_counted_ = false;
    server_.reply_flushed();
  }
  if (!keep_alive_) {
    linger();
    return;
  }
  finish_request();
  set_idle(true);  // kept alive: waiting for the next request
  resume_reading();
  if (!in_serve_ && !codec_.input().empty()) schedule_serve();
}

void Http1Connection::finish_request() {
  if (state_ != nullptr) {
    state_->front = nullptr;
    release_request_state(state_);
    server_.http1_request_ended();
  }
  phase_ = Phase::head;
  request_began_ms_ = loop_ms(server_.event_loop());  // for bytes already read (a pipeline)
  reply_complete_ = false;
  chunked_reply_ = false;
  body_allowed_ = true;
  head_held_ = false;
  // An idle connection keeps no request: the next may be minutes away, and a venue holds tens
  // of thousands of idle keep-alive connections. A pipeline (bytes already here) keeps the
  // buffers up to a size, as the next head is parsed at once.
  std::string& pending = codec_.input();
  if (pending.empty()) {
    if (request_ != nullptr) request_->spare_input.swap(pending);
    give_back(std::move(request_));
    if (out_ != nullptr && evbuffer_get_length(out_.get()) == 0) give_back(std::move(out_));
    if (pending.capacity() > 0) std::string().swap(pending);
    return;
  }
  if (request_ != nullptr) {
    request_->response_headers.clear();
    request_->body.clear();
    for (std::string* buffer :
         {&request_->body, &request_->head_bytes, &request_->response_headers}) {
      if (buffer->capacity() > kKeptBufferBytes) std::string().swap(*buffer);
    }
  }
}

void Http1Connection::linger() {
  // Whether the client may still be sending: a request not read to its end, bytes already
  // read past the last request (here or read ahead by TLS), or bytes waiting in the socket.
  // Closing with bytes unread, or that then arrive, makes the kernel answer with a reset that
  // can destroy the reply before the client has read it; otherwise the close is at once, as
  // nginx's (no shutdown, no wait for the client's end: a wake-up, a read and a system call
  // less per short connection).
  const bool more_may_come = leaving_input_ || !codec_.input().empty() || transport_.read_ahead() ||
                             transport_.bytes_waiting();
  finish_request();
  phase_ = Phase::lingering;
  codec_.input().clear();
  // The clean end of a TLS connection: without close_notify, an OpenSSL-based client
  // reading to the end (HTTP/1.0, Connection: close) sees an unexpected EOF, reports an
  // error and drops the session it could resume.
  transport_.send_close_notify();
  if (peer_done_ || !more_may_come) {
    close_now();  // the client closed its side already, or is not sending: nothing to wait for
    return;
  }
  transport_.shutdown_write();
  linger_until_ms_ = loop_ms(server_.event_loop()) + kLingerMs;
  resume_reading();  // a pipeline may have filled the buffer: read and drop the rest
  const timeval wait = after_ms(kLingerMs);
  evtimer_add(timer_.get(), &wait);
}

void Http1Connection::on_timer() {
  const int64_t now = loop_ms(server_.event_loop());
  const int64_t timeout = int64_t{server_.options().io_timeout_s} * 1000;
  int64_t next = timeout;
  if (phase_ == Phase::lingering) {
    if (now >= linger_until_ms_) {
      close_now();
      return;
    }
    next = linger_until_ms_ - now;
  } else if (phase_ == Phase::handling &&
             (out_ == nullptr || evbuffer_get_length(out_.get()) == 0 || head_held_)) {
    // The handler has the request (a held playlist request, a queue, a slow origin, a head
    // waiting for its body): the client is not idle, we are.
    last_activity_ms_ = now;
  } else {
    const int64_t idle = now - last_activity_ms_;
    if (idle >= timeout) {
      close_now();  // an idle keep-alive connection, a head never finished, a stalled reader
      return;
    }
    next = timeout - idle;
    if (handshaking_ || (phase_ == Phase::head && !codec_.input().empty()) ||
        phase_ == Phase::body) {
      // A request's head and body (and a TLS handshake) must arrive within the timeout in
      // all: a client sending a byte now and then (slowloris) does not hold the connection.
      const int64_t taken = now - request_began_ms_;
      if (taken >= timeout) {
        close_now();
        return;
      }
      next = std::min(next, timeout - taken);
    }
  }
  const timeval wait = after_ms(next);
  evtimer_add(timer_.get(), &wait);
}

}  // namespace http
