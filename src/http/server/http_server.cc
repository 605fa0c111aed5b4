#include "http/server/http_server.h"

#include <event2/listener.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <span>

#include "core/allocator.h"
#include "core/json.h"
#include "core/log.h"
#include "core/url.h"
#include "http/h1/http1_connection.h"
#include "http/h1/request_framing.h"
#include "http/h2/http2_connection.h"
#include "http/server/idle_eviction.h"
#include "http/server/request_state.h"

namespace http {
namespace {

// How often a loop looks whether to give memory back, and after how many connections closed
// since it last did: a TLS connection's handshake leaves ~17 KiB of free pages behind.
constexpr int kTrimIntervalS = 2;
constexpr size_t kTrimAfterClosed = 64;

// A non-blocking listening socket on host:port (IPv4 or IPv6 literal, or a name).
evutil_socket_t listen_socket(const std::string& host, uint16_t port, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints,
                  &found) != 0) {
    errno = EADDRNOTAVAIL;
    return -1;
  }
  evutil_socket_t fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Inherited by accepted sockets: a reply written in several pieces (a head, then a body
    // sent from a file by sendfile; TLS records; HTTP/2 frames) must not wait for the
    // client's delayed ACK of the first one (Nagle: ~40 ms; a 2 KiB chunk from the disk
    // store took 45 ms a request on a keep-alive connection).
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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

// The port a listening socket is bound to (0 if it cannot be read).
uint16_t bound_port_of(evutil_socket_t fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

}  // namespace

std::string redact_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out;
  size_t copied = 0;  // bytes of `target` already in `out`
  for (const core::QueryParam& param : core::QueryParams(target.substr(q + 1))) {
    bool has_value = param.text.size() > param.name.size();
    std::string_view name = param.name;
    if (!has_value || !(name == "key" || name == "token" || name == "password" ||
                        name == "operator_key" || name == "ticket" || name == "viewer")) {
      continue;
    }
    size_t value_at = static_cast<size_t>(param.value.data() - target.data());
    out.append(target.substr(copied, value_at - copied)).append("***");
    copied = value_at + param.value.size();
  }
  out.append(target.substr(copied));
  return out;
}

void announce_listening(const std::string& service, uint16_t port, uint16_t tls_port) {
  std::cout << "{\"event\":\"listening\",\"service\":" << core::json_string(service)
            << ",\"port\":" << port << ",\"tls_port\":" << tls_port << "}" << std::endl;
}
// ---- HttpServer ----

HttpServer::HttpServer(event_base& base, HttpServerOptions options, core::MetricsRegistry& metrics,
                       const core::Clock& clock)
    : base_(base),
      options_(std::move(options)),
      clock_(clock),
      requests_total_(metrics.counter("http_requests_total", "HTTP requests received")),
      client_aborts_(metrics.counter("http_client_aborts_total",
                                     "Requests whose client went away before the reply finished")),
      rapid_resets_(metrics.counter("http2_rapid_reset_closes_total",
                                    "HTTP/2 connections closed for resetting streams too fast")),
      header_list_refusals_(
          metrics.counter("http2_header_list_refusals_total",
                          "HTTP/2 requests whose decoded header list exceeded the limit")),
      stalled_closes_(metrics.counter(
          "http2_stalled_connections_closed_total",
          "HTTP/2 connections closed for sending no reply bytes for io_timeout_s (client window)")),
      http2_connections_total_(metrics.counter(
          "http2_connections_total",
          "Connections that went on in HTTP/2 (ALPN h2 over TLS, or the h2c preface)")),
      evicted_idle_(metrics.counter(
          "http_connections_evicted_total",
          "Idle connections closed to make room for a new one when the connection table was full")),
      tls_full_(metrics.counter("tls_handshakes_total",
                                "TLS handshakes finished, by whether a session ticket resumed them",
                                "session=\"new\"")),
      tls_resumed_(
          metrics.counter("tls_handshakes_total",
                          "TLS handshakes finished, by whether a session ticket resumed them",
                          "session=\"resumed\"")),
      latency_(metrics.histogram("http_request_duration_seconds",
                                 "Time from request to the end of the reply")) {
  bad_requests_.resize(kFramingProblemCount);
  for (size_t i = 1; i < kFramingProblemCount; ++i) {
    bad_requests_[i] = &metrics.counter(
        "http_bad_requests_total",
        "HTTP/1.x requests refused with 400 for their framing or Host (connection closed)",
        "reason=\"" + std::string(framing_problem_code(static_cast<FramingProblem>(i))) + "\"");
  }
  for (int i = 0; i < 6; ++i) {
    status_counters_[i] = &metrics.counter("http_responses_total", "HTTP responses by status class",
                                           "class=\"" + std::to_string(i) + "xx\"");
  }
}

HttpServer::~HttpServer() {
  // Detach states so late exchange handles do not call into a dead server.
  for (auto& [c, slot] : std::exchange(http2_connections_, {})) {
    c->detach();
    delete c;
  }
  for (Http1Connection* c : std::exchange(http1_connections_, {})) {
    c->detach();
    delete c;
  }
}

core::Result<std::unique_ptr<HttpServer>> HttpServer::create(
    event_base& base, HttpServerOptions options, core::MetricsRegistry& metrics,
    const core::Clock& clock, const TlsContext* tls, std::shared_ptr<ConnectionLimits> limits) {
  std::unique_ptr<HttpServer> server(new HttpServer(base, std::move(options), metrics, clock));
  server->tls_context_ = tls;
  if (limits == nullptr) {
    limits = std::make_shared<ConnectionLimits>(server->options_.connection_limits(), metrics);
  }
  server->limits_ = std::move(limits);
  server->deferred_event_.reset(event_new(
      &base, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<HttpServer*>(arg)->run_deferred(); },
      server.get()));
  if (!server->deferred_event_)
    return core::Error{"listen_failed", "out of memory for the server's event"};
  server->trim_timer_.reset(event_new(
      &base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<HttpServer*>(arg)->trim_memory(); },
      server.get()));
  if (server->trim_timer_) {
    const timeval every{kTrimIntervalS, 0};
    evtimer_add(server->trim_timer_.get(), &every);
  }
  const auto& o = server->options_;
  server->plain_.http2 = o.h2c;
  if (o.plain) {
    if (auto s = server->listen_on(server->plain_, o.port, o.listen_fd, server->port_); !s)
      return s.error();
  }
  if (o.tls.enabled) {
    if (tls == nullptr)
      return core::Error{"listen_failed", "TLS is enabled but no certificate is loaded"};
    server->tls_.tls = true;
    server->tls_.http2 = o.http2;
    if (auto s = server->listen_on(server->tls_, o.tls.port, o.tls_listen_fd, server->tls_port_);
        !s)
      return s.error();
  }
  if (!o.plain && !o.tls.enabled)
    return core::Error{"listen_failed", "neither plain HTTP nor TLS is enabled"};
  return server;
}

