#include "http/h2/http2_connection.h"

#include <event2/buffer.h>

#include <strings.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/log.h"
#include "http/server/http_server.h"
#include "http/server/request_state.h"

namespace http {

namespace {

// Rapid reset (CVE-2023-44487): RST_STREAMs from a client, as a token bucket.
constexpr double kResetBurst = 200;
constexpr double kResetsPerSecond = 100;
constexpr uint32_t kMaxConcurrentStreams = 128;
// A header list this many times the limit ends the connection instead of one stream.
constexpr size_t kHeaderListAbuseFactor = 4;

nghttp2_nv make_nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{
      reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
      NGHTTP2_NV_FLAG_NONE};  // nghttp2 copies: the strings may be gone before the frame is sent
}

Http2Stream* stream_of(nghttp2_session* session, int32_t id) {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

}  // namespace

// nghttp2's callbacks, as members' friends.
struct Http2Callbacks {
  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
    auto* c = static_cast<Http2Connection*>(user);
    if (c->buffered() >= Http2Connection::kOutputBound) return c->blocked();
    evbuffer_add(c->staged_.get(), data, length);
    return static_cast<ssize_t>(length);
  }

  // DATA frames: the 9-byte head copied, the payload added by reference.
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* head, size_t length,
                       nghttp2_data_source* source, void* user) {
    auto* c = static_cast<Http2Connection*>(user);
    auto* stream = static_cast<Http2Stream*>(source->ptr);
    if (c->buffered() >= Http2Connection::kOutputBound) return c->blocked();
    evbuffer* out = c->staged_.get();
    evbuffer_add(out, head, 9);
    if (length > 0) {
      evbuffer* bytes = stream->body->bytes.get();
      evbuffer_ptr at;
      evbuffer_ptr_set(bytes, &at, stream->body_framed, EVBUFFER_PTR_SET);
      evbuffer_iovec vec[32];
      size_t left = length;
      while (left > 0) {
        int n = evbuffer_peek(bytes, static_cast<ev_ssize_t>(left), &at, vec, 32);
        if (n <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
        for (int i = 0; i < n && left > 0; ++i) {
          size_t take = std::min(left, vec[i].iov_len);
          auto* keep = new std::shared_ptr<Http2Body>(stream->body);
          if (evbuffer_add_reference(
                  out, vec[i].iov_base, take,
                  [](const void*, size_t, void* arg) {
                    delete static_cast<std::shared_ptr<Http2Body>*>(arg);
                  },
                  keep) != 0) {
            delete keep;
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
          left -= take;
          evbuffer_ptr_set(bytes, &at, take, EVBUFFER_PTR_ADD);
        }
      }
      stream->body_framed += length;
    }
    (void)frame;
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* stream = static_cast<Http2Stream*>(source->ptr);
    size_t queued = stream->body ? evbuffer_get_length(stream->body->bytes.get()) : 0;
    size_t available = queued - static_cast<size_t>(stream->body_framed);
    size_t n = std::min(length, available);
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == available && stream->body_complete) *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (n == 0 && !stream->body_complete) {
      stream->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  static int begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto* c = static_cast<Http2Connection*>(user);
    auto* stream = new Http2Stream();
    stream->connection = c;
    stream->id = frame->hd.stream_id;
    c->streams_.insert(stream);
    c->set_idle(false);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream);
    return 0;
  }

  static int header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Http2Stream* stream = stream_of(session, frame->hd.stream_id);
    if (stream == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    auto* c = static_cast<Http2Connection*>(user);
    size_t limit = c->server_.options().max_header_bytes;
    stream->header_bytes += namelen + valuelen + 4;
    if (stream->header_bytes > limit) {
      // Past the limit we advertised (SETTINGS_MAX_HEADER_LIST_SIZE): keep nothing more
      // (the reply will be 431). A block decoding to many times that is an attack (a few
      // bytes of HPACK references can decode to megabytes): end the connection.
      if (stream->header_bytes > limit * kHeaderListAbuseFactor) {
        c->refuse_header_list(true);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      if (!stream->header_list_refused) c->refuse_header_list(false);
      stream->header_list_refused = true;
      return 0;
    }
    if (n == ":method") {
      stream->method = v;
    } else if (n == ":path") {
      stream->path = v;
    } else if (n == ":authority") {
      stream->request_headers.push_back({"host", std::string(v)});  // what HTTP/1.1 calls Host
    } else if (!n.empty() && n[0] != ':') {
      stream->request_headers.push_back({std::string(n), std::string(v)});
    }
    return 0;
  }

  static int data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                        size_t len, void* user) {
    Http2Stream* stream = stream_of(session, id);
    auto* c = static_cast<Http2Connection*>(user);
    if (stream == nullptr) return 0;
    // Take the bytes back into the window at once: the body limit, not flow control,
    // bounds what we keep.
    nghttp2_session_consume(session, id, len);
    if (stream->request_body.size() + len > c->server_.options().max_body_bytes + 1) {
      stream->body_too_large = true;
      return 0;
    }
    stream->request_body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Http2Connection*>(user);
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      c->count_reset();
      return 0;
    }
    bool stream_frame = frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA;
    // Only requests keep a connection from being idle: PINGs, SETTINGS and window
    // updates alone would hold it forever.
    if (stream_frame) c->last_progress_ = std::chrono::steady_clock::now();
    bool request_end = stream_frame && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!request_end) return 0;
    Http2Stream* stream = stream_of(session, frame->hd.stream_id);
    if (stream != nullptr && stream->state == nullptr) c->dispatch(*stream);
    return 0;
  }

  // A reply's frames leaving are what progress is: control frames (PING and SETTINGS
  // acknowledgements) are not.
  static int frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
      static_cast<Http2Connection*>(user)->reply_frame_sent();
    return 0;
  }

  static int stream_close(nghttp2_session* session, int32_t id, uint32_t, void* user) {
    Http2Stream* stream = stream_of(session, id);
    if (stream == nullptr) return 0;
    nghttp2_session_set_stream_user_data(session, id, nullptr);
    static_cast<Http2Connection*>(user)->stream_closed(*stream);
    return 0;
  }
};

