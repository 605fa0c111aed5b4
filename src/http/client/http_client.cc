#include "http/client/http_client.h"

#include <strings.h>

#include <cerrno>
#include <climits>

#include <algorithm>
#include <mutex>

#include "core/log.h"

namespace http {

struct HttpClient::Transfer {
  FetchId id = 0;
  HttpClient* client = nullptr;
  CurlEasyPtr easy;
  CurlSlistPtr request_headers;
  FetchCallbacks callbacks;
  FetchHead head;
  bool head_delivered = false;
  bool cancelled = false;
  bool handed = false;  // given to libcurl (else waiting for its host's turn)
  bool slow = false;    // in the slow lane (FetchRequest::slow_lane)
  std::string host;     // scheme://authority, when its host's slots count it
  std::chrono::steady_clock::time_point created;
  std::chrono::milliseconds timeout{0};  // the whole transfer's, time in line included
  uint64_t body_bytes = 0;
  char error[CURL_ERROR_SIZE] = {0};
};

struct HttpClient::SocketWatch {
  core::EventPtr event;
};

namespace {

std::once_flag g_curl_init;

// "scheme://authority" of a URL: the unit libcurl counts max_host_connections in.
std::string host_of(std::string_view url) {
  const size_t scheme_end = url.find("://");
  const size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  return std::string(url.substr(0, url.find_first_of("/?#", authority)));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

size_t header_callback(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<HttpClient::Transfer*>(arg);
  std::string_view line(data, size * n);
  if (t->cancelled) return 0;
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response head (after 100 Continue, or the only one).
    t->head = FetchHead{};
    auto sp = line.find(' ');
    if (sp != std::string_view::npos)
      t->head.status = atoi(std::string(line.substr(sp + 1, 3)).c_str());
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->head.headers.push_back(HttpHeader{std::string(trim(line.substr(0, colon))),
                                         std::string(trim(line.substr(colon + 1)))});
  } else if (trim(line).empty() && t->head.status >= 200 && !t->head_delivered) {
    t->head_delivered = true;
    if (t->callbacks.on_head) t->callbacks.on_head(t->head);
  }
  return t->cancelled ? 0 : size * n;
}

size_t write_callback(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<HttpClient::Transfer*>(arg);
  if (t->cancelled) return 0;
  if (!t->head_delivered) {
    t->head_delivered = true;
    if (t->callbacks.on_head) t->callbacks.on_head(t->head);
    if (t->cancelled) return 0;
  }
  t->body_bytes += size * n;
  if (t->callbacks.on_data) t->callbacks.on_data(std::string_view(data, size * n));
  return t->cancelled ? 0 : size * n;
}

int socket_callback(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
  return static_cast<HttpClient*>(userp)->on_socket(s, what,
                                                    static_cast<HttpClient::SocketWatch*>(socketp));
}

int timer_callback(CURLM*, long timeout_ms, void* userp) {
  static_cast<HttpClient*>(userp)->on_timer_request(timeout_ms);
  return 0;
}

}  // namespace

std::optional<std::string> FetchHead::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() && strncasecmp(h.name.data(), name.data(), name.size()) == 0)
      return h.value;
  }
  return std::nullopt;
}

std::optional<uint64_t> FetchHead::content_length() const {
  auto v = header("Content-Length");
  if (!v || v->empty()) return std::nullopt;
  char* end = nullptr;
  unsigned long long n = strtoull(v->c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return n;
}

HttpClient::HttpClient(event_base& base, HttpClientOptions options)
    : base_(base), options_(std::move(options)) {}

core::Result<std::unique_ptr<HttpClient>> HttpClient::create(event_base& base,
                                                             HttpClientOptions options) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<HttpClient> client(new HttpClient(base, std::move(options)));
  client->multi_.reset(curl_multi_init());
  if (!client->multi_) return core::Error{"internal_error", "curl_multi_init failed"};
  CURLM* m = client->multi_.get();
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_callback);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, client.get());
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_callback);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, client.get());
  curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, client->options_.max_host_connections);
  if (client->options_.max_cached_connections > 0) {
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, client->options_.max_cached_connections);
  }
  client->timer_.reset(evtimer_new(
      &base, [](evutil_socket_t, short, void* arg) { static_cast<HttpClient*>(arg)->on_timeout(); },
      client.get()));
  return client;
}

HttpClient::~HttpClient() {
  for (auto& [id, t] : transfers_) curl_multi_remove_handle(multi_.get(), t->easy.get());
  transfers_.clear();
  spare_easies_.clear();
  multi_.reset();
  sockets_.clear();
}

