#include "common/http_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <strings.h>
#include <ctime>
#include <iostream>

#include "common/json.h"
#include "common/log.h"

namespace common {

// Per-request state shared by the exchange handle and the server. The server
// forgets it once the reply is finished or the connection is gone.
struct RequestState {
  HttpServer* server = nullptr;
  evhttp_request* req = nullptr;  // null once the client is gone
  evhttp_connection* conn = nullptr;
  std::chrono::steady_clock::time_point start;
  std::string method, target, path, query, remote_ip, note;
  int status = 0;
  uint64_t body_bytes = 0;
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

namespace {

constexpr size_t kMaxSingleWrite = 1 << 20;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

const char* method_name(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "OTHER";
}

void on_request(evhttp_request* req, void* arg) { static_cast<HttpServer*>(arg)->handle(req); }

void on_connection_close(evhttp_connection* conn, void* arg) {
  static_cast<HttpServer*>(arg)->connection_closed(conn);
}

void on_reply_complete(evhttp_request*, void* arg) { static_cast<HttpServer*>(arg)->reply_flushed(); }

// A non-blocking listening socket on host:port (IPv4 or IPv6 literal, or a name).
evutil_socket_t listen_socket(const std::string& host, uint16_t port, int backlog, bool reuse_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    errno = EADDRNOTAVAIL;
    return -1;
  }
  evutil_socket_t fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Each loop has its own listener on the port; the kernel spreads connections.
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

// evhttp formats a Date header for every response it sends without one (gmtime
// plus snprintf: about 5% of a small reply's cost); the text changes once a second.
void add_date_header(evkeyvalq* headers, const Clock& clock) {
  thread_local int64_t cached_second = -1;
  thread_local char cached[40];
  int64_t now = clock.unix_now();
  if (now != cached_second) {
    time_t t = static_cast<time_t>(now);
    tm parts{};
    gmtime_r(&t, &parts);
    strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &parts);
    cached_second = now;
  }
  evhttp_add_header(headers, "Date", cached);
}

// evhttp queues a reply and asks the loop for a writable event, writes in the
// next loop turn, then stops watching for writability: two epoll_ctl calls and a
// loop turn per request. A small reply fits the socket buffer now: write it at
// once, cancel the pending write watch (the loop's change list drops it before it
// reaches epoll) and let evhttp's "all written" callback run later in this turn.
// A reply that does not fit is left to evhttp as before.
void write_now(evhttp_connection* conn) {
  bufferevent* bev = evhttp_connection_get_bufferevent(conn);
  evbuffer* out = bufferevent_get_output(bev);
  if (evbuffer_get_length(out) == 0 || evbuffer_get_length(out) > (64u << 10)) return;
  evutil_socket_t fd = bufferevent_getfd(bev);
  if (fd < 0 || evbuffer_write(out, fd) < 0 || evbuffer_get_length(out) != 0) return;
  bufferevent_disable(bev, EV_WRITE);
  bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else if (c == '\0') {
      return std::nullopt;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool has_dot_segment(std::string_view decoded_path) {
  size_t start = decoded_path.empty() || decoded_path[0] != '/' ? 0 : 1;
  while (start <= decoded_path.size()) {
    size_t end = decoded_path.find('/', start);
    if (end == std::string_view::npos) end = decoded_path.size();
    std::string_view segment = decoded_path.substr(start, end - start);
    if (segment == "." || segment == "..") return true;
    start = end + 1;
  }
  return false;
}

std::string redact_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  bool first = true;
  while (!query.empty() || first) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    auto eq = param.find('=');
    std::string_view name = param.substr(0, eq);
    if (!first) out += '&';
    first = false;
    if (eq != std::string_view::npos &&
        (name == "key" || name == "token" || name == "password" || name == "operator_key" || name == "ticket")) {
      out.append(name).append("=***");
    } else {
      out.append(param);
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

void announce_listening(const std::string& service, uint16_t port) {
  std::cout << "{\"event\":\"listening\",\"service\":" << json_string(service) << ",\"port\":" << port << "}"
            << std::endl;
}

// ---- HttpExchange ----

HttpExchange::HttpExchange(std::shared_ptr<RequestState> state) : state_(std::move(state)) {}
HttpExchange::HttpExchange(HttpExchange&&) noexcept = default;
HttpExchange& HttpExchange::operator=(HttpExchange&& other) noexcept {
  if (this != &other) {
    settle();
    state_ = std::move(other.state_);
  }
  return *this;
}

HttpExchange::~HttpExchange() { settle(); }

void HttpExchange::settle() {
  if (state_ == nullptr || state_->finished) return;
  if (state_->closed) return;
  if (state_->streaming) {
    // The producer gave up mid-stream: end what we have; the length mismatch
    // (if Content-Length was sent) tells the client the body is incomplete.
    end();
    return;
  }
  LOG_ERROR(state_->server->options().service, "no reply for ", state_->method, " ",
            redact_target(state_->target), ": answering 500");
  state_->settling = true;
  reply_error(500, "internal_error", "The server did not produce a reply for this request.");
}

const std::string& HttpExchange::method() const { return state_->method; }
const std::string& HttpExchange::target() const { return state_->target; }
const std::string& HttpExchange::path() const { return state_->path; }
const std::string& HttpExchange::query() const { return state_->query; }
const std::string& HttpExchange::remote_ip() const { return state_->remote_ip; }
std::chrono::steady_clock::time_point HttpExchange::started() const { return state_->start; }
bool HttpExchange::replied() const { return state_->streaming || state_->finished; }
bool HttpExchange::finished() const { return state_->finished; }
bool HttpExchange::closed() const { return state_->closed; }
uint64_t HttpExchange::body_bytes_sent() const { return state_->body_bytes; }
void HttpExchange::set_log_note(std::string note) { state_->note = std::move(note); }
bool HttpExchange::logs_access() const { return state_->server->options().access_log; }

void HttpExchange::on_close(std::function<void()> fn) { state_->on_close = std::move(fn); }

std::optional<std::string> HttpExchange::query_param(std::string_view name) const {
  std::string_view query = state_->query;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    auto eq = param.find('=');
    if (param.substr(0, eq) == name) {
      return percent_decode(eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string> HttpExchange::header(const char* name) const {
  if (state_->req == nullptr) return std::nullopt;
  const char* v = evhttp_find_header(evhttp_request_get_input_headers(state_->req), name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string HttpExchange::body() const {
  if (state_->req == nullptr) return {};
  evbuffer* in = evhttp_request_get_input_buffer(state_->req);
  size_t n = evbuffer_get_length(in);
  std::string out(n, '\0');
  evbuffer_copyout(in, out.data(), n);
  return out;
}

void HttpExchange::add_header(const std::string& name, const std::string& value) {
  if (state_->req == nullptr || replied()) return;
  if (strcasecmp(name.c_str(), "Content-Type") == 0) state_->has_content_type = true;
  if (strcasecmp(name.c_str(), "Content-Length") == 0) state_->has_content_length = true;
  evhttp_add_header(evhttp_request_get_output_headers(state_->req), name.c_str(), value.c_str());
}

void HttpExchange::reply(int status, std::string_view body, std::string_view content_type) {
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->req == nullptr) {
    state_->finish();
    return;
  }
  BodyBuffer buffer;
  if (!is_head()) buffer.append(body);
  reply(status, std::move(buffer), body.size(), content_type);
}

void HttpExchange::reply(int status, BodyBuffer body_buffer, size_t length, std::string_view content_type) {
  evbuffer* body = static_cast<evbuffer*>(body_buffer.native());
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->req == nullptr) {
    state_->finish();
    return;
  }
  evkeyvalq* headers = evhttp_request_get_output_headers(state_->req);
  if (!content_type.empty() && !state_->has_content_type) {
    evhttp_add_header(headers, "Content-Type", std::string(content_type).c_str());
  }
  if (!state_->has_content_length && status != 204 && status != 304) {
    evhttp_add_header(headers, "Content-Length", std::to_string(length).c_str());
  }
  if (state_->server->draining()) evhttp_add_header(headers, "Connection", "close");
  add_date_header(headers, state_->server->clock());
  state_->status = status;
  if (is_head() && body != nullptr) evbuffer_drain(body, evbuffer_get_length(body));
  state_->body_bytes += body != nullptr ? evbuffer_get_length(body) : 0;
  // Counted before sending: evhttp may complete (and call back) synchronously.
  state_->server->reply_pending();
  evhttp_request_set_on_complete_cb(state_->req, on_reply_complete, state_->server);
  evhttp_connection* conn = state_->conn;
  evhttp_send_reply(state_->req, status, reason_phrase(status), body);
  if (!state_->settling) write_now(conn);
  state_->finish();
}

void HttpExchange::reply_error(int status, std::string_view code, std::string_view message) {
  if (status == 429 || status == 503) {
    if (state_->req != nullptr &&
        evhttp_find_header(evhttp_request_get_output_headers(state_->req), "Retry-After") == nullptr) {
      add_header("Retry-After", "10");
    }
  }
  if (state_->req != nullptr && !replied()) {
    // An error replaces whatever describes the resource (type, validators).
    evkeyvalq* headers = evhttp_request_get_output_headers(state_->req);
    for (const char* name : {"Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control", "Age",
                             "Accept-Ranges"}) {
      evhttp_remove_header(headers, name);
    }
    state_->has_content_type = false;
    state_->has_content_length = false;
  }
  add_header("Cache-Control", "no-store");
  reply(status, json_error_body(code, message), "application/json");
}

void HttpExchange::start(int status) {
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->req == nullptr) {
    state_->finish();
    return;
  }
  if (state_->server->draining()) add_header("Connection", "close");
  add_date_header(evhttp_request_get_output_headers(state_->req), state_->server->clock());
  state_->status = status;
  state_->streaming = true;
  evhttp_send_reply_start(state_->req, status, reason_phrase(status));
}

void HttpExchange::send(const char* data, size_t n) {
  if (!state_->streaming || state_->finished || state_->closed || n == 0) return;
  if (is_head()) return;
  BodyBuffer buffer;
  buffer.append(std::string_view(data, n));
  send(std::move(buffer));
}

void HttpExchange::send(BodyBuffer body) {
  if (!state_->streaming || state_->finished || state_->closed) return;
  evbuffer* data = static_cast<evbuffer*>(body.native());
  if (is_head()) {
    evbuffer_drain(data, evbuffer_get_length(data));
    return;
  }
  state_->body_bytes += evbuffer_get_length(data);
  evhttp_send_reply_chunk(state_->req, data);
}

void HttpExchange::end() {
  if (state_->finished) return;
  if (state_->closed || state_->req == nullptr || !state_->streaming) {
    if (!state_->streaming && !state_->closed) {
      reply_error(500, "internal_error", "Reply ended before it started.");
      return;
    }
    state_->finish();
    return;
  }
  state_->server->reply_pending();
  evhttp_request_set_on_complete_cb(state_->req, on_reply_complete, state_->server);
  evhttp_send_reply_end(state_->req);  // may free the request at once
  state_->req = nullptr;
  state_->finish();
}

void HttpExchange::abort() {
  if (state_->finished || state_->closed || state_->req == nullptr) {
    if (!state_->finished) state_->finish();
    return;
  }
  // Freeing the connection runs our close callback, which marks the state closed.
  evhttp_connection* conn = state_->conn;
  evhttp_connection_free(conn);
}

// ---- HttpServer ----

HttpServer::HttpServer(event_base& base, HttpServerOptions options, MetricsRegistry& metrics,
                       const Clock& clock)
    : base_(base),
      options_(std::move(options)),
      clock_(clock),
      requests_total_(metrics.counter("http_requests_total", "HTTP requests received")),
      client_aborts_(metrics.counter("http_client_aborts_total",
                                     "Requests whose client went away before the reply finished")),
      latency_(metrics.histogram("http_request_duration_seconds",
                                 "Time from request to the end of the reply")) {
  for (int i = 0; i < 6; ++i) {
    status_counters_[i] = &metrics.counter("http_responses_total", "HTTP responses by status class",
                                           "class=\"" + std::to_string(i) + "xx\"");
  }
}

HttpServer::~HttpServer() {
  // Detach states so late exchange handles do not call into a dead server.
  for (auto& [conn, state] : in_progress_) {
    evhttp_connection_set_closecb(conn, nullptr, nullptr);
    state->closed = true;
    state->req = nullptr;
    state->finished = true;
  }
  in_progress_.clear();
}

Result<std::unique_ptr<HttpServer>> HttpServer::create(event_base& base, HttpServerOptions options,
                                                       MetricsRegistry& metrics, const Clock& clock) {
  std::unique_ptr<HttpServer> server(new HttpServer(base, std::move(options), metrics, clock));
  server->http_.reset(evhttp_new(&base));
  if (!server->http_) return Error{"listen_failed", "evhttp_new failed"};
  evhttp* http = server->http_.get();
  const auto& o = server->options_;
  // Transport-level caps sit above the configured limits so that a request a
  // little over a limit still reaches us and gets a JSON error; grossly
  // oversized ones are cut by evhttp itself.
  evhttp_set_max_headers_size(http, static_cast<ev_ssize_t>(o.max_header_bytes * 2 + 8192));
  evhttp_set_max_body_size(http, static_cast<ev_ssize_t>(o.max_body_bytes * 2 + 65536));
  evhttp_set_timeout(http, o.io_timeout_s);
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                       EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_default_content_type(http, "application/json");
  evhttp_set_gencb(http, on_request, server.get());
  // Our own socket: evhttp_bind_socket listens with a backlog of 128, which makes
  // a herd of viewers connecting at once wait for SYN retransmits.
  evutil_socket_t fd = listen_socket(o.host, o.port, o.listen_backlog, o.reuse_port);
  if (fd < 0) {
    return Error{"listen_failed", "cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " +
                                      strerror(errno)};
  }
  server->bound_ = evhttp_accept_socket_with_handle(http, fd);
  if (server->bound_ == nullptr) {
    evutil_closesocket(fd);
    return Error{"listen_failed", "cannot accept on " + o.host + ":" + std::to_string(o.port)};
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      server->port_ = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      server->port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
  }
  return server;
}

void HttpServer::route(const std::string& path, std::vector<std::string> methods, Handler handler) {
  routes_.push_back(Route{path, false, std::move(methods), std::move(handler)});
}

void HttpServer::route_prefix(const std::string& prefix, std::vector<std::string> methods, Handler handler) {
  routes_.push_back(Route{prefix, true, std::move(methods), std::move(handler)});
}

const HttpServer::Route* HttpServer::find_route(const std::string& path) const {
  const Route* best = nullptr;
  for (const auto& r : routes_) {
    if (!r.prefix && r.path == path) return &r;
    if (r.prefix && path.compare(0, r.path.size(), r.path) == 0) {
      if (best == nullptr || r.path.size() > best->path.size()) best = &r;
    }
  }
  return best;
}

void HttpServer::handle(evhttp_request* req) {
  auto state = std::make_shared<RequestState>();
  state->server = this;
  state->req = req;
  state->conn = evhttp_request_get_connection(req);
  state->start = clock_.now();
  state->method = method_name(evhttp_request_get_command(req));
  const char* uri = evhttp_request_get_uri(req);
  state->target = uri != nullptr ? uri : "";
  auto q = state->target.find('?');
  state->path = state->target.substr(0, q);
  if (q != std::string::npos) state->query = state->target.substr(q + 1);
  auto frag = state->query.find('#');
  if (frag != std::string::npos) state->query.resize(frag);
  char* peer = nullptr;
  ev_uint16_t peer_port = 0;
  evhttp_connection_get_peer(state->conn, &peer, &peer_port);
  state->remote_ip = peer != nullptr ? peer : "";

  active_.fetch_add(1, std::memory_order_relaxed);
  requests_total_.inc();
  // libevent writes at most 16 KiB per call by default: a 1 MiB reply would take
  // 64 loop turns. Larger writes let the kernel move big bodies in a few calls.
  bufferevent_set_max_single_write(evhttp_connection_get_bufferevent(state->conn), kMaxSingleWrite);
  in_progress_[state->conn] = state;
  open_.store(in_progress_.size(), std::memory_order_relaxed);
  evhttp_connection_set_closecb(state->conn, on_connection_close, this);

  HttpExchange exchange(state);

  if (draining_) {
    exchange.reply_error(503, "shutting_down", "The server is shutting down; retry on another node.");
    return;
  }
  size_t header_bytes = state->target.size() + 16;
  for (evkeyval* h = evhttp_request_get_input_headers(req)->tqh_first; h != nullptr; h = h->next.tqe_next) {
    header_bytes += strlen(h->key) + strlen(h->value) + 4;
  }
  if (state->target.size() > options_.max_header_bytes) {
    exchange.reply_error(414, "uri_too_long",
                         "The request target is longer than " + std::to_string(options_.max_header_bytes) +
                             " bytes.");
    return;
  }
  if (header_bytes > options_.max_header_bytes) {
    exchange.reply_error(431, "headers_too_large",
                         "The request headers are larger than " + std::to_string(options_.max_header_bytes) +
                             " bytes.");
    return;
  }
  if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > options_.max_body_bytes) {
    exchange.reply_error(413, "body_too_large",
                         "The request body is larger than " + std::to_string(options_.max_body_bytes) + " bytes.");
    return;
  }
  if (state->path.empty() || state->path[0] != '/') {
    exchange.reply_error(400, "bad_target", "The request target must be an origin-form path.");
    return;
  }
  const Route* route = find_route(state->path);
  if (route == nullptr) {
    exchange.reply_error(404, "not_found", "No resource at this path.");
    return;
  }
  if (std::find(route->methods.begin(), route->methods.end(), state->method) == route->methods.end()) {
    std::string allow;
    for (const auto& m : route->methods) allow += (allow.empty() ? "" : ", ") + m;
    exchange.add_header("Allow", allow);
    exchange.reply_error(405, "method_not_allowed", "Method " + state->method + " is not allowed here.");
    return;
  }
  route->handler(exchange);
}

void HttpServer::request_finished(RequestState& state) {
  if (active_.load(std::memory_order_relaxed) > 0) active_.fetch_sub(1, std::memory_order_relaxed);
  auto it = in_progress_.find(state.conn);
  if (it != in_progress_.end() && it->second.get() == &state) {
    // Keep the close callback registered only while a request is in progress.
    evhttp_connection_set_closecb(state.conn, nullptr, nullptr);
    in_progress_.erase(it);
    open_.store(in_progress_.size(), std::memory_order_relaxed);
  }
  double seconds = std::chrono::duration<double>(clock_.now() - state.start).count();
  latency_.observe(seconds);
  int status_class = state.closed ? 0 : std::clamp(state.status / 100, 0, 5);
  status_counters_[status_class]->inc();
  if (options_.access_log) {
    char line[64];
    snprintf(line, sizeof line, " %d %llu %.1fms", state.closed ? 499 : state.status,
             static_cast<unsigned long long>(state.body_bytes), seconds * 1000);
    log_line(LogLevel::info, "access",
             options_.service + " " + state.remote_ip + " \"" + state.method + " " + redact_target(state.target) +
                 "\"" + line + (state.note.empty() ? "" : " " + state.note));
  }
  check_drained();
}

void HttpServer::connection_closed(evhttp_connection* conn) {
  auto it = in_progress_.find(conn);
  if (it == in_progress_.end()) return;
  std::shared_ptr<RequestState> state = it->second;
  in_progress_.erase(it);
  open_.store(in_progress_.size(), std::memory_order_relaxed);
  evhttp_request* req = state->req;
  state->req = nullptr;
  state->closed = true;
  client_aborts_.inc();
  // evhttp detaches a request it is still replying to (EOF, timeout) and leaves
  // freeing it to us; an attached one is freed with the connection.
  if (req != nullptr && evhttp_request_get_connection(req) == nullptr) evhttp_request_free(req);
  if (!state->finished) state->finish();
  if (state->on_close) {
    auto fn = std::move(state->on_close);
    fn();
  }
}

void HttpServer::reply_flushed() {
  if (unflushed_ > 0) --unflushed_;
  check_drained();
}

void HttpServer::drain(std::function<void()> on_drained) {
  if (draining_) return;
  draining_ = true;
  on_drained_ = std::move(on_drained);
  if (bound_ != nullptr) {
    evhttp_del_accept_socket(http_.get(), bound_);
    bound_ = nullptr;
  }
  LOG_INFO(options_.service, "draining: ", active_requests(), " request(s) in progress");
  drain_timer_.reset(evtimer_new(
      &base_,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<HttpServer*>(arg);
        LOG_WARN(self->options_.service, "drain timeout with ", self->active_requests(),
                 " request(s) still in progress");
        if (self->on_drained_) {
          auto fn = std::move(self->on_drained_);
          fn();
        }
      },
      this));
  timeval tv{options_.drain_timeout_s, 0};
  evtimer_add(drain_timer_.get(), &tv);
  check_drained();
}

void HttpServer::check_drained() {
  if (!draining_ || active_requests() > 0 || unflushed_ > 0 || !on_drained_) return;
  auto fn = std::move(on_drained_);
  on_drained_ = nullptr;
  drain_timer_.reset();
  fn();
}

}  // namespace common