namespace {

nghttp2_session_callbacks* shared_callbacks() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, Http2Callbacks::send);
    nghttp2_session_callbacks_set_send_data_callback(cb, Http2Callbacks::send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Http2Callbacks::begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, Http2Callbacks::header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Http2Callbacks::data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Http2Callbacks::frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, Http2Callbacks::frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, Http2Callbacks::stream_close);
    return cb;
  }();
  return callbacks;
}

nghttp2_option* shared_options() {
  static nghttp2_option* option = [] {
    nghttp2_option* o = nullptr;
    nghttp2_option_new(&o);
    // We return the window ourselves (nghttp2_session_consume) as body bytes arrive.
    nghttp2_option_set_no_auto_window_update(o, 0);
    // Rapid reset (CVE-2023-44487) is ours to judge (count_reset: GOAWAY
    // ENHANCE_YOUR_CALM, counted); nghttp2's own limiter only backs it up.
    nghttp2_option_set_stream_reset_rate_limit(o, 10000, 1000);
    return o;
  }();
  return option;
}

}  // namespace

// ---- Http2Stream: its head (the rest in http2_stream.cc) ----

void Http2Stream::submit_head(int status, bool with_body) {
  std::string code = std::to_string(status);
  static const std::string kStatus = ":status";
  std::vector<nghttp2_nv> nva;
  nva.reserve(response_headers.size() + 1);
  nva.push_back(make_nv(kStatus, code));
  for (const auto& h : response_headers) nva.push_back(make_nv(h.name, h.value));
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = Http2Callbacks::read_body;
  if (with_body && !body) body = std::make_shared<Http2Body>();
  submitted = true;
  // Without a data provider the HEADERS frame ends the stream.
  nghttp2_submit_response(connection->session(), id, nva.data(), nva.size(),
                          with_body ? &provider : nullptr);
  connection->flush();
}

// ---- Http2Connection ----

Http2Connection::Http2Connection(HttpServer& server, Transport transport, std::string remote_ip)
    : server_(server), transport_(std::move(transport)), remote_ip_(std::move(remote_ip)) {}