// Runs inside libevent's accept loop, which would otherwise accept until the queue is empty:
// a loop that woke first would take a whole burst of new connections (a kickoff's TLS
// handshakes, ~0.5 ms each) while the other loops, woken for the same socket, found nothing.
// kAcceptsPerTurn (http_server.h) bounds that share.

void HttpServer::pause_accepting(Listener& listener) {
  evconnlistener* accepting = this->accepting(listener);
  if (!options_.shared_listener || accepting == nullptr) return;
  if (!listener.resume_accepting) {
    listener.resume_accepting.reset(event_new(
        &base_, -1, 0,
        [](evutil_socket_t, short, void* arg) {
          auto* l = static_cast<Listener*>(arg);
          l->accepted_this_turn = 0;
          const bool backing_off =
              l->retry_accepting && evtimer_pending(l->retry_accepting.get(), nullptr);
          if (evconnlistener* paused = l->server->accepting(*l); paused && !backing_off)
            evconnlistener_enable(paused);
        },
        &listener));
    if (!listener.resume_accepting) return;  // out of memory: accept as libevent does
  }
  // The turn's first accept: the count starts again after this turn's other callbacks.
  if (listener.accepted_this_turn++ == 0) event_active(listener.resume_accepting.get(), 0, 0);
  if (listener.accepted_this_turn < kAcceptsPerTurn) return;
  // After this turn's other callbacks the listener's event is added back before the loop next
  // polls, so the loop's change list sends the kernel nothing.
  evconnlistener_disable(accepting);
}

void HttpServer::accepted(Listener& listener, evutil_socket_t fd, const sockaddr* peer) {
  listener.backoff_ms = 0;
  pause_accepting(listener);
  using Pass = ConnectionLimits::Pass;
  ConnectionSlot slot;
  ConnectionLimits::Verdict verdict = limits_->admit(peer, slot, Pass::first);
  // A full table: an idle connection of this loop makes room (a flood of idle connections does
  // not keep new viewers out); with none idle, the operator's reserve.
  if (verdict == ConnectionLimits::Verdict::over_total && evict_idle_connection())
    verdict = limits_->admit(peer, slot, Pass::first);
  if (verdict == ConnectionLimits::Verdict::over_total)
    verdict = limits_->admit(peer, slot, Pass::reserve);
  if (verdict != ConnectionLimits::Verdict::admitted) {
    refuse_connection(listener, fd, verdict);
    return;
  }
  Http1Connection::open(*this, fd, peer, listener.tls ? tls_context_ : nullptr, listener.http2,
                        std::move(slot));
}

