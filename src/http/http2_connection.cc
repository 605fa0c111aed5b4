#include "http/http2_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/host_lookup.h"
#include "core/log.h"
#include "http/http_server.h"
#include "http/request_state.h"
#include "http/tls.h"

namespace common {

struct Http2Body {
  EvbufferPtr bytes{evbuffer_new()};
};

namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kPrefaceSize = sizeof kPreface - 1;
// Output queued in this process per connection before frames wait for the socket:
// enough to keep a fast client's window busy, small enough that slow clients cost
// little (body bytes are references, not copies, either way).
constexpr size_t kOutputBound = 256 * 1024;
// The transport takes at most half before the filter holds the rest: the filter
// then always has bytes to move when the socket drains, and calls our write
// callback as it does.
constexpr size_t kTransportBound = kOutputBound / 2;
// Rapid reset (CVE-2023-44487): RST_STREAMs from a client, as a token bucket.
constexpr double kResetBurst = 200;
constexpr double kResetsPerSecond = 100;
constexpr uint32_t kMaxConcurrentStreams = 128;
// A header list this many times the limit ends the connection instead of one stream.
constexpr size_t kHeaderListAbuseFactor = 4;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

// HTTP/1.1 connection-specific fields have no meaning in HTTP/2 (RFC 9113 §8.2.2).
bool connection_specific(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

nghttp2_nv make_nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{
      reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
      NGHTTP2_NV_FLAG_NONE};  // nghttp2 copies: the strings may be gone before the frame is sent
}

std::string peer_ip(bufferevent* bev) {
  evutil_socket_t fd = bufferevent_getfd(bev);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  return address_text(reinterpret_cast<const sockaddr*>(&addr));
}

Http2Stream* stream_of(nghttp2_session* session, int32_t id) {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

}  // namespace

// ---- the filter that tells HTTP/1.1 from HTTP/2 ----

struct Sniffer {
  HttpServer* server;
  bufferevent* transport;
  bool tls;
  std::weak_ptr<ProtocolFilters> registry;  // may end before the filter
  bufferevent* filter = nullptr;
  evbuffer_cb_entry* output_watch = nullptr;
  enum class Mode { undecided, http1, http2 } mode = Mode::undecided;
  Http2Connection* connection = nullptr;  // owned (deleted with the filter)
  // A reply that ends the connection was handed to the transport: read no more
  // requests, free the connection once the transport has written everything.
  evhttp_connection* close_when_written = nullptr;
  evbuffer_cb_entry* transport_watch = nullptr;
  EventPtr close_event{};
};

namespace {

// The clean end of a TLS connection: close_notify before the socket closes, once all its
// output is out. Without it an OpenSSL-based client reading to the end (HTTP/1.0, Connection:
// close) sees an unexpected EOF, reports an error and drops the session it could resume.
void send_close_notify(bufferevent* transport) {
  SSL* ssl = bufferevent_openssl_get_ssl(transport);
  if (ssl == nullptr || !SSL_is_init_finished(ssl) ||
      evbuffer_get_length(bufferevent_get_output(transport)) > 0) {
    return;
  }
  // One short alert on a non-blocking socket; a peer already gone makes it fail, harmlessly.
  SSL_shutdown(ssl);
  ERR_clear_error();
}

void close_if_written(Sniffer& s) {
  if (s.close_when_written == nullptr) return;
  if (evbuffer_get_length(bufferevent_get_output(s.filter)) > 0) return;
  if (evbuffer_get_length(bufferevent_get_output(s.transport)) > 0) return;
  // Not from inside the transport's own callbacks: the free takes the transport too.
  event_active(s.close_event.get(), 0, 0);
}

void on_transport_output(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  if (info->n_deleted > 0) close_if_written(*static_cast<Sniffer*>(arg));
}

bool asks_close(const evkeyvalq* headers) {
  const char* value = evhttp_find_header(headers, "Connection");
  return value != nullptr && evutil_ascii_strcasecmp(value, "close") == 0;
}

bool asks_keep_alive(const evkeyvalq* headers) {
  const char* value = evhttp_find_header(headers, "Connection");
  return value != nullptr && evutil_ascii_strncasecmp(value, "keep-alive", 10) == 0;
}

void remove_all(evkeyvalq* headers, const char* name) {
  for (int i = 0; i < 64 && evhttp_remove_header(headers, name) == 0; ++i) {
  }
}

// evhttp queues a reply while the filter's writing is still disabled and enables
// it only afterwards, which does not make the filter look at its output again:
// the reply would wait for the next event on the transport. So every addition
// asks the transport's write callback (the filter's output step) to run once the
// current callbacks are done.
void on_filter_output(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  auto* s = static_cast<Sniffer*>(arg);
  if (info->n_added > 0 && s->mode == Sniffer::Mode::http1) {
    bufferevent_trigger(s->transport, EV_WRITE,
                        BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
  }
}

// In the clear, moves whole chains only, so nothing is copied (file segments stay files).
// Over TLS, output goes in record-sized pieces (move_in_tls_records).
bufferevent_filter_result pass_output(evbuffer* src, evbuffer* dst, ev_ssize_t limit,
                                      bufferevent_flush_mode mode, void* ctx) {
  size_t bound = limit < 0 ? SIZE_MAX : static_cast<size_t>(limit);
  auto* s = static_cast<Sniffer*>(ctx);
  if (s->tls) {
    const bool was_idle = evbuffer_get_length(dst) == 0;
    // Nothing moved (a short tail held back): BEV_NEED_MORE ends libevent's loop, which
    // would call again at once for as long as we answer BEV_OK.
    size_t moved = move_in_tls_records(src, dst, bound, mode == BEV_NORMAL);
    // The TLS bufferevent writes only when the loop next reports the socket writable: it
    // adds its write event for each reply and removes it once written, two epoll_ctl and a
    // loop turn per reply. Running its write step in this turn writes at once, and the
    // event's addition and removal cancel out before they reach the kernel.
    if (moved > 0 && was_idle) {
      SSL* ssl = bufferevent_openssl_get_ssl(s->transport);
      if (ssl != nullptr && SSL_is_init_finished(ssl))
        event_active(&s->transport->ev_write, EV_WRITE, 1);
    }
    return moved > 0 || evbuffer_get_length(src) == 0 ? BEV_OK : BEV_NEED_MORE;
  }
  size_t moved = 0;
  while (evbuffer_get_length(src) > 0 && moved < bound) {
    evbuffer_iovec first;
    if (evbuffer_peek(src, -1, nullptr, &first, 1) < 1 || first.iov_len == 0) {
      evbuffer_add_buffer(dst, src);
      break;
    }
    evbuffer_remove_buffer(src, dst, first.iov_len);
    moved += first.iov_len;
  }
  return BEV_OK;
}

bufferevent_filter_result sniff_input(evbuffer* src, evbuffer* dst, ev_ssize_t,
                                      bufferevent_flush_mode, void* ctx) {
  auto* s = static_cast<Sniffer*>(ctx);
  if (s->mode == Sniffer::Mode::undecided) {
    if (s->tls) {
      SSL* ssl = bufferevent_openssl_get_ssl(s->transport);
      s->mode = ssl != nullptr && negotiated_protocol(ssl) == "h2" ? Sniffer::Mode::http2
                                                                   : Sniffer::Mode::http1;
    } else {
      char start[kPrefaceSize];
      size_t n = std::min(evbuffer_get_length(src), kPrefaceSize);
      evbuffer_copyout(src, start, n);
      if (memcmp(start, kPreface, n) != 0) {
        s->mode = Sniffer::Mode::http1;
      } else if (n < kPrefaceSize) {
        return BEV_NEED_MORE;  // could still be either
      } else {
        s->mode = Sniffer::Mode::http2;
      }
    }
    if (s->mode == Sniffer::Mode::http2) {
      s->connection = new Http2Connection(*s->server, s->filter, s->transport, s->tls);
    } else if (auto registry = s->registry.lock()) {
      // Until its first request reaches the server (which then keeps its own close
      // callback, flushing too), evhttp may answer and close on its own.
      void* evcon = nullptr;
      bufferevent_getcb(s->filter, nullptr, nullptr, nullptr, &evcon);
      evhttp_connection_set_closecb(
          static_cast<evhttp_connection*>(evcon),
          [](evhttp_connection* conn, void* filters) {
            static_cast<ProtocolFilters*>(filters)->flush_before_close(conn);
          },
          registry.get());
    }
  }
  if (s->mode == Sniffer::Mode::http1 && s->close_when_written != nullptr) {
    evbuffer_drain(src, evbuffer_get_length(src));  // the connection ends after its reply
    return BEV_NEED_MORE;
  }
  if (s->mode == Sniffer::Mode::http1) {
    // Not evbuffer_add_buffer: it refuses a source whose last chain the TLS
    // bufferevent keeps pinned for its next read, and the bytes would sit there.
    evbuffer_remove_buffer(src, dst, evbuffer_get_length(src));
    return BEV_OK;
  }
  s->connection->receive(src);
  return BEV_NEED_MORE;
}

}  // namespace

// nghttp2's callbacks, as members' friends.
struct Http2Callbacks {
  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
    auto* c = static_cast<Http2Connection*>(user);
    if (c->buffered() >= kOutputBound) return NGHTTP2_ERR_WOULDBLOCK;
    evbuffer_add(c->staged_.get(), data, length);
    return static_cast<ssize_t>(length);
  }