Http2Connection* Http2Connection::take_over(HttpServer& server, Transport transport,
                                            std::string remote_ip, std::string_view early) {
  auto* connection = new Http2Connection(server, std::move(transport), std::move(remote_ip));
  if (!connection->start()) {
    delete connection;  // and the transport with it
    return nullptr;
  }
  if (!early.empty()) connection->receive(early.data(), early.size());
  // Records the TLS session read ahead with the handshake's last flight (the preface, often):
  // the socket will not report them.
  connection->transport_.read_ahead_next_turn(connection->read_event_.get());
  return connection;
}

bool Http2Connection::start() {
  slot_ = &server_.http2_opened(*this);
  event_base* base = server_.event_loop();
  read_event_.reset(event_new(
      base, transport_.fd(), EV_READ | EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Http2Connection*>(arg)->on_readable(); },
      this));
  write_event_.reset(event_new(
      base, transport_.fd(), EV_WRITE | EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Http2Connection*>(arg)->on_writable(); },
      this));
  close_event_.reset(event_new(
      base, -1, 0,
      [](evutil_socket_t, short, void* arg) {
        delete static_cast<Http2Connection*>(arg);  // and the transport with it
      },
      this));
  idle_timer_.reset(event_new(
      base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Http2Connection*>(arg)->on_timer(); },
      this));
  if (!read_event_ || !write_event_ || !close_event_ || !idle_timer_ || !staged_ || !out_ ||
      event_add(read_event_.get(), nullptr) != 0)
    return false;
  nghttp2_session_server_new2(&session_, shared_callbacks(), this, shared_options());
  const auto& o = server_.options();
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(o.max_header_bytes)},
      // RFC 9218's scheduling: streams of equal urgency, not incremental, are sent one
      // after another, so each response completes as soon as it can (a player waits for
      // whole segments) instead of all of them a frame at a time.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                          sizeof settings / sizeof settings[0]);
  timeval tick{1, 0};
  evtimer_add(idle_timer_.get(), &tick);
  last_progress_ = std::chrono::steady_clock::now();
  last_reply_sent_ = last_progress_;
  reset_refill_ = last_progress_;
  set_idle(true);  // no stream yet
  return true;
}

Http2Connection::~Http2Connection() {
  if (!detached_) {
    set_idle(false);
    server_.http2_closed(*this);
  }
  // Streams still open end as if their client went away.
  for (Http2Stream* stream : std::vector<Http2Stream*>(streams_.begin(), streams_.end())) {
    if (!detached_)
      stream_closed(*stream);
    else
      delete stream;
  }
  nghttp2_session_del(session_);
  // The clean end of a TLS connection, once all its output is out: without close_notify an
  // OpenSSL-based client reading to the end sees an unexpected EOF, reports an error and drops
  // the session it could resume. (The events go before the transport closes the socket.)
  if (evbuffer_get_length(out_.get()) == 0) transport_.send_close_notify();
}

void Http2Connection::detach() {
  detached_ = true;
  for (Http2Stream* stream : streams_) {
    if (stream->state) {
      stream->state->front = nullptr;
      stream->state->closed = true;
      stream->state->finished = true;
    }
  }
}

void Http2Connection::reply_frame_sent() {
  last_progress_ = std::chrono::steady_clock::now();
  last_reply_sent_ = last_progress_;
}

// A reply has bytes for the client that wait on it (its window, or its reading), not on a
// handler still producing them.
bool Http2Connection::held_by_client() const {
  return std::any_of(streams_.begin(), streams_.end(),
                     [](const Http2Stream* s) { return s->submitted && !s->deferred; });
}

void Http2Connection::close_stalled() {
  // Nothing the client sends keeps its replies' buffers here any longer: GOAWAY, and the
  // close a moment later even if a client that reads nothing never takes the GOAWAY.
  goaway_sent_ = true;
  server_.count_stalled_close();
  LOG_DEBUG("http2", "closing a connection from ", remote_ip_, ": no reply bytes taken for ",
            server_.options().io_timeout_s, " s");
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  flush();
  timeval grace{1, 0};
  if (!closing_) event_add(close_event_.get(), &grace);
}