FetchId HttpClient::fetch(FetchRequest request, FetchCallbacks callbacks) {
  auto t = std::make_unique<Transfer>();
  t->id = next_id_++;
  t->client = this;
  t->callbacks = std::move(callbacks);
  t->easy = take_easy();
  CURL* e = t->easy.get();
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (request.fresh_connection) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  if (!request.local_address.empty()) {
    curl_easy_setopt(e, CURLOPT_INTERFACE, ("host!" + request.local_address).c_str());
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  t->created = std::chrono::steady_clock::now();
  t->timeout = request.timeout.value_or(options_.request_timeout);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(t->timeout.count()));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_callback);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_callback);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  // Wait for a connection being opened only where it may carry HTTP/2 streams: on HTTP/1.1 a
  // host's first request, held long (a blocking playlist reload), would hold up every other
  // request to that host until its answer began.
  const bool may_multiplex = options_.http2 && request.url.size() > 8 &&
                             strncasecmp(request.url.c_str(), "https://", 8) == 0;
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, may_multiplex ? 1L : 0L);
  // Larger reads mean fewer callbacks (and fewer sends to waiters) per chunk.
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, options_.receive_buffer_bytes);
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (!options_.resume_tls_sessions) curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  // h2c (prior knowledge) is not offered: libcurl 7.88 fails concurrent streams on it.
  if (options_.http2) {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, request.body.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_slist* list = nullptr;
  for (const auto& h : request.headers)
    list = curl_slist_append(list, (h.name + ": " + h.value).c_str());
  // No "Expect: 100-continue" round trip before a POST's body.
  if (request.method == "POST") list = curl_slist_append(list, "Expect:");
  t->request_headers.reset(list);
  if (list != nullptr) curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);

  FetchId id = t->id;
  Transfer& added = *t;
  transfers_[id] = std::move(t);
  added.slow = request.slow_lane;
  hand_or_wait(added, request.url);
  return id;
}

CurlEasyPtr HttpClient::take_easy() {
  if (spare_easies_.empty()) return CurlEasyPtr(curl_easy_init());
  CurlEasyPtr easy = std::move(spare_easies_.back());
  spare_easies_.pop_back();
  return easy;
}

void HttpClient::keep_easy(Transfer& t) {
  if (!t.easy || spare_easies_.size() >= kMaxSpareEasies) return;
  // Every option back to its default (the connection cache is the multi handle's).
  curl_easy_reset(t.easy.get());
  spare_easies_.push_back(std::move(t.easy));
}

void HttpClient::hand_or_wait(Transfer& t, const std::string& url) {
  const bool slow_bounded = t.slow && options_.max_host_slow_transfers > 0;
  if (options_.max_host_transfers > 0 || slow_bounded) {
    t.host = host_of(url);
    HostSlots& slots = hosts_[t.host];
    const bool host_full =
        options_.max_host_transfers > 0 && slots.handed >= options_.max_host_transfers;
    if (slow_bounded && (host_full || slots.slow_handed >= options_.max_host_slow_transfers)) {
      slots.slow_in_line.push_back(t.id);
      ++waiting_;
      return;
    }
    if (host_full) {
      slots.in_line.push_back(t.id);
      ++waiting_;
      return;
    }
  }
  hand_to_curl(t);
}

void HttpClient::hand_to_curl(Transfer& t) {
  t.handed = true;
  if (!t.host.empty()) {
    HostSlots& slots = hosts_[t.host];
    ++slots.handed;
    if (t.slow) ++slots.slow_handed;
    // The time spent in line counts: what is left of the timeout (at least 1 ms, so one that
    // ran out fails at once).
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t.created);
    if (waited.count() > 0) {
      const long left = std::max<long>(1, static_cast<long>((t.timeout - waited).count()));
      curl_easy_setopt(t.easy.get(), CURLOPT_TIMEOUT_MS, left);
    }
  }
  // curl refuses API calls from inside its own callbacks: add after it returns.
  if (in_curl_) {
    deferred_adds_.push_back(t.id);
  } else {
    curl_multi_add_handle(multi_.get(), t.easy.get());
  }
}

void HttpClient::release_host_slot(const Transfer& t) {
  auto it = hosts_.find(t.host);
  if (it == hosts_.end()) return;
  --it->second.handed;
  if (t.slow) --it->second.slow_handed;
  hand_from_lines(t.host);
}

void HttpClient::hand_from_lines(const std::string& host) {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return;
  HostSlots& slots = it->second;
  const long any_cap = options_.max_host_transfers > 0 ? options_.max_host_transfers : LONG_MAX;
  const long slow_cap =
      options_.max_host_slow_transfers > 0 ? options_.max_host_slow_transfers : LONG_MAX;
  // Each line in its order; a transfer cancelled while in line is skipped when reached.
  auto take = [&](std::deque<FetchId>& line, auto may_hand) {
    while (!line.empty() && may_hand()) {
      const FetchId next = line.front();
      line.pop_front();
      auto waiting = transfers_.find(next);
      if (waiting == transfers_.end()) continue;
      --waiting_;
      hand_to_curl(*waiting->second);
    }
  };
  take(slots.in_line, [&] { return slots.handed < any_cap; });
  take(slots.slow_in_line, [&] { return slots.handed < any_cap && slots.slow_handed < slow_cap; });
  if (slots.handed == 0 && slots.in_line.empty() && slots.slow_in_line.empty()) hosts_.erase(it);
}

