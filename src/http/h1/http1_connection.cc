#include "http/h1/http1_connection.h"

#include <event2/buffer.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "core/ascii.h"
#include "core/host_lookup.h"
#include "http/h1/turn_clock.h"
#include "http/h2/http2_connection.h"
#include "http/server/http_server.h"

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
  auto* connection = new Http1Connection(server, Transport(fd, tls), core::address_text(peer));
  connection->slot_ = std::move(slot);
  if (tls != nullptr) {
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
  switch (transport_.await_hello()) {
    case Transport::Hello::ready:
      return true;
    case Transport::Hello::waiting:
      return false;
    case Transport::Hello::failed:
      break;
  }
  close_now();
  return false;
}

Http1Connection::Http1Connection(HttpServer& server, Transport transport, std::string remote_ip)
    : server_(server), transport_(std::move(transport)), remote_ip_(std::move(remote_ip)) {}

Http1Connection::~Http1Connection() {
  set_idle(false);
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
  read_event_.reset(event_new(base, transport_.fd(), EV_READ | EV_PERSIST, on_read, this));
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
  if (transport_.tls() && phase_ != Phase::lingering) {
    if (hello_arrived()) read_tls();
    return;
  }
  char buffer[kReadSize];
  size_t n = 0;
  switch (transport_.read_raw(buffer, sizeof buffer, n)) {
    case Transport::Io::done:
      received(buffer, n);
      return;
    case Transport::Io::closed:
      peer_closed();
      return;
    case Transport::Io::failed:
      close_now();
      return;
    default:
      return;
  }
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
  if (transport_.take_write_wants_read()) flush();
  char buffer[kReadSize];
  for (int i = 0; i < kTlsReadsPerTurn; ++i) {
    if (closed_ || reading_paused_ || phase_ == Phase::lingering) return;
    size_t n = 0;
    switch (transport_.read(buffer, sizeof buffer, n)) {
      case Transport::Io::done:
        received(buffer, n);
        // Without bytes read ahead, the next record is not here yet: the loop says when it is
        // (another SSL_read now would cost a read that finds nothing).
        if (!transport_.read_ahead()) return;
        continue;
      case Transport::Io::want_write:
        watch_writes(true);
        return;
      case Transport::Io::closed:
        peer_closed();
        return;
      case Transport::Io::failed:
        close_now();
        return;
      default:
        return;
    }
  }
  // Records OpenSSL read ahead wait for a later turn; the socket would not report them.
  if (!closed_ && !reading_paused_ && transport_.read_ahead())
    event_active(read_event_.get(), EV_READ, 1);
}

bool Http1Connection::continue_handshake() {
  const Transport::Handshake step = transport_.handshake();
  last_activity_ms_ = loop_ms(server_.event_loop());
  switch (step) {
    case Transport::Handshake::done:
      handshaking_ = false;
      server_.count_tls_handshake(transport_.session_reused());
      request_began_ms_ = last_activity_ms_;
      if (offer_http2_ && transport_.negotiated_protocol() == "h2") {
        hand_over_to_http2();
        return false;
      }
      watch_writes(false);
      return true;
    case Transport::Handshake::want_read:
      watch_writes(false);
      return false;
    case Transport::Handshake::want_write:
      watch_writes(true);
      return false;
    case Transport::Handshake::failed:
      break;
  }
  close_now();
  return false;
}

void Http1Connection::hand_over_to_http2() {
  if (slot_.operator_only()) {
    close_now();  // the operator's reserve serves one HTTP/1 request, to an operator path
    return;
  }
  // Bytes already read go to the HTTP/2 connection first, as the socket will not report them
  // again: in the clear, the preface and what followed it. Over TLS, what the client sent with
  // its last handshake flight (the preface, often) may wait read ahead in the session: the
  // transport goes over with it, and the new owner reads it first.
  std::string early = std::move(pending_);
  pending_.clear();
  event_del(read_event_.get());
  if (write_event_) event_del(write_event_.get());
  event_del(timer_.get());
  closed_ = true;
  set_idle(false);
  server_.hand_over_slot(std::move(slot_));
  Http2Connection::take_over(server_, std::move(transport_), remote_ip_, early);
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
  state->tls = transport_.tls();  // body bytes are encrypted here: no sendfile
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
  transport_.close();
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
  if (phase_ != Phase::lingering && transport_.read_ahead())
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