bool HttpServer::evict_idle_connection() {
  std::array<IdleCandidate, kIdleCandidates> candidates;
  std::array<IdleConnection*, kIdleCandidates> connections{};
  size_t n = 0;
  for (IdleConnection* c = idle_.oldest(); c != nullptr && n < kIdleCandidates;
       c = c->newer_idle()) {
    candidates[n] = c->idle_candidate(*limits_);
    connections[n++] = c;
  }
  const size_t victim = choose_idle_victim(std::span<const IdleCandidate>(candidates.data(), n));
  if (victim >= n) return false;
  connections[victim]->evict();  // its slot is free when this returns
  evicted_idle_.inc();
  return true;
}

void HttpServer::refuse_connection(const Listener& listener, evutil_socket_t fd,
                                   ConnectionLimits::Verdict verdict) {
  if (!listener.tls) {
    const bool total = verdict == ConnectionLimits::Verdict::over_total;
    const std::string body =
        total ? R"({"error":{"code":"too_many_connections","message":"The server has as many )"
                R"(connections as it serves; retry shortly."}})"
              : R"({"error":{"code":"too_many_connections_from_address","message":"Too many )"
                R"(connections from your address; close some or retry shortly."}})";
    const std::string reply =
        std::string(total ? "HTTP/1.1 503 Service Unavailable\r\n"
                          : "HTTP/1.1 429 Too Many Requests\r\n") +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nRetry-After: " + (total ? "5" : "10") + "\r\nConnection: close\r\n\r\n" + body;
    // What the client sent already is read first: closing with it unread would answer with a
    // reset, which can destroy the reply before the client reads it. One read, no waiting:
    // bytes that come later meet the reset.
    char discard[4096];
    ssize_t ignored = ::recv(fd, discard, sizeof discard, MSG_DONTWAIT);
    ignored = ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
  }
  evutil_closesocket(fd);
}

void HttpServer::accept_failed(Listener& listener) {
  const int error = EVUTIL_SOCKET_ERROR();
  evconnlistener* acceptor = accepting(listener);
  if (acceptor == nullptr) return;
  listener.backoff_ms = std::clamp<int64_t>(listener.backoff_ms * 2, 10, 1000);
  LOG_LIMITED(core::LogLevel::error, options_.service, "accept failed on port ",
              listener.tls ? tls_port_ : port_, ": ", evutil_socket_error_to_string(error), " (",
              limits_->open(), " connections open; accepting again in ", listener.backoff_ms,
              " ms)");
  if (!listener.retry_accepting) {
    listener.retry_accepting.reset(evtimer_new(
        &base_,
        [](evutil_socket_t, short, void* arg) {
          auto* l = static_cast<Listener*>(arg);
          if (evconnlistener* paused = l->server->accepting(*l)) evconnlistener_enable(paused);
        },
        &listener));
    if (!listener.retry_accepting) return;  // out of memory: libevent retries at once
  }
  evconnlistener_disable(acceptor);
  const timeval wait{static_cast<time_t>(listener.backoff_ms / 1000),
                     static_cast<suseconds_t>(listener.backoff_ms % 1000 * 1000)};
  evtimer_add(listener.retry_accepting.get(), &wait);
}

evconnlistener* HttpServer::accepting(const Listener& listener) const {
  return listener.acceptor.get();
}

