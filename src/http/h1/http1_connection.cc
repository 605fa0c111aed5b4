#include "http/h1/http1_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "core/ascii.h"
#include "core/host_lookup.h"
#include "http/h2/http2_connection.h"
#include "http/server/http_server.h"
#include "http/tls/tls.h"

namespace http {
namespace {

constexpr size_t kReadSize = 16 * 1024;
// Requests answered in one turn from bytes already read (a long pipeline yields to the
// loop's other connections after these).
constexpr int kRequestsPerTurn = 16;
// Writes in one turn before waiting for the socket to say it is writable again.
constexpr int kWritesPerTurn = 64;
// TLS records read in one turn (what OpenSSL has read ahead is taken in the next turn).
constexpr int kTlsReadsPerTurn = 16;
// The most plaintext one TLS record carries: each SSL_write is one record and one write.
constexpr size_t kTlsRecordBytes = 16 * 1024;
// After the last reply of a connection that closes: how long the client's remaining bytes are
// read and dropped (so that the kernel does not answer them with a reset that could destroy
// the reply before the client read it).
constexpr int64_t kLingerMs = 2000;
// Buffers above this size are released when the connection goes idle.
constexpr size_t kKeptBufferBytes = 16 * 1024;

// The loop's time of this turn, in milliseconds: read once per turn by libevent, so marking
// a connection active costs no clock call.
int64_t loop_ms(event_base* base) {
  timeval now{};
  event_base_gettimeofday_cached(base, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_usec / 1000;
}

timeval after_ms(int64_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

// (Not find_first_of: it searches the set once per character of `s`.)
bool has_line_break(std::string_view s) {
  return std::memchr(s.data(), '\r', s.size()) != nullptr ||
         std::memchr(s.data(), '\n', s.size()) != nullptr;
}

// Each comma-separated token of a Connection value, trimmed.
template <typename Fn>
void for_each_token(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    fn(core::trim_ows(value.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// A field's value for RequestFramingCheck: from the first tab after the colon, if any. The
// parser drops the whitespace around a value as RFC 9110 says; a proxy in front may not
// drop a tab, and read "Transfer-Encoding:<tab>chunked" as no chunked coding at all, so the
// check refuses a value that starts with one, as it did when evhttp kept it.
std::string_view value_as_checked(const HeaderField& field) {
  const char* after_colon = field.name.data() + field.name.size() + 1;
  // A Host value the parser took from an absolute-form target (http1_head.h) lies before it.
  if (field.value.data() < after_colon) return field.value;
  std::string_view space(after_colon, static_cast<size_t>(field.value.data() - after_colon));
  const size_t tab = space.find('\t');
  if (tab == std::string_view::npos) return field.value;
  return std::string_view(after_colon + tab, space.size() - tab + field.value.size());
}

}  // namespace

Http1Connection* Http1Connection::open(HttpServer& server, evutil_socket_t fd, const sockaddr* peer,
                                       const TlsContext* tls, bool http2, ConnectionSlot slot) {
  auto* connection = new Http1Connection(server, fd, core::address_text(peer));
  connection->slot_ = std::move(slot);
  if (tls != nullptr) {
    connection->tls_ = tls;
    connection->handshaking_ = true;
    connection->offer_http2_ = http2;
  } else {
    connection->preface_possible_ = http2;
  }
  if (!connection->watch()) {
    delete connection;  // closes fd
    return nullptr;
  }
  server.http1_opened(*connection);
  return connection;
}

bool Http1Connection::hello_arrived() {
  if (ssl_ != nullptr) return true;
  // A TLS record: type (1), version (2), length (2), then the length's bytes.
  unsigned char header[5];
  const ssize_t n = ::recv(fd_, header, sizeof header, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n <= 0) {
    close_now();  // the client left (or the socket failed) before saying anything
    return false;
  }
  int available = 0;
  size_t wanted = sizeof header;
  if (n == static_cast<ssize_t>(sizeof header))
    wanted += static_cast<size_t>(header[3]) << 8 | header[4];
  // Anything but a handshake record of a sane size is left to OpenSSL to refuse.
  if (header[0] == 0x16 && wanted <= kTlsRecordBytes + 2048 &&
      ioctl(fd_, FIONREAD, &available) == 0 && static_cast<size_t>(available) < wanted) {
    if (static_cast<size_t>(hello_low_water_) == wanted) {
      close_now();  // woken short of the mark: the client closed its side, or the socket failed
      return false;
    }
    hello_low_water_ = static_cast<int>(wanted);
    setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &hello_low_water_, sizeof hello_low_water_);
    return false;
  }
  if (hello_low_water_ != 1) {
    hello_low_water_ = 1;
    setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &hello_low_water_, sizeof hello_low_water_);
  }
  ssl_.reset(tls_->new_connection());
  SSL* ssl = ssl_.get();
  if (ssl == nullptr || SSL_set_fd(ssl, fd_) != 1) {
    ERR_clear_error();
    ssl_.reset();
    close_now();
    return false;
  }
  SSL_set_accept_state(ssl);
  // A retried write may come from another address: joining pieces can move them. Buffers
  // released when empty: an idle keep-alive connection holds no 17 KiB read buffer.
  SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Many clients (players among them) close without close_notify: that is an end, not an
  // error. Read-ahead: a record in one read instead of its header and then its body.
  SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_set_read_ahead(ssl, 1);
  return true;
}

Http1Connection::Http1Connection(HttpServer& server, evutil_socket_t fd, std::string remote_ip)
    : server_(server), fd_(fd), remote_ip_(std::move(remote_ip)), out_(evbuffer_new()) {}

Http1Connection::~Http1Connection() {
  if (fd_ >= 0) ::close(fd_);
}

bool Http1Connection::watch() {
  event_base* base = server_.event_loop();
  auto on_read = [](evutil_socket_t, short, void* arg) {
    static_cast<Http1Connection*>(arg)->on_readable();
  };
  auto on_write = [](evutil_socket_t, short, void* arg) {
    static_cast<Http1Connection*>(arg)->on_writable();
  };
  auto on_timer = [](evutil_socket_t, short, void* arg) {
    static_cast<Http1Connection*>(arg)->on_timer();
  };
  auto on_serve = [](evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Http1Connection*>(arg);
    if (self->destroying_) {
      self->server_.http1_closed(*self);
      delete self;
      return;
    }
    self->serve_pending();
  };
  read_event_.reset(event_new(base, fd_, EV_READ | EV_PERSIST, on_read, this));
  write_event_.reset(event_new(base, fd_, EV_WRITE | EV_PERSIST, on_write, this));
  timer_.reset(evtimer_new(base, on_timer, this));
  serve_event_.reset(event_new(base, -1, 0, on_serve, this));
  if (!read_event_ || !write_event_ || !timer_ || !serve_event_ || !out_) return false;
  // The read watch stays armed for the connection's life: a request's end does not cost a
  // system call to stop and start watching (evhttp's did).
  if (event_add(read_event_.get(), nullptr) != 0) return false;
  last_activity_ms_ = loop_ms(server_.event_loop());
  request_began_ms_ = last_activity_ms_;  // a handshake is bounded like a head
  timeval timeout{server_.options().io_timeout_s, 0};
  evtimer_add(timer_.get(), &timeout);
  return true;
}

void Http1Connection::detach() {
  if (state_ != nullptr) {
    state_->closed = true;
    state_->front = nullptr;
    state_->finished = true;
    state_.reset();
  }
}

// ---- reading ----

void Http1Connection::on_readable() {
  // Lingering reads the socket as it is: what still comes is dropped, encrypted or not.
  if (tls_ != nullptr && phase_ != Phase::lingering) {
    if (hello_arrived()) read_tls();
    return;
  }
  char buffer[kReadSize];
  const ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_now();
    return;
  }
  if (n == 0) {
    peer_closed();
    return;
  }
  received(buffer, static_cast<size_t>(n));
}

void Http1Connection::peer_closed() {
  event_del(read_event_.get());
  reading_paused_ = true;
  peer_done_ = true;
  if (phase_ == Phase::flushing) {
    close_after_reply();  // the reply is complete: it is still written
  } else {
    close_now();  // a request in progress is abandoned, as the client went away
  }
}

void Http1Connection::read_tls() {
  if (handshaking_ && !continue_handshake()) return;
  if (tls_write_wants_read_) {
    tls_write_wants_read_ = false;
    flush();
  }
  SSL* ssl = ssl_.get();
  char buffer[kReadSize];
  for (int i = 0; i < kTlsReadsPerTurn; ++i) {
    if (closed_ || reading_paused_ || phase_ == Phase::lingering) return;
    ERR_clear_error();  // SSL_get_error reads the thread's queue: other code may have left errors
    const int n = SSL_read(ssl, buffer, sizeof buffer);
    if (n > 0) {
      received(buffer, static_cast<size_t>(n));
      // Without bytes read ahead, the next record is not here yet: the loop says when it is
      // (another SSL_read now would cost a read that finds nothing).
      if (!SSL_has_pending(ssl)) return;
      continue;
    }
    switch (SSL_get_error(ssl, n)) {
      case SSL_ERROR_WANT_READ:
        return;
      case SSL_ERROR_WANT_WRITE:
        tls_read_wants_write_ = true;
        watch_writes(true);
        return;
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or the socket's EOF
        peer_closed();
        return;
      default:
        ERR_clear_error();
        close_now();
        return;
    }
  }
  // Records OpenSSL read ahead wait for a later turn; the socket would not report them.
  if (!closed_ && !reading_paused_ && SSL_has_pending(ssl))
    event_active(read_event_.get(), EV_READ, 1);
}

bool Http1Connection::continue_handshake() {
  SSL* ssl = ssl_.get();
  ERR_clear_error();
  const int done = SSL_do_handshake(ssl);
  last_activity_ms_ = loop_ms(server_.event_loop());
  if (done == 1) {
    handshaking_ = false;
    request_began_ms_ = last_activity_ms_;
    if (offer_http2_ && negotiated_protocol(ssl) == "h2") {
      hand_over_to_http2();
      return false;
    }
    watch_writes(false);
    return true;
  }
  switch (SSL_get_error(ssl, done)) {
    case SSL_ERROR_WANT_READ:
      watch_writes(false);
      return false;
    case SSL_ERROR_WANT_WRITE:
      watch_writes(true);
      return false;
    default:  // not TLS, no protocol or cipher in common, a bad certificate on their side
      ERR_clear_error();
      close_now();
      return false;
  }
}

void Http1Connection::hand_over_to_http2() {
  // Bytes already read go to the HTTP/2 connection first, as the socket will not report them
  // again: in the clear, the preface and what followed it; over TLS, what the client sent
  // with its last handshake flight (the preface, often), which OpenSSL may have read ahead.
  core::EvbufferPtr early(evbuffer_new());
  if (!early || evbuffer_add(early.get(), pending_.data(), pending_.size()) != 0) {
    close_now();
    return;
  }
  pending_.clear();
  event_del(read_event_.get());
  event_del(write_event_.get());
  event_del(timer_.get());
  bufferevent* transport = nullptr;
  const bool tls = ssl_ != nullptr;
  if (tls) {
    char buffer[kReadSize];
    for (int i = 0; i < kTlsReadsPerTurn && SSL_has_pending(ssl_.get()); ++i) {
      const int n = SSL_read(ssl_.get(), buffer, sizeof buffer);
      if (n <= 0) break;  // a partial record (the rest comes through the socket), or an end
      evbuffer_add(early.get(), buffer, static_cast<size_t>(n));
    }
    ERR_clear_error();
    // libevent's TLS bufferevent asks SSL_pending, which does not count bytes read ahead: it
    // would leave them unread.
    SSL_set_read_ahead(ssl_.get(), 0);
    transport = bufferevent_openssl_socket_new(server_.event_loop(), fd_, ssl_.get(),
                                               BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE);
    // The bufferevent owns the session and the socket from now on; failing, it has freed the
    // session (BEV_OPT_CLOSE_ON_FREE), not the socket.
    (void)ssl_.release();
    tls_ = nullptr;
  } else {
    transport = bufferevent_socket_new(server_.event_loop(), fd_, BEV_OPT_CLOSE_ON_FREE);
    // libevent writes at most 16 KiB per call by default: a 1 MiB body would take 64 turns.
    if (transport != nullptr) bufferevent_set_max_single_write(transport, 1 << 20);
  }
  if (transport == nullptr) {
    close_now();
    return;
  }
  fd_ = -1;
  closed_ = true;
  server_.hand_over_slot(std::move(slot_));
  auto* connection = Http2Connection::take_over(server_, transport, tls);
  if (connection != nullptr && evbuffer_get_length(early.get()) > 0)
    connection->receive(early.get());
  destroy_soon();
}

bool Http1Connection::past_http2_preface() {
  if (!preface_possible_) return true;
  const size_t compared = std::min(pending_.size(), kHttp2ClientPreface.size());
  if (std::string_view(pending_).substr(0, compared) != kHttp2ClientPreface.substr(0, compared)) {
    preface_possible_ = false;  // HTTP/1 from here on
    return true;
  }
  if (compared < kHttp2ClientPreface.size()) return false;  // could still be either
  preface_possible_ = false;
  hand_over_to_http2();
  return false;
}

void Http1Connection::received(const char* bytes, size_t size) {
  last_activity_ms_ = loop_ms(server_.event_loop());
  if (phase_ == Phase::lingering) return;  // dropped
  if (phase_ == Phase::head && pending_.empty()) request_began_ms_ = last_activity_ms_;
  pending_.append(bytes, size);
  if (phase_ == Phase::head || phase_ == Phase::body) {
    serve_pending();
  } else if (pending_.size() > head_limit() + server_.options().max_body_bytes) {
    // A pipeline ahead of the replies: stop reading until this request is answered.
    event_del(read_event_.get());
    reading_paused_ = true;
  }
}

size_t Http1Connection::head_limit() const {
  return server_.options().max_header_bytes * 2 + 8192;
}

void Http1Connection::serve_pending() {
  if (in_serve_ || closed_) return;
  in_serve_ = true;
  int served = 0;
  for (; served < kRequestsPerTurn && !closed_; ++served) {
    if (phase_ == Phase::head && !read_head()) break;
    if (phase_ == Phase::body && !read_body()) break;
    if (phase_ != Phase::head) break;  // the reply is not written yet: it moves us on
  }
  in_serve_ = false;
  if (served == kRequestsPerTurn && phase_ == Phase::head && !pending_.empty()) schedule_serve();
}

bool Http1Connection::read_head() {
  if (pending_.empty() || !past_http2_preface()) return false;
  const HttpServerOptions& options = server_.options();
  const size_t limit = head_limit();
  const size_t from = head_searched_ > 3 ? head_searched_ - 3 : 0;
  if (http1_head_end(pending_, from) == std::string::npos && pending_.size() < limit) {
    head_searched_ = pending_.size();
    return false;
  }
  parse_http1_head(pending_, limit, parsed_);
  switch (parsed_.status) {
    case HeadStatus::incomplete:
      head_searched_ = pending_.size();
      return false;
    case HeadStatus::too_large:
      parsed_.head.fields.clear();  // views into bytes that are not kept
      refuse(431, "headers_too_large",
             "The request headers are larger than " + std::to_string(options.max_header_bytes) +
                 " bytes.");
      return true;
    case HeadStatus::malformed:
      parsed_.head.fields.clear();
      refuse(400, "bad_request", parsed_.error);
      return true;
    case HeadStatus::complete:
      break;
  }
  begin_request();
  return true;
}

void Http1Connection::begin_request() {
  // The head's bytes move out of pending_ (which the next reads append to), and its views
  // with them.
  Http1Head& head = parsed_.head;
  head_bytes_.assign(pending_.data(), head.size);
  const char* old_base = pending_.data();
  auto moved = [&](std::string_view view) {
    return std::string_view(head_bytes_.data() + (view.data() - old_base), view.size());
  };
  head.method = moved(head.method);
  head.target = moved(head.target);
  for (HeaderField& field : head.fields) {
    field.name = moved(field.name);
    field.value = moved(field.value);
  }
  pending_.erase(0, head.size);
  head_searched_ = 0;

  if (head.major != 1) {
    refuse(505, "http_version_not_supported", "This server speaks HTTP/1.1 and HTTP/1.0.",
           head.method, head.target);
    return;
  }
  minor_version_ = head.minor;
  RequestFramingCheck framing(head.method, head.major, head.minor);
  header_bytes_ = head.target.size() + 16;
  bool close_asked = false;
  keep_alive_asked_ = false;
  expect_continue_ = false;
  chunked_request_ = false;
  content_length_ = 0;
  for (const HeaderField& field : head.fields) {
    header_bytes_ += field.name.size() + field.value.size() + 4;
    framing.field(field.name, value_as_checked(field));
    if (core::iequals(field.name, "Content-Length")) {
      // RequestFramingCheck refuses any value but digits; a refused one is not read.
      std::from_chars(field.value.data(), field.value.data() + field.value.size(), content_length_);
    } else if (core::iequals(field.name, "Transfer-Encoding")) {
      chunked_request_ = true;  // RequestFramingCheck refuses anything but "chunked"
    } else if (core::iequals(field.name, "Connection")) {
      for_each_token(field.value, [&](std::string_view token) {
        if (core::iequals(token, "close")) close_asked = true;
        if (core::iequals(token, "keep-alive")) keep_alive_asked_ = true;
      });
    } else if (core::iequals(field.name, "Expect")) {
      expect_continue_ = core::iequals(field.value, "100-continue");
    }
  }
  // HTTP/1.1 stays open unless asked to close; HTTP/1.0 only when asked to stay.
  keep_alive_ = !close_asked && (head.minor >= 1 || keep_alive_asked_);
  new_state(head.method, head.target);
  state_->framing = framing.problem();
  if (state_->framing != FramingProblem::none) {
    // Where this request ends is in doubt: nothing after its head is read as a request.
    close_leaving_input();
    dispatch_request(0);
    return;
  }
  body_.clear();
  if (content_length_ > server_.options().max_body_bytes) {
    close_leaving_input();  // answered 413 without reading the body
    dispatch_request(static_cast<size_t>(
        std::min<uint64_t>(content_length_, server_.options().max_body_bytes + 1)));
    return;
  }
  if (!chunked_request_ && content_length_ == 0) {
    dispatch_request(0);
    return;
  }
  phase_ = Phase::body;
  chunked_ = ChunkedBodyDecoder{};
  const bool body_here = !chunked_request_ && pending_.size() >= content_length_;
  if (expect_continue_ && head.minor >= 1 && !body_here) {
    evbuffer_add(out_.get(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    flush();
  }
}

bool Http1Connection::read_body() {
  const size_t max_body = server_.options().max_body_bytes;
  if (!chunked_request_) {
    if (pending_.size() < content_length_) return false;
    body_.assign(pending_, 0, content_length_);
    pending_.erase(0, content_length_);
    dispatch_request(body_.size());
    return true;
  }
  size_t used = 0;
  const ChunkedBodyDecoder::Status status = chunked_.feed(pending_, body_, max_body, used);
  pending_.erase(0, used);
  switch (status) {
    case ChunkedBodyDecoder::Status::more:
      return false;
    case ChunkedBodyDecoder::Status::complete:
      dispatch_request(body_.size());
      return true;
    case ChunkedBodyDecoder::Status::too_large:
      close_leaving_input();
      dispatch_request(max_body + 1);  // answered 413
      return true;
    case ChunkedBodyDecoder::Status::malformed:
      break;
  }
  close_leaving_input();
  phase_ = Phase::handling;
  server_.refuse_request(state_, 400, "bad_chunked_body", chunked_.error());
  return true;
}

void Http1Connection::new_state(std::string_view method, std::string_view target) {
  auto state = std::make_shared<RequestState>();
  state->server = &server_;
  state->front = this;
  state->start = server_.clock().now();
  state->method.assign(method);
  state->set_target(target);
  state->remote_ip = remote_ip_;
  state->tls = ssl_ != nullptr;  // body bytes are encrypted here: no sendfile
  date_given = false;
  if (state_ == nullptr) server_.http1_request_began();
  state_ = std::move(state);
}

void Http1Connection::dispatch_request(size_t body_bytes) {
  phase_ = Phase::handling;
  // A copy: a reply made at once moves this connection on (state_ reset) before dispatch returns.
  server_.dispatch(state_, header_bytes_, body_bytes);
}

void Http1Connection::refuse(int status, std::string_view code, std::string_view message,
                             std::string_view method, std::string_view target) {
  new_state(method, target);
  close_leaving_input();
  minor_version_ = 1;
  phase_ = Phase::handling;
  server_.refuse_request(state_, status, code, message);
}

// ---- the request, for the exchange ----

std::optional<std::string> Http1Connection::request_header(const char* name) const {
  const std::string_view wanted(name);
  for (const HeaderField& field : parsed_.head.fields) {
    if (core::iequals(field.name, wanted)) return std::string(field.value);
  }
  return std::nullopt;
}

std::vector<HttpHeader> Http1Connection::request_headers_with_prefix(
    std::string_view prefix) const {
  std::vector<HttpHeader> out;
  for (const HeaderField& field : parsed_.head.fields) {
    if (field.name.size() >= prefix.size() &&
        core::iequals(field.name.substr(0, prefix.size()), prefix))
      out.push_back({std::string(field.name), std::string(field.value)});
  }
  return out;
}

// ---- the reply ----

void Http1Connection::add_response_header(const std::string& name, const std::string& value) {
  // A line break would end the field (or the head) early: such a field is dropped, as evhttp
  // dropped it.
  if (name.empty() || has_line_break(name) || has_line_break(value)) return;
  if (core::iequals(name, "Connection")) {
    for_each_token(value, [&](std::string_view token) {
      if (core::iequals(token, "close")) close_after_reply();
    });
  }
  response_headers_.append(name).append(": ").append(value).append("\r\n");
}

void Http1Connection::remove_response_header(const char* name) {
  const std::string_view wanted(name);
  size_t at = 0;
  while (at < response_headers_.size()) {
    const size_t end = response_headers_.find("\r\n", at) + 2;
    const size_t colon = response_headers_.find(':', at);
    if (core::iequals(std::string_view(response_headers_).substr(at, colon - at), wanted)) {
      response_headers_.erase(at, end - at);
    } else {
      at = end;
    }
  }
}

bool Http1Connection::has_response_header(const char* name) const {
  const std::string_view wanted(name);
  for (size_t at = 0; at < response_headers_.size();) {
    const size_t colon = response_headers_.find(':', at);
    if (core::iequals(std::string_view(response_headers_).substr(at, colon - at), wanted))
      return true;
    at = response_headers_.find("\r\n", colon) + 2;
  }
  return false;
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
      .append(response_headers_);
  if (!date_given) head.append("Date: ").append(http_date(server_.clock())).append("\r\n");
  if (server_.draining()) close_after_reply();
  if (!keep_alive_) {
    if (!has_response_header("Connection")) head.append("Connection: close\r\n");
  } else if (minor_version_ == 0) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append(framing_header).append("\r\n");
  evbuffer_add(out_.get(), head.data(), head.size());
}

void Http1Connection::queue_body(BodyBuffer body) {
  evbuffer_add_buffer(out_.get(), static_cast<evbuffer*>(body.native()));
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
    if (minor_version_ >= 1) {
      chunked_reply_ = true;
      framing = "Transfer-Encoding: chunked\r\n";
    } else {
      close_after_reply();  // HTTP/1.0: the close ends the body
    }
  }
  queue_head(status, framing);
  flush();
}

void Http1Connection::send_body(BodyBuffer bytes) {
  if (closed_ || phase_ != Phase::handling || !body_allowed_) return;
  auto* data = static_cast<evbuffer*>(bytes.native());
  const size_t size = evbuffer_get_length(data);
  if (size == 0) return;  // an empty chunk would end a chunked body
  if (chunked_reply_) {
    char size_line[24];
    const int n = snprintf(size_line, sizeof size_line, "%zx\r\n", size);
    evbuffer_add(out_.get(), size_line, static_cast<size_t>(n));
    evbuffer_add_buffer(out_.get(), data);
    evbuffer_add(out_.get(), "\r\n", 2);
  } else {
    evbuffer_add_buffer(out_.get(), data);
  }
  flush();
}

void Http1Connection::end_reply() {
  if (closed_ || phase_ != Phase::handling) return;
  if (chunked_reply_) evbuffer_add(out_.get(), "0\r\n\r\n", 5);
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
    if (continue_handshake()) read_tls();  // the client may have sent its request already
    return;
  }
  if (tls_read_wants_write_) {
    tls_read_wants_write_ = false;
    read_tls();
    if (closed_) return;
  }
  flush();
}

void Http1Connection::flush() {
  if (closed_ || handshaking_) return;
  evbuffer* out = out_.get();
  if (!keep_alive_ && reply_complete_ && !corked_) {
    // The connection's last reply: its end, TLS's close_notify and the FIN leave in one
    // segment (the close or shutdown in linger() sends what the cork holds) instead of
    // three, each with its own ACK. About 10 us less of CPU per short TLS connection.
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    corked_ = true;
  }
  for (int i = 0; i < kWritesPerTurn && evbuffer_get_length(out) > 0; ++i) {
    int n = 0;
    if (ssl_ != nullptr) {
      n = write_tls();
    } else {
      n = evbuffer_write_atmost(out, fd_, -1);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) n = 0;
    }
    if (n < 0) {
      close_now();  // the client is gone
      return;
    }
    if (n == 0) break;
    last_activity_ms_ = loop_ms(server_.event_loop());
  }
  if (evbuffer_get_length(out) > 0) {
    // (A write that waits for a read, over TLS, is retried when the socket is readable.)
    watch_writes(!tls_write_wants_read_);
    return;
  }
  watch_writes(tls_read_wants_write_);
  if (reply_complete_ && phase_ == Phase::flushing) reply_written();
}

int Http1Connection::write_tls() {
  evbuffer* out = out_.get();
  // Short pieces (a reply's head, a small body) are joined into one record; a body already in
  // a piece about a record long or more is encrypted where it lies (move_in_tls_records' rule).
  // A write that must be retried is retried with at least as many bytes, as OpenSSL asks: the
  // joined piece stays first in the buffer, and the buffer only grows behind it.
  size_t piece = std::min(evbuffer_get_length(out), kTlsRecordBytes);
  evbuffer_iovec first;
  if (evbuffer_peek(out, -1, nullptr, &first, 1) >= 1 && first.iov_len >= kTlsRecordPiece)
    piece = std::min(first.iov_len, kTlsRecordBytes);
  const unsigned char* bytes = evbuffer_pullup(out, static_cast<ev_ssize_t>(piece));
  if (bytes == nullptr) return -1;  // out of memory
  ERR_clear_error();
  const int n = SSL_write(ssl_.get(), bytes, static_cast<int>(piece));
  if (n > 0) {
    evbuffer_drain(out, static_cast<size_t>(n));
    return n;
  }
  switch (SSL_get_error(ssl_.get(), n)) {
    case SSL_ERROR_WANT_WRITE:
      return 0;
    case SSL_ERROR_WANT_READ:
      tls_write_wants_read_ = true;
      return 0;
    default:
      ERR_clear_error();
      return -1;
  }
}

void Http1Connection::watch_writes(bool on) {
  if (on == write_watched_) return;
  if (on) {
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
  resume_reading();
  if (!in_serve_ && !pending_.empty()) schedule_serve();
}

void Http1Connection::finish_request() {
  if (state_ != nullptr) {
    state_->front = nullptr;
    state_.reset();
    server_.http1_request_ended();
  }
  phase_ = Phase::head;
  request_began_ms_ = loop_ms(server_.event_loop());  // for bytes already read (a pipeline)
  reply_complete_ = false;
  chunked_reply_ = false;
  body_allowed_ = true;
  response_headers_.clear();
  body_.clear();
  for (std::string* buffer : {&pending_, &body_, &head_bytes_, &response_headers_}) {
    if (buffer->empty() && buffer->capacity() > kKeptBufferBytes) std::string().swap(*buffer);
  }
}

void Http1Connection::linger() {
  // Whether the client may still be sending: a request not read to its end, bytes already
  // read past the last request (here or read ahead by TLS), or bytes waiting in the socket.
  // Closing with bytes unread, or that then arrive, makes the kernel answer with a reset that
  // can destroy the reply before the client has read it; otherwise the close is at once, as
  // nginx's (no shutdown, no wait for the client's end: a wake-up, a read and a system call
  // less per short connection).
  const bool more_may_come = leaving_input_ || !pending_.empty() ||
                             (ssl_ != nullptr && SSL_has_pending(ssl_.get())) || bytes_waiting();
  finish_request();
  phase_ = Phase::lingering;
  pending_.clear();
  if (ssl_ != nullptr) {
    // The clean end of a TLS connection: without close_notify, an OpenSSL-based client
    // reading to the end (HTTP/1.0, Connection: close) sees an unexpected EOF, reports an
    // error and drops the session it could resume. One short alert; a client already gone
    // makes it fail, harmlessly.
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  if (peer_done_ || !more_may_come) {
    close_now();  // the client closed its side already, or is not sending: nothing to wait for
    return;
  }
  ::shutdown(fd_, SHUT_WR);
  linger_until_ms_ = loop_ms(server_.event_loop()) + kLingerMs;
  resume_reading();  // a pipeline may have filled the buffer: read and drop the rest
  const timeval wait = after_ms(kLingerMs);
  evtimer_add(timer_.get(), &wait);
}

bool Http1Connection::bytes_waiting() const {
  char byte = 0;
  return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
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
  } else if (phase_ == Phase::handling && evbuffer_get_length(out_.get()) == 0) {
    // The handler has the request (a held playlist request, a queue, a slow origin): the
    // client is not idle, we are.
    last_activity_ms_ = now;
  } else {
    const int64_t idle = now - last_activity_ms_;
    if (idle >= timeout) {
      close_now();  // an idle keep-alive connection, a head never finished, a stalled reader
      return;
    }
    next = timeout - idle;
    if (handshaking_ || (phase_ == Phase::head && !pending_.empty()) || phase_ == Phase::body) {
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

// ---- closing ----

void Http1Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  event_del(read_event_.get());
  event_del(write_event_.get());
  event_del(timer_.get());
  ::close(fd_);
  fd_ = -1;
  if (reply_counted_) {
    reply_counted_ = false;
    server_.reply_flushed();
  }
  if (std::shared_ptr<RequestState> state = std::move(state_)) {
    server_.http1_request_ended();
    if (phase_ == Phase::body || state->finished) {
      state->front = nullptr;  // not dispatched yet, or answered
    } else {
      server_.request_abandoned(*state);  // on_close, in this turn
    }
  }
  destroy_soon();
}

void Http1Connection::resume_reading() {
  if (!reading_paused_ || peer_done_ || closed_) return;
  event_add(read_event_.get(), nullptr);
  reading_paused_ = false;
  // Records OpenSSL has read ahead: the socket would not report them.
  if (ssl_ != nullptr && phase_ != Phase::lingering && SSL_has_pending(ssl_.get()))
    event_active(read_event_.get(), EV_READ, 1);
}

void Http1Connection::schedule_serve() {
  event_active(serve_event_.get(), EV_TIMEOUT, 1);
}

void Http1Connection::destroy_soon() {
  destroying_ = true;
  event_active(serve_event_.get(), EV_TIMEOUT, 1);
}

}  // namespace http