  // DATA frames: the 9-byte head copied, the payload added by reference.
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* head, size_t length,
                       nghttp2_data_source* source, void* user) {
    auto* c = static_cast<Http2Connection*>(user);
    auto* stream = static_cast<Http2Stream*>(source->ptr);
    if (c->buffered() >= kOutputBound) return NGHTTP2_ERR_WOULDBLOCK;
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

// ---- Http2Stream ----

std::optional<std::string> Http2Stream::request_header(const char* name) const {
  for (const auto& h : request_headers) {
    if (strcasecmp(h.name.c_str(), name) == 0) return h.value;
  }
  return std::nullopt;
}

std::vector<HttpHeader> Http2Stream::request_headers_with_prefix(std::string_view prefix) const {
  std::vector<HttpHeader> out;
  for (const auto& h : request_headers) {
    if (h.name.size() >= prefix.size() &&
        strncasecmp(h.name.data(), prefix.data(), prefix.size()) == 0)
      out.push_back(h);
  }
  return out;
}

void Http2Stream::add_response_header(const std::string& name, const std::string& value) {
  std::string n = lower(name);
  if (connection_specific(n)) return;
  response_headers.push_back({std::move(n), value});
}

void Http2Stream::remove_response_header(const char* name) {
  std::erase_if(response_headers,
                [&](const HttpHeader& h) { return strcasecmp(h.name.c_str(), name) == 0; });
}

bool Http2Stream::has_response_header(const char* name) const {
  return std::any_of(response_headers.begin(), response_headers.end(),
                     [&](const HttpHeader& h) { return strcasecmp(h.name.c_str(), name) == 0; });
}

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

void Http2Stream::start_reply(int status) {
  if (!date_given) add_response_header("date", http_date(connection->server_.clock()));
  connection->server_.reply_pending();
  submit_head(status, true);
}

void Http2Stream::send_reply(int status, BodyBuffer bytes, bool has_body) {
  if (!date_given) add_response_header("date", http_date(connection->server_.clock()));
  if (!has_body) {
    body_complete = true;
    return submit_head(status, false);
  }
  body = std::make_shared<Http2Body>();
  evbuffer_add_buffer(body->bytes.get(), static_cast<evbuffer*>(bytes.native()));
  body_complete = true;
  submit_head(status, true);
}

void Http2Stream::send_body(BodyBuffer bytes) {
  if (!body) body = std::make_shared<Http2Body>();
  evbuffer_add_buffer(body->bytes.get(), static_cast<evbuffer*>(bytes.native()));
  if (deferred) {
    deferred = false;
    nghttp2_session_resume_data(connection->session(), id);
  }
  connection->flush();
}

void Http2Stream::end_reply() {
  body_complete = true;
  if (deferred) {
    deferred = false;
    nghttp2_session_resume_data(connection->session(), id);
  }
  connection->flush();
}

void Http2Stream::abort_reply() {
  nghttp2_submit_rst_stream(connection->session(), NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  connection->flush();
}

// ---- Http2Connection ----

Http2Connection::Http2Connection(HttpServer& server, bufferevent* filter, bufferevent* transport,
                                 bool tls)
    : server_(server), filter_(filter), transport_(transport), tls_(tls) {
  // evhttp's connection object stays the owner of the filter; we keep its
  // address to free it (and with it the filter and the socket) when done.
  void* cbarg = nullptr;
  bufferevent_getcb(filter_, nullptr, nullptr, nullptr, &cbarg);
  evcon_ = static_cast<evhttp_connection*>(cbarg);
  // The transport takes at most this much before the filter keeps the rest: a
  // drain then moves more and calls our write callback.
  bufferevent_setwatermark(transport_, EV_WRITE, 0, kTransportBound);
  start();
}

Http2Connection::Http2Connection(HttpServer& server, bufferevent* transport)
    : server_(server), filter_(transport), transport_(transport), tls_(true) {}

Http2Connection* Http2Connection::take_over(HttpServer& server, bufferevent* transport) {
  auto* connection = new Http2Connection(server, transport);
  connection->start();
  return connection;
}

void Http2Connection::start() {
  remote_ip_ = peer_ip(transport_);
  bufferevent_set_timeouts(filter_, nullptr, nullptr);
  bufferevent_setwatermark(filter_, EV_WRITE, kOutputBound, 0);
  // Through a filter, the filter's input step hands us the bytes; owned, the transport's
  // read callback does.
  bufferevent_data_cb on_read = nullptr;
  if (owns_transport()) {
    on_read = [](bufferevent* bev, void* arg) {
      static_cast<Http2Connection*>(arg)->receive(bufferevent_get_input(bev));
    };
  }
  bufferevent_setcb(
      filter_, on_read,
      [](bufferevent*, void* arg) { static_cast<Http2Connection*>(arg)->on_writable(); },
      [](bufferevent*, short events, void* arg) {
        auto* self = static_cast<Http2Connection*>(arg);
        if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) self->close_soon();
      },
      this);
  bufferevent_enable(filter_, EV_READ | EV_WRITE);
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
  event_base* base = bufferevent_get_base(filter_);
  close_event_.reset(event_new(
      base, -1, 0,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<Http2Connection*>(arg);
        if (self->owns_transport()) {
          delete self;  // and the transport with it
          return;
        }
        // Frees the filter, whose context deletes us.
        evhttp_connection_free(self->evcon_);
      },
      this));
  idle_timer_.reset(event_new(
      base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Http2Connection*>(arg)->on_timer(); },
      this));
  timeval tick{1, 0};
  evtimer_add(idle_timer_.get(), &tick);
  last_progress_ = std::chrono::steady_clock::now();
  reset_refill_ = last_progress_;
  server_.http2_opened(*this);
}