void HttpClient::cancel(FetchId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  it->second->cancelled = true;
  if (in_curl_) {
    deferred_cancels_.push_back(id);
    return;
  }
  remove(id);
}

void HttpClient::remove(FetchId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  if (!t->handed) {
    --waiting_;  // its place in line is skipped when reached
    keep_easy(*t);
    return;
  }
  curl_multi_remove_handle(multi_.get(), t->easy.get());  // harmless if only deferred
  if (!t->host.empty()) release_host_slot(*t);
  keep_easy(*t);
}

int HttpClient::on_socket(curl_socket_t s, int what, SocketWatch* watch) {
  if (what == CURL_POLL_REMOVE) {
    curl_multi_assign(multi_.get(), s, nullptr);
    sockets_.erase(s);
    return 0;
  }
  if (watch == nullptr) {
    auto owned = std::make_unique<SocketWatch>();
    watch = owned.get();
    sockets_[s] = std::move(owned);
    curl_multi_assign(multi_.get(), s, watch);
  }
  short kind = EV_PERSIST;
  if (what & CURL_POLL_IN) kind |= EV_READ;
  if (what & CURL_POLL_OUT) kind |= EV_WRITE;
  watch->event.reset(event_new(
      &base_, s, kind,
      [](evutil_socket_t fd, short events, void* arg) {
        static_cast<HttpClient*>(arg)->on_socket_event(fd, events);
      },
      this));
  event_add(watch->event.get(), nullptr);
  return 0;
}

void HttpClient::on_timer_request(long timeout_ms) {
  if (timeout_ms < 0) {
    evtimer_del(timer_.get());
    return;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  evtimer_add(timer_.get(), &tv);
}

void HttpClient::on_socket_event(curl_socket_t s, short events) {
  int action = 0;
  if (events & EV_READ) action |= CURL_CSELECT_IN;
  if (events & EV_WRITE) action |= CURL_CSELECT_OUT;
  int running = 0;
  in_curl_ = true;
  curl_multi_socket_action(multi_.get(), s, action, &running);
  in_curl_ = false;
  process_completions();
}

void HttpClient::on_timeout() {
  int running = 0;
  in_curl_ = true;
  curl_multi_socket_action(multi_.get(), CURL_SOCKET_TIMEOUT, 0, &running);
  in_curl_ = false;
  process_completions();
}

void HttpClient::process_completions() {
  for (FetchId id : deferred_cancels_) remove(id);
  deferred_cancels_.clear();
  for (FetchId id : deferred_adds_) {
    auto it = transfers_.find(id);
    if (it != transfers_.end()) curl_multi_add_handle(multi_.get(), it->second->easy.get());
  }
  deferred_adds_.clear();
  int pending = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* raw = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
    if (raw == nullptr) continue;
    CURLcode code = msg->data.result;
    auto it = transfers_.find(raw->id);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_.get(), t->easy.get());
    if (!t->host.empty()) release_host_slot(*t);
    if (t->cancelled) {
      keep_easy(*t);
      continue;
    }
    FetchResult result;
    result.ok = code == CURLE_OK;
    result.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    if (code == CURLE_COULDNT_CONNECT) {
      long os_errno = 0;
      curl_easy_getinfo(t->easy.get(), CURLINFO_OS_ERRNO, &os_errno);
      result.refused = os_errno == ECONNREFUSED;
    }
    long status = 0;
    curl_easy_getinfo(t->easy.get(), CURLINFO_RESPONSE_CODE, &status);
    result.status = static_cast<int>(status);
    long version = 0;
    curl_easy_getinfo(t->easy.get(), CURLINFO_HTTP_VERSION, &version);
    result.http_version = version == CURL_HTTP_VERSION_2_0   ? "2"
                          : version == CURL_HTTP_VERSION_1_0 ? "1.0"
                                                             : "1.1";
    result.body_bytes = t->body_bytes;
    if (!result.ok) result.error = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
    if (result.ok && !t->head_delivered) {
      // A body-less response (HEAD, 204, 304, empty 200) still gets its head.
      t->head_delivered = true;
      if (t->callbacks.on_head) t->callbacks.on_head(t->head);
    }
    if (t->callbacks.on_done) t->callbacks.on_done(result);
    keep_easy(*t);
  }
}

}  // namespace http
