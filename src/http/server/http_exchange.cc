// HttpExchange: request accessors, replies, streaming, over either protocol's front end.
#include "http/server/http_exchange.h"

#include <event2/buffer.h>

#include <strings.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "core/ascii.h"
#include "core/json.h"
#include "core/log.h"
#include "core/url.h"
#include "http/server/request_state.h"
#include "http/server/value_names.h"

namespace http {
namespace {

constexpr std::pair<int, const char*> kReasonPhrases[] = {
    {200, "OK"},
    {201, "Created"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {416, "Range Not Satisfiable"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

}  // namespace

const char* reason_phrase(int status) {
  return name_in(kReasonPhrases, status, "Status");
}

// Formatting a Date for every response (gmtime plus strftime) cost about 5% of a small reply;
// the text changes once a second.
const char* http_date(const core::Clock& clock) {
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
  return cached;
}

namespace {

// Spare states per thread: enough for a loop's requests in flight between two turns.
constexpr size_t kSpareStates = 64;
// A spare keeps at most this much storage in each string (a long target is let go).
constexpr size_t kSpareStringBytes = 512;

// RequestState::clear resets every field: one added changes the size, and this line asks
// for it to be reset there too.
static_assert(sizeof(RequestState) == 272 || sizeof(void*) != 8,
              "RequestState changed: reset the new field in RequestState::clear");

std::vector<std::shared_ptr<RequestState>>& spare_states() {
  thread_local std::vector<std::shared_ptr<RequestState>> spares;
  return spares;
}

}  // namespace

std::shared_ptr<RequestState> take_request_state() {
  auto& spares = spare_states();
  if (spares.empty()) return std::make_shared<RequestState>();
  std::shared_ptr<RequestState> state = std::move(spares.back());
  spares.pop_back();
  return state;
}

void release_request_state(std::shared_ptr<RequestState>& state) {
  auto& spares = spare_states();
  if (state == nullptr || state.use_count() != 1 || !state->finished ||
      spares.size() >= kSpareStates) {
    state.reset();
    return;
  }
  state->clear(kSpareStringBytes);
  spares.push_back(std::move(state));
}

HttpExchange::HttpExchange(std::shared_ptr<RequestState> state) : state_(std::move(state)) {}
HttpExchange::HttpExchange(HttpExchange&&) noexcept = default;
HttpExchange& HttpExchange::operator=(HttpExchange&& other) noexcept {
  if (this != &other) {
    settle();
    release_request_state(state_);
    state_ = std::move(other.state_);
  }
  return *this;
}

HttpExchange::~HttpExchange() {
  settle();
  release_request_state(state_);
}

void HttpExchange::settle() {
  if (state_ == nullptr || state_->finished) return;
  if (state_->closed) return;
  if (state_->streaming) {
    // The producer gave up mid-stream: end what we have; the length mismatch
    // (if Content-Length was sent) tells the client the body is incomplete.
    end();
    return;
  }
  LOG_ERROR_LIMITED(state_->server->options().service, "no reply for ", state_->method, " ",
                    redact_target(state_->target), ": answering 500");
  reply_error(500, "internal_error", "The server did not produce a reply for this request.");
}

const std::string& HttpExchange::method() const {
  return state_->method;
}
const std::string& HttpExchange::target() const {
  return state_->target;
}
const std::string& HttpExchange::path() const {
  return state_->path;
}
const std::string& HttpExchange::query() const {
  return state_->query;
}
const std::string& HttpExchange::remote_ip() const {
  return state_->remote_ip;
}
std::string HttpExchange::remote_network() const {
  return core::address_group_key(state_->remote_ip, state_->server->options().ipv6_prefix_length);
}
std::chrono::steady_clock::time_point HttpExchange::started() const {
  return state_->start;
}
bool HttpExchange::replied() const {
  return state_->streaming || state_->finished;
}
bool HttpExchange::finished() const {
  return state_->finished;
}
bool HttpExchange::closed() const {
  return state_->closed;
}
uint64_t HttpExchange::body_bytes_sent() const {
  return state_->body_bytes;
}
void HttpExchange::set_log_note(std::string note) {
  state_->note = std::move(note);
}
bool HttpExchange::logs_access() const {
  return state_->server->options().access_log;
}
bool HttpExchange::sends_files() const {
  return !state_->tls && !state_->http2;
}
bool HttpExchange::secure() const {
  return state_->tls;
}

void HttpExchange::on_close(std::function<void()> fn) {
  state_->on_close = std::move(fn);
}

std::optional<std::string> HttpExchange::query_param(std::string_view name) const {
  auto param = core::find_query_param(state_->query, name);
  if (!param) return std::nullopt;
  return param->decoded_value();
}

std::optional<std::string> HttpExchange::header(const char* name) const {
  if (state_->front == nullptr) return std::nullopt;
  return state_->front->request_header(name);
}

std::vector<HttpHeader> HttpExchange::headers_with_prefix(std::string_view prefix) const {
  if (state_->front == nullptr) return {};
  return state_->front->request_headers_with_prefix(prefix);
}

std::string HttpExchange::body() const {
  if (state_->front == nullptr) return {};
  return state_->front->request_body_bytes();
}

void HttpExchange::add_header(std::string_view name, std::string_view value) {
  if (state_->front == nullptr || replied()) return;
  if (name.size() >= 12 && (name[0] == 'C' || name[0] == 'c')) {  // most names are not these
    if (core::iequals(name, "Content-Type")) state_->has_content_type = true;
    if (core::iequals(name, "Content-Length")) state_->has_content_length = true;
  } else if (name.size() == 4 && core::iequals(name, "Date")) {
    state_->front->date_given = true;
  }
  state_->front->add_response_header(name, value);
}

void HttpExchange::reply(int status, std::string_view body, std::string_view content_type) {
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->front == nullptr) {
    state_->finish();
    return;
  }
  BodyBuffer buffer;
  if (!is_head()) buffer.append(body);
  reply(status, std::move(buffer), body.size(), content_type);
}

void HttpExchange::reply(int status, BodyBuffer body_buffer, size_t length,
                         std::string_view content_type) {
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->front == nullptr) {
    state_->finish();
    return;
  }
  if (!content_type.empty() && !state_->has_content_type) add_header("Content-Type", content_type);
  if (!state_->has_content_length && status != 204 && status != 304) {
    add_header("Content-Length", std::to_string(length));
  }
  state_->status = status;
  if (is_head() && body_buffer.size() > 0) {
    evbuffer* body = static_cast<evbuffer*>(body_buffer.native());
    evbuffer_drain(body, evbuffer_get_length(body));
  }
  const size_t bytes = body_buffer.size();
  state_->body_bytes += bytes;
  // Counted before sending: the front end may complete (and call back) synchronously.
  state_->server->reply_pending();
  state_->front->send_reply(status, std::move(body_buffer), bytes > 0);
  state_->finish();
}

void HttpExchange::reply_error(int status, std::string_view code, std::string_view message) {
  if ((status == 429 || status == 503) &&
      !(state_->front == nullptr || state_->front->has_response_header("Retry-After"))) {
    add_header("Retry-After", "10");
  }
  if (state_->front != nullptr && !replied()) {
    // An error replaces whatever describes the resource (type, validators).
    for (const char* name : {"Content-Type", "Content-Length", "ETag", "Last-Modified",
                             "Cache-Control", "Age", "Accept-Ranges"}) {
      state_->front->remove_response_header(name);
    }
    state_->has_content_type = false;
    state_->has_content_length = false;
  }
  add_header("Cache-Control", "no-store");
  reply(status, core::json_error_body(code, message), "application/json");
}

void HttpExchange::start(int status) {
  if (state_->finished || state_->streaming) return;
  if (state_->closed || state_->front == nullptr) {
    state_->finish();
    return;
  }
  state_->status = status;
  state_->streaming = true;
  state_->front->start_reply(status);
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
  if (state_->front == nullptr) return;
  state_->front->send_body(std::move(body));
}

void HttpExchange::end() {
  if (state_->finished) return;
  if (state_->closed || state_->front == nullptr || !state_->streaming) {
    if (!state_->streaming && !state_->closed) {
      reply_error(500, "internal_error", "Reply ended before it started.");
      return;
    }
    state_->finish();
    return;
  }
  state_->front->end_reply();
  state_->finish();
}

void HttpExchange::abort() {
  if (state_->finished || state_->closed || state_->front == nullptr) {
    if (!state_->finished) state_->finish();
    return;
  }
  state_->front->abort_reply();
}

}  // namespace http