Http2Connection::~Http2Connection() {
  if (!detached_) server_.http2_closed(*this);
  // Streams still open end as if their client went away.
  for (Http2Stream* stream : std::vector<Http2Stream*>(streams_.begin(), streams_.end())) {
    if (!detached_)
      stream_closed(*stream);
    else
      delete stream;
  }
  nghttp2_session_del(session_);
  if (owns_transport()) {
    send_close_notify(transport_);
    bufferevent_free(transport_);  // the session and the socket with it
  }
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

size_t Http2Connection::buffered() const {
  size_t bytes =
      evbuffer_get_length(staged_.get()) + evbuffer_get_length(bufferevent_get_output(filter_));
  if (filter_ != transport_) bytes += evbuffer_get_length(bufferevent_get_output(transport_));
  return bytes;
}

void Http2Connection::receive(evbuffer* input) {
  if (closing_ || lingering_) {
    evbuffer_drain(input, evbuffer_get_length(input));
    return;
  }
  while (evbuffer_get_length(input) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) break;
    // Replies made inside nghttp2's callbacks are sent after it returns (flush
    // must not re-enter the session).
    in_recv_ = true;
    ssize_t used =
        nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(vec.iov_base), vec.iov_len);
    in_recv_ = false;
    if (used < 0) {
      LOG_DEBUG("http2", "closing a connection from ", remote_ip_, ": ",
                nghttp2_strerror(static_cast<int>(used)));
      evbuffer_drain(input, evbuffer_get_length(input));
      flush();  // a GOAWAY nghttp2 queued, if any
      close_soon();
      return;
    }
    evbuffer_drain(input, static_cast<size_t>(used));
  }
  flush();
}

