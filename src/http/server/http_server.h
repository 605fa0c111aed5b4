// The HTTP server of one event loop: routing, JSON error replies (DESIGN.md error
// contract), one access-log line per request, request size limits, I/O timeouts
// and graceful drain, serving HttpExchanges (http/server/http_exchange.h) over HTTP/1 (one
// path for plain and TLS listeners, http/h1/http1_connection.h) and HTTP/2
// (http/h2/http2_connection.h: h2 by ALPN over TLS, h2c with prior knowledge in the clear),
// both on one Transport (http/transport/transport.h).
// Loop thread only.
#pragma once

#include <event2/event.h>
#include <event2/listener.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cidr.h"
#include "core/clock.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "http/server/connection_limits.h"
#include "http/server/http_exchange.h"
#include "http/server/idle_eviction.h"
#include "http/tls/tls.h"

namespace http {

class Http1Connection;
class Http2Connection;

using EvconnlistenerPtr = core::CHandle<evconnlistener, evconnlistener_free>;

struct HttpServerOptions {
  std::string service = "server";  // names the server in logs and metrics
  std::string host = "127.0.0.1";
  bool plain = true;                    // serve plain HTTP on `port`
  uint16_t port = 0;                    // 0 = ephemeral; port() tells the real one
  TlsOptions tls;                       // HTTPS on tls.port when tls.enabled
  bool http2 = false;                   // TLS: offer h2 in ALPN beside http/1.1
  bool h2c = false;                     // plain: HTTP/2 with prior knowledge beside HTTP/1.1
  size_t max_header_bytes = 16 * 1024;  // request line + headers; above → 431 JSON
  size_t max_body_bytes = 64 * 1024;    // above → 413 JSON
  int listen_backlog = 4096;            // accept queue (the kernel caps it at somaxconn)
  int io_timeout_s = 30;                // read/write inactivity on a connection
  int drain_timeout_s = 10;             // graceful shutdown bound
  // A loop that has not turned for this long ends the process (core/watchdog.h); 0 = off.
  int watchdog_s = 10;
  // Client connections (http/server/connection_limits.h), on every listener: over the total, plain
  // HTTP/1 gets 503 and TLS a close at accept; over the per-address limit, 429 or the close.
  // At the total an idle connection is closed to make room first (idle_eviction.h), and when
  // none is idle a few more are admitted for `operator_paths` only.
  size_t max_connections = 0;                       // 0 = sized from the open-file limit
  size_t max_connections_per_address = 512;         // 0 = no limit
  std::vector<core::Cidr> connection_limit_exempt;  // not limited per address (a venue's NAT)
  // Leading bits of an IPv6 client's address that name the network every per-address limit
  // counts it as (core::address_group; IPv4 clients count by their address), here and in the
  // services' own limits through HttpExchange::remote_network().
  int ipv6_prefix_length = core::kDefaultIpv6PrefixLength;
  // Paths served on a connection of the operator's reserve (kOperatorReserve): health checks
  // and scrapes answer however full the table is.
  std::vector<std::string> operator_paths = {"/health", "/metrics"};
  bool access_log = true;
  size_t threads = 0;  // event loops, each with its own server (0 = one per core)
  // Set by the host when several loops serve the port: the loops share one listening socket
  // (one accept queue; the first loop's server binds it, the others are given a duplicate in
  // listen_fd / tls_listen_fd, which they own), and each takes at most kAcceptsPerTurn
  // connections per turn of its loop, so a burst of new connections is shared by whichever
  // loops are free.
  bool shared_listener = false;
  int listen_fd = -1;
  int tls_listen_fd = -1;

  // The connection limits these options name.
  ConnectionLimitOptions connection_limits() const {
    return {max_connections, max_connections_per_address, connection_limit_exempt,
            ipv6_prefix_length};
  }
};

// A loop on a shared listener accepts at most this many connections per turn. One per turn was
// too few: a loop's turn serving thousands of connections lasts tens of milliseconds, so a herd
// of 6,000 waited seconds in the accept queue (wrk counted hundreds of 2 s timeouts where nginx,
// accepting every pending connection per wake-up, had none). The whole queue is too many: the
// loop that woke first would take a kickoff's burst of TLS handshakes (~0.5 ms each) while the
// others, woken for the same socket, found nothing. Sixteen are a few milliseconds of
// handshakes; the rest wait for whichever loop turns next.
inline constexpr size_t kAcceptsPerTurn = 16;

class HttpServer {
 public:
  // Binds host:port (and host:tls.port with `tls`, which must outlive the
  // server when options.tls.enabled); fails with code "listen_failed" naming
  // the address. `clock` times requests for the access log and latency metrics. `limits`
  // counts connections with the other loops' servers of the process (null: a count of this
  // server's own, from `options`).
  static core::Result<std::unique_ptr<HttpServer>> create(
      event_base& base, HttpServerOptions options, core::MetricsRegistry& metrics,
      const core::Clock& clock = core::Clock::real(), const TlsContext* tls = nullptr,
      std::shared_ptr<ConnectionLimits> limits = nullptr);
  ~HttpServer();