core::Status HttpServer::listen_on(Listener& listener, uint16_t port, int given_fd,
                                   uint16_t& bound_port) {
  listener.server = this;
  const auto& o = options_;
  // Our own socket, with the configured backlog: 128, as libevent's binding helpers would
  // have it, makes a herd of viewers connecting at once wait for SYN retransmits.
  evutil_socket_t fd = given_fd >= 0 ? given_fd : listen_socket(o.host, port, o.listen_backlog);
  if (fd < 0) {
    return core::Error{"listen_failed", "cannot listen on " + o.host + ":" + std::to_string(port) +
                                            ": " + strerror(errno)};
  }
  // Every connection starts as HTTP/1 (http1_connection.h), which hands HTTP/2 over (ALPN h2
  // over TLS, the preface on h2c). Backlog 0: the socket is listening already.
  listener.acceptor.reset(evconnlistener_new(
      &base_,
      [](evconnlistener*, evutil_socket_t accepted, sockaddr* peer, int, void* arg) {
        auto* l = static_cast<Listener*>(arg);
        l->server->accepted(*l, accepted, peer);
      },
      &listener, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 0, fd));
  if (accepting(listener) != nullptr) {
    // Without it libevent logs the failure and keeps the listener armed: at the open-file
    // limit the loop spun on accept and logged "Too many open files" 4.3 million times in 12 s.
    evconnlistener_set_error_cb(accepting(listener), [](evconnlistener*, void* arg) {
      auto* l = static_cast<Listener*>(arg);
      l->server->accept_failed(*l);
    });
  }
  if (accepting(listener) == nullptr) {
    evutil_closesocket(fd);
    return core::Error{"listen_failed", "cannot accept on " + o.host + ":" + std::to_string(port)};
  }
  bound_port = bound_port_of(fd);
  return {};
}

int HttpServer::listen_fd() const {
  evconnlistener* l = accepting(plain_);
  return l != nullptr ? evconnlistener_get_fd(l) : -1;
}

int HttpServer::tls_listen_fd() const {
  evconnlistener* l = accepting(tls_);
  return l != nullptr ? evconnlistener_get_fd(l) : -1;
}

void HttpServer::route(const std::string& path, std::vector<std::string> methods, Handler handler) {
  routes_.push_back(Route{path, false, std::move(methods), std::move(handler)});
  exact_routes_.emplace(path, routes_.size() - 1);  // a path routed twice keeps its first
  longest_exact_route_ = std::max(longest_exact_route_, path.size());
}

void HttpServer::route_prefix(const std::string& prefix, std::vector<std::string> methods,
                              Handler handler) {
  routes_.push_back(Route{prefix, true, std::move(methods), std::move(handler)});
  // Longest first; among prefixes of one length, the first routed first.
  auto longer_or_equal = [this, &prefix](size_t i) {
    return routes_[i].path.size() >= prefix.size();
  };
  auto at = std::partition_point(prefix_routes_.begin(), prefix_routes_.end(), longer_or_equal);
  prefix_routes_.insert(at, routes_.size() - 1);
}

const HttpServer::Route* HttpServer::find_route(const std::string& path) const {
  // Most requests are for a prefix (a playlist, a chunk) longer than every exact path.
  if (path.size() <= longest_exact_route_) {
    if (auto exact = exact_routes_.find(path); exact != exact_routes_.end()) {
      return &routes_[exact->second];
    }
  }
  for (size_t i : prefix_routes_) {
    const std::string& prefix = routes_[i].path;
    // Prefixes start with "/": the next character tells most of them apart without a call.
    if (prefix.size() > 1 && (path.size() < prefix.size() || path[1] != prefix[1])) continue;
    if (path.compare(0, prefix.size(), prefix) == 0) return &routes_[i];
  }
  return nullptr;
}

void HttpServer::dispatch(std::shared_ptr<RequestState> state, size_t header_bytes,
                          size_t body_bytes) {
  active_.fetch_add(1, std::memory_order_relaxed);
  requests_total_.inc();
  // The exchange is the state's holder here: once it is answered and gone, the state is free
  // for the next request (release_request_state); `request` is valid while it lives.
  RequestState& request = *state;
  HttpExchange exchange(std::move(state));
  if (request.framing != FramingProblem::none) {
    // Before any hook: a preflight answered by one would keep the connection open.
    bad_requests_[static_cast<size_t>(request.framing)]->inc();
    std::string_view code = framing_problem_code(request.framing);
    exchange.set_log_note(std::string(code));
    if (!draining_) exchange.add_header("Connection", "close");  // draining adds its own
    exchange.reply_error(400, code, std::string(framing_problem_message(request.framing)));
    return;
  }
  if (request.operator_only && !is_operator_path(request.path)) {
    // A connection of the operator's reserve (the table full of connections at work).
    exchange.add_header("Retry-After", "5");
    exchange.reply_error(503, "too_many_connections",
                         "The server has as many connections as it serves; retry shortly.");
    return;
  }
  if (pre_route_ && pre_route_(exchange)) return;

  if (draining_) {
    exchange.reply_error(503, "shutting_down",
                         "The server is shutting down; retry on another node.");
    return;
  }
  if (request.target.size() > options_.max_header_bytes) {
    exchange.reply_error(414, "uri_too_long",
                         "The request target is longer than " +
                             std::to_string(options_.max_header_bytes) + " bytes.");
    return;
  }
  if (header_bytes > options_.max_header_bytes) {
    exchange.reply_error(431, "headers_too_large",
                         "The request headers are larger than " +
                             std::to_string(options_.max_header_bytes) + " bytes.");
    return;
  }
  if (body_bytes > options_.max_body_bytes) {
    exchange.reply_error(
        413, "body_too_large",
        "The request body is larger than " + std::to_string(options_.max_body_bytes) + " bytes.");
    return;
  }
  if (request.path.empty() || request.path[0] != '/') {
    exchange.reply_error(400, "bad_target", "The request target must be an origin-form path.");
    return;
  }
  const Route* route = find_route(request.path);
  if (route == nullptr) {
    exchange.reply_error(404, "not_found", "No resource at this path.");
    return;
  }
  if (std::find(route->methods.begin(), route->methods.end(), request.method) ==
      route->methods.end()) {
    std::string allow;
    for (const auto& m : route->methods) allow += (allow.empty() ? "" : ", ") + m;
    exchange.add_header("Allow", allow);
    exchange.reply_error(405, "method_not_allowed",
                         "Method " + request.method + " is not allowed here.");
    return;
  }
  route->handler(exchange);
}