void Http2Connection::flush() {
  if (closing_) return;
  if (in_recv_ || in_flush_) {
    flush_again_ = true;
    return;
  }
  in_flush_ = true;
  int rv = 0;
  // Replies made by callbacks during a send are sent by the next round (bounded:
  // each round sends what the output bound allows).
  for (int round = 0; round < 8 && rv == 0; ++round) {
    flush_again_ = false;
    rv = nghttp2_session_send(session_);
    if (!flush_again_) break;
  }
  in_flush_ = false;
  // One hand-over for the whole round: the filter then sees every frame at once, and over
  // TLS joins them into full records (move_in_tls_records) instead of one record per
  // frame head and per payload as each is added.
  if (owns_transport()) {
    // No filter to join them: the round's frames go into the TLS bufferevent in record-sized
    // pieces, written in this turn (as pass_output does for a filtered connection).
    evbuffer* out = bufferevent_get_output(transport_);
    const bool was_idle = evbuffer_get_length(out) == 0;
    if (move_in_tls_records(staged_.get(), out, SIZE_MAX, false) > 0 && was_idle)
      event_active(&transport_->ev_write, EV_WRITE, 1);
  } else {
    evbuffer_add_buffer(bufferevent_get_output(filter_), staged_.get());
  }
  if (rv != 0) {
    close_soon();
    return;
  }
  // Done (GOAWAY sent and nothing left): close once the last bytes are out.
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
    finishing_ = true;
    if (buffered() == 0) linger();
  }
}