  // Routes: exact path, or every path starting with `prefix`. `methods` lists the
  // accepted methods (e.g. {"GET","HEAD"}); others get 405 JSON with Allow.
  void route(const std::string& path, std::vector<std::string> methods, Handler handler);
  void route_prefix(const std::string& prefix, std::vector<std::string> methods, Handler handler);
  // Runs first for every request, also those this server answers with an error
  // (404, 405, 413, 503 draining ...): may add response headers, or answer and
  // return true (e.g. a CORS preflight, http/server/cors.h). Set before the loop runs.
  // Not run for an HTTP/1.x head refused for its framing or Host
  // (http/h1/request_framing.h): that gets 400 and the connection is closed.
  void set_pre_route(std::function<bool(HttpExchange&)> hook) { pre_route_ = std::move(hook); }

  uint16_t port() const { return port_; }          // 0 without a plain listener
  uint16_t tls_port() const { return tls_port_; }  // 0 without a TLS listener
  // The listening sockets (-1 without one, or once draining): what the host duplicates for
  // the other loops of a shared listener.
  int listen_fd() const;
  int tls_listen_fd() const;
  const core::Clock& clock() const { return clock_; }
  const HttpServerOptions& options() const { return options_; }
  // The process's connection count and limits, shared with the other loops' servers (any
  // thread reads it).
  const ConnectionLimits& connection_limits() const { return *limits_; }
  // Any thread (relaxed reads, for health and metrics).
  size_t active_requests() const { return active_.load(std::memory_order_relaxed); }
  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // Stops accepting, lets in-flight requests finish (bounded by drain_timeout_s),
  // then calls on_drained once.
  void drain(std::function<void()> on_drained);

  // Internal (called by Http1Connection, Http2Connection and RequestState).
  struct Listener {
    HttpServer* server = nullptr;
    bool tls = false;
    bool http2 = false;  // HTTP/2 beside HTTP/1.1 (ALPN h2 on TLS, prior knowledge on plain)
    EvconnlistenerPtr acceptor;       // opens an Http1Connection for each accepted socket
    core::EventPtr resume_accepting;  // a shared listener's: accepts again once this turn is done
    size_t accepted_this_turn = 0;    // a shared listener's, up to kAcceptsPerTurn
    core::EventPtr retry_accepting;   // after accept failed (out of descriptors or memory)
    int64_t backoff_ms = 0;           // the current pause after a failed accept; 0 after a success
  };
  // The checks and routing every request gets, whatever its protocol.
  void dispatch(std::shared_ptr<RequestState> state, size_t header_bytes, size_t body_bytes);
  // An Http1Connection becoming HTTP/2 hands its connection's place here first; the
  // Http2Connection that opens next holds it until it closes.
  void hand_over_slot(ConnectionSlot slot) { handed_slot_ = std::move(slot); }
  // The place it holds, until http2_closed (or its release, when evicted).
  ConnectionSlot& http2_opened(Http2Connection& connection) {
    return http2_connections_.insert_or_assign(&connection, std::move(handed_slot_)).first->second;
  }
  void http2_closed(Http2Connection& connection) { http2_connections_.erase(&connection); }
  void count_rapid_reset() { rapid_resets_.inc(); }
  void count_header_list_refusal() { header_list_refusals_.inc(); }
  void count_stalled_close() { stalled_closes_.inc(); }
  // A finished TLS handshake: resumed from a ticket, or full (a signature of ours).
  void count_tls_handshake(bool resumed) { (resumed ? tls_resumed_ : tls_full_).inc(); }
  void count_http2_connection() { http2_connections_total_.inc(); }
  event_base* event_loop() const { return &base_; }
  void http1_opened(Http1Connection& connection) { http1_connections_.insert(&connection); }
  void http1_closed(Http1Connection& connection) {
    http1_connections_.erase(&connection);
    ++closed_since_trim_;
  }
  void http1_request_began();
  void http1_request_ended();
  // Runs `connection`'s deferred work (the rest of a pipeline, or its delete) in a later turn
  // of the loop: one event per server, not one per connection.
  void defer(Http1Connection& connection);
  // A request whose head could not be read as one (too large, malformed, a version not
  // served): `status` with a JSON error, counted and logged like any, then the close.
  void refuse_request(std::shared_ptr<RequestState> state, int status, std::string_view code,
                      std::string_view message);
  // The client went away before the reply was finished: on_close, counted as an abort.
  void request_abandoned(RequestState& state);
  void request_finished(RequestState& state);
  void reply_pending() { ++unflushed_; }
  void reply_flushed();
  // This loop's connections waiting for a request, of either protocol, oldest first.
  IdleList& idle_connections() { return idle_; }
  // The table is full: closes the idle connection of this loop that idle_eviction.h chooses,
  // so a new one can take its place. False when none is idle here.
  bool evict_idle_connection();