bool HttpServer::is_operator_path(const std::string& path) const {
  const auto& paths = options_.operator_paths;
  return std::find(paths.begin(), paths.end(), path) != paths.end();
}

void HttpServer::request_finished(RequestState& state) {
  if (active_.load(std::memory_order_relaxed) > 0) active_.fetch_sub(1, std::memory_order_relaxed);
  double seconds = std::chrono::duration<double>(clock_.now() - state.start).count();
  latency_.observe(seconds);
  int status_class = state.closed ? 0 : std::clamp(state.status / 100, 0, 5);
  status_counters_[status_class]->inc();
  if (options_.access_log) {
    char line[64];
    snprintf(line, sizeof line, " %d %llu %.1fms", state.closed ? 499 : state.status,
             static_cast<unsigned long long>(state.body_bytes), seconds * 1000);
    core::log_line(core::LogLevel::info, "access",
                   options_.service + " " + state.remote_ip + " \"" + state.method + " " +
                       redact_target(state.target) + "\"" + line +
                       (state.note.empty() ? "" : " " + state.note));
  }
  check_drained();
}

void HttpServer::request_abandoned(RequestState& state) {
  state.front = nullptr;
  state.closed = true;
  client_aborts_.inc();
  if (!state.finished) state.finish();
  if (state.on_close) {
    auto fn = std::move(state.on_close);
    fn();
  }
}

void HttpServer::defer(Http1Connection& connection) {
  deferred_.push_back(&connection);
  if (deferred_.size() == 1) event_active(deferred_event_.get(), EV_TIMEOUT, 1);
}

void HttpServer::run_deferred() {
  // Work deferred while these run waits for the next turn (defer() activates the event again).
  running_deferred_.swap(deferred_);
  for (Http1Connection* connection : running_deferred_) connection->run_deferred();
  running_deferred_.clear();
}

void HttpServer::trim_memory() {
  // Not when few closed: a steady trickle leaves little behind, and a collection walks the heap.
  if (closed_since_trim_ < kTrimAfterClosed) return;
  closed_since_trim_ = 0;
  core::release_free_memory();
}

void HttpServer::update_open_count() {
  open_.store(http1_requests_, std::memory_order_relaxed);
}

void HttpServer::http1_request_began() {
  ++http1_requests_;
  update_open_count();
}

void HttpServer::http1_request_ended() {
  if (http1_requests_ > 0) --http1_requests_;
  update_open_count();
}

void HttpServer::refuse_request(std::shared_ptr<RequestState> state, int status,
                                std::string_view code, std::string_view message) {
  active_.fetch_add(1, std::memory_order_relaxed);
  requests_total_.inc();
  HttpExchange exchange(std::move(state));
  exchange.set_log_note(std::string(code));
  if (!draining_) exchange.add_header("Connection", "close");  // draining adds its own
  exchange.reply_error(status, code, std::string(message));
}

void HttpServer::reply_flushed() {
  if (unflushed_ > 0) --unflushed_;
  check_drained();
}

void HttpServer::drain(std::function<void()> on_drained) {
  if (draining_) return;
  draining_ = true;
  on_drained_ = std::move(on_drained);
  for (Listener* l : {&plain_, &tls_}) l->acceptor.reset();
  trim_timer_.reset();  // a drained loop keeps no timer of ours
  for (auto& [c, slot] : http2_connections_) c->shut_down();
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

}  // namespace http