void Http2Connection::on_writable() {
  // Replies moving out are progress; PING acknowledgements on an idle connection are not.
  if (!streams_.empty()) last_progress_ = std::chrono::steady_clock::now();
  if (finishing_ && buffered() == 0) return linger();
  flush();
}

void Http2Connection::linger() {
  if (lingering_ || closing_) return;
  // The GOAWAY is out. Closing now, with the client's last frames unread, would
  // make the kernel answer with a reset that can destroy the GOAWAY before the
  // client reads it: end our side, read and drop what still comes for a moment.
  lingering_ = true;
  evutil_socket_t fd = bufferevent_getfd(transport_);
  if (fd >= 0 && !tls_) shutdown(fd, SHUT_WR);
  timeval linger_time{1, 0};
  event_add(close_event_.get(), &linger_time);
}

void Http2Connection::on_timer() {
  auto idle = std::chrono::steady_clock::now() - last_progress_;
  if (idle < std::chrono::seconds(server_.options().io_timeout_s)) return;
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
  LOG_WARN("http2", "closing a connection from ", remote_ip_, ": streams reset faster than ",
           static_cast<int>(kResetsPerSecond), "/s (rapid reset)");
  server_.count_rapid_reset();
  // GOAWAY; nothing more is read, and the connection closes once it is written.
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void Http2Connection::refuse_header_list(bool abusive) {
  server_.count_header_list_refusal();
  if (abusive)
    LOG_WARN("http2", "closing a connection from ", remote_ip_, ": header list far over the limit");
}

void Http2Connection::close_soon() {
  if (closing_) return;
  closing_ = true;
  event_active(close_event_.get(), 0, 0);
}

void Http2Connection::dispatch(Http2Stream& stream) {
  auto state = std::make_shared<RequestState>();
  state->server = &server_;
  state->front = &stream;
  state->http2 = true;
  state->tls = tls_;
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

// ---- the filter ----

Sniffer* ProtocolFilters::http1_filter_of(evhttp_connection* conn) const {
  auto found = by_filter_.find(evhttp_connection_get_bufferevent(conn));
  if (found == by_filter_.end() || found->second->mode != Sniffer::Mode::http1) return nullptr;
  return found->second;
}

void ProtocolFilters::flush_before_close(evhttp_connection* conn) {
  Sniffer* filter = http1_filter_of(conn);
  if (filter == nullptr) return;
  Sniffer& s = *filter;
  evbuffer* out = bufferevent_get_output(s.transport);
  evbuffer_remove_buffer(bufferevent_get_output(s.filter), out,
                         evbuffer_get_length(bufferevent_get_output(s.filter)));
  SSL* ssl = s.tls ? bufferevent_openssl_get_ssl(s.transport) : nullptr;
  evutil_socket_t fd = bufferevent_getfd(s.transport);
  // Bounded: evhttp's own replies are a few hundred bytes; a client that does not read
  // loses the rest, as it would with any close.
  for (int round = 0; round < 64 && evbuffer_get_length(out) > 0; ++round) {
    size_t piece = std::min<size_t>(evbuffer_get_length(out), 16 * 1024);
    const unsigned char* bytes = evbuffer_pullup(out, static_cast<ev_ssize_t>(piece));
    ssize_t written = -1;
    if (ssl != nullptr) {
      if (!SSL_is_init_finished(ssl)) break;
      written = SSL_write(ssl, bytes, static_cast<int>(piece));
    } else if (fd >= 0) {
      written = ::send(fd, bytes, piece, MSG_NOSIGNAL);
    }
    if (written <= 0) break;
    evbuffer_drain(out, static_cast<size_t>(written));
  }
  // evhttp shuts the socket's sending side right after this callback.
  if (ssl != nullptr) send_close_notify(s.transport);
}

void ProtocolFilters::close_after_reply(evhttp_request* req) {
  evhttp_connection* conn = evhttp_request_get_connection(req);
  Sniffer* filter = conn != nullptr ? http1_filter_of(conn) : nullptr;
  if (filter == nullptr) return;
  Sniffer& s = *filter;
  evkeyvalq* input = evhttp_request_get_input_headers(req);
  evkeyvalq* output = evhttp_request_get_output_headers(req);
  // evhttp's own rule (evhttp_send_done) for closing after this reply.
  bool http10 = req->major < 1 || (req->major == 1 && req->minor < 1);
  bool closes = (http10 && !asks_keep_alive(input)) || asks_close(input) || asks_close(output);
  if (!closes) return;
  // evhttp would now shut the socket down with the reply's end still in the transport:
  // let it believe the connection stays, and close it ourselves once all is written.
  remove_all(input, "Connection");
  evhttp_add_header(input, "Connection", "keep-alive");
  remove_all(output, "Connection");
  // Requests pipelined behind one that closes are not to be processed (RFC 9112 §9.6).
  evbuffer* unread = bufferevent_get_input(s.filter);
  evbuffer_drain(unread, evbuffer_get_length(unread));
  s.close_when_written = conn;
  if (s.transport_watch == nullptr) {
    s.transport_watch =
        evbuffer_add_cb(bufferevent_get_output(s.transport), on_transport_output, &s);
  }
  close_if_written(s);
}

size_t move_in_tls_records(evbuffer* src, evbuffer* dst, size_t limit, bool hold_short_tail) {
  size_t moved = 0;
  // Bounded: every round moves at least one byte, and at most `limit` bytes move.
  while (evbuffer_get_length(src) > 0 && moved < limit) {
    evbuffer_iovec first;
    if (evbuffer_peek(src, -1, nullptr, &first, 1) < 1) break;
    if (first.iov_len >= kTlsRecordPiece) {
      // Already a record or more (a file segment, a large body): moved, not copied.
      evbuffer_remove_buffer(src, dst, first.iov_len);
      moved += first.iov_len;
      continue;
    }
    size_t n = std::min(evbuffer_get_length(src), kTlsRecordPiece);
    // The transport still writes: it asks for more once it has drained, by when this
    // tail may have grown into a full record.
    if (n < kTlsRecordPiece && hold_short_tail && evbuffer_get_length(dst) > 0) break;
    evbuffer_iovec space;
    if (evbuffer_reserve_space(dst, static_cast<ev_ssize_t>(n), &space, 1) != 1 ||
        space.iov_len < n) {
      evbuffer_remove_buffer(src, dst, n);  // out of memory: unjoined, but nothing lost
      moved += n;
      continue;
    }
    int copied = evbuffer_remove(src, space.iov_base, n);
    if (copied <= 0) break;  // reserved space left uncommitted is not output
    space.iov_len = static_cast<size_t>(copied);
    evbuffer_commit_space(dst, &space, 1);
    moved += space.iov_len;
  }
  return moved;
}

bufferevent* new_protocol_sniffing_bufferevent(HttpServer& server, bufferevent* transport,
                                               bool tls) {
  auto* sniffer = new Sniffer{&server, transport, tls, server.protocol_filters()};
  bufferevent* filter = bufferevent_filter_new(
      // Deferred callbacks: evhttp must hear of written output from the loop, never from
      // inside its own calls (an error reply it sends itself would otherwise complete, and
      // free the connection, while evhttp is still using it).
      transport, sniff_input, pass_output, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS,
      [](void* ctx) {
        auto* s = static_cast<Sniffer*>(ctx);
        // The filter's and the transport's buffers still exist here; they go after.
        evbuffer_remove_cb_entry(bufferevent_get_output(s->filter), s->output_watch);
        if (s->transport_watch != nullptr) {
          evbuffer_remove_cb_entry(bufferevent_get_output(s->transport), s->transport_watch);
        }
        if (auto registry = s->registry.lock()) registry->forget(s->filter);
        if (s->tls) send_close_notify(s->transport);
        delete s->connection;
        delete s;
      },
      sniffer);
  if (filter == nullptr) {
    delete sniffer;
    return nullptr;
  }
  sniffer->filter = filter;
  sniffer->output_watch =
      evbuffer_add_cb(bufferevent_get_output(filter), on_filter_output, sniffer);
  sniffer->close_event.reset(event_new(
      bufferevent_get_base(filter), -1, 0,
      [](evutil_socket_t, short, void* arg) {
        auto* s = static_cast<Sniffer*>(arg);
        // Frees the filter, the transport and, later, this context.
        if (evhttp_connection* conn = std::exchange(s->close_when_written, nullptr))
          evhttp_connection_free(conn);
      },
      sniffer));
  if (auto registry = sniffer->registry.lock()) registry->add(filter, sniffer);
  return filter;
}

}  // namespace common