void Http2Connection::on_timer() {
  if (streams_.empty()) set_idle(true);  // in case the last frames left without a write event
  const auto now = std::chrono::steady_clock::now();
  const auto timeout = std::chrono::seconds(server_.options().io_timeout_s);
  // Stalled: replies wait on the client and none of their bytes left for io_timeout_s,
  // whatever PINGs, SETTINGS or requests it sends meanwhile.
  if (!goaway_sent_ && now - last_reply_sent_ >= timeout && held_by_client())
    return close_stalled();
  if (now - last_progress_ < timeout) return;
  // Quiet with nothing to send (keep-alive idle), or a client that stopped reading.
  bool waiting_on_us = false;
  for (Http2Stream* s : streams_) waiting_on_us = waiting_on_us || (s->deferred && buffered() == 0);
  if (waiting_on_us) return;
  if (streams_.empty() && !goaway_sent_) {
    // Idle: say goodbye properly (GOAWAY), then close once it is written.
    goaway_sent_ = true;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    flush();
    return;
  }
  close_soon();
}

void Http2Connection::shut_down() {
  if (closing_) return;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
}

void Http2Connection::count_reset() {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - reset_refill_).count();
  reset_refill_ = now;
  reset_tokens_ = std::min(kResetBurst, reset_tokens_ + elapsed * kResetsPerSecond);
  reset_tokens_ -= 1;
  if (reset_tokens_ >= 0 || goaway_sent_) return;
  goaway_sent_ = true;
  LOG_WARN_LIMITED("http2", "closing a connection from ", remote_ip_,
                   ": streams reset faster than ", static_cast<int>(kResetsPerSecond),
                   "/s (rapid reset)");
  server_.count_rapid_reset();
  // GOAWAY; nothing more is read, and the connection closes once it is written.
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void Http2Connection::refuse_header_list(bool abusive) {
  server_.count_header_list_refusal();
  if (abusive)
    LOG_WARN_LIMITED("http2", "closing a connection from ", remote_ip_,
                     ": header list far over the limit");
}

void Http2Connection::close_soon() {
  if (closing_) return;
  closing_ = true;
  if (!detached_) set_idle(false);
  event_active(close_event_.get(), 0, 0);
}

void Http2Connection::set_idle(bool idle) {
  // Idle is waiting for a request with nothing left to write: a reply's last frames still in
  // the output would be cut off by an eviction; one saying goodbye already is not a candidate.
  if (detached_) return;  // the server and its list are gone
  if (idle && (closing_ || lingering_ || finishing_ || goaway_sent_ || buffered() > 0))
    idle = false;
  server_.idle_connections().set(*this, idle);
}

IdleCandidate Http2Connection::idle_candidate(ConnectionLimits& limits) const {
  return IdleCandidate{limits.open_in_network(*slot_), served_};
}

void Http2Connection::evict() {
  // No stream is open: a GOAWAY (no error) tells the client to open another connection when it
  // needs one, written now as the socket takes it, and the close follows. The place in the
  // table is free at once (a flood must not hold descriptors while it lingers).
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  flush();
  close_soon();
  slot_->release();
}

void Http2Connection::dispatch(Http2Stream& stream) {
  std::shared_ptr<RequestState> state = take_request_state();
  state->server = &server_;
  state->front = &stream;
  state->http2 = true;
  state->tls = transport_.tls();
  state->start = server_.clock().now();
  state->method = stream.method;
  state->target = stream.path;
  auto q = state->target.find('?');
  state->path = state->target.substr(0, q);
  if (q != std::string::npos) state->query = state->target.substr(q + 1);
  state->remote_ip = remote_ip_;
  stream.state = state;
  size_t body_size =
      stream.body_too_large ? server_.options().max_body_bytes + 1 : stream.request_body.size();
  server_.dispatch(std::move(state), stream.header_bytes + stream.path.size(), body_size);
}

void Http2Connection::stream_closed(Http2Stream& stream) {
  streams_.erase(&stream);
  served_ = served_ || stream.submitted;
  if (streams_.empty()) set_idle(true);
  if (auto state = stream.state) {
    state->front = nullptr;
    if (stream.submitted) server_.reply_flushed();
    // A complete reply closes its stream as it is sent, maybe before the exchange
    // marks itself finished: only a stream that ends before that was cut short.
    if (!state->finished && !stream.body_complete) {
      // Reset by the client (or the connection ended) before the reply was done.
      state->closed = true;
      state->finish();
      if (state->on_close) {
        auto fn = std::move(state->on_close);
        fn();
      }
    }
  }
  delete &stream;
}

}  // namespace http
