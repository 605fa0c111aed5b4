// Asynchronous HTTP client: libcurl's multi interface driven by the libevent
// loop (socket and timer callbacks), so no call ever blocks the loop. Bodies
// stream to the caller as they arrive; connections are reused and HTTP/2 is
// multiplexed to origins that offer it. Redirects are never followed (only
// configured origins may be fetched). Loop thread only.
#pragma once

#include <curl/curl.h>
#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "http/http_handles.h"
#include "http/server/http_server.h"

namespace http {

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{30000};  // whole transfer
  // A transfer slower than low_speed_bytes per second for low_speed_time fails.
  long low_speed_bytes = 1024;
  std::chrono::seconds low_speed_time{10};
  long max_host_connections = 64;
  bool http2 = true;    // h2 via ALPN on https
  std::string ca_file;  // CA bundle for https; empty = system store
  std::string user_agent = "balancer";
  // libcurl's receive buffer per transfer: larger reads mean fewer callbacks per chunk; a
  // client of many small concurrent transfers (the audience tool) keeps it small.
  long receive_buffer_bytes = 256L * 1024;
  // Idle connections kept for reuse across all hosts; 0 = libcurl's default (4 × the transfers
  // running), too few for a client of many hosts and sequential requests, which then
  // connects and closes for most requests.
  long max_cached_connections = 0;
  // At most this many transfers per host (scheme://authority) are handed to libcurl at a time;
  // the rest wait here, first come first served. 0: every transfer goes to libcurl at once,
  // which queues those over max_host_connections itself and, in 7.88, scans that queue on
  // every transfer's removal: with thousands waiting (the audience tool at kickoff) that scan
  // was 42 % of the process. Set it to max_host_connections for HTTP/1.1.
  long max_host_transfers = 0;
  // At most this many transfers of the slow lane (FetchRequest::slow_lane) per host are handed
  // to libcurl at a time; the rest wait here, first come first served. So requests an origin
  // holds long (slow playlists, blocking reloads) leave max_host_connections less this for the
  // others, however many of them there are. 0: the slow lane is not bounded apart.
  long max_host_slow_transfers = 0;
  // A TLS session a handle holds is resumed by its next transfer's new connection to that host
  // (handles are kept for the next transfers). false: every connection a full handshake, as a
  // crowd of devices makes them (the audience tool).
  bool resume_tls_sessions = true;
};

struct FetchRequest {
  std::string url;
  std::string method = "GET";  // GET, HEAD, or POST (with `body`)
  std::vector<HttpHeader> headers;
  std::optional<std::chrono::milliseconds> timeout;  // overrides request_timeout
  std::string body;  // POST only (sent with Content-Length, even when empty)
  // A new connection rather than a kept-alive one (whose peer may have died a moment ago: a
  // request on it fails as reset, not as refused).
  bool fresh_connection = false;
  // A request the caller expects its origin to hold long: it waits for the host's slow-lane
  // budget (HttpClientOptions::max_host_slow_transfers), never for a connection the others need.
  bool slow_lane = false;
  // Connect from this local address (an IP of this host): connections are reused only by
  // requests that name the same one. The audience tool gives each simulated viewer its own, so
  // that a viewer's requests share a connection (HTTP/2) only with its own, as a phone's do.
  std::string local_address{};
};

struct FetchHead {
  int status = 0;
  std::vector<HttpHeader> headers;
  // First header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  std::optional<uint64_t> content_length() const;
};

struct FetchResult {
  bool ok = false;  // transfer completed (any HTTP status)
  int status = 0;
  bool timed_out = false;
  bool refused = false;  // nothing listened at the address: the connection was refused
  std::string error;     // curl's message when !ok
  uint64_t body_bytes = 0;
  std::string http_version;  // "1.1", "2"
};

struct FetchCallbacks {
  std::function<void(const FetchHead&)> on_head;    // once, before any data
  std::function<void(std::string_view)> on_data;    // body bytes as they arrive
  std::function<void(const FetchResult&)> on_done;  // exactly once unless cancelled
};

using FetchId = uint64_t;

class HttpClient {
 public:
  static core::Result<std::unique_ptr<HttpClient>> create(event_base& base,
                                                          HttpClientOptions options);
  ~HttpClient();

  // Starts a transfer. Callbacks run on the loop thread, never from inside fetch().
  FetchId fetch(FetchRequest request, FetchCallbacks callbacks);
  // Stops a transfer; its on_done is not called. Safe from inside its callbacks.
  void cancel(FetchId id);
  size_t active() const { return transfers_.size(); }
  // Transfers waiting here for their host's turn (max_host_transfers).
  size_t waiting() const { return waiting_; }
  // Handles of finished transfers kept for the next ones.
  size_t spare_handles() const { return spare_easies_.size(); }

  // Internal (curl and libevent callbacks).
  struct Transfer;
  struct SocketWatch;
  int on_socket(curl_socket_t s, int what, SocketWatch* watch);
  void on_timer_request(long timeout_ms);
  void on_socket_event(curl_socket_t s, short events);
  void on_timeout();

 private:
  HttpClient(event_base& base, HttpClientOptions options);
  void process_completions();
  void remove(FetchId id);
  // Hands `t` to libcurl, or puts it in its host's line when its lane's budget is taken.
  void hand_or_wait(Transfer& t, const std::string& url);
  void hand_to_curl(Transfer& t);
  void release_host_slot(const Transfer& t);
  void hand_from_lines(const std::string& host);
  // A new transfer's handle: a spare one reset to its defaults, else a new one.
  CurlEasyPtr take_easy();
  // Keeps `t`'s handle for a later transfer (up to kMaxSpareEasies): creating and freeing one
  // per request was about 5 % of the audience tool's CPU (8 requests a second per LL viewer).
  void keep_easy(Transfer& t);
  static constexpr size_t kMaxSpareEasies = 256;

  struct HostSlots {
    long handed = 0;                   // transfers of this host inside libcurl
    long slow_handed = 0;              // of those, slow-lane ones
    std::deque<FetchId> in_line;       // waiting, oldest first (cancelled ones skipped)
    std::deque<FetchId> slow_in_line;  // slow-lane ones waiting, oldest first
  };

  event_base& base_;
  HttpClientOptions options_;
  CurlMultiPtr multi_;
  core::EventPtr timer_;
  FetchId next_id_ = 1;
  std::unordered_map<FetchId, std::unique_ptr<Transfer>> transfers_;
  std::unordered_map<curl_socket_t, std::unique_ptr<SocketWatch>> sockets_;
  bool in_curl_ = false;  // inside curl_multi_socket_action (callbacks may not remove)
  std::vector<FetchId> deferred_cancels_;
  std::vector<FetchId> deferred_adds_;
  // Only with max_host_transfers, or max_host_slow_transfers for slow-lane transfers.
  std::unordered_map<std::string, HostSlots> hosts_;
  size_t waiting_ = 0;
  std::vector<CurlEasyPtr> spare_easies_;  // out of the multi handle, reset
};

}  // namespace http
