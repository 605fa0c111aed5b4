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
#include "http/h1/turn_clock.h"
#include "http/h2/http2_connection.h"
#include "http/server/http_server.h"
#include "http/tls/tls.h"

namespace http {
namespace {

constexpr size_t kReadSize = 16 * 1024;
// Requests answered in one turn from bytes already read (a long pipeline yields to the
// loop's other connections after these).
constexpr int kRequestsPerTurn = 16;
// TLS records read in one turn (what OpenSSL has read ahead is taken in the next turn).
constexpr int kTlsReadsPerTurn = 16;

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
  connection->set_idle(true);  // silent until its first request: the first to make room
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
    : server_(server), fd_(fd), remote_ip_(std::move(remote_ip)) {}

Http1Connection::~Http1Connection() {
  set_idle(false);
  if (fd_ >= 0) ::close(fd_);
}

void Http1Connection::set_idle(bool idle) {
  if (idle && closed_) return;
  server_.idle_connections().set(*this, idle);
}

IdleCandidate Http1Connection::idle_candidate(ConnectionLimits& limits) const {
  return IdleCandidate{limits.open_in_network(slot_), served_};
}

void Http1Connection::evict() {
  close_now();
}

bool Http1Connection::watch() {
  event_base* base = server_.event_loop();
  auto on_read = [](evutil_socket_t, short, void* arg) {
    static_cast<Http1Connection*>(arg)->on_readable();
  };
  auto on_timer = [](evutil_socket_t, short, void* arg) {
    static_cast<Http1Connection*>(arg)->on_timer();
  };
  read_event_.reset(event_new(base, fd_, EV_READ | EV_PERSIST, on_read, this));
  timer_.reset(evtimer_new(base, on_timer, this));
  if (!read_event_ || !timer_) return false;
  // The read watch stays armed for the connection's life: a request's end does not cost a
  // system call to stop and start watching (evhttp's did).
  if (event_add(read_event_.get(), nullptr) != 0) return false;
  last_activity_ms_ = loop_ms(server_.event_loop());
  request_began_ms_ = last_activity_ms_;  // a handshake is bounded like a head
  timeval timeout{server_.options().io_timeout_s, 0};
  evtimer_add(timer_.get(), &timeout);
  return true;
}

const Http1Connection::Request& Http1Connection::req() const {
  static const Request none;
  return request_ ? *request_ : none;
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
    server_.count_tls_handshake(SSL_session_reused(ssl) == 1);
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
  if (slot_.operator_only()) {
    close_now();  // the operator's reserve serves one HTTP/1 request, to an operator path
    return;
  }
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
  if (write_event_) event_del(write_event_.get());
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
  set_idle(false);
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
  // A request begins: its storage, and the input buffer's, from the loop's spares.
  if (pending_.empty() && phase_ == Phase::head) pending_.swap(req().spare_input);
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
  parse_http1_head(pending_, limit, req().parsed);
  switch (req().parsed.status) {
    case HeadStatus::incomplete:
      head_searched_ = pending_.size();
      return false;
    case HeadStatus::too_large:
      req().parsed.head.fields.clear();  // views into bytes that are not kept
      refuse(431, "headers_too_large",
             "The request headers are larger than " + std::to_string(options.max_header_bytes) +
                 " bytes.");
      return true;
    case HeadStatus::malformed:
      req().parsed.head.fields.clear();
      refuse(400, "bad_request", req().parsed.error);
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
  Http1Head& head = req().parsed.head;
  req().head_bytes.assign(pending_.data(), head.size);
  const char* old_base = pending_.data();
  auto moved = [&](std::string_view view) {
    return std::string_view(req().head_bytes.data() + (view.data() - old_base), view.size());
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
  req().minor_version = head.minor;
  RequestFramingCheck framing(head.method, head.major, head.minor);
  req().header_bytes = head.target.size() + 16;
  bool close_asked = false;
  req().keep_alive_asked = false;
  req().expect_continue = false;
  req().chunked_request = false;
  req().content_length = 0;
  for (const HeaderField& field : head.fields) {
    req().header_bytes += field.name.size() + field.value.size() + 4;
    framing.field(field.name, value_as_checked(field));
    if (core::iequals(field.name, "Content-Length")) {
      // RequestFramingCheck refuses any value but digits; a refused one is not read.
      std::from_chars(field.value.data(), field.value.data() + field.value.size(),
                      req().content_length);
    } else if (core::iequals(field.name, "Transfer-Encoding")) {
      req().chunked_request = true;  // RequestFramingCheck refuses anything but "chunked"
    } else if (core::iequals(field.name, "Connection")) {
      for_each_token(field.value, [&](std::string_view token) {
        if (core::iequals(token, "close")) close_asked = true;
        if (core::iequals(token, "keep-alive")) req().keep_alive_asked = true;
      });
    } else if (core::iequals(field.name, "Expect")) {
      req().expect_continue = core::iequals(field.value, "100-continue");
    }
  }
  // HTTP/1.1 stays open unless asked to close; HTTP/1.0 only when asked to stay.
  keep_alive_ = !close_asked && (head.minor >= 1 || req().keep_alive_asked);
  new_state(head.method, head.target);
  state_->framing = framing.problem();
  if (state_->framing != FramingProblem::none) {
    // Where this request ends is in doubt: nothing after its head is read as a request.
    close_leaving_input();
    dispatch_request(0);
    return;
  }
  req().body.clear();
  if (req().content_length > server_.options().max_body_bytes) {
    close_leaving_input();  // answered 413 without reading the body
    dispatch_request(static_cast<size_t>(
        std::min<uint64_t>(req().content_length, server_.options().max_body_bytes + 1)));
    return;
  }
  if (!req().chunked_request && req().content_length == 0) {
    dispatch_request(0);
    return;
  }
  phase_ = Phase::body;
  req().chunked = ChunkedBodyDecoder{};
  const bool body_here = !req().chunked_request && pending_.size() >= req().content_length;
  if (req().expect_continue && head.minor >= 1 && !body_here) {
    evbuffer_add(out(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    flush();
  }
}

bool Http1Connection::read_body() {
  const size_t max_body = server_.options().max_body_bytes;
  if (!req().chunked_request) {
    if (pending_.size() < req().content_length) return false;
    req().body.assign(pending_, 0, req().content_length);
    pending_.erase(0, req().content_length);
    dispatch_request(req().body.size());
    return true;
  }
  size_t used = 0;
  const ChunkedBodyDecoder::Status status =
      req().chunked.feed(pending_, req().body, max_body, used);
  pending_.erase(0, used);
  switch (status) {
    case ChunkedBodyDecoder::Status::more:
      return false;
    case ChunkedBodyDecoder::Status::complete:
      dispatch_request(req().body.size());
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
  server_.refuse_request(state_, 400, "bad_chunked_body", req().chunked.error());
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
  state->operator_only = slot_.operator_only();
  if (state->operator_only) close_after_reply();  // the reserve's place is not kept
  date_given = false;
  set_idle(false);
  served_ = true;
  if (state_ == nullptr) server_.http1_request_began();
  state_ = std::move(state);
}

void Http1Connection::dispatch_request(size_t body_bytes) {
  phase_ = Phase::handling;
  // A copy: a reply made at once moves this connection on (state_ reset) before dispatch returns.
  server_.dispatch(state_, req().header_bytes, body_bytes);
}

void Http1Connection::refuse(int status, std::string_view code, std::string_view message,
                             std::string_view method, std::string_view target) {
  new_state(method, target);
  close_leaving_input();
  req().minor_version = 1;
  phase_ = Phase::handling;
  server_.refuse_request(state_, status, code, message);
}

// ---- closing ----

void Http1Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  set_idle(false);
  event_del(read_event_.get());
  if (write_event_) event_del(write_event_.get());
  event_del(timer_.get());
  ::close(fd_);
  fd_ = -1;
  slot_.release();  // the place is free now, not when this object goes
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
  if (deferred_) return;
  deferred_ = true;
  server_.defer(*this);
}

void Http1Connection::run_deferred() {
  deferred_ = false;
  if (destroying_) {
    server_.http1_closed(*this);
    delete this;
    return;
  }
  serve_pending();
}

void Http1Connection::destroy_soon() {
  destroying_ = true;
  schedule_serve();  // run_deferred() deletes it
}

}  // namespace http
