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
#include "http/transport/protocol_choice.h"

namespace http {
namespace {

// Requests answered in one turn from bytes already read (a long pipeline yields to the
// loop's other connections after these).
constexpr int kRequestsPerTurn = 16;

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
  if (phase_ == Phase::lingering) {
    // What still comes is read from the socket as it is, encrypted or not, and dropped.
    char buffer[kTurnReadBytes];
    size_t n = 0;
    const Transport::Io io = transport_.read_raw(buffer, sizeof buffer, n);
    if (io == Transport::Io::closed || io == Transport::Io::failed) close_now();
    return;
  }
  if (transport_.tls() && !hello_arrived()) return;
  read_turn();
}

void Http1Connection::read_turn() {
  if (handshaking_ && !continue_handshake()) return;
  if (transport_.take_write_wants_read()) flush();
  if (closed_ || reading_paused_ || phase_ == Phase::lingering) return;
  const auto take = [this](const char* bytes, size_t size) {
    received(bytes, size);
    return !closed_ && !reading_paused_ && phase_ != Phase::lingering;
  };
  switch (transport_.read_turn(take, read_event_.get())) {
    case Transport::TurnEnd::waiting:
      return;
    case Transport::TurnEnd::want_write:
      watch_writes(true);
      return;
    case Transport::TurnEnd::closed:
      peer_closed();
      return;
    case Transport::TurnEnd::failed:
      close_now();
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

bool Http1Connection::continue_handshake() {
  const Transport::Handshake step = transport_.handshake();
  last_activity_ms_ = loop_ms(server_.event_loop());
  switch (step) {
    case Transport::Handshake::done:
      handshaking_ = false;
      server_.count_tls_handshake(transport_.session_reused());
      request_began_ms_ = last_activity_ms_;
      if (choose_after_handshake(transport_.negotiated_protocol(), offer_http2_) ==
          ProtocolChoice::http2) {
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
  std::string early = std::move(codec_.input());
  codec_.input().clear();
  event_del(read_event_.get());
  if (write_event_) event_del(write_event_.get());
  event_del(timer_.get());
  closed_ = true;
  set_idle(false);
  server_.hand_over_slot(std::move(slot_));
  server_.count_http2_connection();
  Http2Connection::take_over(server_, std::move(transport_), remote_ip_, early);
  destroy_soon();
}

bool Http1Connection::past_http2_preface() {
  if (!preface_possible_) return true;
  switch (choose_by_first_bytes(codec_.input())) {
    case ProtocolChoice::http1:
      preface_possible_ = false;  // HTTP/1 from here on
      return true;
    case ProtocolChoice::undecided:
      return false;  // could still be either
    case ProtocolChoice::http2:
      break;
  }
  preface_possible_ = false;
  hand_over_to_http2();
  return false;
}

void Http1Connection::received(const char* bytes, size_t size) {
  last_activity_ms_ = loop_ms(server_.event_loop());
  if (phase_ == Phase::lingering) return;  // dropped
  std::string& pending = codec_.input();
  if (phase_ == Phase::head && pending.empty()) request_began_ms_ = last_activity_ms_;
  // A request begins: its storage, and the input buffer's, from the loop's spares.
  if (pending.empty() && phase_ == Phase::head) pending.swap(req().spare_input);
  pending.append(bytes, size);
  if (phase_ == Phase::head || phase_ == Phase::body) {
    serve_pending();
  } else if (pending.size() > limits().head_limit() + server_.options().max_body_bytes) {
    // A pipeline ahead of the replies: stop reading until this request is answered.
    event_del(read_event_.get());
    reading_paused_ = true;
  }
}

Http1Codec::Limits Http1Connection::limits() const {
  Http1Codec::Limits limits;
  limits.max_header_bytes = server_.options().max_header_bytes;
  limits.max_body_bytes = server_.options().max_body_bytes;
  return limits;
}

void Http1Connection::serve_pending() {
  if (in_serve_ || closed_) return;
  in_serve_ = true;
  int served = 0;
  for (; served < kRequestsPerTurn && !closed_; ++served) {
    if ((phase_ == Phase::head || phase_ == Phase::body) && !read_request()) break;
    if (phase_ != Phase::head) break;  // the reply is not written yet: it moves us on
  }
  in_serve_ = false;
  if (served == kRequestsPerTurn && phase_ == Phase::head && !codec_.input().empty())
    schedule_serve();
}

bool Http1Connection::read_request() {
  if (phase_ == Phase::head && (codec_.input().empty() || !past_http2_preface())) return false;
  Http1Codec::Step step = codec_.read(req(), limits());
  if (step == Http1Codec::Step::head) {
    on_head();
    if (closed_) return false;
    step = codec_.read(req(), limits());
  }
  switch (step) {
    case Http1Codec::Step::more:
    case Http1Codec::Step::head:
      return false;
    case Http1Codec::Step::request:
      dispatch_request();
      return true;
    case Http1Codec::Step::refused:
      on_refused();
      return true;
  }
  return false;
}

void Http1Connection::on_head() {
  const Http1Head& head = req().parsed.head;
  keep_alive_ = req().keep_alive;
  new_state(head.method, head.target);
  state_->framing = req().framing;
  phase_ = Phase::body;
  if (req().continue_expected) {
    evbuffer_add(out(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    flush();
  }
}

void Http1Connection::on_refused() {
  // (A copy: answering may give the request's storage back before the message is used.)
  const Http1Refusal refusal = req().refusal;
  if (refusal.after_head) {
    // A body that cannot be read (a malformed chunked body): its head's request is answered.
    close_leaving_input();
    phase_ = Phase::handling;
    server_.refuse_request(state_, refusal.status, refusal.code, refusal.message);
    return;
  }
  refuse(refusal.status, refusal.code, refusal.message, refusal.method, refusal.target);
}

void Http1Connection::new_state(std::string_view method, std::string_view target) {
  std::shared_ptr<RequestState> state = take_request_state();
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

void Http1Connection::dispatch_request() {
  // Where the request ends is in doubt, or its body was not read: nothing after it is read.
  if (req().leave_input) close_leaving_input();
  phase_ = Phase::handling;
  // A copy: a reply made at once moves this connection on (state_ reset) before dispatch returns.
  server_.dispatch(state_, req().header_bytes, req().body_bytes);
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
  if (phase_ != Phase::lingering) transport_.read_ahead_next_turn(read_event_.get());
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