 private:
  HttpServer(event_base& base, HttpServerOptions options, core::MetricsRegistry& metrics,
             const core::Clock& clock);
  struct Route {
    std::string path;
    bool prefix;
    std::vector<std::string> methods;
    Handler handler;
  };
  const Route* find_route(const std::string& path) const;
  bool is_operator_path(const std::string& path) const;
  void check_drained();

  core::Status listen_on(Listener& listener, uint16_t port, int given_fd, uint16_t& bound_port);
  void accepted(Listener& listener, evutil_socket_t fd, const sockaddr* peer);
  // Over a connection limit: plain HTTP/1 is told why (503 or 429, JSON, Retry-After) in one
  // write, TLS is closed unanswered; no handshake, no connection object.
  void refuse_connection(const Listener& listener, evutil_socket_t fd,
                         ConnectionLimits::Verdict verdict);
  // accept failed (EMFILE, ENFILE, ENOBUFS, ENOMEM ...): the listener pauses for backoff_ms,
  // doubling from 10 ms to 1 s while it keeps failing.
  void accept_failed(Listener& listener);
  void pause_accepting(Listener& listener);
  evconnlistener* accepting(const Listener& listener) const;
  void update_open_count();
  // Every few seconds: after many connections have closed, the loop's free memory goes back
  // to the system (core/allocator.h).
  void trim_memory();
  void run_deferred();

  event_base& base_;
  HttpServerOptions options_;
  const TlsContext* tls_context_ = nullptr;
  Listener plain_;
  Listener tls_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  std::vector<Route> routes_;
  std::unordered_map<std::string, size_t> exact_routes_;  // path → its route in routes_
  size_t longest_exact_route_ = 0;
  std::vector<size_t> prefix_routes_;  // in routes_, longest prefix first
  std::function<bool(HttpExchange&)> pre_route_;
  std::shared_ptr<ConnectionLimits> limits_;
  ConnectionSlot handed_slot_;  // see hand_over_slot
  std::unordered_map<Http2Connection*, ConnectionSlot> http2_connections_;
  std::unordered_set<Http1Connection*> http1_connections_;
  IdleList idle_;
  size_t http1_requests_ = 0;  // Http1Connections' requests in progress
  core::EventPtr trim_timer_;
  std::vector<Http1Connection*> deferred_;  // each at most once (Http1Connection::deferred_)
  std::vector<Http1Connection*> running_deferred_;
  core::EventPtr deferred_event_;
  size_t closed_since_trim_ = 0;  // connections closed since the last trim
  const core::Clock& clock_;
  std::atomic<size_t> active_{0};  // requests whose reply is not finished
  std::atomic<size_t> open_{0};    // HTTP/1 requests in progress with their connection
  size_t unflushed_ = 0;           // finished replies still being written
  std::function<void()> on_drained_;
  core::EventPtr drain_timer_;
  std::atomic<bool> draining_{false};  // written by its loop; read by any (health)

  core::Counter& requests_total_;
  core::Counter& client_aborts_;
  core::Counter& rapid_resets_;
  core::Counter& header_list_refusals_;
  core::Counter& stalled_closes_;
  core::Counter& http2_connections_total_;
  core::Counter& evicted_idle_;
  core::Counter& tls_full_;
  core::Counter& tls_resumed_;
  core::Histogram& latency_;
  core::Counter* status_counters_[6];
  std::vector<core::Counter*>
      bad_requests_;  // by FramingProblem (http/h1/request_framing.h); [none] unused
};

// Prints {"event":"listening","service":S,"port":P,"tls_port":T} on stdout and
// flushes: how tests and scripts learn ephemeral ports (0 = no such listener).
void announce_listening(const std::string& service, uint16_t port, uint16_t tls_port = 0);

// The request target with the values of secret-bearing query parameters
// (key, token, password, operator_key, ticket) replaced by "***", for logs.
std::string redact_target(std::string_view target);

}  // namespace http
